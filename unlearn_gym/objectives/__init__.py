"""Unlearning objectives: the SISS family (one implementation) and its update rules.

Pure functions of ``(model, batch, λ, generator)``; nothing here knows about gymnasium. The
environment (:mod:`unlearn_gym.envs`), the non-RL methods and the benchmarks all call these.
"""

from unlearn_gym.objectives.batches import PAIRINGS, PairSampler, SISSBatch
from unlearn_gym.objectives.siss import (
    Terms,
    denoising_loss,
    erasediff_terms,
    importance_log_weights,
    importance_weights,
    naive_deletion_terms,
    neggrad_terms,
    per_sample_mse,
    siss_no_is_terms,
    siss_terms,
)
from unlearn_gym.objectives.update import (
    GRAD_UNITS,
    RULES,
    UpdateResult,
    apply_update,
    check_rule,
    compute_gradients,
    default_grad_units,
    forget_coefficient,
    gradient_norms,
    siss_step,
)

__all__ = [
    "GRAD_UNITS",
    "PAIRINGS",
    "RULES",
    "PairSampler",
    "SISSBatch",
    "Terms",
    "UpdateResult",
    "apply_update",
    "check_rule",
    "compute_gradients",
    "default_grad_units",
    "denoising_loss",
    "erasediff_terms",
    "forget_coefficient",
    "gradient_norms",
    "importance_log_weights",
    "importance_weights",
    "naive_deletion_terms",
    "neggrad_terms",
    "per_sample_mse",
    "siss_no_is_terms",
    "siss_step",
    "siss_terms",
]
