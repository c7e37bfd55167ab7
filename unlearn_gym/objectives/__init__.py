"""Unlearning objectives: the SISS family (one implementation) and its update rules.

Pure functions of ``(model, batch, λ, generator)``; nothing here knows about gymnasium. The
environment (:mod:`unlearn_gym.envs`), the non-RL methods and the benchmarks all call these.
Both model families share the mixture, the importance weights and the update rules: the DDPM's
``siss_terms`` (:mod:`~unlearn_gym.objectives.siss`) and the VAE's ``vae_siss_terms``
(:mod:`~unlearn_gym.objectives.vae`, one fixed noise level) return the same :class:`Terms`, built by
the shared core (:mod:`~unlearn_gym.objectives.core`); ``objectives_for(noise)``
(:mod:`~unlearn_gym.objectives.family`) picks a family's functions. Imports point down:
``batches``, ``mixture`` -> ``core`` -> ``siss``, ``vae`` -> ``family`` -> ``update``.
"""

from unlearn_gym.objectives.batches import PAIRINGS, PairSampler, SISSBatch
from unlearn_gym.objectives.core import (
    Terms,
    importance_log_weights,
    importance_weights,
    per_sample_mse,
    weighted_siss_terms,
)
from unlearn_gym.objectives.family import (
    CVAE_OBJECTIVES,
    DDPM_OBJECTIVES,
    MODEL_FAMILIES,
    Objectives,
    family_noise,
    naive_deletion_terms,
    objectives_for,
)
from unlearn_gym.objectives.mixture import Mixture, siss_mixture
from unlearn_gym.objectives.siss import (
    denoising_loss,
    erasediff_terms,
    neggrad_terms,
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
    gradient_stats,
    siss_step,
)
from unlearn_gym.objectives.vae import (
    VAENoise,
    gaussian_kl,
    vae_loss,
    vae_per_sample_loss,
    vae_siss_no_is_terms,
    vae_siss_terms,
)

__all__ = [
    "CVAE_OBJECTIVES",
    "DDPM_OBJECTIVES",
    "GRAD_UNITS",
    "MODEL_FAMILIES",
    "PAIRINGS",
    "RULES",
    "Mixture",
    "Objectives",
    "PairSampler",
    "SISSBatch",
    "Terms",
    "UpdateResult",
    "VAENoise",
    "apply_update",
    "check_rule",
    "compute_gradients",
    "default_grad_units",
    "denoising_loss",
    "erasediff_terms",
    "family_noise",
    "forget_coefficient",
    "gaussian_kl",
    "gradient_norms",
    "gradient_stats",
    "importance_log_weights",
    "importance_weights",
    "naive_deletion_terms",
    "neggrad_terms",
    "objectives_for",
    "per_sample_mse",
    "siss_mixture",
    "siss_no_is_terms",
    "siss_step",
    "siss_terms",
    "vae_loss",
    "vae_per_sample_loss",
    "vae_siss_no_is_terms",
    "vae_siss_terms",
    "weighted_siss_terms",
]
