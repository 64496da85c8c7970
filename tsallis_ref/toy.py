"""A small enumerable latent-rationale model, for exact gradients and exact estimator expectations.

The model has one input, a categorical rationale ``z in {0..Z-1}`` with logits ``theta`` and a
Bernoulli gold answer given ``z`` with logit ``phi[z]``:

    p(z | x)       = softmax(theta)[z]
    p(y* | x, z)   = sigmoid(phi[z])          (the likelihood weight w of Eq. 7)
    P              = sum_z p(z | x) p(y* | x, z)

Everything is small enough that ``P``, the exact gradient of ``l_q`` and the *exact* expectation
of any estimator over pools of M samples (by enumerating the multinomial counts) are computable.
The tests of the estimators and the book's theory chapters use it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .losses import qloss

__all__ = ["LatentCategoricalModel", "TinyAutoregressiveLatentModel", "compositions", "multinomial_log_pmf"]


def compositions(M: int, Z: int) -> Iterator[tuple[int, ...]]:
    """All count vectors ``(n_0..n_{Z-1})`` of nonnegative integers summing to M."""
    for cut in itertools.combinations(range(M + Z - 1), Z - 1):
        prev, out = -1, []
        for c in cut + (M + Z - 1,):
            out.append(c - prev - 1)
            prev = c
        yield tuple(out)


def multinomial_log_pmf(counts: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """log Multinomial(counts; M, probs) for a ``[N, Z]`` batch of count vectors."""
    c = counts.to(log_probs.dtype)
    M = c.sum(-1)
    return torch.lgamma(M + 1) - torch.lgamma(c + 1).sum(-1) + (c * log_probs).sum(-1)


@dataclass
class LatentCategoricalModel:
    """``theta[Z]`` (rationale logits) and ``phi[Z]`` (answer logits), float64 leaves with grad."""

    theta: torch.Tensor
    phi: torch.Tensor

    @classmethod
    def random(cls, Z: int = 4, *, seed: int = 0, target_P: Optional[float] = None) -> LatentCategoricalModel:
        """A random model; with ``target_P`` the answer logits are shifted so that P equals it."""
        g = torch.Generator().manual_seed(seed)
        theta = torch.randn(Z, generator=g, dtype=torch.float64)
        phi = torch.randn(Z, generator=g, dtype=torch.float64) * 1.5
        if target_P is not None:
            if not 0 < target_P < 1:
                raise ValueError(f"target_P must lie in (0, 1); got {target_P}")
            lo, hi = -60.0, 60.0
            for _ in range(200):  # bisection on a common shift of phi
                mid = (lo + hi) / 2
                P = (torch.softmax(theta, 0) * torch.sigmoid(phi + mid)).sum().item()
                lo, hi = (mid, hi) if P < target_P else (lo, mid)
            phi = phi + (lo + hi) / 2
        return cls(theta.requires_grad_(), phi.requires_grad_())

    @property
    def Z(self) -> int:
        return self.theta.numel()

    def params(self) -> list[torch.Tensor]:
        return [self.theta, self.phi]

    def log_prior(self) -> torch.Tensor:
        return F.log_softmax(self.theta, 0)

    def log_w(self) -> torch.Tensor:
        return F.logsigmoid(self.phi)

    def log_P(self) -> torch.Tensor:
        return torch.logsumexp(self.log_prior() + self.log_w(), 0)

    def exact_grad(self, q: float) -> torch.Tensor:
        """The exact gradient of ``l_q = -log_q P`` with respect to ``(theta, phi)``, flattened."""
        return self.flat_grad(qloss(self.log_P(), q))

    def flat_grad(self, loss: torch.Tensor) -> torch.Tensor:
        gs = torch.autograd.grad(loss, self.params(), allow_unused=True)
        return torch.cat([torch.zeros_like(p) if g is None else g for p, g in zip(self.params(), gs)])

    def sample(
        self, B: int, M: int, generator: Optional[torch.Generator] = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """B independent pools of M rationales from the prior: ``(z[B, M], logp_z[B, M], logp_y[B, M])``."""
        with torch.no_grad():
            probs = torch.softmax(self.theta, 0)
        z = torch.multinomial(probs.expand(B, -1).contiguous(), M, replacement=True, generator=generator)
        return z, self.log_prior()[z], self.log_w()[z]

    def pools_from_counts(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Expand ``[N, Z]`` count vectors into pools ``z[N, M]`` and their ``logp_z``, ``logp_y``."""
        z = torch.stack([torch.repeat_interleave(torch.arange(self.Z), c) for c in counts])
        return z, self.log_prior()[z], self.log_w()[z]

    def exact_expectation(
        self, surrogate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], M: int
    ) -> torch.Tensor:
        """``E[grad surrogate]`` over pools of M i.i.d. prior samples, exactly, by enumerating counts.

        ``surrogate(logp_z, logp_y)`` must return the per-pool surrogates ``[N]`` (reduction="none").
        """
        counts = torch.tensor(list(compositions(M, self.Z)))
        _, lz, ly = self.pools_from_counts(counts)
        with torch.no_grad():
            log_pmf = multinomial_log_pmf(counts, self.log_prior())
        per_pool = surrogate(lz, ly)
        return self.flat_grad((log_pmf.exp() * per_pool).sum())

    def per_pool_grads(
        self,
        surrogate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        B: int,
        M: int,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Gradients of ``surrogate`` for B independent pools, ``[B, 2Z]`` (for variances)."""
        theta = self.theta.detach().expand(B, -1).clone().requires_grad_()
        phi = self.phi.detach().expand(B, -1).clone().requires_grad_()
        with torch.no_grad():
            probs = torch.softmax(self.theta, 0)
        z = torch.multinomial(probs.expand(B, -1).contiguous(), M, replacement=True, generator=generator)
        lz = torch.gather(F.log_softmax(theta, -1), 1, z)
        ly = torch.gather(F.logsigmoid(phi), 1, z)
        per_pool = surrogate(lz, ly)
        gt, gp = torch.autograd.grad(per_pool.sum(), [theta, phi])
        return torch.cat([gt, gp], dim=1)

    def moments(self, q: float) -> dict[str, torch.Tensor]:
        """Exact ``P``, ``Var(w)``, ``Cov(g, w)``, ``grad l_1`` and ``grad l_q`` (for App. D's bias formula).

        ``g_m = -w_m grad log p(z_m, y* | x)``; the gradient is with respect to ``(theta, phi)``.
        """
        Z = self.Z
        prior = self.log_prior().exp().detach()
        w = self.log_w().exp().detach()
        P = (prior * w).sum()
        g = []
        for z in range(Z):
            g.append(-w[z] * self.flat_grad(self.log_prior()[z] + self.log_w()[z]))
        g = torch.stack(g)  # [Z, 2Z]
        Eg = (prior.unsqueeze(1) * g).sum(0)
        var_w = (prior * w**2).sum() - P**2
        cov_gw = (prior.unsqueeze(1) * g * w.unsqueeze(1)).sum(0) - Eg * P
        return {
            "P": P,
            "var_w": var_w,
            "cov_gw": cov_gw,
            "grad_l1": self.exact_grad(1.0),
            "grad_lq": self.exact_grad(q),
            "grad_l0": Eg,
        }

    def garl_bias_leading_term(self, q: float, M: int) -> torch.Tensor:
        """App. D's leading bias term of plug-in GARL (without the 1/M^q normalisation):
        ``q / (M P^(q+1)) [ (q+1)/2 grad l_1 Var(w) - Cov(g, w) ]``."""
        mo = self.moments(q)
        P = mo["P"]
        return q / (M * P ** (q + 1)) * ((q + 1) / 2 * mo["grad_l1"] * mo["var_w"] - mo["cov_gw"])


@dataclass
class TinyAutoregressiveLatentModel:
    """A tiny autoregressive latent-rationale model, small enough to enumerate every rationale.

    Input ``x in {0..X-1}``; rationale ``z = (z_1..z_L)`` with tokens in ``{0..V-1}``; answer
    ``y in {0..Y-1}``. All parameters are float64 leaves:

        p(z_t | x, z_<t) = softmax(E[x] + A[z_{t-1}] + Bpos[t])      (z_0 = BOS, row V of A)
        p(y | x, z)      = softmax(C[x] + D[z_L] + sum_t F[z_t])

    so that ``P = p(y* | x) = sum_z p(z | x) p(y* | x, z)`` is an exact sum over the ``V^L``
    rationales. Used for the gradient-geometry chapter (Prop. 4.1, Eq. 5).
    """

    E: torch.Tensor
    A: torch.Tensor
    Bpos: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor
    F: torch.Tensor

    @classmethod
    def random(
        cls, *, X: int = 2, V: int = 3, L: int = 3, Y: int = 4, seed: int = 0, scale: float = 1.0
    ) -> TinyAutoregressiveLatentModel:
        for name, v in (("X", X), ("V", V), ("L", L), ("Y", Y)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"TinyAutoregressiveLatentModel.random: {name} must be a positive int; got {v!r}")
        if V**L > 100_000:
            raise ValueError(f"V^L = {V**L} rationales is too many to enumerate; use a smaller V or L")
        g = torch.Generator().manual_seed(seed)

        def r(*shape):
            return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()

        return cls(E=r(X, V), A=r(V + 1, V), Bpos=r(L, V), C=r(X, Y), D=r(V, Y), F=r(V, Y))

    @property
    def V(self) -> int:
        return self.A.shape[1]

    @property
    def L(self) -> int:
        return self.Bpos.shape[0]

    @property
    def X(self) -> int:
        return self.E.shape[0]

    @property
    def Y(self) -> int:
        return self.C.shape[1]

    def params(self) -> list[torch.Tensor]:
        return [self.E, self.A, self.Bpos, self.C, self.D, self.F]

    def rationales(self) -> torch.Tensor:
        """All ``V^L`` rationales, ``[V^L, L]`` long."""
        return torch.tensor(list(itertools.product(range(self.V), repeat=self.L)), dtype=torch.long)

    def _check(self, x: int, y: int) -> None:
        if not 0 <= x < self.X:
            raise ValueError(f"x must lie in 0..{self.X - 1}; got {x}")
        if not 0 <= y < self.Y:
            raise ValueError(f"y must lie in 0..{self.Y - 1}; got {y}")

    def log_pz(self, x: int) -> torch.Tensor:
        """``log p(z | x)`` for every rationale, ``[V^L]``."""
        zs = self.rationales()
        prev = torch.cat([torch.full((zs.shape[0], 1), self.V, dtype=torch.long), zs[:, :-1]], 1)
        logits = self.E[x].view(1, 1, -1) + self.A[prev] + self.Bpos.unsqueeze(0)
        return torch.gather(F.log_softmax(logits, -1), 2, zs.unsqueeze(-1)).squeeze(-1).sum(-1)

    def log_py(self, x: int, y: int) -> torch.Tensor:
        """``log p(y | x, z)`` for every rationale, ``[V^L]`` (the log-weights ``log w`` of Eq. 7)."""
        zs = self.rationales()
        logits = self.C[x].unsqueeze(0) + self.D[zs[:, -1]] + self.F[zs].sum(1)
        return F.log_softmax(logits, -1)[:, y]

    def log_P(self, x: int, y: int) -> torch.Tensor:
        self._check(x, y)
        return torch.logsumexp(self.log_pz(x) + self.log_py(x, y), 0)

    def flat_grad(self, loss: torch.Tensor) -> torch.Tensor:
        gs = torch.autograd.grad(loss, self.params(), allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(self.params(), gs)])

    def exact_grad(self, q: float, x: int, y: int) -> torch.Tensor:
        """Exact gradient of ``l_q = -log_q P(y | x)`` over all parameters, flattened."""
        return self.flat_grad(qloss(self.log_P(x, y), q))

    def calibrate(self, x: int, y: int, target_P: float, iters: int = 200) -> TinyAutoregressiveLatentModel:
        """Shift the answer bias ``C[x, y]`` (in place) so that ``p(y | x) = target_P``; returns self.

        ``P`` is increasing in ``C[x, y]`` for every rationale, so bisection finds the shift.
        """
        self._check(x, y)
        if not 0 < target_P < 1:
            raise ValueError(f"target_P must lie in (0, 1); got {target_P}")
        with torch.no_grad():
            c0 = self.C[x, y].item()
            lo, hi = c0 - 80.0, c0 + 80.0
            for _ in range(iters):
                mid = (lo + hi) / 2
                self.C[x, y] = mid
                if self.log_P(x, y).item() < math.log(target_P):
                    lo = mid
                else:
                    hi = mid
            self.C[x, y] = (lo + hi) / 2
        return self
