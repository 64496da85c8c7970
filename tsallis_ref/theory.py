"""The theory of the J_Q continuum, reproduced by computation (paper Secs. 3-6, Apps. B-D).

Every claim of the theory chapters of the book is computed here, so that the notebooks stay
thin and the tests can check the numbers independently of them. Sections:

* Loss landscape (Sec. 3, App. B): :func:`escort` (Thm 3.1), :func:`minimise_escort_objective`,
  :func:`dispersion_penalty` (Prop. B.1), :func:`propriety_gap` (Cor. B.3).
* Commitment dynamics (Sec. 5, App. C): :func:`escape_time` (Eq. 15), :func:`simulate_gradient_flow`,
  :func:`escape_time_asymptote`, :func:`fit_loglog_slope`, :func:`mlp_flow_problem`,
  :func:`near_optimum_time` (Prop. C.1).
* Label noise (App. C.5, Prop. C.2): :func:`contamination_rate` (Eq. 16), :func:`noise_equilibrium`
  (Eq. 17), :func:`noise_fitting_time`, :func:`simulate_contamination`.
* SFT-then-RLVR as a q schedule: :func:`simulate_label_flow` on a softmax label model.
* Estimators (Sec. 6, App. D): :func:`garl_exact_bias`, :func:`exact_pool_moments`,
  :func:`paft_exact_variance`, :func:`rare_rationale_model`, :func:`bias_vs_P`.
* Gradient geometry (Sec. 4, Prop. 4.1): :func:`gradient_geometry`, :func:`reweighting_demo`.

All numerics are float64; probabilities enter through their logarithms where they can be tiny.
The estimators are never re-derived here: their expectations and variances are computed by
differentiating :func:`tsallis_ref.estimators.garl_loss` / :func:`~tsallis_ref.estimators.paft_loss`
on enumerated pools of :class:`tsallis_ref.toy.LatentCategoricalModel`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy import integrate

from .estimators import garl_loss, paft_loss, weight_stats
from .losses import check_q, qexp_m1_over, qloss
from .toy import LatentCategoricalModel, TinyAutoregressiveLatentModel, compositions, multinomial_log_pmf

__all__ = [
    # landscape
    "escort",
    "escort_objective",
    "minimise_escort_objective",
    "dispersion_penalty",
    "propriety_gap",
    # dynamics
    "escape_time",
    "sigmoid_flow_time",
    "escape_time_closed_form",
    "escape_time_asymptote",
    "FlowResult",
    "simulate_gradient_flow",
    "simulate_sigmoid_flow",
    "mlp_flow_problem",
    "score_norm_sq",
    "near_optimum_time",
    "asymptotic_departure",
    "fit_loglog_slope",
    # label noise and schedules
    "contamination_rate",
    "noise_equilibrium",
    "noise_equilibrium_asymptote",
    "noise_fitting_time",
    "noise_fitting_asymptote",
    "simulate_contamination",
    "label_flow_grad",
    "simulate_label_flow",
    # estimators
    "garl_surrogate",
    "garl_exact_mean",
    "garl_exact_bias",
    "exact_pool_moments",
    "rloo_variance_ratio",
    "paft_exact_variance",
    "paft_sampled_grads",
    "max_amplified_advantage",
    "rare_rationale_model",
    "bias_vs_P",
    "garl_bias_binomial",
    "two_rationale_model",
    "bias_law",
    "rare_bias_law",
    # optimisers beyond the flow
    "sigmoid_optimizer_escape",
    "adam_stall_threshold",
    # geometry
    "gradient_geometry",
    "reweighting_demo",
    "example_weights",
]

_DT = torch.float64
_TINY = 1e-300  # "0+" for rates evaluated at the boundary of the simplex


def _check_prob(p: float, name: str, *, open_right: bool = True) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)):
        raise TypeError(f"{name} must be a float probability; got {type(p).__name__}")
    p = float(p)
    if not (0.0 < p < 1.0 if open_right else 0.0 < p <= 1.0):
        raise ValueError(f"{name} must lie in (0, 1); got {p}")
    return p


# =============================================================================================
# Loss landscape (Sec. 3, App. B)
# =============================================================================================


def _as_alpha(alpha, name: str = "alpha") -> torch.Tensor:
    a = torch.as_tensor(alpha, dtype=_DT).detach().clone()
    if a.dim() != 1 or a.numel() < 1:
        raise ValueError(f"{name} must be a 1-D vector of label frequencies; got shape {tuple(a.shape)}")
    if not bool(torch.isfinite(a).all()) or bool((a < 0).any()) or float(a.sum()) <= 0:
        raise ValueError(
            f"{name} must be finite, nonnegative and not all zero (empirical label frequencies); got {a.tolist()}"
        )
    return a / a.sum()


def escort(alpha, q: float, *, ties: str = "limit", tol: float = 1e-12) -> torch.Tensor:
    """The minimiser of ``sum_j alpha_j (-log_q theta_j)`` on the simplex (Thm 3.1).

    For ``q in (0, 1]`` it is the escort distribution of order ``1/q``,
    ``theta*_j = alpha_j^(1/q) / sum_k alpha_k^(1/q)``, computed as ``softmax(log(alpha) / q)``
    (no overflow however small q). ``alpha`` is normalised first; zero entries get zero mass.

    At ``q = 0`` the objective ``1 - sum alpha_j theta_j`` is linear and every point of the face
    spanned by the modes ``argmax alpha`` minimises it. The rule for ties:

    * ``ties="limit"`` (default): the uniform distribution on the modes, which is the limit
      ``q -> 0+`` of the escort (and the one-hot vector on the mode when the mode is unique);
    * ``ties="first"``: the vertex ``e_j`` of the first mode (smallest index).

    Entries within relative ``tol`` of the maximum count as tied.
    """
    check_q(q)
    a = _as_alpha(alpha)
    if q == 0:
        modes = a >= a.max() * (1.0 - tol)
        if ties == "limit":
            return modes.to(_DT) / modes.sum()
        if ties == "first":
            out = torch.zeros_like(a)
            out[int(torch.nonzero(modes)[0])] = 1.0
            return out
        raise ValueError(f"ties must be 'limit' (uniform on the modes) or 'first' (first mode); got {ties!r}")
    return torch.softmax(torch.log(a) / q, 0)


def escort_objective(log_theta: torch.Tensor, alpha, q: float) -> torch.Tensor:
    """``sum_j alpha_j (-log_q theta_j)`` from ``log theta`` (the categorical J_Q of Thm 3.1)."""
    a = _as_alpha(alpha)
    if log_theta.shape != a.shape:
        raise ValueError(f"log_theta {tuple(log_theta.shape)} and alpha {tuple(a.shape)} must have the same shape")
    keep = a > 0
    return (a[keep] * qloss(log_theta[keep], q)).sum()


def minimise_escort_objective(
    alpha,
    q: float,
    *,
    steps: int = 4000,
    lr: float = 2.0,
    init_logits: Optional[torch.Tensor] = None,
    tol: float = 1e-13,
) -> dict:
    """Plain gradient descent on softmax logits for ``sum_j alpha_j (-log_q theta_j)`` (Thm 3.1).

    Starts from uniform logits (or ``init_logits``) and stops when the gradient norm drops below
    ``tol``. Returns ``{"theta", "steps", "objective", "grad_norm"}``. At ``q = 0`` no finite
    minimiser exists (the infimum is a vertex): the iterate moves towards the mode vertex.
    """
    check_q(q)
    a = _as_alpha(alpha)
    if steps < 1 or lr <= 0:
        raise ValueError(f"need steps >= 1 and lr > 0; got steps={steps}, lr={lr}")
    logits = torch.zeros_like(a) if init_logits is None else torch.as_tensor(init_logits, dtype=_DT).clone()
    logits.requires_grad_()
    history = []
    gnorm = float("inf")
    for t in range(steps):
        obj = escort_objective(F.log_softmax(logits, 0), a, q)
        (g,) = torch.autograd.grad(obj, logits)
        gnorm = g.norm().item()
        history.append(obj.item())
        if gnorm < tol:
            break
        with torch.no_grad():
            logits -= lr * g
    return {"theta": torch.softmax(logits.detach(), 0), "steps": t + 1, "objective": history, "grad_norm": gnorm}


def dispersion_penalty(P, q: float, weights=None) -> dict:
    """Prop. B.1: the Jensen gap of ``J_Q`` over a data set with per-example success ``P_i``.

    Returns ``{"exact": E[-log_q P] - (-log_q E[P]), "second_order": q/2 Pbar^(-q-1) Var(P),
    "Pbar", "var"}``; ``weights`` (default uniform) is the data distribution over examples.
    The exact gap is >= 0 for q > 0 and is 0 at q = 0 (``J_0 = 1 - Pbar``).
    """
    check_q(q)
    P = torch.as_tensor(P, dtype=_DT).flatten()
    if P.numel() < 1 or bool(((P <= 0) | (P > 1)).any()):
        raise ValueError("P must hold per-example success probabilities in (0, 1]")
    w = torch.full_like(P, 1.0 / P.numel()) if weights is None else torch.as_tensor(weights, dtype=_DT).flatten()
    if w.shape != P.shape or bool((w < 0).any()):
        raise ValueError("weights must be nonnegative with the same length as P")
    w = w / w.sum()
    Pbar = (w * P).sum()
    var = (w * (P - Pbar) ** 2).sum()
    exact = (w * qloss(torch.log(P), q)).sum() - qloss(torch.log(Pbar), q)
    return {
        "exact": exact.item(),
        "second_order": (q / 2 * Pbar ** (-q - 1) * var).item(),
        "Pbar": Pbar.item(),
        "var": var.item(),
    }


def propriety_gap(alpha, q: float) -> float:
    """Cor. B.3: how much the expected q-score of the truthful report ``alpha`` exceeds the best report.

    ``S(beta) = sum_j alpha_j (-log_q beta_j)``; returns ``S(alpha) - S(escort(alpha, q)) >= 0``.
    A scoring rule is proper iff this is 0 for every alpha: it is exactly 0 at q = 1 and > 0 for
    q < 1 whenever alpha is not uniform on its support.
    """
    a = _as_alpha(alpha)
    best = escort(a, q)
    if q == 0:
        # S is linear: its minimum over the simplex is 1 - max(alpha)
        return float((1 - (a * a).sum()) - (1 - a.max()))
    s_true = escort_objective(torch.log(a), a, q)
    s_best = escort_objective(torch.log(best), a, q)
    return float(s_true - s_best)


# =============================================================================================
# Commitment dynamics (Sec. 5, App. C)
# =============================================================================================


def _lower_part(la: float, lb: float, q: float) -> float:
    """int_{e^la}^{e^lb} du / (u^(2-q) (1-u)^2) for e^lb <= 1/2, in log space.

    Splits ``(1-u)^-2 = 1 + r(u)`` (App. C.1): the main part ``int u^(q-2) du`` is exact, the
    remainder ``int u^q (2-u)/(1-u)^2 ds`` (with ``u = e^s``) has a bounded smooth integrand.
    """
    a1 = 1.0 - q
    main = math.exp(-a1 * lb) * qexp_m1_over(a1, lb - la)

    def rem(s):
        u = math.exp(s)
        return math.exp(q * s) * (2.0 - u) / (1.0 - u) ** 2

    r, _ = integrate.quad(rem, la, lb, epsabs=0.0, epsrel=1e-12, limit=400)
    return main + r


def _upper_part(v_lo: float, v_hi: float, q: float) -> float:
    """int_{1-v_hi}^{1-v_lo} du / (u^(2-q)(1-u)^2) for v_hi <= 1/2, with ``v = 1 - u`` (near the optimum)."""
    main = 1.0 / v_lo - 1.0 / v_hi

    def rem(t):
        v = math.exp(t)
        return math.expm1(-(2.0 - q) * math.log1p(-v)) / v

    r, _ = integrate.quad(rem, math.log(v_lo), math.log(v_hi), epsabs=0.0, epsrel=1e-12, limit=400)
    return main + r


def sigmoid_flow_time(a: float, b: float, q: float) -> float:
    """Time for gradient flow on ``l_q(sigmoid(theta))`` to take P from ``a`` to ``b`` (0 < a <= b < 1).

    ``T = int_a^b du / (u^(2-q) (1-u)^2)`` (Eq. 15 with general endpoints), by quadrature in log
    space with the singular parts integrated exactly, so ``a`` down to 1e-300 is accurate.
    """
    check_q(q)
    a = _check_prob(a, "a")
    b = _check_prob(b, "b")
    if b < a:
        raise ValueError(f"need a <= b (P increases along the flow); got a={a}, b={b}")
    T = 0.0
    if a < 0.5:
        T += _lower_part(math.log(a), math.log(min(b, 0.5)), q)
    if b > 0.5:
        T += _upper_part(1.0 - b, 1.0 - max(a, 0.5), q)
    return T


def escape_time(p0, q: float, delta: float = 0.5):
    """Cold-start escape time of the exact sigmoid case, Eq. 15: ``T_q = int_{p0}^delta du/(u^(2-q)(1-u)^2)``.

    ``p0`` may be a float or an array (returns an array). Accurate to ~1e-12 relative for p0 down
    to 1e-300 (see :func:`sigmoid_flow_time`). App. C.1: ``T_q = p0^-(1-q)/(1-q) (1 + o(1))`` for
    q < 1 and ``T_1 = log(1/p0)(1 + o(1))``.
    """
    check_q(q)
    delta = _check_prob(delta, "delta")
    if np.ndim(p0) > 0:
        return np.array([escape_time(float(p), q, delta) for p in np.asarray(p0, dtype=float).flat]).reshape(
            np.shape(p0)
        )
    p0 = _check_prob(p0, "p0")
    if p0 >= delta:
        raise ValueError(f"the escape time needs p0 < delta; got p0={p0}, delta={delta}")
    return sigmoid_flow_time(p0, delta, q)


def escape_time_closed_form(p0: float, q: float, delta: float = 0.5) -> float:
    """Closed-form antiderivatives of Eq. 15 at the two poles (used to check the quadrature).

    * q = 1: ``int du/(u(1-u)^2) = log(u/(1-u)) + 1/(1-u)``;
    * q = 0: ``int du/(u^2(1-u)^2) = -1/u + 1/(1-u) + 2 log(u/(1-u))``.
    """
    if q == 1:
        F_ = lambda u: math.log(u) - math.log1p(-u) + 1.0 / (1.0 - u)
    elif q == 0:
        F_ = lambda u: -1.0 / u + 1.0 / (1.0 - u) + 2.0 * (math.log(u) - math.log1p(-u))
    else:
        raise ValueError(f"closed forms are implemented for q = 0 and q = 1 only; got q={q}. Use escape_time.")
    return F_(delta) - F_(p0)


def escape_time_asymptote(p0, q: float):
    """The leading term of App. C.1: ``p0^-(1-q)/(1-q)`` for q < 1, ``log(1/p0)`` at q = 1."""
    check_q(q)
    lp = np.log(np.asarray(p0, dtype=float))
    out = -lp if q == 1 else np.exp(-(1.0 - q) * lp) / (1.0 - q)
    return float(out) if np.ndim(out) == 0 else out


def fit_loglog_slope(x, y) -> tuple[float, float]:
    """Least-squares fit of ``log y = slope * log x + intercept``; returns ``(slope, intercept)``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2 or (x <= 0).any() or (y <= 0).any():
        raise ValueError("fit_loglog_slope needs two positive arrays of the same length >= 2")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)


@dataclass
class FlowResult:
    """Result of :func:`simulate_gradient_flow`: escape time ``T`` (inf if not reached) and the path."""

    T: float
    t: np.ndarray
    log_P: np.ndarray
    theta: np.ndarray
    nfev: int = 0


def _flow_grad(log_P: Callable[[torch.Tensor], torch.Tensor], q: float):
    def grad(theta_np: np.ndarray) -> np.ndarray:
        th = torch.tensor(theta_np, dtype=_DT, requires_grad=True)
        (g,) = torch.autograd.grad(qloss(log_P(th), q), th)
        return g.numpy()

    return grad


def simulate_gradient_flow(
    log_P: Callable[[torch.Tensor], torch.Tensor],
    theta0,
    q: float,
    *,
    delta: float = 0.5,
    t_max: float = 1e16,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    method: str = "LSODA",
) -> FlowResult:
    """Integrate the gradient flow ``theta' = -grad l_q(theta)`` (Sec. 5) until ``P >= delta``.

    ``log_P(theta)`` maps a float64 parameter vector to ``log P_theta`` (differentiable).
    The ODE is integrated in log time ``tau = log(1 + t)`` (``d theta/d tau = -(1+t) grad l_q``),
    so escape times from O(1) to 1e10 take a few hundred steps. Returns a :class:`FlowResult`.
    """
    check_q(q)
    delta = _check_prob(delta, "delta")
    th0 = np.asarray(torch.as_tensor(theta0, dtype=_DT).detach().flatten().numpy(), dtype=float)
    grad = _flow_grad(log_P, q)
    log_delta = math.log(delta)
    with torch.no_grad():
        lp0 = float(log_P(torch.tensor(th0, dtype=_DT)))
    if not math.isfinite(lp0) or lp0 >= log_delta:
        raise ValueError(
            f"simulate_gradient_flow needs 0 < P(theta0) < delta; got log P(theta0) = {lp0} "
            f"and delta = {delta}. Start colder or raise delta."
        )

    def rhs(tau, y):
        return -math.exp(tau) * grad(y)

    def hit(tau, y):
        with torch.no_grad():
            return float(log_P(torch.tensor(y, dtype=_DT))) - log_delta

    hit.terminal = True
    hit.direction = 1

    sol = integrate.solve_ivp(rhs, (0.0, math.log1p(t_max)), th0, method=method, events=hit, rtol=rtol, atol=atol)
    with torch.no_grad():
        lp = np.array([float(log_P(torch.tensor(y, dtype=_DT))) for y in sol.y.T])
    T = math.expm1(sol.t_events[0][0]) if len(sol.t_events[0]) else math.inf
    return FlowResult(T=T, t=np.expm1(sol.t), log_P=lp, theta=sol.y, nfev=sol.nfev)


def simulate_sigmoid_flow(p0: float, q: float, delta: float = 0.5, **kw) -> FlowResult:
    """:func:`simulate_gradient_flow` for the exact sigmoid case ``P = sigmoid(theta)`` (App. C.1)."""
    p0 = _check_prob(p0, "p0")
    theta0 = torch.tensor([math.log(p0) - math.log1p(-p0)], dtype=_DT)
    return simulate_gradient_flow(lambda th: F.logsigmoid(th).sum(), theta0, q, delta=delta, **kw)


def mlp_flow_problem(p0: float, *, d_in: int = 3, width: int = 6, seed: int = 0):
    """A small neural model whose score norm varies along the flow (Thm 5.2 beyond the sigmoid).

    ``P(theta) = sigmoid(w2 . tanh(W1 x + b1) + b2)`` for one fixed input ``x``; ``b2`` is set so
    that ``P(theta0) = p0``. Returns ``(log_P, theta0)`` for :func:`simulate_gradient_flow`;
    ``||grad log P||^2 = (1-P)^2 ||grad f||^2`` changes as the weights move.
    """
    p0 = _check_prob(p0, "p0")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(d_in, generator=g, dtype=_DT)
    W1 = torch.randn(width, d_in, generator=g, dtype=_DT) / math.sqrt(d_in)
    b1 = torch.randn(width, generator=g, dtype=_DT) * 0.1
    w2 = torch.randn(width, generator=g, dtype=_DT) / math.sqrt(width)
    sizes = [W1.numel(), b1.numel(), w2.numel(), 1]

    def f(theta: torch.Tensor) -> torch.Tensor:
        W, b, v, c = torch.split(theta, sizes)
        return v @ torch.tanh(W.view(width, d_in) @ x + b) + c[0]

    theta0 = torch.cat([W1.flatten(), b1, w2, torch.zeros(1, dtype=_DT)])
    shift = (math.log(p0) - math.log1p(-p0)) - f(theta0).item()
    theta0[-1] = shift
    return (lambda th: F.logsigmoid(f(th))), theta0


def score_norm_sq(log_P: Callable[[torch.Tensor], torch.Tensor], theta) -> float:
    """``||s(theta)||^2 = ||grad log P_theta||^2`` (the architecture-dependent factor of Eq. 6)."""
    th = torch.as_tensor(theta, dtype=_DT).detach().clone().requires_grad_()
    (g,) = torch.autograd.grad(log_P(th), th)
    return float(g.pow(2).sum())


def asymptotic_departure(
    q: float, *, rtol: float = 0.05, delta: float = 0.5, p0_grid: Optional[np.ndarray] = None
) -> float:
    """Where the escape time bends away from its asymptote ``p0^-(1-q)/(1-q)`` (App. C.1).

    Returns the largest ``p0`` of the grid (default ``logspace(-12, log10(delta) - 0.01, 400)``)
    such that ``|T_q(p0) / asymptote - 1| <= rtol`` holds at it and at every smaller grid point.
    """
    grid = np.logspace(-12, math.log10(delta) - 0.01, 400) if p0_grid is None else np.sort(np.asarray(p0_grid, float))
    ratio = escape_time(grid, q, delta) / escape_time_asymptote(grid, q)
    ok = np.abs(ratio - 1) <= rtol
    if not ok[0]:
        return float("nan")
    bad = np.nonzero(~ok)[0]
    return float(grid[-1] if len(bad) == 0 else grid[bad[0] - 1])


def near_optimum_time(eps0: float, eps1: float, q: float) -> float:
    """Prop. C.1, sigmoid case: the flow time to go from ``P = 1 - eps0`` to ``P = 1 - eps1`` (eps1 < eps0 <= 1/2).

    Computed with ``v = 1 - P`` as the variable, so eps down to 1e-300 is accurate. For any
    q, q' the times agree to ``1 + O(eps0)``: q does not matter near the optimum.
    """
    check_q(q)
    eps0 = _check_prob(eps0, "eps0")
    eps1 = _check_prob(eps1, "eps1")
    if not eps1 < eps0 <= 0.5:
        raise ValueError(f"need eps1 < eps0 <= 1/2; got eps0={eps0}, eps1={eps1}")
    return _upper_part(eps1, eps0, q)


# =============================================================================================
# Label noise (App. C.5, Prop. C.2) and the SFT-then-RLVR schedule
# =============================================================================================


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not 0.0 < eps < 0.5:
        raise ValueError(f"the flip rate eps must lie in (0, 1/2); got {eps}")
    return eps


def contamination_rate(c, q: float, eps: float, *, param: str = "direct"):
    """Eq. 16: ``d c/dt = [eps c^-q - (1-eps)(1-c)^-q] p^2 ||s||^2`` with contamination ``c = 1 - p``.

    ``param="direct"`` is the scalar parametrisation ``p = theta`` (``p^2 ||s||^2 = 1``: a score
    bounded below, as Prop. C.2 assumes); ``param="sigmoid"`` is ``p = sigmoid(theta)``, where
    ``p^2 ||s||^2 = p^2 (1-p)^2`` vanishes as c -> 0. At q = 0 the bracket is ``eps - (1-eps) < 0``.
    """
    check_q(q)
    eps = _check_eps(eps)
    c = np.asarray(c, dtype=float)
    if q == 0:
        bracket = np.full_like(c, eps - (1.0 - eps))
    else:
        with np.errstate(divide="ignore"):
            bracket = eps * c ** (-q) - (1.0 - eps) * (1.0 - c) ** (-q)
    if param == "direct":
        h = 1.0
    elif param == "sigmoid":
        h = ((1.0 - c) * c) ** 2
    else:
        raise ValueError(f"param must be 'direct' or 'sigmoid'; got {param!r}")
    out = bracket * h
    return float(out) if out.ndim == 0 else out


def noise_equilibrium(eps: float, q: float) -> float:
    """The stable contamination of Eq. 17, exactly: the noisy label's mass in ``escort((1-eps, eps), q)``.

    ``(c/(1-c))^q = eps/(1-eps)``; 0 at q = 0 (never memorises), ``eps`` at q = 1 (fits the noise).
    """
    eps = _check_eps(eps)
    return float(escort(torch.tensor([1.0 - eps, eps], dtype=_DT), q)[1])


def noise_equilibrium_asymptote(eps: float, q: float) -> float:
    """Eq. 17's leading term ``(eps/(1-eps))^(1/q)`` (q > 0)."""
    eps = _check_eps(eps)
    check_q(q)
    if q == 0:
        return 0.0
    return (eps / (1.0 - eps)) ** (1.0 / q)


def noise_fitting_time(eta, q: float, eps: float, *, c0: float = 0.0, param: str = "direct"):
    """Prop. C.2: time for the contamination to grow from ``c0`` (default ``0+``) to ``eta``.

    ``T = int_{c0}^{eta} dc / rate(c)`` by quadrature in ``log c``. Needs ``eta`` below the
    equilibrium (where the rate is positive); returns ``inf`` at q = 0 (never memorises).
    ``c0 = 0`` needs ``param="direct"`` (with ``p = sigmoid`` the integral diverges at 0).
    Returns ``inf`` where Eq. 16's rate is not positive at the start (the contamination never grows).
    """
    check_q(q)
    eps = _check_eps(eps)
    if np.ndim(eta) > 0:
        return np.array([noise_fitting_time(float(e), q, eps, c0=c0, param=param) for e in np.asarray(eta).flat])
    eta = _check_prob(eta, "eta")
    if c0 < 0 or c0 >= eta:
        raise ValueError(f"need 0 <= c0 < eta; got c0={c0}, eta={eta}")
    if contamination_rate(c0 if c0 > 0 else _TINY, q, eps, param="direct") <= 0:
        return math.inf  # Eq. 16's rate is negative at the start (always at q = 0): the contamination only falls
    cstar = noise_equilibrium(eps, q)
    if eta >= cstar:
        raise ValueError(f"eta={eta} must lie below the equilibrium contamination {cstar:.3g} (eps={eps}, q={q})")
    if c0 == 0 and param != "direct":
        raise ValueError("c0 = 0 diverges for param='sigmoid'; pass c0 > 0")
    s_hi = math.log(eta)
    s_lo = math.log(c0) if c0 > 0 else s_hi - 60.0 / (1.0 + q)  # integrand ~ e^{(1+q)s}: truncation e^-60

    def integrand(s):
        c = math.exp(s)
        return c / contamination_rate(c, q, eps, param=param)

    T, _ = integrate.quad(integrand, s_lo, s_hi, epsabs=0.0, epsrel=1e-11, limit=400)
    return T


def noise_fitting_asymptote(eta, q: float, eps: float):
    """Prop. C.2's leading term ``eta^(q+1) / ((q+1) eps)``."""
    eps = _check_eps(eps)
    return np.asarray(eta, dtype=float) ** (q + 1) / ((q + 1) * eps)


def simulate_contamination(q: float, eps: float, c0: float, t_eval, *, param: str = "direct") -> np.ndarray:
    """Contamination curve ``c(t)`` of Eq. 16 from ``c(0) = c0``, at the times ``t_eval`` (sorted, >= 0).

    Integrated in log time, in ``log c`` while the rate at ``c -> 0+`` is positive (q > 0), otherwise
    in ``c`` with a stop where it reaches 0. In the scalar parametrisation the contamination is a
    probability: if it reaches 0 (at q = 0, where the rate is ``eps - (1-eps) < 0`` throughout) it
    stays there (the boundary of the simplex).
    """
    check_q(q)
    eps = _check_eps(eps)
    c0 = _check_prob(c0, "c0")
    t_eval = np.asarray(t_eval, dtype=float)
    if (np.diff(t_eval) < 0).any() or (t_eval < 0).any():
        raise ValueError("t_eval must be sorted and nonnegative")
    taus = np.log1p(t_eval)
    if param == "direct" and contamination_rate(_TINY, q, eps) < 0:
        # the rate stays negative down to c = 0: integrate c itself and stop at the boundary
        def rhs_c(tau, y):
            return [math.exp(tau) * contamination_rate(max(y[0], _TINY), q, eps)]

        def at_zero(tau, y):
            return y[0]

        at_zero.terminal, at_zero.direction = True, -1
        sol = integrate.solve_ivp(
            rhs_c, (0.0, taus[-1]), [c0], method="LSODA", t_eval=taus, events=at_zero, rtol=1e-10, atol=1e-14
        )
        out = np.zeros_like(t_eval)
        n = len(sol.t)  # the t_eval points reached before c hit 0 (none if it hit 0 before the first)
        if n:
            out[:n] = np.maximum(np.asarray(sol.y)[0, :n], 0.0)
        return out

    def rhs(tau, y):
        c = math.exp(y[0])
        return [math.exp(tau) * contamination_rate(c, q, eps, param=param) / c]

    sol = integrate.solve_ivp(rhs, (0.0, taus[-1]), [math.log(c0)], method="LSODA", t_eval=taus, rtol=1e-10, atol=1e-12)
    out = np.zeros_like(t_eval)
    out[: sol.y.shape[1]] = np.exp(sol.y[0])
    return out


def label_flow_grad(theta: np.ndarray, q: float, alpha: np.ndarray) -> np.ndarray:
    """Gradient of ``sum_j alpha_j l_q(p_j)`` with ``p = softmax(theta)``, in closed form:
    ``-alpha_i p_i^(1-q) + p_i sum_j alpha_j p_j^(1-q)`` (the categorical J_Q of Thm 3.1)."""
    lp = theta - np.logaddexp.reduce(theta)
    p = np.exp(lp)
    a = alpha * np.exp((1.0 - q) * lp)
    return -a + p * a.sum()


def simulate_label_flow(
    q_of_t: Callable[[float], float], *, alpha, theta0, t_eval, breakpoints: Sequence[float] = ()
) -> np.ndarray:
    """Gradient flow of the categorical J_Q ``sum_j alpha_j l_q(p_j)``, ``p = softmax(theta)``,
    with a time-dependent commitment ``q(t)`` (e.g. SFT-then-RLVR: q = 1 then q = 0).

    ``breakpoints`` are the times where ``q_of_t`` jumps (the solver restarts there).
    Returns ``p(t)`` as an array ``[len(t_eval), N]``.
    """
    a = _as_alpha(alpha).numpy()
    th = np.asarray(theta0, dtype=float).copy()
    if th.shape != a.shape:
        raise ValueError(f"theta0 {th.shape} and alpha {a.shape} must have the same shape")
    t_eval = np.asarray(t_eval, dtype=float)
    if t_eval.ndim != 1 or t_eval.size < 1 or (np.diff(t_eval) < 0).any() or t_eval[0] < 0:
        raise ValueError("t_eval must be a sorted 1-D array of nonnegative times")
    edges = [0.0] + sorted(b for b in breakpoints if 0 < b < t_eval[-1]) + [float(t_eval[-1])]
    out = np.zeros((len(t_eval), len(a)))
    for lo, hi in zip(edges[:-1], edges[1:]):
        q = float(q_of_t(0.5 * (lo + hi)))
        check_q(q)
        sol = integrate.solve_ivp(
            lambda t, y: -label_flow_grad(y, q, a),
            (lo, hi),
            th,
            method="LSODA",
            dense_output=True,
            rtol=1e-9,
            atol=1e-11,
        )
        sel = (t_eval >= lo) & (t_eval <= hi)
        if sel.any():
            ys = sol.sol(t_eval[sel]).T
            out[sel] = np.exp(ys - np.logaddexp.reduce(ys, axis=1, keepdims=True))
        th = sol.y[:, -1]
    return out


# =============================================================================================
# Estimators (Sec. 6, App. D)
# =============================================================================================


def garl_surrogate(q: float, baseline: str = "none", normalize: bool = False):
    """Per-pool GARL surrogate ``(logp_z, logp_y) -> [N]`` for the exact-expectation helpers."""
    return lambda lz, ly: garl_loss(lz, ly, q, baseline=baseline, normalize=normalize, reduction="none")


def garl_exact_mean(model: LatentCategoricalModel, q: float, M: int, *, baseline: str = "none") -> torch.Tensor:
    """Exact ``E[GARL]`` over pools of M prior samples (no 1/M^q normalisation: it targets grad l_q)."""
    return model.exact_expectation(garl_surrogate(q, baseline), M)


def garl_exact_bias(model: LatentCategoricalModel, q: float, M: int, *, baseline: str = "none") -> torch.Tensor:
    """Exact bias ``E[GARL] - grad l_q`` of plug-in GARL (Thm 6.1), a ``[2Z]`` vector."""
    return garl_exact_mean(model, q, M, baseline=baseline) - model.exact_grad(q)


def _enumerated_pools(model: LatentCategoricalModel, M: int):
    counts = torch.tensor(list(compositions(M, model.Z)))
    z = torch.stack([torch.repeat_interleave(torch.arange(model.Z), c) for c in counts])
    with torch.no_grad():
        pmf = multinomial_log_pmf(counts, model.log_prior()).exp()
    return counts, z, pmf


def _grads_for_pools(model: LatentCategoricalModel, z: torch.Tensor, surrogate) -> torch.Tensor:
    N = z.shape[0]
    theta = model.theta.detach().expand(N, -1).clone().requires_grad_()
    phi = model.phi.detach().expand(N, -1).clone().requires_grad_()
    lz = torch.gather(F.log_softmax(theta, -1), 1, z)
    ly = torch.gather(F.logsigmoid(phi), 1, z)
    gt, gp = torch.autograd.grad(surrogate(lz, ly).sum(), [theta, phi])
    return torch.cat([gt, gp], 1)


def exact_pool_moments(model: LatentCategoricalModel, surrogate, M: int) -> dict:
    """Exact mean and covariance of a per-pool gradient estimator, by enumerating every pool.

    ``surrogate(logp_z, logp_y) -> [N]`` as in ``exact_expectation``. Returns ``{"mean" [2Z],
    "cov" [2Z, 2Z], "total_var" (trace of cov)}``.
    """
    _, z, pmf = _enumerated_pools(model, M)
    G = _grads_for_pools(model, z, surrogate)
    mean = pmf @ G
    D = G - mean
    cov = (pmf.unsqueeze(1) * D).T @ D
    return {"mean": mean, "cov": cov, "total_var": float(torch.trace(cov))}


def rloo_variance_ratio(model: LatentCategoricalModel, q: float, M: int) -> dict:
    """Prop. 6.2 / D.1 measured exactly: the RLOO control variate (Eq. 12) against plug-in GARL (Eq. 9).

    Returns ``{"mean_gap": max |E[RLOO] - E[plug-in]|, "var_plugin", "var_rloo", "ratio": var_rloo / var_plugin}``
    (total variances). The mean gap is 0 by Prop. 6.2; the variance ratio is usually, but not
    always, below 1: a leave-one-out baseline can add variance when likely rationales have high
    weights and small scores.
    """
    mp = exact_pool_moments(model, garl_surrogate(q, "none"), M)
    mr = exact_pool_moments(model, garl_surrogate(q, "rloo"), M)
    return {
        "mean_gap": float((mp["mean"] - mr["mean"]).abs().max()),
        "var_plugin": mp["total_var"],
        "var_rloo": mr["total_var"],
        "ratio": mr["total_var"] / mp["total_var"],
    }


def paft_exact_variance(model: LatentCategoricalModel, q: float, M: int, K: int) -> dict:
    """Prop. D.4 computed exactly: ``Var(PAFT) = Var(GARL plug-in) + E[Var(PAFT | pool)]`` (traces).

    The conditional variance of the K-sample importance-resampling average is
    ``wbar^(2(1-q)) / K * Var_{r ~ w}(grad log p(z_r, y*))`` per pool, summed exactly over pools.
    Returns ``{"var_garl", "expected_conditional_var", "var_paft", "mean_garl"}`` (no 1/M^q factor).
    """
    counts, z, pmf = _enumerated_pools(model, M)
    G = _grads_for_pools(model, z, garl_surrogate(q, "none"))
    mean = pmf @ G
    var_garl = float((pmf * (G - mean).pow(2).sum(1)).sum())
    # per-value complete-data scores f_z = grad log p(z, y*) , [Z, 2Z]
    Fz = torch.stack([model.flat_grad(model.log_prior()[k] + model.log_w()[k]) for k in range(model.Z)])
    with torch.no_grad():
        w = model.log_w().exp()
        nw = counts.to(_DT) * w  # [N, Z]
        pi = nw / nw.sum(1, keepdim=True)
        wbar = nw.sum(1) / M
        ef = pi @ Fz
        ef2 = pi @ Fz.pow(2).sum(1)
        cond = wbar ** (2 * (1 - q)) / K * (ef2 - ef.pow(2).sum(1))
    ecv = float((pmf * cond).sum())
    return {"var_garl": var_garl, "expected_conditional_var": ecv, "var_paft": var_garl + ecv, "mean_garl": mean}


def paft_sampled_grads(
    model: LatentCategoricalModel, q: float, M: int, K: int, B: int, *, seed: int = 0
) -> torch.Tensor:
    """``B`` independent PAFT gradients (pool and resampling both random), ``[B, 2Z]``, no 1/M^q factor."""
    g = torch.Generator().manual_seed(seed)
    return model.per_pool_grads(
        lambda lz, ly: paft_loss(lz, ly, q, K=K, generator=g, normalize=False, reduction="none"), B, M, generator=g
    )


def max_amplified_advantage(logp_y: torch.Tensor, q: float) -> float:
    """The largest ``c_m / M^q`` over a batch (Fig. 3's monitor), via :func:`tsallis_ref.estimators.weight_stats`.

    Since ``w_m <= 1`` and ``w_m <= M wbar``, ``w_m / wbar^q <= M^q``, so this is at most 1.
    """
    return weight_stats(logp_y, q)["max_adv"]


def rare_rationale_model(P: float, *, w_good: float = 0.9, w_bad: float = 1e-4) -> LatentCategoricalModel:
    """A two-rationale model where P is small because the good rationale is rare.

    ``p(z = good) = rho`` with ``rho w_good + (1 - rho) w_bad = P``; ``w = p(y* | z)`` fixed.
    (Contrast: ``LatentCategoricalModel.random(target_P=...)`` makes P small by shrinking every w.)
    """
    P = _check_prob(P, "P")
    if not w_bad < P < w_good:
        raise ValueError(f"need w_bad < P < w_good; got P={P}, w_bad={w_bad}, w_good={w_good}")
    rho = (P - w_bad) / (w_good - w_bad)
    theta = torch.tensor([math.log(rho), math.log1p(-rho)], dtype=_DT)
    logit = lambda w: math.log(w) - math.log1p(-w)
    phi = torch.tensor([logit(w_good), logit(w_bad)], dtype=_DT)
    return LatentCategoricalModel(theta.requires_grad_(), phi.requires_grad_())


def bias_vs_P(q: float, M: int, Ps: Sequence[float], *, regime: str = "rare", Z: int = 3, seed: int = 0) -> dict:
    """Exact bias norm of plug-in GARL and of App. D's leading term, at fixed M and q, over a range of P.

    ``regime="rare"``: :func:`rare_rationale_model` (P small because good rationales are rare);
    ``regime="shift"``: ``LatentCategoricalModel.random(Z, seed, target_P=P)`` (every w shrinks).
    Returns arrays ``P``, ``bias`` (``||E[GARL] - grad l_q||``), ``leading`` (``||leading term||``),
    ``grad`` (``||grad l_q||``) and the fitted log-log slopes ``slope_bias``, ``slope_leading``.
    """
    if regime not in ("rare", "shift"):
        raise ValueError(f"regime must be 'rare' or 'shift'; got {regime!r}")
    out = {"P": [], "bias": [], "leading": [], "grad": []}
    for P in Ps:
        m = rare_rationale_model(P) if regime == "rare" else LatentCategoricalModel.random(Z, seed=seed, target_P=P)
        out["P"].append(float(m.log_P().detach().exp()))
        out["bias"].append(float(garl_exact_bias(m, q, M).norm()))
        out["leading"].append(float(m.garl_bias_leading_term(q, M).norm()))
        out["grad"].append(float(m.exact_grad(q).norm()))
    out = {k: np.array(v) for k, v in out.items()}
    out["slope_bias"] = fit_loglog_slope(out["P"], out["bias"])[0]
    out["slope_leading"] = fit_loglog_slope(out["P"], out["leading"])[0]
    return out


# =============================================================================================
# Gradient geometry (Sec. 4, Prop. 4.1)
# =============================================================================================


def gradient_geometry(model: TinyAutoregressiveLatentModel, x: int, y: int, qs: Sequence[float]) -> dict:
    """Prop. 4.1 (Eq. 5) on an enumerable model, both factorisations.

    For every q: ``cos`` (cosine of grad l_q with grad l_0), ``norm_ratio`` (``||grad l_q|| / ||grad l_0||``,
    to compare with ``P^-q``: amplification) and ``norm_ratio_l1`` (``||grad l_q|| / ||grad l_1||``, to compare
    with ``P^(1-q)``: attenuation). Returns arrays keyed by name plus ``P``.
    """
    P = float(model.log_P(x, y).detach().exp())
    g0 = model.exact_grad(0.0, x, y)
    g1 = model.exact_grad(1.0, x, y)
    cos, ratio, ratio1 = [], [], []
    for q in qs:
        gq = model.exact_grad(q, x, y)
        cos.append(float(F.cosine_similarity(gq, g0, 0)))
        ratio.append(float(gq.norm() / g0.norm()))
        ratio1.append(float(gq.norm() / g1.norm()))
    qs = np.asarray(qs, dtype=float)
    return {
        "q": qs,
        "P": P,
        "cos": np.array(cos),
        "norm_ratio": np.array(ratio),
        "P_pow_minus_q": P ** (-qs),
        "norm_ratio_l1": np.array(ratio1),
        "P_pow_one_minus_q": P ** (1 - qs),
    }


def example_weights(direction: torch.Tensor, per_example: Sequence[torch.Tensor]) -> dict:
    """Least-squares per-example weights ``a`` with ``direction ~ sum_i a_i g_i`` and the
    fraction of ``||direction||^2`` that the span of the ``g_i`` does not explain."""
    Gm = torch.stack(list(per_example), 1)
    a = torch.linalg.lstsq(Gm, direction.unsqueeze(1)).solution.squeeze(1)
    resid = direction - Gm @ a
    return {"weights": a, "residual_frac": float(resid.pow(2).sum() / direction.pow(2).sum())}


def _adam_displacement(
    model: TinyAutoregressiveLatentModel, examples, *, lr: float, betas, eps: float, steps: int
) -> torch.Tensor:
    params = [p.detach().clone().requires_grad_() for p in model.params()]
    clone = TinyAutoregressiveLatentModel(*params)
    start = torch.cat([p.detach().flatten() for p in params])
    opt = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(qloss(clone.log_P(x, y), 0.0) for x, y in examples)
        loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in params]) - start


def reweighting_demo(
    model: TinyAutoregressiveLatentModel,
    examples: Sequence[tuple[int, int]],
    qs: Sequence[float],
    *,
    adam_grid: Optional[dict] = None,
) -> dict:
    """Why no global learning rate and no Adam setting reproduces the per-example weights ``P^-q`` (Sec. 4).

    For two examples with RL gradients ``g_i = grad l_0`` the J_Q update is ``G_q = sum_i P_i^-q g_i``
    (checked against autograd of ``sum_i l_q``): per-example weights with ratio ``(P_1/P_2)^-q``.

    * Any global learning rate on J_0 gives a multiple of ``G_0 = sum_i g_i``: weight ratio 1
      and best cosine with ``G_q`` equal to ``cos(G_0, G_q)``, whatever the rate.
    * Adam on J_0, for every ``lr, betas, eps`` of ``adam_grid`` (``steps`` small steps from the
      same start): the cosine of its displacement with ``-G_q``, the least-squares per-example
      weight ratio of the displacement, and the fraction of it outside the span of the ``g_i``.
      Adam's displacement does not depend on q, so one setting cannot track ``(P_1/P_2)^-q``.

    Returns per-q arrays (``target_weight_ratio``, ``q_weight_ratio``, ``cos_sgd``, ``adam_cos``
    ``[n_configs, n_q]``, ``max_abs_autograd_err``) and per-configuration ``adam`` records.
    """
    if len(examples) != 2:
        raise ValueError(f"reweighting_demo compares exactly two examples; got {len(examples)}")
    qs = [float(q) for q in qs]
    for q in qs:
        check_q(q)
    Ps = [float(model.log_P(x, y).detach().exp()) for x, y in examples]
    g0 = [model.exact_grad(0.0, x, y) for x, y in examples]
    G0 = g0[0] + g0[1]
    Gqs, err, wr, cs = [], 0.0, [], []
    for q in qs:
        Gq_theory = Ps[0] ** (-q) * g0[0] + Ps[1] ** (-q) * g0[1]
        # the J_Q update itself, by autograd of the loss: the per-example weights are read off it, so the
        # comparison with (P_A/P_B)^-q below tests Eq. 5 rather than the construction
        Gq = model.flat_grad(sum(qloss(model.log_P(x, y), q) for x, y in examples))
        err = max(err, float((Gq_theory - Gq).abs().max() / Gq_theory.abs().max()))
        w = example_weights(Gq, g0)["weights"]
        wr.append(float(w[0] / w[1]))
        cs.append(float(F.cosine_similarity(G0, Gq, 0)))
        Gqs.append(Gq)
    grid = {"lr": [1e-4, 1e-3], "betas": [(0.9, 0.999), (0.0, 0.99)], "eps": [1e-8, 1e-4, 1e-2], "steps": 5}
    grid.update(adam_grid or {})
    adam, adam_cos = [], []
    for lr in grid["lr"]:
        for betas in grid["betas"]:
            for eps in grid["eps"]:
                d = -_adam_displacement(model, examples, lr=lr, betas=betas, eps=eps, steps=grid["steps"])
                ew = example_weights(d, g0)
                adam.append(
                    {
                        "lr": lr,
                        "betas": betas,
                        "eps": eps,
                        "weight_ratio": float(ew["weights"][0] / ew["weights"][1]),
                        "residual_frac": ew["residual_frac"],
                    }
                )
                adam_cos.append([float(F.cosine_similarity(d, Gq, 0)) for Gq in Gqs])
    return {
        "q": np.array(qs),
        "P": Ps,
        "target_weight_ratio": (Ps[0] / Ps[1]) ** (-np.array(qs)),
        "q_weight_ratio": np.array(wr),
        "cos_sgd": np.array(cs),
        "max_abs_autograd_err": err,
        "adam": adam,
        "adam_cos": np.array(adam_cos),
        "adam_weight_ratio": np.array([r["weight_ratio"] for r in adam]),
    }


# =============================================================================================
# Beyond the paper's gradient flow: discrete optimisers on the sigmoid case (Sec. 5, App. C.1)
# =============================================================================================


def sigmoid_optimizer_escape(
    p0,
    q,
    *,
    optimizer: str = "sgd",
    lr: float = 1.0,
    adam_eps: float = 1e-8,
    betas: tuple[float, float] = (0.9, 0.999),
    delta: float = 0.5,
    max_steps: int = 100_000,
) -> np.ndarray:
    """Steps for a discrete optimiser on ``l_q(sigmoid(theta))`` (the exact one-example case of App. C.1)
    to take P from ``p0`` to ``delta``; ``nan`` where it does not within ``max_steps``.

    ``p0`` and ``q`` broadcast against each other (every pair runs at once, float64). The gradient is
    ``d l_q / d theta = -P^(1-q) (1-P)`` (Eq. 5 times ``dP/dtheta = P(1-P)``), formed from ``log P`` so
    that p0 down to 1e-300 is exact. ``optimizer="sgd"``: ``theta += lr P^(1-q)(1-P)``, the Euler
    discretisation of Eq. 15's flow (steps ~ T_q / lr). ``"adam"``: ``torch.optim.Adam``'s update
    (bias-corrected moments, ``eps`` added to ``sqrt(v_hat)``) written out in numpy.
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {optimizer!r}")
    if not lr > 0 or not adam_eps >= 0 or max_steps < 1:
        raise ValueError(f"need lr > 0, adam_eps >= 0, max_steps >= 1; got {lr}, {adam_eps}, {max_steps}")
    delta = _check_prob(delta, "delta")
    p0, q = np.broadcast_arrays(np.asarray(p0, dtype=float), np.asarray(q, dtype=float))
    if ((p0 <= 0) | (p0 >= delta)).any():
        raise ValueError(f"need 0 < p0 < delta = {delta} for every p0")
    if ((q < 0) | (q > 1)).any():
        raise ValueError("q must lie in [0, 1] for every q")
    theta = np.log(p0) - np.log1p(-p0)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    steps = np.full(theta.shape, np.nan)
    live = np.ones(theta.shape, dtype=bool)
    b1, b2 = betas
    stop = math.log(delta) - math.log1p(-delta)
    for t in range(1, max_steps + 1):
        logP = -np.logaddexp(0.0, -theta)
        g = -np.exp((1.0 - q) * logP) * -np.expm1(logP)
        if optimizer == "sgd":
            step = lr * g
        else:
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            step = lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + adam_eps)
        theta = np.where(live, theta - step, theta)
        done = live & (theta >= stop)
        steps[done] = t
        live &= ~done
        if not live.any():
            break
    return steps


# =============================================================================================
# The bias law of plug-in GARL, exactly, at any M (two-rationale models; Thm 6.1, App. D)
# =============================================================================================


def garl_bias_binomial(model: LatentCategoricalModel, q: float, M: int) -> dict:
    """Exact bias ``E[GARL] - grad l_q`` of plug-in GARL (Eq. 9, no 1/M^q) for a TWO-rationale model, at any M.

    A pool of M prior draws holds ``n ~ Binomial(M, rho_0)`` copies of rationale 0, so
    ``wbar = (n w_0 + (M-n) w_1)/M`` and ``E[GARL] = -sum_k w_k f_k E[(n_k/M) wbar^-q]`` with
    ``f_k = grad log p(z_k, y*)``, against ``grad l_q = -P^-q sum_k rho_k w_k f_k``. The M+1 terms are
    summed in log space (M = 1e5 is exact to ~1e-12 relative), where :func:`garl_exact_bias`
    enumerates pools. Returns ``bias`` ``[4]``, ``grad`` (``grad l_q``), ``rel`` (``||bias|| / ||grad l_q||``)
    and ``P``.
    """
    check_q(q)
    if model.Z != 2:
        raise ValueError(f"garl_bias_binomial needs a two-rationale model; got Z={model.Z}")
    if isinstance(M, bool) or int(M) != M or M < 1:
        raise ValueError(f"M must be an int >= 1; got {M!r}")
    M = int(M)
    with torch.no_grad():
        lrho = model.log_prior().numpy().astype(float)
        lw = model.log_w().numpy().astype(float)
    Fz = torch.stack([model.flat_grad(model.log_prior()[k] + model.log_w()[k]) for k in range(2)]).numpy()
    n = np.arange(M + 1, dtype=float)
    from scipy.special import gammaln

    log_pmf = gammaln(M + 1) - gammaln(n + 1) - gammaln(M - n + 1) + n * lrho[0] + (M - n) * lrho[1]
    with np.errstate(divide="ignore"):
        log_wbar = np.logaddexp(np.log(n) + lw[0], np.log(M - n) + lw[1]) - math.log(M)
        log_frac = [np.log(n / M), np.log((M - n) / M)]
    logP = float(np.logaddexp(lrho[0] + lw[0], lrho[1] + lw[1]))
    bias, grad = np.zeros(Fz.shape[1]), np.zeros(Fz.shape[1])
    for k in range(2):
        # E[(n_k/M) wbar^-q] relative to its target rho_k P^-q, as one log-space ratio minus 1
        log_A = np.logaddexp.reduce(log_pmf + log_frac[k] - q * log_wbar)
        rel_k = math.expm1(log_A - (lrho[k] - q * logP))
        scale = -math.exp(lrho[k] + lw[k] - q * logP)
        bias += scale * rel_k * Fz[k]
        grad += scale * Fz[k]
    return {"bias": bias, "grad": grad, "rel": float(np.linalg.norm(bias) / np.linalg.norm(grad)), "P": math.exp(logP)}


def two_rationale_model(P: float, family: str, *, seed: int = 0, w_bad: float = 1e-4) -> LatentCategoricalModel:
    """A two-rationale model with success probability P. ``family="rare"``: :func:`rare_rationale_model`
    (the good rationale is rare, its weight stays 0.9, the bad one's is ``w_bad``); ``"shift"``:
    ``LatentCategoricalModel.random(2, target_P=P)`` (the prior stays put, every weight shrinks together)."""
    if family == "rare":
        return rare_rationale_model(P, w_bad=w_bad)
    if family == "shift":
        return LatentCategoricalModel.random(2, seed=seed, target_P=P)
    raise ValueError(f"family must be 'rare' or 'shift'; got {family!r}")


def bias_law(
    qs: Sequence[float], Ms: Sequence[int], Ps: Sequence[float], family: str, *, seed: int = 0, w_bad: float = 1e-4
) -> dict:
    """Relative bias ``||E[GARL] - grad l_q|| / ||grad l_q||`` of plug-in GARL on a grid, exactly
    (:func:`garl_bias_binomial`): ``rel[q, M, P]`` (an array), with the grid and the measured P."""
    rel = np.zeros((len(qs), len(Ms), len(Ps)))
    Pm = np.zeros(len(Ps))
    for k, P in enumerate(Ps):
        model = two_rationale_model(P, family, seed=seed, w_bad=w_bad)
        for i, q in enumerate(qs):
            for j, M in enumerate(Ms):
                r = garl_bias_binomial(model, q, M)
                rel[i, j, k], Pm[k] = r["rel"], r["P"]
    return {"q": list(qs), "M": list(Ms), "P": Pm, "rel": rel, "family": family}


def rare_bias_law(q, M, P, *, w_good: float = 0.9):
    """The leading term of the relative bias in the rare family, ``q (1-q) (1 - rho) / (2 M rho)`` with
    ``rho ~ P / w_good`` the prior mass of the good rationale: the second-order Taylor term of
    ``E[(n/M)^(1-q)]`` (the bad rationales' weight neglected). It vanishes at q = 0 and at q = 1."""
    q, M, P = (np.asarray(a, dtype=float) for a in (q, M, P))
    rho = P / w_good
    return q * (1.0 - q) * (1.0 - rho) / (2.0 * M * rho)


def adam_stall_threshold(p0s, qs, steps: np.ndarray) -> dict:
    """From a table ``steps[p0, q]`` of :func:`sigmoid_optimizer_escape` (nan: no escape within the budget),
    the largest p0 that fails for each q and ``(1-q) log(1/p0)`` there: the log of the gradient's size at
    the start (``|d l_q/d theta| ~ p0^(1-q)``), to set against ``log(1/eps)``. ``{q: (p0_fail, gap)}``;
    ``(nan, nan)`` when every p0 escapes."""
    p0s = np.asarray(p0s, dtype=float)
    order = np.argsort(-p0s)
    out = {}
    for j, q in enumerate(qs):
        s = np.asarray(steps)[order, j]
        fail = np.nonzero(~np.isfinite(s))[0]
        if len(fail) == 0:
            out[float(q)] = (math.nan, math.nan)
        else:
            p = float(p0s[order][fail[0]])
            out[float(q)] = (p, (1.0 - float(q)) * math.log(1.0 / p))
    return out
