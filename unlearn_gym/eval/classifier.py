"""Moved: the evaluator classifier is :mod:`unlearn_gym.classifier` (below :mod:`unlearn_gym.pretrained`,
which ships it, so that ``pretrained`` does not import ``eval``). This alias keeps old imports working;
import from :mod:`unlearn_gym.classifier` (or :mod:`unlearn_gym.eval`) instead.
"""

from unlearn_gym.classifier import Classifier, build_classifier, load_classifier_file, train_classifier

__all__ = ["Classifier", "build_classifier", "load_classifier_file", "train_classifier"]
