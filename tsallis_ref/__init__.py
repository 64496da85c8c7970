"""tsallis_ref: the J_Q (Tsallis q-log) loss continuum, GARL and PAFT (Lin & Ie, arXiv 2604.25907).

The core maths is importable without transformers or peft:

>>> import torch, tsallis_ref as tr
>>> float(tr.qloss(torch.tensor(-1.0), 1.0))
1.0
"""
from .losses import amplification, attenuation, qlog, qloss
from .estimators import (
    GARLCoefficients,
    garl_coefficients,
    garl_loss,
    group_advantages,
    grpo_loss,
    log_mean_weight,
    loo_log_mean_weight,
    paft_coefficients,
    paft_loss,
    paft_resample,
    rloo_loss,
    weight_stats,
)

from .config import ConfigError, TrainConfig, load_config

__version__ = "0.1.0"


def __getattr__(name):  # the trainer imports transformers: load it only when asked for
    if name == "train":
        from .trainer import train

        return train
    raise AttributeError(f"module 'tsallis_ref' has no attribute {name!r}")

__all__ = [
    "qlog", "qloss", "amplification", "attenuation",
    "garl_loss", "garl_coefficients", "GARLCoefficients", "paft_loss", "paft_resample", "paft_coefficients",
    "grpo_loss", "group_advantages", "rloo_loss", "log_mean_weight", "loo_log_mean_weight", "weight_stats",
    "TrainConfig", "load_config", "ConfigError", "train",
]
