"""Device, precision and memory policy of a training run: the one place that decides the autocast dtype and
loss scaling (:func:`precision_for`), enters autocast (:func:`autocast_context`), synchronises a device before
a clock is read (:func:`sync`), saves and restores the random state of a device (:func:`rng_get`,
:func:`rng_set`) and measures peak memory (:func:`reset_peak_memory`, :func:`peak_memory_mb`).

The facts about a device it reads (``native_bf16``, ``compute_dtype``, ``resolve_device``) live with the model
loader in :mod:`tsallis_ref.models`, which builds the weights in that dtype.
"""
from __future__ import annotations

import contextlib
import resource
from typing import Optional

import torch

from .config import TrainConfig
from .models import compute_dtype, native_bf16, resolve_device

__all__ = ["precision_for", "autocast_context", "sync", "rng_get", "rng_set", "reset_peak_memory",
           "peak_memory_mb", "resolve_device"]


def precision_for(cfg: TrainConfig, device: torch.device, params) -> tuple[Optional[torch.dtype], bool]:
    """``(autocast dtype or None, whether to scale the loss)`` for a run (``cfg.mixed_precision``).

    ``"auto"`` (or ``true``): on a GPU, autocast in bf16 where the GPU has native bf16 (compute capability
    >= 8: A100, H100, L4, ...) and in fp16 otherwise (a Colab T4 reports bf16 as "supported" through slow
    emulation, so ``torch.cuda.is_bf16_supported()`` is not used); on a CPU, no autocast. ``"bf16"`` /
    ``"fp16"`` force a dtype (on a CPU too, e.g. to test the fp16 path); ``"no"`` (or ``false``) disables it.
    Autocast needs float32 trainable parameters (LoRA adapters are kept in float32). Whenever fp16 enters
    the forward pass (fp16 autocast, or fp16 compute weights: ``model.dtype`` or the 4-bit compute dtype on
    such a GPU) the loss is scaled with a ``torch.amp.GradScaler``, as fp16 gradients underflow otherwise."""
    params = list(params)
    fp32 = bool(params) and all(p.dtype == torch.float32 for p in params)
    mp = {True: "auto", False: "no"}.get(cfg.mixed_precision, cfg.mixed_precision)
    if mp == "no" or not fp32:
        autocast = None
    elif mp == "auto":
        autocast = None if device.type != "cuda" else (torch.bfloat16 if native_bf16(device) else torch.float16)
    else:
        autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}[mp]
    scale = fp32 and torch.float16 in (autocast, compute_dtype(device, cfg.model.dtype))
    return autocast, scale


def autocast_context(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` in ``dtype`` on ``device``, or a no-op context when ``dtype`` is None. The trainer
    generates its rollouts under the same autocast as it scores them (on a GPU, bf16 / fp16 matmuls and KV
    cache instead of the float32 of the trained weights)."""
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def sync(device: torch.device) -> None:
    """Wait for the device's queued kernels (a GPU), so that a clock read next measures the work done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rng_get(device: torch.device):
    """The CPU random state and, on a GPU, the device's."""
    return (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def rng_set(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (a GPU; a CPU process's peak resident memory never goes down)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    """Peak memory since :func:`reset_peak_memory`: ``{"peak_allocated_mb", "peak_reserved_mb"}`` on a GPU,
    ``{"peak_rss_mb"}`` (the process's peak resident memory) on a CPU."""
    if device.type == "cuda":
        return {"peak_allocated_mb": torch.cuda.max_memory_allocated(device) / 2**20,
                "peak_reserved_mb": torch.cuda.max_memory_reserved(device) / 2**20}
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}   # Linux: KiB -> MiB
