"""FID, KID, IS and SSIM of image sets, computed by torchmetrics with the project's classifier.

Each function takes images in model space (float ``(N, 1, r, r)`` in [-1, 1]) and returns plain
Python numbers. The measures themselves are torchmetrics'; this module only chooses the feature
extractor (:class:`~unlearn_gym.eval.features.ClassifierFeatures`), sizes KID's subsets to the sample
counts, and seeds the random subsets/splits of KID and IS without touching the global RNG.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import torch

from unlearn_gym.classifier import Classifier
from unlearn_gym.eval.features import ClassifierFeatures
from unlearn_gym.rng import seeded_global_rng


def _require(name: str) -> None:
    try:
        __import__(name)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"the evaluation measures need {name}: pip install 'unlearn-gym[eval]'") from e


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def frechet_distance(classifier: Classifier, real: torch.Tensor, fake: torch.Tensor) -> float | None:
    """FID between two image sets in the classifier's penultimate feature space.

    :param classifier: the evaluator of the images' preset.
    :param real: reference images.
    :param fake: generated images.
    :returns: the distance (``None`` when either set has fewer than 2 images).
    """
    _require("torchmetrics")
    from torchmetrics.image.fid import FrechetInceptionDistance

    if len(real) < 2 or len(fake) < 2:
        return None
    metric = FrechetInceptionDistance(feature=ClassifierFeatures(classifier, "features"))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return _finite(float(metric.compute()))


@dataclass(frozen=True)
class KID:
    """Kernel Inception Distance: mean and standard deviation over random subsets.

    :param mean: mean MMD² over subsets.
    :param std: its standard deviation over subsets.
    :param subsets: number of subsets.
    :param subset_size: images per subset (of each set).
    :param seed: seed of the subset draws.
    """

    mean: float | None
    std: float | None
    subsets: int
    subset_size: int
    seed: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def kernel_distance(
    classifier: Classifier,
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    subsets: int = 50,
    subset_size: int = 1000,
    seed: int = 0,
) -> KID:
    """KID (polynomial-kernel MMD², degree 3) in the classifier's penultimate feature space.

    :param classifier: the evaluator of the images' preset.
    :param real: reference images.
    :param fake: generated images.
    :param subsets: number of random subsets.
    :param subset_size: images per subset, capped at the smaller set's size.
    :param seed: seed of the subset draws.
    """
    _require("torchmetrics")
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    if size < 2:
        return KID(None, None, subsets, size, seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(
            feature=ClassifierFeatures(classifier, "features"), subsets=subsets, subset_size=size
        )
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with seeded_global_rng(seed):
        mean, std = metric.compute()
    return KID(_finite(float(mean)), _finite(float(std)), subsets, size, seed)


def inception_score(
    classifier: Classifier, images: torch.Tensor, *, splits: int = 5, seed: int = 0
) -> tuple[float | None, float | None]:
    """Inception Score of ``images`` with the classifier's 11-way softmax.

    :param classifier: the evaluator of the images' preset.
    :param images: generated images.
    :param splits: number of splits (the std is over splits; ``None`` for one split).
    :param seed: seed of the random split assignment.
    :returns: (mean, std) over splits; ``(None, None)`` for fewer than ``splits`` images.
    """
    _require("torchmetrics")
    from torchmetrics.image.inception import InceptionScore

    if len(images) < max(1, splits):
        return None, None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = InceptionScore(feature=ClassifierFeatures(classifier, "logits"), splits=splits)
    metric.update(images)
    with seeded_global_rng(seed), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*degrees of freedom.*")  # std of a single split
        mean, std = metric.compute()
    return _finite(float(mean)), (_finite(float(std)) if splits > 1 else None)


def paired_ssim(a: torch.Tensor, b: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """SSIM of each pair ``(a[i], b[i])`` (torchmetrics, Gaussian window σ = 1.5, data range [-1, 1]).

    :param a: images ``(N, 1, r, r)`` in [-1, 1].
    :param b: images of the same shape (e.g. another model's samples from the same noise and labels).
    :returns: float32 ``(N,)`` SSIM values (1 for identical images).
    """
    _require("torchmetrics")
    from torchmetrics.functional.image import structural_similarity_index_measure

    if a.shape != b.shape:
        raise ValueError(f"paired SSIM needs images of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(a) == 0:
        return torch.zeros(0)
    out = [
        structural_similarity_index_measure(
            a[i : i + batch_size].float(), b[i : i + batch_size].float(), reduction="none", data_range=(-1.0, 1.0)
        )
        for i in range(0, len(a), batch_size)
    ]
    return torch.cat([o.reshape(-1) for o in out])
