"""Evaluation: the measures built on the evaluator classifier (:mod:`unlearn_gym.classifier`).

The measures (FID, KID, IS, SSIM) are torchmetrics'; the feature extractor is the project's classifier.
Importing this package does not import torchmetrics or matplotlib: the measure functions load them
when called (the ``eval`` extra).
"""

from unlearn_gym.classifier import Classifier, build_classifier, load_classifier_file, train_classifier
from unlearn_gym.eval.evaluate import RETAIN_LABELS, evaluate, load_eval_model, write_evaluation
from unlearn_gym.eval.features import ClassifierFeatures
from unlearn_gym.eval.measures import KID, frechet_distance, inception_score, kernel_distance, paired_ssim
from unlearn_gym.eval.plots import plot_forget_retain, plot_lambda_trajectory, plot_loss_components
from unlearn_gym.eval.rates import LabelRates, label_rates, summarize_rates
from unlearn_gym.eval.report import EvalReport

__all__ = [
    "KID",
    "RETAIN_LABELS",
    "Classifier",
    "ClassifierFeatures",
    "EvalReport",
    "LabelRates",
    "build_classifier",
    "evaluate",
    "frechet_distance",
    "inception_score",
    "kernel_distance",
    "label_rates",
    "load_classifier_file",
    "load_eval_model",
    "paired_ssim",
    "plot_forget_retain",
    "plot_lambda_trajectory",
    "plot_loss_components",
    "summarize_rates",
    "train_classifier",
    "write_evaluation",
]
