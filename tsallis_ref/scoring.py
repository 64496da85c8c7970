"""Teacher-forced scoring: ``log p(z_m | x)`` and ``log p(y | x, z_m)`` from ONE forward pass per sequence.

Each scored sequence is ``[x, z_m, a_m]`` where z_m is the sampled rationale *including* the
end-of-rationale marker (forced or not) and ``a_m`` is the answer segment: ``answer_prefix + y* (+EOS)``
teacher-forced for GARL / PAFT (so ``w_m = exp(logp_y)`` is Eq. 7's likelihood weight), or the model's own
sampled answer for GRPO / RLOO. A single causal forward pass gives the next-token log-probabilities of every
position; ``logp_z`` sums them over the rationale span and ``logp_y`` over the answer span. The same pass
carries the autograd graph, so by default the gradient comes from it too: no extra (no-grad) scoring pass
(the trainer's two-pass mode adds one to save memory).

Memory. The logits ``[batch, T, V]`` are the largest tensor of a forward pass (V = 151k for Qwen3: one
4k-token sequence has 2.5 GB of float32 logits). By default (``lm_head_checkpoint=True``) the lm head and the
log-softmax are applied only at the positions that are scored (rationale and answer tokens, not the prompt or
padding), in chunks of ``logits_chunk`` tokens, each inside ``torch.utils.checkpoint``: the graph keeps only
the final hidden states and at most one chunk of logits exists at a time, in the forward pass and when it is
rebuilt during backward. This is what makes it affordable to keep the graphs of all M sequences of a prompt
alive until the weights (which need all M ``logp_y``) are known. Where even those graphs do not fit, the
trainer's two-pass mode (``optim.two_pass_scoring``) keeps one micro-batch's graph at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = [
    "LOGITS_CHUNK",
    "pack",
    "token_logprobs",
    "head_logprobs_at",
    "ScoredBatch",
    "ScoringOptions",
    "scoring_inputs",
    "score_sequences",
    "naive_span_logprobs",
]


def pack(
    prompt: Sequence[Sequence[int]], rationale: Sequence[Sequence[int]], answer: Sequence[Sequence[int]], pad_id: int
):
    """Right-pad ``[x, z, a]`` sequences into ``input_ids, attention_mask [n, T]`` and span masks
    ``z_mask, a_mask [n, T-1]`` over the *targets* (position t of the mask scores token t+1)."""
    lens = [len(p) + len(z) + len(a) for p, z, a in zip(prompt, rationale, answer)]
    n, T = len(lens), max(lens)
    ids = torch.full((n, T), pad_id, dtype=torch.long)
    att = torch.zeros((n, T), dtype=torch.long)
    zm = torch.zeros((n, T - 1), dtype=torch.bool)
    am = torch.zeros((n, T - 1), dtype=torch.bool)
    for i, (p, z, a) in enumerate(zip(prompt, rationale, answer)):
        if len(p) == 0:
            raise ValueError("scoring needs a non-empty prompt (x) for every sequence")
        seq = list(p) + list(z) + list(a)
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        att[i, : len(seq)] = 1
        zm[i, len(p) - 1 : len(p) + len(z) - 1] = True
        am[i, len(p) + len(z) - 1 : len(seq) - 1] = True
    return ids, att, zm, am


def _lm_head_logprobs(lm_head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = lm_head(hidden).float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


#: the default number of scored tokens whose logits exist at once (with V = 151k, 1024 tokens hold 0.6 GB of float32)
LOGITS_CHUNK = 1024


def head_logprobs_at(
    lm_head, hidden: torch.Tensor, targets: torch.Tensor, positions: torch.Tensor, logits_chunk: int
) -> torch.Tensor:
    """``log p(targets[i, t] | hidden[i, t])`` (float32, ``[n, T]``) where ``positions[n, T]`` is true, 0 elsewhere:
    the lm head and log-softmax run on the selected hidden states only, ``logits_chunk`` of them at a time, each
    chunk checkpointed under grad (its logits are recomputed in the backward instead of kept)."""
    n, T = targets.shape
    flat = positions.reshape(-1).nonzero().squeeze(-1)
    h = hidden.reshape(n * T, -1).index_select(0, flat)
    tg = targets.reshape(-1).index_select(0, flat)
    vals = []
    for c in range(0, h.shape[0], logits_chunk):
        hc, tc = h[c : c + logits_chunk], tg[c : c + logits_chunk]
        vals.append(
            checkpoint(_lm_head_logprobs, lm_head, hc, tc, use_reentrant=False)
            if torch.is_grad_enabled()
            else _lm_head_logprobs(lm_head, hc, tc)
        )
    v = torch.cat(vals) if vals else h.new_zeros(0, dtype=torch.float32)
    return v.new_zeros(n * T).index_copy(0, flat, v).view(n, T)


def token_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    lm_head_checkpoint: bool = True,
    positions: Optional[torch.Tensor] = None,
    logits_chunk: int = LOGITS_CHUNK,
) -> torch.Tensor:
    """``log p(token_{t+1} | tokens_{<=t})`` for t = 0..T-2, shape ``[n, T-1]``, float32, with the graph.

    With ``lm_head_checkpoint`` the decoder runs normally and the lm head + log-softmax are evaluated only
    where ``positions`` (bool ``[n, T-1]``; default: every non-pad target) is true, ``logits_chunk`` tokens
    at a time, each chunk checkpointed (see the module docstring); the other entries are 0. Models whose head
    is not a plain projection of the decoder's last hidden state (logit soft-capping, scaling) should use
    ``lm_head_checkpoint=False`` (full logits, every position)."""
    if logits_chunk < 1:
        raise ValueError(f"logits_chunk must be >= 1 token; got {logits_chunk}")
    targets = input_ids[:, 1:]
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if lm_head_checkpoint and hasattr(base, "get_decoder") and base.get_output_embeddings() is not None:
        hidden = base.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        if positions is None:
            positions = attention_mask[:, 1:].bool()
        return head_logprobs_at(base.get_output_embeddings(), hidden[:, :-1], targets, positions, logits_chunk)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1].float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


@dataclass
class ScoredBatch:
    """Scores of n sequences (with the autograd graph when scored under grad).

    ``logp_z[n]`` = log p(z|x) (marker included), ``logp_y[n]`` = log p(a|x,z) over the answer segment,
    ``logp_tokens[n, Tc]`` / ``mask[n, Tc]`` the per-token log-probs of the completion (z then a),
    left-aligned (used by GRPO), ``n_tokens`` the non-pad tokens processed, ``forward_calls`` the teacher-forced
    forward calls made (one per micro-batch) and ``n_sequences`` the sequences scored. Shared-prefix scoring
    (:func:`tsallis_ref.shared_prefix.score_shared`) counts its prompt pass apart: ``prompt_forwards`` calls
    over ``prompt_sequences`` distinct prompts of ``prompt_tokens`` tokens (all 0 for unshared scoring)."""

    logp_z: torch.Tensor
    logp_y: torch.Tensor
    logp_tokens: Optional[torch.Tensor]
    mask: Optional[torch.Tensor]
    n_tokens: int
    forward_calls: int = 0
    n_sequences: int = 0
    prompt_forwards: int = 0
    prompt_sequences: int = 0
    prompt_tokens: int = 0


@dataclass(frozen=True)
class ScoringOptions:
    """The keyword arguments of every scoring function (:func:`score_sequences`,
    :func:`tsallis_ref.shared_prefix.score_shared`, :func:`tsallis_ref.shared_prefix.score`), in one place.

    ``pad_id`` pads the packed sequences; ``micro_batch_size`` sequences go through one forward call (the graphs
    of every micro-batch stay alive until the caller's backward); ``return_tokens`` adds the per-token
    log-probabilities ``logp_tokens`` / ``mask`` of the completions (GRPO); ``lm_head_checkpoint`` applies the lm
    head + log-softmax only at the scored positions, ``logits_chunk`` tokens at a time, each chunk checkpointed
    (module docstring; False: full logits at every position, which shared-prefix scoring does not do);
    ``autocast_dtype`` runs the forward passes under ``torch.autocast`` with that dtype."""

    pad_id: int
    micro_batch_size: int
    return_tokens: bool = False
    lm_head_checkpoint: bool = True
    autocast_dtype: Optional[torch.dtype] = None
    logits_chunk: int = LOGITS_CHUNK

    def __post_init__(self):
        if self.micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be >= 1; got {self.micro_batch_size}")
        if self.logits_chunk < 1:
            raise ValueError(f"logits_chunk must be >= 1 token; got {self.logits_chunk}")

    @classmethod
    def of(cls, options: dict, fn: str) -> ScoringOptions:
        """``ScoringOptions(**options)`` for the scoring function ``fn``, naming any keyword it does not take."""
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(
                f"{fn}: unknown keyword(s) {unknown}; the scoring keywords are the fields of "
                f"tsallis_ref.scoring.ScoringOptions: {[f.name for f in fields(cls)]}"
            )
        return cls(**options)


def scoring_inputs(prompt, rationale, answer) -> int:
    """The number n of sequences ``[x_i, z_i, a_i]`` to score; raises unless the three lists have n entries each."""
    n = len(rationale)
    if not (len(prompt) == len(answer) == n):
        raise ValueError(
            f"prompt, rationale and answer must have one entry per sequence; got {len(prompt)}, {n}, {len(answer)}"
        )
    return n


def score_sequences(model, prompt, rationale, answer, **options) -> ScoredBatch:
    """Score ``n`` sequences ``[x_i, z_i, a_i]`` in micro-batches of ``micro_batch_size`` (one forward call
    each) and concatenate. Graphs of every micro-batch stay alive until the caller's backward. The keyword
    ``options`` are the fields of :class:`ScoringOptions` (``pad_id`` and ``micro_batch_size`` required).

    Every sequence encodes its own prompt; :func:`tsallis_ref.shared_prefix.score` encodes each distinct prompt
    once where that is exact (same values and gradients)."""
    o = ScoringOptions.of(options, "score_sequences")
    n = scoring_inputs(prompt, rationale, answer)
    device = next(model.parameters()).device
    lz, ly, toks, masks, ntok, calls = [], [], [], [], 0, 0
    for s in range(0, n, o.micro_batch_size):
        calls += 1
        sl = slice(s, s + o.micro_batch_size)
        ids, att, zm, am = pack(prompt[sl], rationale[sl], answer[sl], o.pad_id)
        ids, att, zm, am = ids.to(device), att.to(device), zm.to(device), am.to(device)
        ntok += int(att.sum())
        kw = dict(lm_head_checkpoint=o.lm_head_checkpoint, positions=zm | am, logits_chunk=o.logits_chunk)
        if o.autocast_dtype is not None:
            with torch.autocast(device_type=device.type, dtype=o.autocast_dtype):
                lp = token_logprobs(model, ids, att, **kw)
        else:
            lp = token_logprobs(model, ids, att, **kw)
        lz.append((lp * zm).sum(-1))
        ly.append((lp * am).sum(-1))
        if o.return_tokens:
            cm = zm | am
            toks.append(lp)
            masks.append(cm)
    out_t = out_m = None
    if o.return_tokens:
        # left-align each completion so that the [n, Tc] tensors only span completion tokens
        rows = []
        for lp, cm in zip(toks, masks):
            for i in range(lp.shape[0]):
                idx = cm[i].nonzero().squeeze(-1)
                rows.append(lp[i].index_select(0, idx))
        Tc = max(r.shape[0] for r in rows)
        out_t = torch.stack([F.pad(r, (0, Tc - r.shape[0])) for r in rows])
        out_m = torch.stack([torch.arange(Tc, device=device) < r.shape[0] for r in rows])
    return ScoredBatch(torch.cat(lz), torch.cat(ly), out_t, out_m, ntok, forward_calls=calls, n_sequences=n)


@torch.no_grad()
def naive_span_logprobs(model, prompt: list[int], rationale: list[int], answer: list[int]) -> tuple[float, float]:
    """Reference implementation for tests: one full forward per *token* (no batching, no packing), summing
    ``log softmax(logits)[next]`` over the rationale and answer spans separately."""
    seq = list(prompt) + list(rationale) + list(answer)
    lz = ly = 0.0
    for t in range(len(prompt), len(seq)):
        logits = model(input_ids=torch.tensor([seq[:t]]), use_cache=False).logits[0, -1].double()
        lp = float(torch.log_softmax(logits, -1)[seq[t]])
        if t < len(prompt) + len(rationale):
            lz += lp
        else:
            ly += lp
    return lz, ly
