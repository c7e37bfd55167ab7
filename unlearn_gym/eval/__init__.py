"""Evaluation: the evaluator classifier and the measures built on it."""

from unlearn_gym.eval.classifier import Classifier, build_classifier, load_classifier_file, train_classifier

__all__ = ["Classifier", "build_classifier", "load_classifier_file", "train_classifier"]
