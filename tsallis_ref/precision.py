"""Device, precision and memory policy: the one place that resolves the device (:func:`resolve_device`), knows
whether it computes in bf16 (:func:`native_bf16`) and in which dtype the frozen weights compute
(:func:`compute_dtype`, read by the model loader), decides the autocast dtype and loss scaling of a run
(:func:`precision_for`), enters autocast (:func:`autocast_context`), synchronises a device before a clock is read
(:func:`sync`), saves and restores the random state of a device (:func:`rng_get`, :func:`rng_set`), measures
peak memory (:func:`reset_peak_memory`, :func:`peak_memory_mb`) and sizes generation batches by the free GPU
memory (:func:`resolve_generation_batch`).
"""

from __future__ import annotations

import contextlib
import resource
from typing import Optional

import torch

from .config import TrainConfig

__all__ = [
    "resolve_device",
    "native_bf16",
    "compute_dtype",
    "precision_for",
    "autocast_context",
    "sync",
    "rng_get",
    "rng_set",
    "reset_peak_memory",
    "peak_memory_mb",
    "kv_cache_bytes_per_token",
    "activation_dtype",
    "free_gpu_bytes",
    "auto_generation_batch",
    "resolve_generation_batch",
]


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"``: the GPU when CUDA is available, else the CPU; any other string is taken as a torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 in hardware (CUDA compute capability >= 8, or ROCm). Not
    ``torch.cuda.is_bf16_supported()``, which also answers True on a T4 / V100 through slow emulation."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def compute_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """The dtype of the frozen weights' compute (``model.dtype``). ``"auto"``: bf16 on a GPU with native bf16,
    fp16 on an older GPU (T4, V100: the trainer then scales the loss), fp32 on a CPU (bf16 matmuls are ~30x
    slower there)."""
    if dtype != "auto":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if native_bf16(device) else torch.float16
    return torch.float32


def kv_cache_bytes_per_token(config, dtype: torch.dtype = torch.bfloat16) -> int:
    """Bytes of KV cache one token occupies during generation: layers x 2 (K, V) x KV heads x head dim x the
    element size. Qwen3-0.6B in bf16: 28 x 2 x 8 x 128 x 2 = 114,688 bytes (112 KiB), so 32 sequences of 4k
    tokens hold 14 GiB of cache."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return int(config.num_hidden_layers * 2 * heads * head_dim * torch.empty(0, dtype=dtype).element_size())


def activation_dtype(model) -> torch.dtype:
    """The dtype activations (and the KV cache) take: a 4-bit layer's compute dtype, else the dtype of the
    first floating-point parameter of the decoder layers."""
    for mod in model.modules():
        cd = getattr(mod, "compute_dtype", None)
        if isinstance(cd, torch.dtype):
            return cd
    for n, p in model.named_parameters():
        if ".layers." in n and p.is_floating_point():
            return p.dtype
    return next(model.parameters()).dtype


def free_gpu_bytes(device: torch.device) -> int:
    """Memory a new allocation can use on a CUDA device: the driver's free memory plus what PyTorch's caching
    allocator holds reserved but unused (after a backward pass that is often several GB)."""
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def auto_generation_batch(
    model, n: int, tokens_per_sequence: int, free_bytes: int, *, fraction: float = 0.6, reserve_bytes: int = 1 << 30
) -> int:
    """How many of ``n`` sequences of ``tokens_per_sequence`` tokens to generate at once so that their KV cache
    fills at most ``fraction`` of ``free_bytes`` after ``reserve_bytes`` (prefill activations, sampling
    logits, fragmentation); at least 1, at most ``n``."""
    per_seq = kv_cache_bytes_per_token(model.config, activation_dtype(model)) * tokens_per_sequence
    budget = max(0.0, (free_bytes - reserve_bytes) * fraction)
    return int(max(1, min(n, budget // max(per_seq, 1))))


def resolve_generation_batch(model, batch_size, n: int, tokens_per_sequence: int) -> int:
    """Sequences per ``generate`` call for ``n`` sequences: ``batch_size`` when it is a positive integer, all
    ``n`` for 0, and for ``"auto"`` what :func:`auto_generation_batch` fits in the free GPU memory (all ``n``
    on a CPU)."""
    if batch_size == "auto":
        device = next(model.parameters()).device
        if device.type != "cuda":
            return n
        return auto_generation_batch(model, n, tokens_per_sequence, free_gpu_bytes(device))
    return batch_size or n


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
    """Restore a state taken by :func:`rng_get`."""
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
        return {
            "peak_allocated_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_reserved_mb": torch.cuda.max_memory_reserved(device) / 2**20,
        }
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB -> MiB
