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
        raise ValueError(
            f"{name} must lie in [0, 1] (the J_Q continuum); got {q!r}. "
            "q = 0 is RLVR (exploitation), q = 1 is the log-marginal likelihood."
        )


_SERIES = [(k + 1) / math.factorial(k + 2) for k in range(20)]  # d/da expm1(a x)/a = x^2 sum_k c_k (a x)^k


def _dfda(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``d/da [expm1(a x) / a] = (a x e^(a x) - expm1(a x)) / a^2``, accurately: a power series in ``a x`` where
    ``|a x| < 1/2`` (and the limit ``x^2 / 2`` at ``a = 0``), the closed form elsewhere (``1 / a^2`` at
    ``x = -inf``)."""
    y = a * x
    small = (a == 0) | (y.abs() < 0.5)
    ys = torch.where(small & torch.isfinite(y), y, torch.zeros_like(y))
    series = torch.zeros_like(ys)
    for c in reversed(_SERIES):
        series = series * ys + c
    e = torch.exp(y)
    ye = torch.where(e == 0, torch.zeros_like(y), y * e)  # y e^y -> 0 as y -> -inf
    safe = torch.where(small, torch.ones_like(a), a)
    return torch.where(small, x * x * series, (ye - torch.expm1(y)) / (safe * safe))


def _qexp_value(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    zero = a == 0
    safe = torch.where(zero, torch.ones_like(a), a)
    return torch.where(zero, x, torch.expm1(safe * x) / safe)


def _exp_ax(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``e^(a x)``, with 1 at ``a = 0`` (also where ``x = -inf``)."""
    return torch.where(a == 0, torch.ones_like(a * x), torch.exp(a * x))


class _QExpM1Over(torch.autograd.Function):
    """``expm1(a x) / a`` with exact derivatives in both arguments: ``d/dx = e^(a x)`` from ``exp`` (torch's
    ``expm1`` backward computes ``expm1 + 1``, which cancels to 0 for ``a x << 0``) and ``d/da`` from
    :func:`_dfda` (finite and accurate at ``a = 0``)."""

    @staticmethod
    def forward(ctx, a, x):
        ctx.save_for_backward(a, x)
        return _qexp_value(a, x)

    @staticmethod
    def backward(ctx, g):
        a, x = ctx.saved_tensors
        ga = gx = None
        if ctx.needs_input_grad[0]:
            ga = (g * _dfda(a, x)).sum_to_size(a.shape)
        if ctx.needs_input_grad[1]:
            gx = (g * _exp_ax(a, x)).sum_to_size(x.shape)
        return ga, gx


class _QLogU(torch.autograd.Function):
    """``expm1(a log u) / a`` as a function of ``u``: ``d/du = u^(a-1)`` by ``pow`` (1 at ``u = 0``, ``a = 1``,
    where the chain rule through ``log u`` would give ``0 * inf``), ``d/da`` as :class:`_QExpM1Over`."""

    @staticmethod
    def forward(ctx, a, u):
        ctx.save_for_backward(a, u)
        return _qexp_value(a, torch.log(u))

    @staticmethod
    def backward(ctx, g):
        a, u = ctx.saved_tensors
        ga = gu = None
        if ctx.needs_input_grad[0]:
            ga = (g * _dfda(a, torch.log(u))).sum_to_size(a.shape)
        if ctx.needs_input_grad[1]:
            gu = (g * torch.pow(u, a - 1)).sum_to_size(u.shape)
        return ga, gu


def _as_pair(a: TensorLike, x: TensorLike) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(x, torch.Tensor):
        x_t = x
        a_t = (
            a.to(device=x.device, dtype=x.dtype)
            if isinstance(a, torch.Tensor)
            else torch.tensor(float(a), dtype=x.dtype, device=x.device)
        )
    else:
        a_t = a
        x_t = torch.tensor(float(x), dtype=a.dtype if a.is_floating_point() else None, device=a.device)
        if not a_t.is_floating_point():
            a_t = a_t.to(x_t.dtype)
    return a_t, x_t


def qexp_m1_over(a: TensorLike, x: TensorLike) -> TensorLike:
    """Return ``expm1(a * x) / a``, continued to ``x`` at ``a = 0``.

    This is the one numerically delicate piece behind ``qlog`` and ``qloss``:
    ``log_q(u) = qexp_m1_over(1 - q, log u)``. It is accurate for ``a`` near 0 (q near 1)
    and for very negative ``x`` (tiny probabilities). On tensors its autograd derivatives are exact in both
    arguments: ``d/dx = e^(a x)`` (accurate down to ``e^-700`` in float64, where ``expm1``'s own backward gives
    0) and ``d/da = (a x e^(a x) - expm1(a x)) / a^2`` (``x^2 / 2`` at ``a = 0``), so a ``q`` tensor that requires
    grad gets the right ``d l_q / d q``.
    """
    if isinstance(a, torch.Tensor) or isinstance(x, torch.Tensor):
        return _QExpM1Over.apply(*_as_pair(a, x))
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
    at ``q = 1``. ``d/du log_q(u) = u^(-q)``, also at ``u = 0`` (1 at q = 0, +inf for q > 0); on tensors the
    derivative in a ``q`` that requires grad is exact as well.
    """
    check_q(q)
    if isinstance(u, torch.Tensor):
        if bool((u < 0).any()):
            raise ValueError("qlog(u, q) needs u >= 0 (a probability); got a negative value")
        return _QLogU.apply(*_as_pair(1.0 - q if not isinstance(q, torch.Tensor) else 1.0 - q.to(u.dtype), u))
    u = float(u)
    if u < 0:
        raise ValueError(f"qlog(u, q) needs u >= 0 (a probability); got u={u}")
    return qexp_m1_over(1.0 - float(q), math.log(u) if u > 0 else -math.inf)


def qloss(log_p: TensorLike, q: TensorLike) -> TensorLike:
    """Per-example J_Q loss, paper Eq. 3: ``l_q = -log_q P = (1 - P^(1-q)) / (1 - q)``, from ``log P``.

    Computed as ``-expm1((1-q) log P) / (1-q)``, so it is finite and accurate for ``log P``
    down to -1e4 and beyond, and exactly ``-log P`` at ``q = 1``. Its derivative with respect
    to ``log P`` is ``-P^(1-q)``: the attenuation factor of Prop. 4.1 (Eq. 5).

    With ``q`` a tensor that requires grad, autograd's ``d l_q / d q`` is exact too (:func:`qexp_m1_over`).

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
