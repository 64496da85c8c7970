"""GARL, PAFT and the GRPO / RLOO baselines as pure functions of log-probabilities.

Each ``*_loss`` returns a *surrogate*: a scalar whose autograd gradient is the estimator of the
paper (the surrogate's value itself has no meaning). Inputs carry the autograd graph; every
weight is computed in log space, in float64, and detached. GARL's and PAFT's coefficients stay in float64 up to
their product with the scores, so the surrogate is float64 and no coefficient underflows on the way (in float32,
``e^-120`` would be 0); the gradient reaches the inputs in their own dtype, rounded once.

Edges: a sample with ``logp_y = -inf`` (w = 0) has zero weight and adds nothing (no ``0 * inf``); a prompt whose
``logp_y`` are all ``-inf`` ("dead": wbar = 0, no signal) adds zero gradient and is counted
(``GARLCoefficients.n_dead_prompts``, ``weight_stats(...)["n_dead_prompts"]``). NaN or ``+inf`` scores are an error.

Shapes (B prompts, M sampled rationales per prompt):

* ``logp_z[B, M]``: ``log p(z_m | x)``, the log-probability of each sampled rationale.
* ``logp_y[B, M]``: ``log p(y* | x, z_m)``, the teacher-forced log-probability of the gold answer
  after that rationale, so that ``w_m = exp(logp_y)`` is the likelihood weight of Eq. 7.

Notation follows the paper: ``wbar = mean_m w_m`` estimates ``P = p(y* | x)`` (Sec. 4.1) and
``wbar_loo[m] = mean_{j != m} w_j`` is the leave-one-out mean of Eq. 12.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Optional

import torch

from .losses import check_q

__all__ = [
    "log_mean_weight",
    "loo_log_mean_weight",
    "GARLCoefficients",
    "garl_coefficients",
    "garl_loss",
    "paft_resample",
    "paft_coefficients",
    "paft_loss",
    "weight_stats",
    "group_advantages",
    "grpo_loss",
    "rloo_loss",
]

_WDTYPE = torch.float64  # dtype of the detached weights: exp(-300) is representable in float64


def _check_pair(logp_z: torch.Tensor, logp_y: torch.Tensor, fn: str) -> tuple[int, int]:
    for name, t in (("logp_z", logp_z), ("logp_y", logp_y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{fn}: {name} must be a torch.Tensor of shape [B, M]; got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(
                f"{fn}: {name} must have shape [B, M] (prompts x sampled rationales); "
                f"got shape {tuple(t.shape)}. Use x.unsqueeze(0) for a single prompt."
            )
        if not t.is_floating_point():
            raise TypeError(f"{fn}: {name} must be a floating-point tensor of log-probabilities; got {t.dtype}")
        bad = torch.isnan(t) | (t == math.inf)
        if bool(bad.any()):
            raise ValueError(
                f"{fn}: {name} holds {int(bad.sum())} NaN or +inf value(s); log-probabilities are "
                "finite or -inf (check the scoring pass, e.g. an fp16 overflow)"
            )
    if logp_z.shape != logp_y.shape:
        raise ValueError(
            f"{fn}: logp_z {tuple(logp_z.shape)} and logp_y {tuple(logp_y.shape)} must have the same shape"
        )
    B, M = logp_y.shape
    if M < 1:
        raise ValueError(f"{fn}: need at least one sampled rationale per prompt (M >= 1); got M = {M}")
    return B, M


def _times(coef: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """``coef * logp`` in float64, 0 where ``coef`` is 0 (a weight-0 sample may have ``logp = -inf``)."""
    prod = coef * logp.to(_WDTYPE)
    return torch.where(coef == 0, torch.zeros_like(prod), prod)


def _dead(log_wbar: torch.Tensor) -> torch.Tensor:
    """Prompts whose weights are all 0 (every ``logp_y = -inf``): ``[B]`` bool."""
    return log_wbar == -math.inf


def _reduce(per_prompt: torch.Tensor, reduction: str, fn: str) -> torch.Tensor:
    if reduction == "mean":
        return per_prompt.mean()
    if reduction == "sum":
        return per_prompt.sum()
    if reduction == "none":
        return per_prompt
    raise ValueError(f"{fn}: reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")


def log_mean_weight(logp_y: torch.Tensor) -> torch.Tensor:
    """``log wbar`` per prompt, ``[B]``: the log of the Monte Carlo estimate of P (Sec. 4.1), detached, float64."""
    lw = logp_y.detach().to(_WDTYPE)
    return torch.logsumexp(lw, dim=-1) - math.log(lw.shape[-1])


def loo_log_mean_weight(logp_y: torch.Tensor) -> torch.Tensor:
    """``log wbar_{-m}`` per sample, ``[B, M]``: the leave-one-out mean of Eq. 12, in log space.

    Computed as a masked log-sum-exp rather than ``(M wbar - w_m) / (M - 1)``, which cancels
    catastrophically when one weight dominates the pool.
    """
    lw = logp_y.detach().to(_WDTYPE)
    M = lw.shape[-1]
    if M < 2:
        raise ValueError(
            f"the leave-one-out (RLOO) baseline needs M >= 2 samples per prompt; got M = {M}. "
            "Sample more rationales, or use baseline='none'."
        )
    eye = torch.eye(M, dtype=torch.bool, device=lw.device)
    mat = lw.unsqueeze(-2).expand(*lw.shape[:-1], M, M).masked_fill(eye, -math.inf)
    return torch.logsumexp(mat, dim=-1) - math.log(M - 1)


@dataclass
class GARLCoefficients:
    """Detached per-sample coefficients of GARL's surrogate (all ``[B, M]`` except ``log_wbar``).

    The surrogate is ``-(1/M) sum_m [coef_z[m] * logp_z[m] + coef_y[m] * logp_y[m]]``:
    ``coef_z`` multiplies the score-function term and ``coef_y`` the pathwise term
    ``grad w_m = w_m grad log w_m`` of Eq. 19. With ``normalize`` both include 1/M^q
    (Algorithm 1), so ``coef_z`` is the amplified advantage ``c_m / M^q`` of Fig. 3.
    """

    coef_z: torch.Tensor
    coef_y: torch.Tensor
    log_wbar: torch.Tensor
    scale: float
    dead: Optional[torch.Tensor] = None  # [B] bool: every logp_y is -inf, so the prompt's coefficients are 0

    @property
    def n_dead_prompts(self) -> int:
        """The number of prompts whose weights are all 0 (wbar = 0), which add zero gradient."""
        return 0 if self.dead is None else int(self.dead.sum())


def garl_coefficients(
    logp_y: torch.Tensor, q: float, *, baseline: Literal["rloo", "none"] = "rloo", normalize: bool = True
) -> GARLCoefficients:
    """The effective rewards of GARL (Eq. 9 / Eq. 12, Algorithm 1), detached, float64.

    * ``a_m = w_m / wbar^q`` (the amplified Rao-Blackwellised reward), computed as
      ``exp(log w_m - q log wbar)`` so that it stays finite at cold start.
    * ``baseline="none"``: ``coef_z = coef_y = a_m`` (plug-in estimator, Eq. 9).
    * ``baseline="rloo"``: ``coef_z = c_m = a_m - wbar_{-m}^(1-q)`` (Eq. 12); ``coef_y = a_m``.
    * A prompt whose weights are all 0 (``dead``) gets coefficients 0.
    """
    check_q(q)
    if baseline not in ("rloo", "none"):
        raise ValueError(f"baseline must be 'rloo' or 'none'; got {baseline!r}")
    lw = logp_y.detach().to(_WDTYPE)
    M = lw.shape[-1]
    log_wbar = torch.logsumexp(lw, dim=-1) - math.log(M)
    dead = _dead(log_wbar)
    # a dead prompt: w_m = 0 for all m, so a_m = 0 (exp(-inf + inf) would be NaN)
    a = torch.exp(lw - q * log_wbar.masked_fill(dead, 0.0).unsqueeze(-1))
    if baseline == "none":
        c = a
    else:
        loo = loo_log_mean_weight(lw)
        c = a - (torch.ones_like(loo) if q == 1 else torch.exp((1.0 - q) * loo))
        c = c.masked_fill(dead.unsqueeze(-1), 0.0)
    scale = float(M) ** (-q) if normalize else 1.0
    return GARLCoefficients(coef_z=c * scale, coef_y=a * scale, log_wbar=log_wbar, scale=scale, dead=dead)


def garl_loss(
    logp_z: torch.Tensor,
    logp_y: torch.Tensor,
    q: float,
    *,
    baseline: Literal["rloo", "none"] = "rloo",
    normalize: bool = True,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """Surrogate loss whose gradient is the GARL estimator of ``grad l_q`` (Sec. 6.1).

    Per prompt, with ``w_m = exp(logp_y[m])`` and ``wbar = mean_m w_m``:

    * ``baseline="none"`` (Eq. 9): ``(1/M) sum_m -w_m grad log p(z_m, y*|x) / wbar^q``.
    * ``baseline="rloo"`` (Eq. 12, Algorithm 1):
      ``(1/M) sum_m [-c_m grad log p(z_m|x) - grad w_m / wbar^q]`` with
      ``c_m = w_m / wbar^q - wbar_{-m}^(1-q)``.

    ``normalize=True`` divides by ``M^q`` as Algorithm 1 does (a q-dependent learning-rate
    rescaling that maps the effective reward into [0, 1]). q = 0 with ``"rloo"`` is RB-RLOO
    (VeriFree + leave-one-out); q = 1 with ``"none"`` is the IWAE gradient (Prop. D.2).

    Returns the mean over the B prompts (``reduction="mean"``), their sum, or the ``[B]``
    per-prompt surrogates (``"none"``).
    """
    _check_pair(logp_z, logp_y, "garl_loss")
    co = garl_coefficients(logp_y, q, baseline=baseline, normalize=normalize)
    per_sample = _times(co.coef_z, logp_z) + _times(co.coef_y, logp_y)  # float64 (module docstring)
    return _reduce(-per_sample.mean(dim=-1), reduction, "garl_loss")


def paft_resample(
    logp_y: torch.Tensor, K: Optional[int] = None, *, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Importance resampling (SIR) of PAFT (Sec. 6.2): ``K`` indices per prompt, with
    replacement, drawn in proportion to ``w_m``. Returns a ``[B, K]`` long tensor.

    Always returns K indices, however small the weights: the proportions are computed by a
    softmax of ``log w``, which is invariant to the scale of w. A prompt whose weights are all 0 draws
    uniformly (its PAFT coefficients are 0 whatever is drawn).
    """
    if logp_y.dim() != 2:
        raise ValueError(f"paft_resample: logp_y must have shape [B, M]; got {tuple(logp_y.shape)}")
    M = logp_y.shape[-1]
    K = M if K is None else K
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ValueError(f"PAFT needs K >= 1 resampled rationales per prompt; got K = {K!r} (the paper uses K = M)")
    lw = logp_y.detach().to(_WDTYPE)
    dead = _dead(torch.logsumexp(lw, dim=-1)).unsqueeze(-1)
    probs = torch.softmax(lw.masked_fill(dead, 0.0), dim=-1)
    if generator is not None and generator.device != probs.device:
        probs_g = probs.to(generator.device)
        return torch.multinomial(probs_g, K, replacement=True, generator=generator).to(probs.device)
    return torch.multinomial(probs, K, replacement=True, generator=generator)


def paft_coefficients(logp_y: torch.Tensor, q: float, indices: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
    """Per-sample SFT weights of PAFT, ``[B, M]``: ``(n_m / K) * wbar^(1-q) / M^q`` where
    ``n_m`` counts how often sample m was resampled (Eq. 14, Algorithm 2). Detached, float64; 0 for a prompt
    whose weights are all 0 (also at q = 1)."""
    check_q(q)
    B, M = logp_y.shape
    K = indices.shape[-1]
    counts = torch.zeros(B, M, dtype=_WDTYPE, device=logp_y.device)
    counts.scatter_add_(1, indices.to(logp_y.device), torch.ones(B, K, dtype=_WDTYPE, device=logp_y.device))
    log_wbar = log_mean_weight(logp_y)
    att = torch.ones_like(log_wbar) if q == 1 else torch.exp((1.0 - q) * log_wbar)
    att = att.masked_fill(_dead(log_wbar), 0.0)
    scale = float(M) ** (-q) if normalize else 1.0
    return counts / K * (att * scale).unsqueeze(-1)


def paft_loss(
    logp_z: torch.Tensor,
    logp_y: torch.Tensor,
    q: float,
    *,
    K: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    indices: Optional[torch.Tensor] = None,
    normalize: bool = True,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """Surrogate loss whose gradient is the PAFT estimator (Eq. 14, Algorithm 2).

    Per prompt: resample ``r_1..r_K ~ Categorical(w / sum w)`` with replacement (or take the
    given ``indices[B, K]``), then

    ``grad = -(wbar^(1-q) / M^q) (1/K) sum_k grad log p(z_{r_k}, y* | x)``

    i.e. teacher-forced SFT on the resampled rationales and the gold answer, attenuated by
    ``wbar^(1-q)`` (and divided by ``M^q`` when ``normalize``). No baseline: PAFT's variance
    reduction comes from the resampling. q = 1 is the EM / TRICE update (Prop. D.2).
    Conditional on the pool its mean equals plug-in GARL's (Prop. D.3).
    """
    _check_pair(logp_z, logp_y, "paft_loss")
    if indices is None:
        indices = paft_resample(logp_y, K, generator=generator)
    elif indices.dim() != 2 or indices.shape[0] != logp_y.shape[0]:
        raise ValueError(f"paft_loss: indices must have shape [B, K]; got {tuple(indices.shape)}")
    coef = paft_coefficients(logp_y, q, indices, normalize=normalize)
    per_prompt = -(_times(coef, logp_z) + _times(coef, logp_y)).sum(dim=-1)  # float64 (module docstring)
    return _reduce(per_prompt, reduction, "paft_loss")


def weight_stats(logp_y: torch.Tensor, q: float, *, normalize: bool = True) -> dict[str, float]:
    """Diagnostics of the likelihood weights of a batch, as logged by the trainer.

    * ``log_wbar_mean``, ``log_wbar_min``, ``log_wbar_max``: log of the estimated P per prompt.
    * ``wbar_mean``: mean estimated P.
    * ``amp_mean``, ``amp_max``: the amplification ``wbar^-q`` (Eq. 5 / Eq. 9), mean and max over prompts.
    * ``max_adv``: the largest amplified RLOO advantage ``c_m / M^q`` (paper Fig. 3); needs M >= 2.
    * ``ess_frac``: mean normalised effective sample size ``(sum w)^2 / (M sum w^2)`` of PAFT's
      resampling distribution, in [1/M, 1] (over the prompts that are not dead; 0 if none).
    * ``n_dead_prompts``: prompts whose weights are all 0 (every ``logp_y = -inf``); they add zero gradient.
    """
    lw = logp_y.detach().to(_WDTYPE)
    M = lw.shape[-1]
    log_wbar = log_mean_weight(lw)
    dead = _dead(log_wbar)
    ess = (torch.exp(2 * torch.logsumexp(lw, -1) - torch.logsumexp(2 * lw, -1)) / M)[~dead]  # live prompts
    amp = torch.exp(-q * log_wbar)
    out = {
        "log_wbar_mean": log_wbar.mean().item(),
        "log_wbar_min": log_wbar.min().item(),
        "log_wbar_max": log_wbar.max().item(),
        "wbar_mean": log_wbar.exp().mean().item(),
        "amp_mean": amp.mean().item(),
        "amp_max": amp.max().item(),
        "ess_frac": ess.mean().item() if ess.numel() else 0.0,
        "n_dead_prompts": int(dead.sum()),
    }
    if M >= 2:
        out["max_adv"] = garl_coefficients(lw, q, baseline="rloo", normalize=normalize).coef_z.max().item()
    return out


# --------------------------------------------------------------------------------------------
# Baselines with binary rewards of the model's own sampled answers.
# --------------------------------------------------------------------------------------------


def group_advantages(
    rewards: torch.Tensor, *, scale: Literal["group", "batch", "none"] = "group", eps: float = 1e-4
) -> torch.Tensor:
    """GRPO's group-relative advantages ``(r - mean_group(r)) / (std + eps)``, ``[B, G]``.

    ``scale="group"`` divides by the per-group standard deviation (Shao et al. 2024, unbiased
    std as in TRL); ``"batch"`` by the batch standard deviation; ``"none"`` keeps the centred
    reward (Dr. GRPO). Groups with zero reward variance get advantage 0 whatever the scaling.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must have shape [B, G]; got {tuple(rewards.shape)}")
    r = rewards.detach().to(torch.float32)
    centred = r - r.mean(dim=-1, keepdim=True)
    if scale == "group":
        std = r.std(dim=-1, keepdim=True) if r.shape[-1] > 1 else torch.zeros_like(r[:, :1])
        return centred / (std + eps)
    if scale == "batch":
        return centred / (r.std() + eps) if r.numel() > 1 else centred
    if scale == "none":
        return centred
    raise ValueError(f"scale must be 'group', 'batch' or 'none'; got {scale!r}")


def grpo_loss(
    logp_tokens: torch.Tensor,
    mask: torch.Tensor,
    rewards: torch.Tensor,
    *,
    old_logp_tokens: Optional[torch.Tensor] = None,
    ref_logp_tokens: Optional[torch.Tensor] = None,
    clip_eps: float = 0.2,
    beta: float = 0.0,
    scale_rewards: Literal["group", "batch", "none"] = "group",
    loss_agg: Literal["seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"] = "seq-mean-token-mean",
    max_completion_length: Optional[int] = None,
    n_prompts: Optional[int] = None,
    n_tokens: Optional[float] = None,
    reward_std: Optional[float] = None,
) -> torch.Tensor:
    """GRPO (Shao et al. 2024) with every choice pinned, for binary (0/1) rewards.

    Shapes: ``logp_tokens``, ``mask`` ``[B, G, T]`` (per-token log-probs of the G sampled
    completions of each of B prompts, mask 1 on completion tokens), ``rewards`` ``[B, G]``.

    Pinned defaults (TRL changed its own defaults twice, so we state ours):

    * advantages: group mean-centred, divided by the group std (``scale_rewards="group"``);
    * PPO clipping with ``clip_eps = 0.2`` against ``old_logp_tokens`` (default: the current
      log-probs detached, i.e. one on-policy step, where the ratio is 1 and clipping is inactive);
    * KL penalty ``beta = 0`` (no reference model); if ``beta > 0``, the k3 estimator
      ``exp(ref - logp) - (ref - logp) - 1`` per token against ``ref_logp_tokens``;
    * aggregation ``"seq-mean-token-mean"`` (original GRPO: mean over each completion's tokens,
      then over completions); ``"token-mean"`` (DAPO: all tokens of the batch weigh equally);
      ``"seq-mean-token-sum-norm"`` (Dr. GRPO: token sums divided by the constant
      ``max_completion_length``, as TRL's, not by the longest completion of the batch; default: ``T``).

    A slice of a batch (a trainer that scores one prompt at a time) gets its exact share of the batch
    loss, so that the shares sum to the loss of the whole batch, when given the batch's totals:
    ``n_prompts`` (prompts in the batch), ``n_tokens`` (completion tokens in the batch, ``"token-mean"``)
    and ``reward_std`` (the std of all the batch's rewards, ``scale_rewards="batch"``). Left at None they
    are taken from the tensors given (the whole batch).
    """
    if logp_tokens.dim() != 3 or mask.shape != logp_tokens.shape:
        raise ValueError(
            f"grpo_loss: logp_tokens and mask must both have shape [B, G, T]; "
            f"got {tuple(logp_tokens.shape)} and {tuple(mask.shape)}"
        )
    if rewards.shape != logp_tokens.shape[:2]:
        raise ValueError(
            f"grpo_loss: rewards must have shape [B, G] = {tuple(logp_tokens.shape[:2])}; got {tuple(rewards.shape)}"
        )
    if beta > 0 and ref_logp_tokens is None:
        raise ValueError("grpo_loss: beta > 0 needs ref_logp_tokens (log-probs under the reference model)")
    if scale_rewards == "batch" and reward_std is not None:  # a slice: the whole batch's std
        r = rewards.detach().to(torch.float32)
        adv = (r - r.mean(dim=-1, keepdim=True)) / (float(reward_std) + 1e-4)
    else:
        adv = group_advantages(rewards, scale=scale_rewards)
    adv = adv.to(logp_tokens.dtype).unsqueeze(-1)
    old = logp_tokens.detach() if old_logp_tokens is None else old_logp_tokens.detach()
    ratio = torch.exp(logp_tokens - old)
    obj = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    if beta > 0:
        d = ref_logp_tokens.detach() - logp_tokens
        obj = obj - beta * (torch.exp(d) - d - 1)
    m = mask.to(logp_tokens.dtype)
    per_tok = -obj * m
    B, G = rewards.shape
    n_seq = (B if n_prompts is None else n_prompts) * G
    if loss_agg == "seq-mean-token-mean":
        return (per_tok.sum(-1) / m.sum(-1).clamp_min(1)).sum() / n_seq
    if loss_agg == "token-mean":
        return per_tok.sum() / (m.sum().clamp_min(1) if n_tokens is None else max(float(n_tokens), 1.0))
    if loss_agg == "seq-mean-token-sum-norm":
        L = logp_tokens.shape[-1] if max_completion_length is None else max_completion_length
        if int(mask.sum(-1).max()) > L:
            raise ValueError(
                f"grpo_loss: a completion has {int(mask.sum(-1).max())} tokens, more than "
                f"max_completion_length = {L}; pass the generation's constant maximum length"
            )
        return per_tok.sum() / (n_seq * L)
    raise ValueError(f"grpo_loss: unknown loss_agg {loss_agg!r}")


def rloo_loss(
    logp_seq: torch.Tensor, rewards: torch.Tensor, *, reduction: Literal["mean", "sum", "none"] = "mean"
) -> torch.Tensor:
    """REINFORCE with the leave-one-out baseline (Kool et al. 2019) for verifier rewards.

    ``logp_seq[B, M]`` is the log-probability of each whole sampled completion (rationale and
    answer) and ``rewards[B, M]`` its reward. Per prompt the gradient is
    ``-(1/M) sum_m (r_m - mean_{j != m} r_j) grad log p(completion_m | x)``.
    """
    if logp_seq.dim() != 2 or rewards.shape != logp_seq.shape:
        raise ValueError(
            f"rloo_loss: logp_seq and rewards must both have shape [B, M]; "
            f"got {tuple(logp_seq.shape)} and {tuple(rewards.shape)}"
        )
    M = logp_seq.shape[-1]
    if M < 2:
        raise ValueError(f"rloo_loss needs M >= 2 samples per prompt; got M = {M}")
    r = rewards.detach().to(logp_seq.dtype)
    adv = r - (r.sum(-1, keepdim=True) - r) / (M - 1)
    return _reduce(-(adv * logp_seq).mean(-1), reduction, "rloo_loss")


def maxrl_loss(
    logp_seq: torch.Tensor, rewards: torch.Tensor, *, reduction: Literal["mean", "sum", "none"] = "mean"
) -> torch.Tensor:
    """MaxRL (Tajwar et al. 2026; paper-notes §6): REINFORCE on verifier rewards with the advantage
    ``(r_m - rbar) / rbar`` (zero for the whole group when ``rbar = 0``), ``rbar = mean_m r_m``.

    ``logp_seq[B, M]``: log-probability of each whole sampled completion; ``rewards[B, M]`` its reward.
    Per prompt the gradient is ``-(1/M) sum_m (r_m / rbar - 1) grad log p(completion_m | x)``: with binary
    rewards this is GARL's q = 1 estimator with RLOO baseline (Eq. 12, where ``wbar_{-m}^(1-q) = 1``) with
    the reward ``r_m`` in place of the likelihood weight ``w_m`` and no pathwise term, i.e. the average of
    the successful completions' score minus the average of all. It is exactly zero when no sample succeeds.
    """
    if logp_seq.dim() != 2 or rewards.shape != logp_seq.shape:
        raise ValueError(
            f"maxrl_loss: logp_seq and rewards must both have shape [B, M]; "
            f"got {tuple(logp_seq.shape)} and {tuple(rewards.shape)}"
        )
    r = rewards.detach().to(_WDTYPE)
    rbar = r.mean(-1, keepdim=True)
    adv = torch.where(rbar > 0, r / rbar.clamp_min(torch.finfo(_WDTYPE).tiny) - 1.0, torch.zeros_like(r))
    return _reduce(-(adv.to(logp_seq.dtype) * logp_seq).mean(-1), reduction, "maxrl_loss")


# --------------------------------------------------------------------------------------------
# One table from method name to estimator: the trainer, the miniature and the TRL adapter all
# dispatch through ESTIMATORS, with one default q and one set of diagnostic names.
# --------------------------------------------------------------------------------------------

#: the default commitment q of every entry point (``config.MethodConfig``, the TRL adapter's
#: ``GARLConfig``, the miniature's ``TrainConfig``): the paper's best cold-start value (Table 1)
DEFAULT_Q = 0.75

#: the per-step diagnostics, one name each, wherever they are logged (the TRL adapter prefixes them with
#: ``garl/`` or ``paft/``). Keys a method does not produce are absent from its row.
METRIC_NAMES: dict[str, str] = {
    "loss": "the surrogate's value (no meaning of its own)",
    "q": "GARL / PAFT: the q in force at this step (method.q, or the value of method.q_schedule)",
    "wbar_mean": "mean over prompts of wbar = mean_m w_m, the estimate of P (Sec. 4.1)",
    "wbar_std": "std over prompts of wbar",
    "log_wbar_mean": "mean over prompts of log wbar",
    "log_wbar_min": "min over prompts of log wbar",
    "log_wbar_max": "max over prompts of log wbar",
    "log_w_std": "mean over prompts of the std of log w_m across the M samples",
    "amp_mean": "mean amplification wbar^-q (Eq. 5 / Eq. 9)",
    "amp_max": "max amplification wbar^-q",
    "max_adv": "largest amplified RLOO advantage c_m / M^q (Fig. 3)",
    "ess_frac": "mean normalised effective sample size (sum w)^2 / (M sum w^2), in [1/M, 1]",
    "paft_unique_frac": "PAFT: distinct resampled rationales / M",
    "dead_prompts": "prompts whose M values of logp_y are all -inf (they add no gradient)",
    "reward_mean": "mean verifier reward (GRPO, RLOO, MaxRL)",
    "zero_var_frac": "fraction of prompts whose M rewards are all equal (no gradient for GRPO / RLOO / MaxRL)",
    "logp_z_mean": "mean log p(z_m | x)",
    "rationale_len": "mean rationale length in tokens (marker included)",
    "forced_frac": "fraction of rationales whose marker was forced by the budget",
}


@dataclass
class EstimatorInputs:
    """What a method's estimator reads, for B prompts (the whole batch, or one slice of it).

    ``logp_z``, ``logp_y`` ``[B, M]`` (for GRPO / RLOO / MaxRL ``logp_y`` is the model's own sampled answer);
    ``rewards[B, M]`` (verifier methods); ``logp_tokens``, ``mask`` ``[B, M, T]`` (GRPO);
    ``indices[B, K]`` (PAFT: given resampled indices instead of drawing them with ``generator``)."""

    logp_z: torch.Tensor
    logp_y: torch.Tensor
    rewards: Optional[torch.Tensor] = None
    logp_tokens: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None
    indices: Optional[torch.Tensor] = None
    generator: Optional[torch.Generator] = None


@dataclass
class BatchTotals:
    """The totals of the whole batch, for an estimator called on a slice (one prompt at a time): with them
    each slice's loss is its exact share of the batch loss, and the shares sum to the batch loss.
    ``n_prompts``; ``n_tokens`` (completion tokens, GRPO's ``token-mean``); ``reward_std`` (std of all rewards,
    GRPO's ``scale_rewards="batch"``); ``max_completion_length`` (Dr. GRPO's constant normaliser)."""

    n_prompts: int
    n_tokens: Optional[float] = None
    reward_std: Optional[float] = None
    max_completion_length: Optional[int] = None


@dataclass
class EstimatorOutput:
    loss: torch.Tensor
    indices: Optional[torch.Tensor] = None  # PAFT's resampled indices [B, K]


#: the options an estimator may read; callers pass any subset (e.g. every field of ``config.MethodConfig``)
ESTIMATOR_OPTIONS = ("q", "baseline", "normalize", "K", "clip_eps", "scale_rewards", "loss_agg")


@dataclass(frozen=True)
class EstimatorSpec:
    """One row of :data:`ESTIMATORS`. ``verifier``: samples the model's own answer and rewards it (exact
    match) instead of teacher-forcing y*; ``tokens``: needs per-token log-probs; ``weights``: logs the
    likelihood-weight diagnostics of :func:`weight_stats`. ``fn(inputs, options, totals) -> EstimatorOutput``
    is called through ``__call__``."""

    name: str
    fn: Callable[[EstimatorInputs, dict, BatchTotals], EstimatorOutput]
    verifier: bool
    tokens: bool
    weights: bool
    options: tuple[str, ...]
    doc: str

    def __call__(
        self, inputs: EstimatorInputs, options: Optional[dict] = None, totals: Optional[BatchTotals] = None
    ) -> EstimatorOutput:
        """The method's surrogate on ``inputs``; ``options`` a dict (or an object with attributes, e.g.
        ``config.MethodConfig``) of :data:`ESTIMATOR_OPTIONS`; ``totals``: the whole batch's, when ``inputs``
        is a slice of it (the loss is then the slice's share of the batch loss)."""
        opts = _options(options, self.name)
        if (self.verifier and inputs.rewards is None) or (self.tokens and inputs.logp_tokens is None):
            need = "rewards" + (" and logp_tokens / mask" if self.tokens else "")
            raise ValueError(f"estimator {self.name!r} needs {need} in its EstimatorInputs")
        if totals is None:
            totals = BatchTotals(n_prompts=inputs.logp_z.shape[0])
        return self.fn(inputs, opts, totals)


def _options(options, name: str) -> dict:
    if options is None:
        return {}
    if not isinstance(options, dict):
        return {k: getattr(options, k) for k in ESTIMATOR_OPTIONS if hasattr(options, k)}
    bad = set(options) - set(ESTIMATOR_OPTIONS) - {"name"}
    if bad:
        raise ValueError(f"estimator {name!r}: unknown option(s) {sorted(bad)}; the options are {ESTIMATOR_OPTIONS}")
    return dict(options)


def _share(per_prompt_sum: torch.Tensor, t: BatchTotals) -> torch.Tensor:
    return per_prompt_sum / t.n_prompts


#: The estimator of each method name; every caller dispatches here, as ``ESTIMATORS[name](inputs, options, totals)``.
#: Each row is added by ``_estimator`` at the function it names (in the order garl, paft, grpo, rloo, maxrl).
ESTIMATORS: dict[str, EstimatorSpec] = {}


def _estimator(name: str, options: tuple[str, ...] = (), *, verifier=False, tokens=False, weights=False):
    """Decorator: add the row ``name`` of :data:`ESTIMATORS` for the decorated ``fn(inputs, options, totals)``,
    with the fields of :class:`EstimatorSpec` and the function's docstring as its ``doc``."""

    def add(fn):
        ESTIMATORS[name] = EstimatorSpec(name, fn, verifier, tokens, weights, options, fn.__doc__)
        return fn

    return add


@_estimator("garl", ("q", "baseline", "normalize"), weights=True)
def _garl(i: EstimatorInputs, o: dict, t: BatchTotals) -> EstimatorOutput:
    """GARL (Sec. 6.1, Eq. 9 / Eq. 12, Algorithm 1): garl_loss"""
    loss = garl_loss(
        i.logp_z,
        i.logp_y,
        o.get("q", DEFAULT_Q),
        baseline=o.get("baseline", "rloo"),
        normalize=o.get("normalize", True),
        reduction="sum",
    )
    return EstimatorOutput(_share(loss, t))


@_estimator("paft", ("q", "K", "normalize"), weights=True)
def _paft(i: EstimatorInputs, o: dict, t: BatchTotals) -> EstimatorOutput:
    """PAFT (Sec. 6.2, Eq. 14, Algorithm 2): paft_resample + paft_loss"""
    idx = i.indices
    if idx is None:
        idx = paft_resample(i.logp_y, o.get("K") or i.logp_y.shape[-1], generator=i.generator)
    idx = idx.to(i.logp_y.device)
    loss = paft_loss(
        i.logp_z, i.logp_y, o.get("q", DEFAULT_Q), indices=idx, normalize=o.get("normalize", True), reduction="sum"
    )
    return EstimatorOutput(_share(loss, t), idx)


@_estimator("grpo", ("clip_eps", "scale_rewards", "loss_agg"), verifier=True, tokens=True)
def _grpo(i: EstimatorInputs, o: dict, t: BatchTotals) -> EstimatorOutput:
    """GRPO (Shao et al. 2024): grpo_loss"""
    loss = grpo_loss(
        i.logp_tokens,
        i.mask,
        i.rewards,
        clip_eps=o.get("clip_eps", 0.2),
        scale_rewards=o.get("scale_rewards", "group"),
        loss_agg=o.get("loss_agg", "seq-mean-token-mean"),
        max_completion_length=t.max_completion_length,
        n_prompts=t.n_prompts,
        n_tokens=t.n_tokens,
        reward_std=t.reward_std,
    )
    return EstimatorOutput(loss)


@_estimator("rloo", verifier=True)
def _rloo(i: EstimatorInputs, o: dict, t: BatchTotals) -> EstimatorOutput:
    """REINFORCE with leave-one-out baseline (Kool et al. 2019): rloo_loss"""
    return EstimatorOutput(_share(rloo_loss(i.logp_z + i.logp_y, i.rewards, reduction="sum"), t))


@_estimator("maxrl", verifier=True)
def _maxrl(i: EstimatorInputs, o: dict, t: BatchTotals) -> EstimatorOutput:
    """MaxRL (Tajwar et al. 2026), advantage (r_m - rbar) / rbar: maxrl_loss"""
    return EstimatorOutput(_share(maxrl_loss(i.logp_z + i.logp_y, i.rewards, reduction="sum"), t))


def estimator_metrics(
    spec: EstimatorSpec,
    logp_z: torch.Tensor,
    logp_y: torch.Tensor,
    rewards: Optional[torch.Tensor] = None,
    indices: Optional[torch.Tensor] = None,
    options=None,
) -> dict:
    """The diagnostics of :data:`METRIC_NAMES` that a step of ``spec`` produces from its detached
    ``[B, M]`` scores (``loss``, ``forced_frac`` and ``rationale_len`` are the caller's)."""
    o = _options(options, spec.name)
    met: dict = {}
    if spec.weights:
        q, normalize = o.get("q", DEFAULT_Q), o.get("normalize", True)
        ws = weight_stats(logp_y, q, normalize=normalize)
        wbar = torch.exp(log_mean_weight(logp_y))
        M = logp_y.shape[-1]
        met.update(
            {
                k: ws[k]
                for k in (
                    "wbar_mean",
                    "log_wbar_mean",
                    "log_wbar_min",
                    "log_wbar_max",
                    "amp_mean",
                    "amp_max",
                    "ess_frac",
                    "max_adv",
                )
                if k in ws
            }
        )
        met["wbar_std"] = float(wbar.std()) if wbar.numel() > 1 else 0.0
        met["log_w_std"] = float(logp_y.detach().double().std(dim=-1).mean()) if M > 1 else 0.0
        # prompts with no finite weight: no gradient from them (the -inf guard of garl_loss / paft_loss)
        met["dead_prompts"] = int(torch.isneginf(logp_y.detach()).all(dim=-1).sum())
        if indices is not None:
            met["paft_unique_frac"] = float(sum(len(set(r.tolist())) for r in indices)) / (len(indices) * M)
    if rewards is not None:
        met["reward_mean"] = float(rewards.float().mean())
        met["zero_var_frac"] = (
            float((rewards.float().std(dim=-1) == 0).float().mean()) if rewards.shape[-1] > 1 else 1.0
        )
    met["logp_z_mean"] = float(logp_z.detach().float().mean())
    return met


__all__ += [
    "maxrl_loss",
    "DEFAULT_Q",
    "METRIC_NAMES",
    "EstimatorInputs",
    "BatchTotals",
    "EstimatorOutput",
    "EstimatorSpec",
    "ESTIMATORS",
    "ESTIMATOR_OPTIONS",
    "estimator_metrics",
]
