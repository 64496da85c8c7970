"""The Tsallis q-logarithm and the per-example J_Q loss (paper Eqs. 1-3).

Everything here works on floats and on torch tensors, and is written in log space:
``qloss`` takes ``log P`` rather than ``P`` because the success probability of a whole
sequence underflows long before its logarithm does (cold start means log P of -300 or less).
"""
from __future__ import annotations

import math
from typing import Union

import torch

Number = Union[float, int]
TensorLike = Union[Number, torch.Tensor]

__all__ = ["qlog", "qloss", "qexp_m1_over", "check_q", "amplification", "attenuation"]


def check_q(q: TensorLike, name: str = "q") -> None:
    """Raise a ValueError unless every value of ``q`` lies in [0, 1] (the paper's range)."""
    if isinstance(q, torch.Tensor):
        bad = ~((q >= 0) & (q <= 1))
        if bool(bad.any()):
            raise ValueError(f"{name} must lie in [0, 1] (the J_Q continuum); got values {q[bad].tolist()[:5]}")
        return
    if isinstance(q, bool) or not isinstance(q, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1] or a tensor; got {type(q).__name__}")
    if not (0.0 <= float(q) <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1] (the J_Q continuum); got {q!r}. "
                         "q = 0 is RLVR (exploitation), q = 1 is the log-marginal likelihood.")


def qexp_m1_over(a: TensorLike, x: TensorLike) -> TensorLike:
    """Return ``expm1(a * x) / a``, continued to ``x`` at ``a = 0``.

    This is the one numerically delicate piece behind ``qlog`` and ``qloss``:
    ``log_q(u) = qexp_m1_over(1 - q, log u)``. It is accurate for ``a`` near 0 (q near 1)
    and for very negative ``x`` (tiny probabilities), and its autograd gradient is finite
    at ``a = 0``.
    """
    if isinstance(a, torch.Tensor) or isinstance(x, torch.Tensor):
        a_t = torch.as_tensor(a, dtype=x.dtype if isinstance(x, torch.Tensor) else None)
        x_t = torch.as_tensor(x, dtype=a_t.dtype, device=a_t.device)
        if isinstance(x, torch.Tensor):
            a_t = a_t.to(x.device)
            x_t = x
        zero = a_t == 0
        safe_a = torch.where(zero, torch.ones_like(a_t), a_t)
        value = torch.expm1(safe_a * x_t) / safe_a
        # torch differentiates expm1 as (expm1(y) + 1), which cancels to 0 for y << 0 and would
        # lose the tiny cold-start gradients P^(1-q). ``s`` has the same derivatives as ``value``
        # (exp(a x) and its powers), computed accurately, and adds exactly 0 to the detached value.
        s = torch.exp(safe_a * x_t) / safe_a
        return torch.where(zero, x_t, value.detach() + (s - s.detach()))
    a, x = float(a), float(x)
    if a == 0.0:
        return x
    if x == -math.inf:
        return -1.0 / a if a > 0 else -math.inf
    return math.expm1(a * x) / a


def qlog(u: TensorLike, q: TensorLike) -> TensorLike:
    """Tsallis q-logarithm, paper Eq. 1: ``log_q(u) = (u^(1-q) - 1) / (1 - q)``.

    ``log_1(u) = log(u)`` and the function is continuous as ``q -> 1``. Defined for ``u > 0``
    (the paper uses ``0 < u <= 1``); ``u = 0`` gives ``-1/(1-q)`` for ``q < 1`` and ``-inf``
    at ``q = 1``. ``d/du log_q(u) = u^(-q)``.
    """
    check_q(q)
    if isinstance(u, torch.Tensor):
        if bool((u < 0).any()):
            raise ValueError("qlog(u, q) needs u >= 0 (a probability); got a negative value")
        return qexp_m1_over(1.0 - q if not isinstance(q, torch.Tensor) else 1.0 - q.to(u.dtype), torch.log(u))
    u = float(u)
    if u < 0:
        raise ValueError(f"qlog(u, q) needs u >= 0 (a probability); got u={u}")
    return qexp_m1_over(1.0 - float(q), math.log(u) if u > 0 else -math.inf)


def qloss(log_p: TensorLike, q: TensorLike) -> TensorLike:
    """Per-example J_Q loss, paper Eq. 3: ``l_q = -log_q P = (1 - P^(1-q)) / (1 - q)``, from ``log P``.

    Computed as ``-expm1((1-q) log P) / (1-q)``, so it is finite and accurate for ``log P``
    down to -1e4 and beyond, and exactly ``-log P`` at ``q = 1``. Its derivative with respect
    to ``log P`` is ``-P^(1-q)``: the attenuation factor of Prop. 4.1 (Eq. 5).

    q = 0 gives ``1 - P`` (RLVR / exploitation pole); q = 1 gives ``-log P`` (log-marginal
    likelihood / density-estimation pole).
    """
    check_q(q)
    if isinstance(log_p, torch.Tensor):
        a = 1.0 - q if not isinstance(q, torch.Tensor) else 1.0 - q.to(log_p.dtype)
        return -qexp_m1_over(a, log_p)
    log_p = float(log_p)
    if log_p > 1e-9:
        raise ValueError(f"qloss needs log_p <= 0 (the log of a probability); got {log_p}")
    return -qexp_m1_over(1.0 - float(q), min(log_p, 0.0))


def amplification(log_p: TensorLike, q: TensorLike) -> TensorLike:
    """``P^(-q)``: the factor by which grad l_q amplifies the RL gradient grad l_0 (Eq. 5)."""
    if isinstance(log_p, torch.Tensor):
        return torch.exp(-q * log_p)
    return math.exp(-float(q) * float(log_p))


def attenuation(log_p: TensorLike, q: TensorLike) -> TensorLike:
    """``P^(1-q)``: the factor by which grad l_q attenuates the likelihood gradient grad l_1 (Eq. 5)."""
    if isinstance(log_p, torch.Tensor):
        return torch.exp((1 - q) * log_p)
    return math.exp((1.0 - float(q)) * float(log_p))
