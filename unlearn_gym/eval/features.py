"""The evaluator classifier as a torchmetrics feature extractor.

torchmetrics' ``FrechetInceptionDistance``, ``KernelInceptionDistance`` and ``InceptionScore`` accept
any ``nn.Module`` as ``feature``: it receives the images given to ``update`` unchanged and must return
an ``(N, d)`` matrix. FID reads the width from a ``num_features`` attribute (otherwise it probes the
module with a random 299x299 RGB image, which would fail here). :class:`ClassifierFeatures` provides
that attribute, checks the image shape against the preset, accepts float images in [-1, 1] (the
model space) or uint8 images in [0, 255], and always runs the classifier in eval mode without
gradients, whatever the metric's own train/eval state.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearn_gym.classifier import Classifier

#: What :class:`ClassifierFeatures` returns: penultimate features (FID/KID) or logits (IS).
OUTPUTS = ("features", "logits")


class ClassifierFeatures(nn.Module):
    """Wrap the project's classifier so torchmetrics can use it in place of Inception v3.

    :param classifier: the evaluator (its ``resolution`` fixes the accepted image size).
    :param output: ``"features"`` for the penultimate ``feature_dim`` activations (FID, KID) or
        ``"logits"`` for the 11 class logits (IS; torchmetrics applies the softmax itself).
    :param batch_size: images per classifier forward pass.
    """

    def __init__(self, classifier: Classifier, output: str = "features", batch_size: int = 1000):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.classifier = classifier.eval()
        self.output = output
        self.batch_size = batch_size
        self.resolution = int(classifier.resolution)
        self.channels = 1
        n_classes = classifier.head.out_features
        #: read by torchmetrics' FID to size its running sums (no dummy-input probe needed)
        self.num_features = int(classifier.feature_dim if output == "features" else n_classes)

    def train(self, mode: bool = True) -> ClassifierFeatures:
        """Ignore ``mode``: the extractor stays in eval mode (BatchNorm statistics, no dropout)."""
        return super().train(False)

    def to_model_space(self, imgs: torch.Tensor) -> torch.Tensor:
        """Validate ``(N, 1, r, r)`` images and convert them to float32 in [-1, 1].

        :param imgs: float images in [-1, 1] or uint8 images in [0, 255].
        :raises ValueError: wrong rank, channel count or resolution.
        """
        expect = (self.channels, self.resolution, self.resolution)
        if imgs.ndim != 4 or tuple(imgs.shape[1:]) != expect:
            raise ValueError(
                f"the evaluator classifier takes images of shape (N, {expect[0]}, {expect[1]}, {expect[2]}),"
                f" got {tuple(imgs.shape)}; evaluate with the classifier of the model's preset"
            )
        if imgs.dtype == torch.uint8:
            return imgs.float().div(127.5).sub(1.0)
        return imgs.float()

    @torch.no_grad()
    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """``(N, num_features)`` float32 features or logits of ``imgs``."""
        x = self.to_model_space(imgs)
        self.classifier.eval()
        fn = self.classifier.features if self.output == "features" else self.classifier
        return torch.cat([fn(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)])
