"""Cold start in miniature: a synthetic latent-reasoning task, a tiny causal transformer whose
initial success probability p0 is set by a controlled corruption, and post-training with GRPO,
RLOO, GARL(q) and PAFT(q) from the same start (paper Secs. 5-7, Theorem 5.2, Prop. C.2).

The task (``MiniTask``). An input ``x = (x_1..x_L)`` of digits mod V. The rationale is a
*strategy* token ``s in {S_0..S_{K-1}}`` followed by ``L`` running states
``z_k = z_{k-1} + x_k + j  (mod V)`` (``z_0 = 0``, ``j`` the index of the strategy). The
end-of-rationale marker ``=`` is forced (budget forcing) and the answer restates the states,
``y = (z_1..z_L)``. The gold answer ``y*`` is that of the correct strategy S_0: the prefix sums
of x mod V. Since ``k j != 0 (mod V)`` for every step k and wrong strategy j (checked), a wrong
strategy followed coherently gets every answer digit wrong: the answer is a deterministic
function of the input *through* the rationale, and ``P = p(y*|x) = sum_z p(z|x) p(y*|x,z)`` is
carried by the S_0 rationales. The answer has ``V^L`` values (10^4 by default) and the gold
answers of different inputs differ, so no input-independent answer (a constant, a hedge) earns
more than about ``V^-L``. (A one-digit answer would hand every method a free plateau at
``P = 1/V`` by answering a constant: we tried it.)

Sequences: ``[BOS, x_1..x_L, SEP, s, z_1..z_L, EQ, y_1..y_L]``. The model's distribution is
grammar-constrained (a fixed position-dependent mask: strategy tokens at the strategy slot,
digits at state and answer slots, ``EQ`` forced), so the rationale space has exactly
``K V^L`` members. ``P`` is computed exactly by enumeration on small tasks
(``exact_log_success``) and, on the default task, by a stratified Monte Carlo estimate that is
exact over the strategy and samples the states given it (``estimate_log_success``).

Pre-training and the cold start (``pretrain``, ``make_start``). A ``TinyDecoder`` is pre-trained
on random inputs with the strategy drawn uniformly: it learns every strategy and puts ~1/K on
each. The start model for a target ``p0`` is that model with the output bias of the token S_0
shifted so that the mean log-odds of S_0 is ``log(p0/(1-p0))``: the model "rarely picks the
right method"; the rest of the rationale and the answer being near-deterministic, ``P ~ p0``.
The measured P of the start is the p0 that gets reported.

Post-training (``train_miniature``). Per step: B prompts, M rationales each sampled from the model, ONE
teacher-forced pass scoring ``log p(z_m|x)`` and ``log p(y*|x,z_m)`` (GRPO/RLOO: the model's own
sampled answer and its 0/1 exact-match reward), the surrogate loss of
``tsallis_ref.estimators``, an optimiser step. Plain SGD by default: Theorem 5.2 is about
gradient flow, and Adam's per-parameter normalisation rescales away part of the ``P^-q``
factor on a task where a few logits carry the escape.

The fair escape test (book chapter, ``scripts/run_miniature_escape.py``). Two defaults of the
first set-up hide the amplification of high q: total-norm gradient clipping (``grad_clip=1``)
divides every q=1 step by its norm, and the per-digit answer channel gives *partial credit* to
wrong rationales that match one answer digit, on which the self-normalised q=1 weights then pile.
``MiniTrainConfig(answer_channel="sequence", grad_clip=math.inf)`` removes both (the sequence-level
channel puts one floor ``eps V^-L`` under every wrong rationale, see ``TinyDecoder``), each method is
run at its own learning rate from a grid, ``stop_after_escape`` ends a run some steps after P
reaches ``delta``, and ``run_outcome`` classifies a run as escaped, collapsed or stalled.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .estimators import DEFAULT_Q, ESTIMATORS, EstimatorInputs, estimator_metrics
from .losses import check_q, qloss
from .schedules import Schedule
from .schedules import from_config as schedule_from_config

__all__ = [
    "MiniTask",
    "TinyDecoder",
    "MiniTrainConfig",
    "pretrain",
    "make_start",
    "exact_log_success",
    "estimate_log_success",
    "enumerated_sequences",
    "log_success_enumerated",
    "strategy_prob",
    "sample_mini_rationales",
    "sample_mini_answers",
    "score_mini",
    "method_loss",
    "noisy_labels",
    "train_miniature",
    "escape_step",
    "run_outcome",
    "METHODS",
    "run_grid",
    "mini_run_label",
    "gradient_probe",
    "machine_info",
    "decoder_to_json",
    "decoder_from_json",
    "ANSWER_CHANNELS",
    "apply_answer_channel",
    "exact_problem",
    "exact_objective",
    "exact_gradient_run",
    "exact_gradient_flow",
    "EXACT_TARGETS",
    "escape_times",
    "escape_exponents",
    "log_law_fit",
    "optim_escape_steps",
    "noise_share",
    "noise_fitting_times",
]

METHODS = ("grpo", "rloo", "garl", "paft")
ANSWER_CHANNELS = ("digit", "sequence")


# ----------------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MiniTask:
    """Prefix sums mod V with a latent strategy choice (see the module docstring).

    ``V`` digits, ``L`` steps, ``K`` strategies (S_0 is the correct one). Token ids: digits
    ``0..V-1``, strategies ``V..V+K-1``, then BOS, SEP, EQ.
    """

    V: int = 10
    L: int = 4
    K: int = 4

    def __post_init__(self):
        if self.V < 2 or self.L < 1 or self.K < 2:
            raise ValueError(f"MiniTask needs V >= 2, L >= 1, K >= 2; got V={self.V}, L={self.L}, K={self.K}")
        bad = [j for j in range(1, self.K) if any((k * j) % self.V == 0 for k in range(1, self.L + 1))]
        if bad:
            raise ValueError(
                f"MiniTask: strategies {bad} get an answer digit right with a wrong rationale "
                f"(k*j = 0 mod V for some step k <= L); take V prime > L, or smaller K and L"
            )

    # token ids and lengths
    @property
    def S0(self) -> int:
        return self.V

    @property
    def BOS(self) -> int:
        return self.V + self.K

    @property
    def SEP(self) -> int:
        return self.V + self.K + 1

    @property
    def EQ(self) -> int:
        return self.V + self.K + 2

    @property
    def vocab_size(self) -> int:
        return self.V + self.K + 3

    @property
    def prompt_len(self) -> int:
        """``[BOS, x, SEP]``."""
        return self.L + 2

    @property
    def rationale_len(self) -> int:
        """``[s, z_1..z_L]`` (the sampled part; EQ is forced)."""
        return self.L + 1

    @property
    def answer_len(self) -> int:
        return self.L

    @property
    def seq_len(self) -> int:
        return self.prompt_len + self.rationale_len + 1 + self.answer_len

    def random_inputs(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` inputs drawn uniformly, ``[n, L]``."""
        return torch.randint(self.V, (n, self.L), generator=generator)

    def all_inputs(self) -> torch.Tensor:
        """Every input, ``[V^L, L]``, lexicographic (small tasks only)."""
        if self.V**self.L > 100_000:
            raise ValueError(f"MiniTask.all_inputs: V^L = {self.V**self.L} inputs is too many to list")
        return torch.tensor(list(itertools.product(range(self.V), repeat=self.L)), dtype=torch.long)

    def states(self, x: torch.Tensor, strategy: torch.Tensor) -> torch.Tensor:
        """Running states ``z_k = z_{k-1} + x_k + j (mod V)`` for strategy index ``j``, ``[N, L]``."""
        return torch.remainder(torch.cumsum(x + strategy.view(-1, 1), dim=1), self.V)

    def gold(self, x: torch.Tensor) -> torch.Tensor:
        """``y*``: the states of strategy S_0 (prefix sums of x mod V), ``[N, L]``."""
        return torch.remainder(torch.cumsum(x, dim=1), self.V)

    def answer_from_rationale(self, rationale: torch.Tensor) -> torch.Tensor:
        """The answer a coherent reasoner gives after ``[s, z_1..z_L]``: the states, ``[N, L]``."""
        return rationale[:, 1:]

    def prompts(self, x: torch.Tensor) -> torch.Tensor:
        N = x.shape[0]
        return torch.cat([torch.full((N, 1), self.BOS), x, torch.full((N, 1), self.SEP)], dim=1)

    def sequences(self, x: torch.Tensor, rationale: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``[BOS, x, SEP, s, z, EQ, y]``, ``[N, seq_len]``."""
        N = x.shape[0]
        return torch.cat(
            [self.prompts(x), rationale, torch.full((N, 1), self.EQ), y.reshape(N, self.answer_len)], dim=1
        )

    def coherent_rationale(self, x: torch.Tensor, strategy: torch.Tensor) -> torch.Tensor:
        """``[s, z_1..z_L]`` followed correctly under strategy index ``strategy``."""
        return torch.cat([(self.S0 + strategy).view(-1, 1), self.states(x, strategy)], dim=1)

    def all_rationales(self) -> torch.Tensor:
        """Every ``[s, z_1..z_L]`` the grammar allows, ``[K V^L, L+1]`` (coherent or not)."""
        rows = [(self.S0 + s,) + zs for s in range(self.K) for zs in itertools.product(range(self.V), repeat=self.L)]
        return torch.tensor(rows, dtype=torch.long)

    def grammar_mask(self) -> torch.Tensor:
        """``[seq_len - 1, vocab]`` bool: the tokens allowed at each next-token slot (row t
        predicts token t+1). Only the rows from the strategy slot on are ever scored."""
        m = torch.zeros(self.seq_len - 1, self.vocab_size, dtype=torch.bool)
        m[:, : self.V] = True
        s_row = self.prompt_len - 1
        m[s_row] = False
        m[s_row, self.V : self.V + self.K] = True
        eq_row = self.prompt_len + self.rationale_len - 1
        m[eq_row] = False
        m[eq_row, self.EQ] = True
        return m

    def flip_offset(self) -> int:
        """An offset of the last answer digit that no strategy reaches coherently (noisy labels)."""
        reach = {(self.L * j) % self.V for j in range(self.K)}
        for d in range(1, self.V):
            if d not in reach:
                return d
        raise ValueError("MiniTask.flip_offset: every offset is reachable by some strategy; use K < V")


# ----------------------------------------------------------------------------------------------
# The tiny causal transformer
# ----------------------------------------------------------------------------------------------


class _Block(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        N, T, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).view(N, T, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + self.proj(a.transpose(1, 2).reshape(N, T, d))
        return h + self.mlp(self.ln2(h))


class TinyDecoder(nn.Module):
    """A pre-norm causal decoder (learned positions, untied output layer with a bias).

    ``forward(tokens)`` returns next-token log-probabilities ``[N, T-1, vocab]`` under the
    task's grammar mask (disallowed tokens get -inf). At the answer slots the distribution is a
    noisy channel, ``(1 - answer_noise) p_model + answer_noise * uniform(digits)``: a reader that
    makes a typo with probability ``answer_noise``. It puts a floor ``(answer_noise/V)^L`` under
    ``p(y*|x,z)`` for every rationale, so that the likelihood weights of wrong rationales are
    all about equal instead of spreading over tens of orders of magnitude (the regime in which
    self-normalised weights chase noise), and it makes the pathwise gradient through a wrong
    rationale vanish (``d log w = (1-eps) p_model / w * d log p_model``).

    ``answer_channel`` says where the typo happens. ``"digit"`` (the default, above): each answer
    digit independently, so a wrong rationale that happens to write one state digit equal to the
    gold one earns ``(eps/V)^(L-1)`` instead of ``(eps/V)^L``: *partial credit*, a factor ``V/eps``
    per matching digit. ``"sequence"``: the whole answer at once, ``p(y|x,z) = (1-eps) p_model(y|x,z)
    + eps V^-L`` (a reader that, with probability eps, writes a random answer). There every wrong
    rationale gets the same floor ``eps V^-L`` whatever digits it matches (as long as
    ``p_model(y*|x,z) << eps V^-L``), so the likelihood weights carry no partial credit: the only
    rationales that stand out are those that give y*. In this mode ``forward`` returns the raw model
    at the answer slots and the channel is applied to the answer's summed log-probability by
    ``answer_log_prob`` (every caller in this module goes through it)."""

    def __init__(
        self,
        task: MiniTask,
        d: int = 32,
        n_layer: int = 2,
        n_head: int = 4,
        answer_noise: float = 0.05,
        answer_channel: str = "digit",
    ):
        super().__init__()
        if not 0.0 <= answer_noise < 1.0:
            raise ValueError(f"TinyDecoder: answer_noise must lie in [0, 1); got {answer_noise}")
        if answer_channel not in ANSWER_CHANNELS:
            raise ValueError(f"TinyDecoder: answer_channel must be one of {ANSWER_CHANNELS}; got {answer_channel!r}")
        self.task = task
        self.answer_noise = answer_noise
        self.answer_channel = answer_channel
        self.tok = nn.Embedding(task.vocab_size, d)
        self.pos = nn.Embedding(task.seq_len, d)
        self.blocks = nn.ModuleList([_Block(d, n_head) for _ in range(n_layer)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, task.vocab_size)
        self.register_buffer("mask", task.grammar_mask(), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        h = self.tok(tokens) + self.pos(torch.arange(T, device=tokens.device))
        for b in self.blocks:
            h = b(h)
        logits = self.head(self.ln(h))[:, : T - 1] if T > 1 else self.head(self.ln(h))
        allowed = self.mask[: logits.shape[1]]
        lp = torch.log_softmax(logits.masked_fill(~allowed, -math.inf), dim=-1)
        a0 = self.task.prompt_len + self.task.rationale_len  # the row predicting the first answer token
        eps, V = self.answer_noise, self.task.V
        if eps > 0 and self.answer_channel == "digit" and lp.shape[1] > a0:
            ans = lp[:, a0:, :V]
            mixed = torch.logaddexp(ans + math.log1p(-eps), torch.full_like(ans, math.log(eps / V)))
            lp = torch.cat([lp[:, :a0], torch.cat([mixed, lp[:, a0:, V:]], dim=-1)], dim=1)
        return lp

    def answer_log_prob(self, lp_answer: torch.Tensor) -> torch.Tensor:
        """``log p(y|x,z)`` of whole answers from the per-token log-probs ``[N, L]`` that ``forward``
        gives at the answer slots, ``[N]`` (keeps the autograd graph). ``"digit"`` channel: their sum
        (the typo is already mixed in per digit); ``"sequence"``: ``log((1-eps) prod p_model + eps V^-L)``."""
        s = lp_answer.sum(-1)
        eps = self.answer_noise
        if self.answer_channel == "digit" or eps == 0:
            return s
        floor = math.log(eps) - self.task.L * math.log(self.task.V)
        return torch.logaddexp(s + math.log1p(-eps), torch.full_like(s, floor))

    def token_logp(self, tokens: torch.Tensor) -> torch.Tensor:
        """``log p(tokens[:, t] | tokens[:, :t])`` for t >= 1, ``[N, T-1]``: one teacher-forced pass."""
        return self(tokens).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def pretrain(
    task: MiniTask = MiniTask(),
    *,
    d: int = 32,
    n_layer: int = 2,
    n_head: int = 4,
    answer_noise: float = 0.05,
    steps: int = 600,
    batch: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
) -> tuple[TinyDecoder, list[float]]:
    """Pre-train a ``TinyDecoder`` on coherent sequences, inputs uniform, strategy uniform.

    Adam, cross-entropy on the strategy, the states and the answer (a cosine learning-rate
    decay to 0 sharpens the final model). Returns the model (eval mode) and the loss curve.
    Deterministic given ``seed``. Its loss floor is ``log(K) / (2L+2)`` (the uniform strategy)."""
    if steps < 1 or batch < 1:
        raise ValueError(f"pretrain: steps and batch must be >= 1; got steps={steps}, batch={batch}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = TinyDecoder(task, d=d, n_layer=n_layer, n_head=n_head, answer_noise=answer_noise)
    first = task.prompt_len - 1  # first scored slot: the strategy
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))
    losses = []
    for _ in range(steps):
        X = task.random_inputs(batch, g)
        R = task.coherent_rationale(X, torch.randint(task.K, (batch,), generator=g))
        lp = model.token_logp(task.sequences(X, R, task.answer_from_rationale(R)))[:, first:]
        loss = -lp.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return model, losses


def next_log_probs(model: TinyDecoder, seq: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the token that follows ``seq``, ``[N, vocab]`` (one dummy slot is
    appended so that the last returned row is the one predicting it; causality hides the dummy)."""
    return model(torch.cat([seq, seq[:, :1]], dim=1))[:, -1]


@torch.no_grad()
def strategy_log_probs(model: TinyDecoder, x: torch.Tensor) -> torch.Tensor:
    """``log p(s = S_j | x)``, ``[N, K]``."""
    task = model.task
    return next_log_probs(model, task.prompts(x))[:, task.S0 : task.S0 + task.K]


@torch.no_grad()
def strategy_prob(model: TinyDecoder, x: torch.Tensor) -> float:
    """Mean ``p(S_0 | x)`` over the inputs: the mass on the correct strategy."""
    return strategy_log_probs(model, x)[:, 0].exp().mean().item()


def make_start(pretrained: TinyDecoder, p0: float, *, n_ref: int = 512, seed: int = 0) -> TinyDecoder:
    """A copy of ``pretrained`` whose prior on the correct strategy S_0 is ~``p0``.

    Adds to the output bias of the token S_0 the amount that moves the mean (over ``n_ref``
    random inputs) log-odds of S_0 to ``log(p0 / (1-p0))``. ``p0`` must lie in (0, 1). The
    success probability of the result is measured, not assumed (``estimate_log_success``)."""
    if isinstance(p0, bool) or not isinstance(p0, (int, float)) or not 0.0 < float(p0) < 1.0:
        raise ValueError(f"make_start: p0 must be a float in (0, 1); got {p0!r}")
    task = pretrained.task
    model = copy.deepcopy(pretrained)
    with torch.no_grad():
        lps = strategy_log_probs(model, task.random_inputs(n_ref, torch.Generator().manual_seed(seed)))
        cur = (lps[:, 0] - torch.logsumexp(lps[:, 1:], -1)).mean()
        model.head.bias[task.S0] += math.log(p0 / (1.0 - p0)) - cur
    return model


@torch.no_grad()
def exact_log_success(model: TinyDecoder, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact ``log P = log sum_z p(z|x) p(y|x,z)`` per input, ``[N]`` (float64), by enumerating all
    ``K V^L`` rationales the grammar allows (EQ is forced: it contributes log 1). Small tasks only."""
    return log_success_enumerated(model, enumerated_sequences(model.task, x, y), x.shape[0])


def enumerated_sequences(task: MiniTask, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Every ``[BOS, x, SEP, z, EQ, y]`` for the ``K V^L`` rationales z the grammar allows, input-major,
    ``[N K V^L, seq_len]`` (small tasks only: at most 200,000 sequences)."""
    Z = task.all_rationales()
    nz, N = Z.shape[0], x.shape[0]
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != task.L:
        raise ValueError(
            f"enumerated_sequences: x and y must both be [N, L={task.L}]; got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if nz * N > 200_000:
        raise ValueError(f"exact_log_success: {nz} rationales x {N} inputs is too many; use estimate_log_success")
    return task.sequences(x.repeat_interleave(nz, 0), Z.repeat(N, 1), y.repeat_interleave(nz, 0))


def log_success_enumerated(model: TinyDecoder, seqs: torch.Tensor, N: int) -> torch.Tensor:
    """``log P = log sum_z p(z|x) p(y|x,z)`` per input, ``[N]`` (float64), from the sequences of
    ``enumerated_sequences``; keeps the autograd graph (the exact gradient of the marginal likelihood)."""
    task = model.task
    lp = model.token_logp(seqs)[:, task.prompt_len - 1 :].to(torch.float64)
    total = lp[:, : -task.answer_len].sum(-1) + model.answer_log_prob(lp[:, -task.answer_len :])
    return torch.logsumexp(total.view(N, -1), dim=-1)


@torch.no_grad()
def estimate_log_success(
    model: TinyDecoder, x: torch.Tensor, y: torch.Tensor, *, n: int = 4, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Stratified estimate of ``log P`` per input, ``[N]`` (float64).

    ``P = sum_j p(S_j|x) E_{z ~ p(.|x,S_j)} p(y|x,S_j,z)``: the strategy sum is exact, each
    expectation is the mean of ``p(y|x,S_j,z)`` over ``n`` sampled state sequences (unbiased for
    P; exact when the states are deterministic given the strategy, as after pre-training)."""
    task = model.task
    g = torch.Generator().manual_seed(12345) if generator is None else generator
    N, K = x.shape[0], task.K
    ls = strategy_log_probs(model, x).to(torch.float64)  # [N, K]
    X = x.repeat_interleave(K * n, 0)
    seq = torch.cat([task.prompts(X), (task.S0 + torch.arange(K).repeat_interleave(n)).repeat(N).view(-1, 1)], 1)
    for _ in range(task.L):
        nxt = torch.multinomial(next_log_probs(model, seq).exp(), 1, generator=g)
        seq = torch.cat([seq, nxt], dim=1)
    lp = model.token_logp(task.sequences(X, seq[:, task.prompt_len :], y.repeat_interleave(K * n, 0)))
    lp_y = model.answer_log_prob(lp[:, -task.answer_len :].to(torch.float64)).view(N, K, n)
    return torch.logsumexp(ls + torch.logsumexp(lp_y, -1) - math.log(n), dim=-1)


# ----------------------------------------------------------------------------------------------
# Rollouts and the one scoring pass
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def sample_mini_rationales(model: TinyDecoder, x: torch.Tensor, M: int, generator: torch.Generator) -> torch.Tensor:
    """M rationales ``[s, z_1..z_L]`` per input from the model's prior, ``[N*M, L+1]`` (input-major)."""
    task = model.task
    seq = task.prompts(x).repeat_interleave(M, 0)
    for _ in range(task.rationale_len):
        nxt = torch.multinomial(next_log_probs(model, seq).exp(), 1, generator=generator)
        seq = torch.cat([seq, nxt], dim=1)
    return seq[:, task.prompt_len :]


@torch.no_grad()
def sample_mini_answers(
    model: TinyDecoder, x: torch.Tensor, rationale: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The model's own answer after each rationale (EQ forced), sampled, ``[N, L]`` (with the
    ``"sequence"`` answer channel, each answer is replaced by a uniform random one with probability eps)."""
    task = model.task
    seq = torch.cat([task.prompts(x), rationale, torch.full((x.shape[0], 1), task.EQ)], dim=1)
    for _ in range(task.answer_len):
        nxt = torch.multinomial(next_log_probs(model, seq).exp(), 1, generator=generator)
        seq = torch.cat([seq, nxt], dim=1)
    ans = seq[:, -task.answer_len :]
    if model.answer_channel == "sequence" and model.answer_noise > 0:
        typo = torch.rand(ans.shape[0], generator=generator) < model.answer_noise
        ans = torch.where(typo.view(-1, 1), torch.randint(task.V, ans.shape, generator=generator), ans)
    return ans


def score_mini(
    model: TinyDecoder, x: torch.Tensor, rationale: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """ONE teacher-forced pass over ``[x, z, EQ, y]``: per-token ``log p`` of the rationale
    ``[N, L+1]`` and of the answer ``[N, L]``, both carrying the autograd graph."""
    task = model.task
    lp = model.token_logp(task.sequences(x, rationale, y))
    a = task.prompt_len - 1
    return lp[:, a : a + task.rationale_len], lp[:, -task.answer_len :]


# ----------------------------------------------------------------------------------------------
# Post-training
# ----------------------------------------------------------------------------------------------


@dataclass
class MiniTrainConfig:
    """One post-training run. ``method`` in METHODS; ``q`` is used by garl and paft."""

    method: str = "garl"
    q: float = DEFAULT_Q
    steps: int = 150
    B: int = 4  # prompts per step
    M: int = 16  # rationales per prompt (the paper uses 32)
    K: Optional[int] = None  # PAFT resamples (None: K = M, as in the paper)
    lr: float = 0.05
    optimizer: str = "sgd"  # "sgd" (the gradient flow of Thm 5.2) or "adam"
    adam_eps: float = 1e-8  # Adam's eps (added to sqrt(v_hat)); torch's default
    q_schedule: Optional[dict] = None  # GARL/PAFT: q per step (schedules.from_config; fed the step's wbar_mean)
    normalize: bool = False  # the 1/M^q of Algorithms 1-2 (a q-dependent learning rate; off: one lr for all q)
    pathwise: bool = True  # GARL/PAFT: keep the gradient through log p(y*|x,z) (False: the pathwise-zeroed ablation)
    grad_clip: float = 1.0  # max total gradient norm (math.inf: no clipping)
    n_train: int = 256  # the post-training set: this many random inputs
    n_eval: int = 64  # P is measured on the first n_eval of them
    eval_every: int = 5
    delta: float = 0.5  # escape threshold on P
    noise_frac: float = 0.0  # fraction of the training inputs whose gold answer is flipped
    flip: str = (
        "last"  # noisy labels: "last" (last answer digit moved) or "all" (every digit moved: a wholly wrong label)
    )
    answer_noise: Optional[float] = None  # post-training typo probability of the answer channel (None: the start's)
    answer_channel: Optional[str] = (
        None  # "digit" or "sequence" (no partial credit; see TinyDecoder); None: the start's
    )
    stop_after_escape: Optional[int] = None  # stop this many steps after P first reaches delta (None: run all steps)
    seed: int = 0

    def validate(self):
        if self.method not in METHODS:
            raise ValueError(f"MiniTrainConfig.method must be one of {METHODS}; got {self.method!r}")
        check_q(self.q)
        if self.M < 2:
            raise ValueError(f"MiniTrainConfig.M must be >= 2 (GRPO/RLOO and GARL's RLOO baseline); got {self.M}")
        for name in ("steps", "B", "eval_every", "n_train", "n_eval"):
            if getattr(self, name) < 1:
                raise ValueError(f"MiniTrainConfig.{name} must be >= 1; got {getattr(self, name)}")
        if self.n_eval > self.n_train:
            raise ValueError(f"MiniTrainConfig.n_eval ({self.n_eval}) must be <= n_train ({self.n_train})")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"MiniTrainConfig.optimizer must be 'sgd' or 'adam'; got {self.optimizer!r}")
        if not (isinstance(self.adam_eps, (int, float)) and self.adam_eps > 0):
            raise ValueError(f"MiniTrainConfig.adam_eps must be > 0; got {self.adam_eps!r}")
        if self.q_schedule is not None:
            if self.method not in ("garl", "paft"):
                raise ValueError(
                    f"MiniTrainConfig.q_schedule needs a method with a q (garl, paft); got {self.method!r}"
                )
            try:
                schedule_from_config(self.q_schedule)
            except ValueError as e:
                raise ValueError(f"MiniTrainConfig.q_schedule: {e}") from None
        if not 0.0 <= self.noise_frac < 1.0:
            raise ValueError(f"MiniTrainConfig.noise_frac must lie in [0, 1); got {self.noise_frac}")
        if self.flip not in ("last", "all"):
            raise ValueError(f"MiniTrainConfig.flip must be 'last' or 'all'; got {self.flip!r}")
        if self.answer_noise is not None and not 0.0 <= self.answer_noise < 1.0:
            raise ValueError(f"MiniTrainConfig.answer_noise must be None or lie in [0, 1); got {self.answer_noise}")
        if self.answer_channel is not None and self.answer_channel not in ANSWER_CHANNELS:
            raise ValueError(
                f"MiniTrainConfig.answer_channel must be None or one of {ANSWER_CHANNELS}; got {self.answer_channel!r}"
            )
        if not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ValueError(f"MiniTrainConfig.grad_clip must be > 0 (math.inf: no clipping); got {self.grad_clip!r}")
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"MiniTrainConfig.delta (the escape threshold on P) must lie in (0, 1); got {self.delta}")
        if self.stop_after_escape is not None and (
            isinstance(self.stop_after_escape, bool) or self.stop_after_escape < 0
        ):
            raise ValueError(
                f"MiniTrainConfig.stop_after_escape must be None or an int >= 0; got {self.stop_after_escape!r}"
            )


def apply_answer_channel(model: TinyDecoder, cfg: MiniTrainConfig) -> TinyDecoder:
    """Set ``cfg``'s answer-channel overrides (``answer_noise``, ``answer_channel``) on ``model`` (in
    place; pass a copy) and return it."""
    if cfg.answer_noise is not None:  # a sharper (or noisier) answer channel: the floor under wrong rationales
        model.answer_noise = cfg.answer_noise
    if cfg.answer_channel is not None:
        model.answer_channel = cfg.answer_channel
    return model


def noisy_labels(
    task: MiniTask, x: torch.Tensor, frac: float, seed: int, flip: str = "last"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels for the inputs ``x`` with a fraction ``frac`` of them flipped: the last answer digit
    (``flip="last"``) or every answer digit (``flip="all"``, a wholly wrong label) moved by
    ``task.flip_offset()``, an answer no strategy reaches coherently (a strategy j moves digit k
    by ``k j``, never by the same nonzero amount at every k when L >= 2).
    Returns ``(labels[N, L], flipped[N] bool)``."""
    y = task.gold(x)
    g = torch.Generator().manual_seed(10_000 + seed)
    flipped = torch.zeros(x.shape[0], dtype=torch.bool)
    flipped[torch.randperm(x.shape[0], generator=g)[: int(round(frac * x.shape[0]))]] = True
    y_noisy = y.clone()
    if flip not in ("last", "all"):
        raise ValueError(f"noisy_labels: flip must be 'last' or 'all'; got {flip!r}")
    cols = slice(task.L - 1, task.L) if flip == "last" else slice(0, task.L)
    y_noisy[:, cols] = torch.where(
        flipped.view(-1, 1), torch.remainder(y[:, cols] + task.flip_offset(), task.V), y[:, cols]
    )
    return y_noisy, flipped


def method_loss(
    model: TinyDecoder,
    cfg: MiniTrainConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    g: torch.Generator,
) -> tuple[torch.Tensor, dict]:
    """Sample M rationales per prompt, score them in ONE pass, return the
    method's surrogate loss.

    GARL/PAFT: ``logp_z[B, M] = log p(z_m|x)`` and
    ``logp_y[B, M] = log p(y*|x, z_m)`` (the gold answer, teacher-forced).
    GRPO/RLOO: the model's own answer is sampled too and rewarded 1 if it
    equals y* (exact match); the scored completion is ``[z, yhat]``.
    """
    B, M = x.shape[0], cfg.M
    spec = ESTIMATORS[cfg.method]
    opts = {"q": cfg.q, "K": cfg.K, "normalize": cfg.normalize}
    X = x.repeat_interleave(M, 0)
    Z = sample_mini_rationales(model, x, M, g)
    if not spec.verifier:
        lp_z, lp_y = score_mini(model, X, Z, y.repeat_interleave(M, 0))
        logp_z = lp_z.sum(-1).view(B, M)
        logp_y = model.answer_log_prob(lp_y).view(B, M)
        if not cfg.pathwise:
            # same weights, no gradient through the answer given z
            logp_y = logp_y.detach()
        out = spec(EstimatorInputs(logp_z, logp_y, generator=g), opts)
        metrics = estimator_metrics(
            spec,
            logp_z,
            logp_y,
            indices=out.indices,
            options=opts,
        )
        return out.loss, metrics
    yhat = sample_mini_answers(model, X, Z, g)
    hit = (yhat == y.repeat_interleave(M, 0)).all(-1)
    rewards = hit.to(torch.float32).view(B, M)
    lp_z, lp_y = score_mini(model, X, Z, yhat)
    if model.answer_channel == "sequence":
        # the channel's correction on the last answer token: the token sum
        # is log p(yhat|x,z)
        last = lp_y[:, -1] + model.answer_log_prob(lp_y) - lp_y.sum(-1)
        lp_y = torch.cat([lp_y[:, :-1], last.unsqueeze(-1)], dim=-1)
    # the completion's tokens (EQ is forced)
    lp_tok = torch.cat([lp_z, lp_y], dim=-1).view(B, M, -1)
    logp_z, logp_y = lp_z.sum(-1).view(B, M), lp_y.sum(-1).view(B, M)
    inputs = EstimatorInputs(
        logp_z,
        logp_y,
        rewards=rewards,
        logp_tokens=lp_tok,
        mask=torch.ones_like(lp_tok),
    )
    out = spec(inputs, opts)
    metrics = estimator_metrics(
        spec,
        logp_z.detach(),
        logp_y.detach(),
        rewards=rewards,
        options=opts,
    )
    return out.loss, metrics


def train_miniature(start: TinyDecoder, cfg: MiniTrainConfig, *, keep_model: bool = False) -> dict:
    """Post-train a copy of ``start`` with ``cfg``; returns the history (plain lists and numbers).

    The training set is ``cfg.n_train`` random inputs (seeded by ``cfg.seed``) with their gold
    answers (a fraction ``cfg.noise_frac`` flipped). The loop: draw B prompts, sample M
    rationales each, one scoring pass, the estimator's surrogate loss, one optimiser step.
    Every ``eval_every`` steps P (against the clean gold answers) and the mass on the correct
    strategy are measured on the first ``n_eval`` training inputs; with label noise also
    ``P_clean`` (unflipped inputs) and the contamination ``P(flipped label | x)`` (flipped ones)."""
    cfg.validate()
    model = apply_answer_channel(copy.deepcopy(start).train(), cfg)
    task = model.task
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    xs = task.random_inputs(cfg.n_train, torch.Generator().manual_seed(20_000 + cfg.seed))
    labels, flipped = noisy_labels(task, xs, cfg.noise_frac, cfg.seed, cfg.flip)
    clean = task.gold(xs)
    ev = torch.arange(cfg.n_eval)
    opt = (
        torch.optim.SGD(model.parameters(), lr=cfg.lr)
        if cfg.optimizer == "sgd"
        else torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
    )
    schedule = schedule_from_config(cfg.q_schedule) if cfg.q_schedule is not None else None
    hist = {"eval_step": [], "P": [], "p_s0": [], "loss": [], "grad_norm": [], "stat": []}
    if schedule is not None:
        hist["q"] = []
    if cfg.noise_frac > 0:
        hist.update({"P_clean": [], "contamination": []})
    t0 = time.perf_counter()

    def evaluate(step):
        model.eval()
        hist["eval_step"].append(step)
        hist["P"].append(estimate_log_success(model, xs[ev], clean[ev]).exp().mean().item())
        hist["p_s0"].append(strategy_prob(model, xs[ev]))
        if cfg.noise_frac > 0:
            hist["P_clean"].append(estimate_log_success(model, xs[~flipped], clean[~flipped]).exp().mean().item())
            hist["contamination"].append(estimate_log_success(model, xs[flipped], labels[flipped]).exp().mean().item())
        model.train()

    stop_at = None
    for step in range(cfg.steps):
        if step % cfg.eval_every == 0:
            evaluate(step)
            if stop_at is None and cfg.stop_after_escape is not None and hist["P"][-1] >= cfg.delta:
                stop_at = step + cfg.stop_after_escape
        if stop_at is not None and step >= stop_at:
            break
        idx = torch.randint(cfg.n_train, (cfg.B,), generator=g)
        step_cfg = cfg
        if schedule is not None:
            step_cfg = replace(cfg, q=schedule.q(step))
            hist["q"].append(step_cfg.q)
        loss, stat = method_loss(model, step_cfg, xs[idx], labels[idx], g)
        if schedule is not None:
            schedule.observe(stat["wbar_mean"])
        opt.zero_grad()
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        hist["loss"].append(loss.item())
        hist["grad_norm"].append(gn.item())
        hist["stat"].append(stat)
    if stop_at is None or step < stop_at:
        evaluate(cfg.steps)
    elif hist["eval_step"][-1] != step:
        evaluate(step)
    hist["seconds"] = time.perf_counter() - t0
    hist["config"] = asdict(cfg)
    hist["escape_step"] = escape_step(hist, cfg.delta)
    if keep_model:
        hist["model"] = model.eval()
    return hist


def gradient_probe(start: TinyDecoder, cfg: MiniTrainConfig, *, n_batches: int = 30) -> dict:
    """The raw (unclipped) gradient of ``cfg``'s surrogate loss at ``start``, over ``n_batches``
    fresh batches (no optimiser step): the mean and max of ``-dL/d bias[S_0]`` (the push on the
    correct strategy's logit) and the median and max of the total gradient norm, with the fraction
    of batches whose norm exceeds ``cfg.grad_clip`` (where clipping would rescale the step), and the
    per-batch lists ``norms`` and ``pushes``.
    The training inputs and the sampling follow ``train_miniature`` (same seeds)."""
    cfg.validate()
    if n_batches < 1:
        raise ValueError(f"gradient_probe: n_batches must be >= 1; got {n_batches}")
    model = apply_answer_channel(copy.deepcopy(start).train(), cfg)
    task = model.task
    g = torch.Generator().manual_seed(cfg.seed)
    xs = task.random_inputs(cfg.n_train, torch.Generator().manual_seed(20_000 + cfg.seed))
    labels, _ = noisy_labels(task, xs, cfg.noise_frac, cfg.seed, cfg.flip)
    push, norms = [], []
    for _ in range(n_batches):
        idx = torch.randint(cfg.n_train, (cfg.B,), generator=g)
        model.zero_grad()
        loss, _ = method_loss(model, cfg, xs[idx], labels[idx], g)
        loss.backward()
        norms.append(
            math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in model.parameters() if p.grad is not None))
        )
        push.append(-float(model.head.bias.grad[task.S0]))
    norms_sorted = sorted(norms)
    return {
        "push_mean": sum(push) / n_batches,
        "push_max": max(push),
        "norm_median": norms_sorted[n_batches // 2],
        "norm_max": max(norms),
        "frac_clipped": sum(n > cfg.grad_clip for n in norms) / n_batches,
        "norms": norms,
        "pushes": push,
    }


def escape_step(hist: dict, delta: float = 0.5, key: str = "P") -> Optional[int]:
    """First evaluated step at which ``hist[key]`` (P by default) reaches ``delta``; None if never."""
    for s, p in zip(hist["eval_step"], hist[key]):
        if p >= delta:
            return int(s)
    return None


def run_outcome(hist: dict, delta: float = 0.5, key: str = "P") -> tuple[str, Optional[int]]:
    """Classify a recorded run (``eval_step`` and ``hist[key]`` curves) against the escape threshold:
    ``("escaped", step)`` if ``hist[key]`` reached ``delta`` and its last value is still ``>= delta/2``;
    ``("escaped, then collapsed", step)`` if it reached ``delta`` and ended below ``delta/2``;
    ``("collapsed", None)`` if it never reached ``delta`` and ended below half its start (the model
    broke: with the ``"sequence"`` channel, P falls to the floor ``eps V^-L`` and stays there);
    ``("stalled", None)`` otherwise."""
    if not 0.0 < delta < 1.0:
        raise ValueError(f"run_outcome: delta must lie in (0, 1); got {delta}")
    P = hist[key]
    e = escape_step(hist, delta, key)
    if e is not None:
        return ("escaped" if P[-1] >= delta / 2 else "escaped, then collapsed"), e
    return ("collapsed" if P[-1] < P[0] / 2 else "stalled"), None


# ----------------------------------------------------------------------------------------------
# Grids of runs and their record (used by the book chapter and scripts/run_miniature.py)
# ----------------------------------------------------------------------------------------------


def mini_run_label(method: str, q: float) -> str:
    """``"GRPO"``, ``"RLOO"``, ``"GARL q=0.75"``, ``"PAFT q=1"``."""
    return method.upper() if method in ("grpo", "rloo") else f"{method.upper()} q={q:g}"


def run_grid(pretrained: TinyDecoder, p0s, runs, *, seeds=(0,), verbose: bool = False, **cfg) -> dict:
    """Post-train from the same corrupted start, for every target p0, every ``(method, q)`` in
    ``runs`` and every seed; ``cfg`` overrides ``MiniTrainConfig`` fields. Returns a JSON-ready dict:
    the measured p0 of each start and, per run, its P / p(S_0) curves and escape step."""
    out = {"train_config": asdict(MiniTrainConfig(**cfg)), "p0_target": list(p0s), "p0_measured": [], "runs": []}
    for p0 in p0s:
        start = make_start(pretrained, p0)
        base = MiniTrainConfig(**cfg)
        xs = pretrained.task.random_inputs(base.n_train, torch.Generator().manual_seed(20_000 + base.seed))[
            : base.n_eval
        ]
        out["p0_measured"].append(estimate_log_success(start, xs, pretrained.task.gold(xs)).exp().mean().item())
        for method, q in runs:
            for seed in seeds:
                h = train_miniature(start, MiniTrainConfig(**{**cfg, "method": method, "q": q, "seed": seed}))
                rec = {
                    "p0_target": p0,
                    "method": method,
                    "q": q,
                    "label": mini_run_label(method, q),
                    "seed": seed,
                    "eval_step": h["eval_step"],
                    "P": h["P"],
                    "p_s0": h["p_s0"],
                    "escape_step": h["escape_step"],
                    "seconds": round(h["seconds"], 2),
                }
                for k in ("P_clean", "contamination"):
                    if k in h:
                        rec[k] = h[k]
                out["runs"].append(rec)
                if verbose:
                    print(
                        f"p0={p0:g} {rec['label']:>12} seed={seed}: P {h['P'][0]:.2e} -> {h['P'][-1]:.2e}, "
                        f"escape step {h['escape_step']}, {h['seconds']:.1f} s",
                        flush=True,
                    )
    return out


def machine_info() -> dict:
    """Where a recorded run was produced."""
    import datetime
    import platform

    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
    }


def decoder_to_json(model: TinyDecoder, **meta) -> dict:
    """A JSON-ready record of a ``TinyDecoder``: its task, its shape and its weights (float32 values)."""
    blk = model.blocks[0]
    return {
        "task": {"V": model.task.V, "L": model.task.L, "K": model.task.K},
        "d": model.tok.weight.shape[1],
        "n_layer": len(model.blocks),
        "n_head": blk.n_head,
        "answer_noise": model.answer_noise,
        "answer_channel": model.answer_channel,
        "meta": meta,
        "state": {k: v.flatten().tolist() for k, v in model.state_dict().items()},
    }


def decoder_from_json(rec: dict) -> TinyDecoder:
    """Rebuild a ``TinyDecoder`` written by ``decoder_to_json`` (eval mode)."""
    model = TinyDecoder(
        MiniTask(**rec["task"]),
        d=rec["d"],
        n_layer=rec["n_layer"],
        n_head=rec["n_head"],
        answer_noise=rec["answer_noise"],
        answer_channel=rec.get("answer_channel", "digit"),
    )
    sd = model.state_dict()
    model.load_state_dict({k: torch.tensor(rec["state"][k], dtype=v.dtype).view_as(v) for k, v in sd.items()})
    return model.eval()


# ----------------------------------------------------------------------------------------------
# Exact-gradient dynamics: no sampling (the flow of Thm 5.2, and full-batch SGD / Adam)
# ----------------------------------------------------------------------------------------------

EXACT_TARGETS = ("marginal", "strategy")


def exact_problem(task: MiniTask, x: torch.Tensor, *, noise_eps: float = 0.0, target: str = "marginal") -> dict:
    """The enumerated objective on the inputs ``x`` (small tasks): ``J(theta) = mean_x [(1-eps)
    l_q(P(y*|x)) + eps l_q(P(y~|x))]``, Prop. C.2's label noise with the label resampled at every draw
    (``y~``: the gold answer with its last digit moved by ``task.flip_offset()``; ``eps = noise_eps``;
    the expected loss of a label that is wrong with probability eps at each draw). Returns the
    enumerated sequences, ready for ``exact_objective``.

    ``target="marginal"``: P is the marginal likelihood ``sum_z p(z|x) p(y*|x,z)`` over every rationale.
    ``target="strategy"``: P is ``p(S_0|x)``, the network's choice of the correct strategy alone (the
    success of a reader that follows its strategy perfectly): one route to y*, so Theorem 5.2's single
    probability, computed by the whole network (no label noise with this target)."""
    if not 0.0 <= noise_eps < 0.5:
        raise ValueError(f"exact_problem: noise_eps (the per-draw flip rate) must lie in [0, 1/2); got {noise_eps}")
    if target not in EXACT_TARGETS:
        raise ValueError(f"exact_problem: target must be one of {EXACT_TARGETS}; got {target!r}")
    if target == "strategy":
        if noise_eps > 0:
            raise ValueError("exact_problem: label noise needs target='marginal' (the strategy target has no label)")
        return {"N": x.shape[0], "noise_eps": 0.0, "prompts": task.prompts(x), "noisy": None}
    y = task.gold(x)
    out = {"N": x.shape[0], "noise_eps": float(noise_eps), "clean": enumerated_sequences(task, x, y), "noisy": None}
    if noise_eps > 0:
        y_noisy, _ = noisy_labels(task, x, 1.0, 0, "last")
        out["noisy"] = enumerated_sequences(task, x, y_noisy)
    return out


def exact_objective(
    model: TinyDecoder, problem: dict, q, *, t: int = 0, escaped: bool = False
) -> tuple[torch.Tensor, float, Optional[float]]:
    """``(J, mean P(y*|x), mean P(y~|x) or None)`` of ``exact_problem``'s objective at ``model`` (J keeps
    the graph; l_q is Eq. 3, computed from log P). ``q`` may be a ``tsallis_ref.schedules.Schedule``: then
    each term is the surrogate ``-sg(a(P)) P`` whose gradient is the schedule's amplified RL gradient
    ``-a(P) grad P`` (Eq. 5 with ``a = P^-q`` for a q schedule), ``a`` read at step ``t`` with the current
    mean P and ``escaped``."""
    N, eps = problem["N"], problem["noise_eps"]
    if "prompts" in problem:
        lp = next_log_probs(model, problem["prompts"])[:, model.task.S0].to(torch.float64)
    else:
        lp = log_success_enumerated(model, problem["clean"], N)
    P = lp.detach().exp().mean().item()

    def term(l):
        if isinstance(q, Schedule):
            a = torch.as_tensor(q.amplification(l.detach().exp().numpy(), t, P, escaped), dtype=l.dtype)
            return -(a * l.exp()).mean()
        return qloss(l, q).mean()

    J = term(lp)
    c = None
    if problem["noisy"] is not None:
        lc = log_success_enumerated(model, problem["noisy"], N)
        J = (1.0 - eps) * J + eps * term(lc)
        c = lc.detach().exp().mean().item()
    return J, P, c


def exact_gradient_run(
    start: TinyDecoder,
    x: torch.Tensor,
    q: float,
    *,
    optimizer: str = "sgd",
    lr: float = 1.0,
    adam_eps: float = 1e-8,
    betas: tuple[float, float] = (0.9, 0.999),
    steps: int = 1000,
    delta: Optional[float] = 0.5,
    noise_eps: float = 0.0,
    target: str = "marginal",
    record_every: int = 10,
) -> dict:
    """Full-batch ``optimizer`` steps on the exact gradient of ``exact_problem``'s objective (no sampling,
    float64; ``noise_eps`` > 0: Prop. C.2's per-draw label noise), from a copy of ``start``, until mean P
    reaches ``delta`` (None: never stop early) or ``steps`` steps. ``optimizer``: ``"sgd"`` or ``"adam"``
    (``torch.optim.Adam`` with ``eps=adam_eps``). Returns ``{"step", "P"}`` (and ``"contamination"``,
    mean P(y~|x), with noise; every ``record_every`` steps and the last), ``"escape_step"`` (None: not
    within ``steps``) and ``"grad_s0"``: ``|dJ/d bias[S_0]|`` at the start (what Adam's eps competes with).
    ``q`` may be a ``tsallis_ref.schedules.Schedule`` (see ``exact_objective``); it is told the run has
    escaped from the step at which mean P first reaches ``delta`` (0.5 when ``delta`` is None), and ``"q"``
    records its q."""
    if not isinstance(q, Schedule):
        check_q(q)
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"exact_gradient_run: optimizer must be 'sgd' or 'adam'; got {optimizer!r}")
    if steps < 1 or record_every < 1 or not lr > 0 or not adam_eps >= 0:
        raise ValueError(
            f"exact_gradient_run: need steps >= 1, record_every >= 1, lr > 0, adam_eps >= 0; "
            f"got {steps}, {record_every}, {lr}, {adam_eps}"
        )
    model = copy.deepcopy(start).double().train()
    problem = exact_problem(model.task, x, noise_eps=noise_eps, target=target)
    opt = (
        torch.optim.SGD(model.parameters(), lr=lr)
        if optimizer == "sgd"
        else torch.optim.Adam(model.parameters(), lr=lr, betas=betas, eps=adam_eps)
    )
    out = {"step": [], "P": [], "escape_step": None, "grad_s0": None}
    if noise_eps > 0:
        out["contamination"] = []
    threshold = 0.5 if delta is None else delta
    delta = math.inf if delta is None else delta
    escaped = False
    if isinstance(q, Schedule):
        out["q"] = []
    for step in range(steps + 1):
        J, P, c = exact_objective(model, problem, q, t=step, escaped=escaped)
        if isinstance(q, Schedule) and not escaped and P >= threshold:  # the schedule hears of it from this step on
            escaped = True
            J, P, c = exact_objective(model, problem, q, t=step, escaped=escaped)
        if step % record_every == 0 or P >= delta or step == steps:
            out["step"].append(step)
            out["P"].append(P)
            if c is not None:
                out["contamination"].append(c)
            if isinstance(q, Schedule):
                out["q"].append(q.q_of(step, P, escaped))
        if P >= delta:
            out["escape_step"] = step
            break
        if step == steps:
            break
        opt.zero_grad()
        J.backward()
        if step == 0:
            out["grad_s0"] = abs(float(model.head.bias.grad[model.task.S0]))
        opt.step()
    return out


def exact_gradient_flow(
    start: TinyDecoder,
    x: torch.Tensor,
    q: float,
    *,
    delta: Optional[float] = 0.5,
    noise_eps: float = 0.0,
    target: str = "marginal",
    t_max: float = 1e12,
    t_eval=None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
) -> dict:
    """The gradient flow ``theta' = -grad J`` of ``exact_problem``'s objective (the small-learning-rate limit
    of full-batch SGD: ``steps ~ t / lr``), integrated by RK45 in log time ``tau = log(1+t)`` as
    ``tsallis_ref.theory.simulate_gradient_flow`` does, in float64, from a copy of ``start``.

    ``delta``: stop when mean P(y*|x) reaches it (None: run to ``t_max``). Returns ``"T"`` (the escape
    time, inf if not reached), the path ``"t"``, ``"P"`` (and ``"contamination"``, mean P(y~|x), when
    ``noise_eps > 0``) at the solver's steps or at ``t_eval``, ``"nfev"`` and the final model ``"model"``."""
    from scipy import integrate

    check_q(q)
    model = copy.deepcopy(start).double().train()
    params = list(model.parameters())
    problem = exact_problem(model.task, x, noise_eps=noise_eps, target=target)
    vec = torch.nn.utils.parameters_to_vector
    set_vec = torch.nn.utils.vector_to_parameters

    def grad(y):
        with torch.no_grad():
            set_vec(torch.from_numpy(y), params)
        J, _, _ = exact_objective(model, problem, q)
        gs = torch.autograd.grad(J, params)
        return torch.cat([g.reshape(-1) for g in gs]).numpy()

    def measure(y):
        with torch.no_grad():
            set_vec(torch.from_numpy(y), params)
            _, P, c = exact_objective(model, problem, q)
        return P, c

    events = None
    if delta is not None:

        def hit(tau, y):
            return measure(y)[0] - delta

        hit.terminal, hit.direction = True, 1
        events = hit
    y0 = vec(params).detach().numpy().copy()
    if measure(y0)[0] >= (delta if delta is not None else math.inf):
        raise ValueError(f"exact_gradient_flow: the start already has mean P >= delta = {delta}")
    taus = None if t_eval is None else np.log1p(np.asarray(t_eval, dtype=float))
    sol = integrate.solve_ivp(
        lambda tau, y: -math.exp(tau) * grad(y),
        (0.0, math.log1p(t_max)),
        y0,
        method="RK45",
        events=events,
        rtol=rtol,
        atol=atol,
        t_eval=taus,
    )
    Ps, cs = zip(*[measure(y) for y in sol.y.T]) if sol.y.shape[1] else ((), ())
    out = {
        "T": math.expm1(sol.t_events[0][0]) if events is not None and len(sol.t_events[0]) else math.inf,
        "t": np.expm1(sol.t).tolist(),
        "P": list(Ps),
        "nfev": int(sol.nfev),
    }
    if noise_eps > 0:
        out["contamination"] = list(cs)
    with torch.no_grad():
        set_vec(torch.from_numpy(sol.y[:, -1].copy()), params)
    out["model"] = model.eval()
    return out


# ----------------------------------------------------------------------------------------------
# Reading the exact-dynamics records (scripts/run_exact_dynamics.py; the book's open-questions page)
# ----------------------------------------------------------------------------------------------


def escape_times(record: dict, seed: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    """``(p0, T)`` of a flow record's runs for one start model and one q, p0 decreasing (measured p0)."""
    rs = sorted((r for r in record["runs"] if r["seed"] == seed and r["q"] == q), key=lambda r: -r["p0"])
    if not rs:
        raise ValueError(f"escape_times: no run with seed={seed}, q={q} in the record")
    return np.array([r["p0"] for r in rs]), np.array([r["T"] for r in rs])


def escape_exponents(record: dict, *, deepest: Optional[int] = None) -> dict:
    """Fitted log-log slopes of the escape time against p0, ``{(seed, q): slope}`` (Theorem 5.2: ``-(1-q)``
    for q < 1); ``deepest``: fit only the that many smallest p0 (default: all)."""
    from .theory import fit_loglog_slope

    out = {}
    for seed in sorted({r["seed"] for r in record["runs"]}):
        for q in sorted({r["q"] for r in record["runs"]}):
            p, T = escape_times(record, seed, q)
            sel = slice(-deepest, None) if deepest else slice(None)
            out[seed, q] = fit_loglog_slope(p[sel], T[sel])[0]
    return out


def log_law_fit(p0, T) -> tuple[float, float, float]:
    """Least-squares ``T = a log(1/p0) + b``; returns ``(a, b, max relative residual)`` (Theorem 5.2 at q = 1)."""
    L = np.log(1.0 / np.asarray(p0, dtype=float))
    T = np.asarray(T, dtype=float)
    a, b = np.polyfit(L, T, 1)
    return float(a), float(b), float(np.max(np.abs(a * L + b - T) / T))


def optim_escape_steps(record: dict) -> dict:
    """``{(optimizer, adam_eps, q, p0_target): [escape step per start model (None: not within the budget)]}``
    from an optimiser record of ``scripts/run_exact_dynamics.py optim``."""
    out: dict = {}
    for r in sorted(record["runs"], key=lambda r: r["seed"]):
        out.setdefault((r["optimizer"], r["adam_eps"], r["q"], r["p0_target"]), []).append(r["escape_step"])
    return out


def noise_share(run: dict) -> np.ndarray:
    """The noisy label's share ``c / (c + P)`` of the two labels' mass along a noise run (the two-label
    contamination of Prop. C.2)."""
    c, P = np.asarray(run["contamination"], dtype=float), np.asarray(run["P"], dtype=float)
    return c / (c + P)


def noise_fitting_times(run: dict, etas, lr: float) -> np.ndarray:
    """Flow time ``lr * step`` at which a noise run's share first reaches each ``eta`` (nan: never)."""
    s, st = noise_share(run), np.asarray(run["step"])
    return np.array([lr * st[np.argmax(s >= e)] if (s >= e).any() else math.nan for e in etas])
