"""tsallis_ref: the J_Q (Tsallis q-log) loss continuum, GARL and PAFT (Lin & Ie, arXiv 2604.25907).

The core maths is importable without transformers or peft:

>>> import torch, tsallis_ref as tr
>>> float(tr.qloss(torch.tensor(-1.0), 1.0))
1.0

The import rule: the modules form layers, and a module imports only from lower layers (the modules of one
package, such as ``data``, also from each other). ``tests/test_import_rule.py`` checks every ``import`` statement
against this table, and that ``tsallis_ref.data`` loads nothing of the trainer stack.

    layer 0: losses, scoring, data
    layer 1: estimators, toy, schedules, shared_prefix
    layer 2: config, theory
    layer 3: precision, metrics_log, checkpoint, miniature
    layer 4: models
    layer 5: rollout, testing
    layer 6: batches, evaluation
    layer 7: trainer, plotting
    layer 8: experiments, integrations, __main__

``data`` holds the benchmarks' loaders, prompts, verifiers and metrics (pure functions of text and records);
``evaluation`` samples from a model and scores with them; the trainer stack (``precision`` to ``trainer``) sits in
between. ``plotting`` (the book's figure style; matplotlib only, nothing of the package) sits below
``experiments``, whose modules draw with it: ``experiments.runs``, ``paper``, ``records``, ``miniature_records`` and
``heldout`` (the held-out chapter's records, tables and learning curves) form the book layer.
"""

from .config import ConfigError, TrainConfig, load_config
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
from .losses import amplification, attenuation, qlog, qloss

__version__ = "0.1.0"


def __getattr__(name):  # the trainer imports transformers: load it only when asked for
    if name == "train":
        from .trainer import train

        return train
    raise AttributeError(f"module 'tsallis_ref' has no attribute {name!r}")


__all__ = [
    "qlog",
    "qloss",
    "amplification",
    "attenuation",
    "garl_loss",
    "garl_coefficients",
    "GARLCoefficients",
    "paft_loss",
    "paft_resample",
    "paft_coefficients",
    "grpo_loss",
    "group_advantages",
    "rloo_loss",
    "log_mean_weight",
    "loo_log_mean_weight",
    "weight_stats",
    "TrainConfig",
    "load_config",
    "ConfigError",
    "train",
]
