"""Encode each prompt once: shared-prefix scoring (with gradients) and shared-prefix generation.

The M sequences of a prompt x are ``[x, z_m, a_m]``, m = 1..M. Scoring them one causal forward each (as
``scoring.token_logprobs`` does) encodes x M times; at a 300-token context with 32-token rationales ~90 % of the
scored tokens are the prompt repeated. Causal attention makes the prompt's hidden states independent of what
follows it, so one forward over x gives the key/value states of every layer at x's positions, and the M
continuations ``[z_m, a_m]`` can be teacher-forced on top of that cache:

* **prompt pass** (:func:`encode_prompts`): the distinct prompts of a call, right-padded into one batch, one
  forward *with* the autograd graph. It returns, per prompt, its per-layer keys/values (sliced to its own length)
  and the last prompt position's final hidden state, which scores the first rationale token
  (``log p(z_1 | x)``, the first term of Eq. 4's ``log p(z | x)``).
* **continuation pass** (:func:`score_shared`): each micro-batch of continuations runs with a
  ``transformers.DynamicCache`` whose layers hold the prompts' keys/values expanded along the batch (one view when
  the micro-batch has a single prompt; prompts of different lengths are right-padded to the longest and the padded
  slots masked), an explicit attention mask (prefix slots of the row's prompt + causal over the continuation,
  continuations right-padded) and position ids continuing after each row's prompt (``P_i + t``).

The backward pass flows through the expanded cache into the one prompt graph (the expand's backward sums the M
rows' gradients), so LoRA / full weights acting on prompt positions get the same gradient as M separate passes:
``logp_z``, ``logp_y`` and the per-token log-probabilities are those of ``scoring.score_sequences`` to float
tolerance, and so are the gradients of every estimator built on them (GARL one- and two-pass, PAFT, GRPO,
RLOO; ``tests/test_shared_prefix.py``). The lm head + log-softmax are applied only at scored positions, in
checkpointed chunks, as in ``scoring.token_logprobs``.

Counting. The returned :class:`~tsallis_ref.scoring.ScoredBatch` counts the *continuation* forwards in
``forward_calls`` / ``n_sequences`` (one call per micro-batch, one sequence per sampled rationale: "exactly one
scoring forward per rationale" stays countable) and the prompt forwards apart, in ``prompt_forwards`` (one per
:func:`score_shared` call), ``prompt_sequences`` (the distinct prompts) and ``prompt_tokens``.

Where sharing is not exact it is not used (:func:`shared_scoring_supported` says why): HF gradient checkpointing
drops the cache inside checkpointed layers (``GradientCheckpointingLayer`` sets ``cache=None`` on the replayed
layers), so with checkpointing active under grad, scoring falls back to unshared passes; likewise with dropout
active in training mode (LoRA dropout > 0: one prompt pass would give the M sequences one shared dropout mask
instead of M independent ones, another estimator; it would also break the two-pass mode's replay of the
one-pass masks), for ``lm_head_checkpoint=False`` (full-logit heads) and for attention implementations other
than ``sdpa`` / ``eager``.

Dispatch. :func:`score` is the entry point of the trainer: :func:`score_shared` where a prompt repeats and
sharing is exact, :func:`tsallis_ref.scoring.score_sequences` otherwise (this module sits above ``scoring``).

Generation (:func:`prefill_shared_cache`): ``rollout.generate`` receives the M copies of each prompt (left-padded).
The distinct rows are prefilled once (all but the last token, with generate's own position ids,
``cumsum(mask) - 1``) and the cache is expanded to the rows; ``generate`` then runs the last prompt token and the
decoding steps as usual. The sampled tokens use the same random stream; the logits differ from the unshared
prefill only by float rounding (a different matmul split), so the samples are identical except where a rounding
difference flips a sampled token (same distribution).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .scoring import ScoredBatch, ScoringOptions, head_logprobs_at, score_sequences, scoring_inputs

__all__ = [
    "score",
    "shared_scoring_supported",
    "encode_prompts",
    "score_shared",
    "prefill_shared_cache",
    "gradient_checkpointing_active",
    "dropout_active",
    "full_attention_only",
]

_ATTN_OK = ("sdpa", "eager")


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def gradient_checkpointing_active(model) -> bool:
    """Whether a backward replay would recompute decoder layers (HF gradient checkpointing on, training, grad)."""
    base = _base(model)
    if not (base.training and torch.is_grad_enabled()):
        return False
    return any(getattr(m, "gradient_checkpointing", False) for m in base.modules())


def shared_scoring_supported(model, lm_head_checkpoint: bool = True) -> tuple[bool, str]:
    """``(True, "")`` where shared-prefix scoring is exact for ``model``, else ``(False, reason)``."""
    base = _base(model)
    if not lm_head_checkpoint:
        return False, "lm_head_checkpoint=False (full logits through the model's own head)"
    if not hasattr(base, "get_decoder") or base.get_output_embeddings() is None:
        return False, "the model has no separate decoder and output embedding"
    if getattr(base.config, "is_encoder_decoder", False) or not getattr(base.config, "is_causal", True):
        return False, "not a causal decoder"
    if not full_attention_only(base.config):
        return False, "not every layer is a full-attention layer (sliding-window / linear layers)"
    impl = getattr(base.config, "_attn_implementation", None) or "eager"
    if impl not in _ATTN_OK:
        return False, f"attention implementation {impl!r} (shared prefix supports {', '.join(_ATTN_OK)})"
    if gradient_checkpointing_active(model):
        return False, "gradient checkpointing drops the KV cache in checkpointed layers"
    if dropout_active(model):
        return False, "dropout is active (one prompt pass would share one dropout mask among the M sequences)"
    return True, ""


def full_attention_only(config) -> bool:
    """Whether every decoder layer attends to the whole context (no sliding-window or linear-attention layer)."""
    conf = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    types = getattr(conf, "layer_types", None)
    if types is not None:
        return all(t == "full_attention" for t in types)
    return not (getattr(conf, "sliding_window", None) and getattr(conf, "use_sliding_window", True))


def dropout_active(model) -> bool:
    """Whether a forward draws dropout masks (training mode and a dropout module or attention dropout > 0)."""
    base = _base(model)
    if not base.training:
        return False
    if float(getattr(base.config, "attention_dropout", 0.0) or 0.0) > 0:
        return True
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in base.modules())


def encode_prompts(model, prompts: Sequence[Sequence[int]], pad_id: int):
    """One forward over the distinct ``prompts`` (right-padded, with the graph when grad is enabled).

    Returns ``(kv, last)``: ``kv[u]`` the list over layers of ``(keys, values)`` of prompt u, each
    ``[1, heads, P_u, head_dim]``, and ``last[u]`` its final hidden state at position ``P_u - 1``."""
    from transformers import DynamicCache

    base = _base(model)
    device = next(model.parameters()).device
    lens = [len(p) for p in prompts]
    if min(lens) == 0:
        raise ValueError("scoring needs a non-empty prompt (x) for every sequence")
    U, P = len(prompts), max(lens)
    ids = torch.full((U, P), pad_id, dtype=torch.long)
    att = torch.zeros((U, P), dtype=torch.long)
    for u, p in enumerate(prompts):
        ids[u, : len(p)] = torch.tensor(list(p), dtype=torch.long)
        att[u, : len(p)] = 1
    ids, att = ids.to(device), att.to(device)
    cache = DynamicCache()
    out = base.get_decoder()(input_ids=ids, attention_mask=att, cache=cache, use_cache=True)
    hidden = out.last_hidden_state
    layers = [(lay.keys, lay.values) for lay in cache.layers]
    kv = [[(k[u : u + 1, :, : lens[u]], v[u : u + 1, :, : lens[u]]) for k, v in layers] for u in range(U)]
    last = [hidden[u, lens[u] - 1] for u in range(U)]
    return kv, last


def _prefix_cache(kv, row_prompt: list[int]):
    """A ``DynamicCache`` with, for each row, its prompt's keys/values (right-padded to the longest prompt of
    the rows); returns ``(cache, prefix_len)``."""
    from transformers import DynamicCache

    used = sorted(set(row_prompt))
    Pmax = max(kv[u][0][0].shape[2] for u in used)
    n = len(row_prompt)
    data = []
    for layer in range(len(kv[used[0]])):
        if len(used) == 1:
            k, v = kv[used[0]][layer]
            data.append((k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)))
            continue
        pad = lambda t: F.pad(t, (0, 0, 0, Pmax - t.shape[2]))
        ks = torch.cat([pad(kv[u][layer][0]) for u in used])
        vs = torch.cat([pad(kv[u][layer][1]) for u in used])
        sel = torch.tensor([used.index(u) for u in row_prompt], device=ks.device)
        data.append((ks.index_select(0, sel), vs.index_select(0, sel)))
    return DynamicCache(ddp_cache_data=data), Pmax


def _attention_mask(base, prompt_lens: torch.Tensor, cont_lens: torch.Tensor, Pmax: int, C: int, dtype):
    """``[n, 1, C, Pmax + C]``: row i's query t sees its prompt slots ``< P_i`` and continuation keys ``<= t``
    (padded continuation keys hidden). Bool for sdpa, additive (0 / dtype min) for eager."""
    dev = prompt_lens.device
    kp = torch.arange(Pmax, device=dev)
    pre = (kp[None, :] < prompt_lens[:, None])[:, None, :].expand(-1, C, -1)  # [n, C, Pmax]
    t = torch.arange(C, device=dev)
    causal = (t[None, :] <= t[:, None])[None] & (t[None, None, :] < cont_lens[:, None, None])  # [n, C, C]
    allow = torch.cat([pre, causal], dim=-1)[:, None]
    if base.config._attn_implementation == "sdpa":
        return allow
    return torch.zeros(allow.shape, dtype=dtype, device=dev).masked_fill(~allow, torch.finfo(dtype).min)


def score_shared(model, prompt, rationale, answer, **options) -> ScoredBatch:
    """:func:`tsallis_ref.scoring.score_sequences` with each distinct prompt encoded once (module docstring).

    Same arguments (the fields of :class:`~tsallis_ref.scoring.ScoringOptions`; ``lm_head_checkpoint`` is
    implied, False is refused) and return type. ``n_tokens`` counts the tokens processed: each distinct prompt
    once plus every completion token. Call it where :func:`shared_scoring_supported` holds."""
    o = ScoringOptions.of(options, "score_shared")
    if not o.lm_head_checkpoint:
        raise ValueError(
            "score_shared applies the lm head at the scored positions only; for full logits "
            "(lm_head_checkpoint=False) use tsallis_ref.scoring.score_sequences"
        )
    n = scoring_inputs(prompt, rationale, answer)
    pad_id, micro_batch_size = o.pad_id, o.micro_batch_size
    device = next(model.parameters()).device
    keys, row_prompt = {}, []
    for p in prompt:
        row_prompt.append(keys.setdefault(tuple(p), len(keys)))
    distinct = [list(k) for k in keys]
    ctx = (
        torch.autocast(device_type=device.type, dtype=o.autocast_dtype)
        if o.autocast_dtype is not None
        else contextlib.nullcontext()
    )
    base = _base(model)
    head = base.get_output_embeddings()
    decoder = base.get_decoder()
    lz, ly, toks, calls = [], [], [], 0
    ntok = prompt_tokens = sum(len(p) for p in distinct)
    with ctx:
        kv, last = encode_prompts(model, distinct, pad_id)
        mask_dtype = last[0].dtype
        for s in range(0, n, micro_batch_size):
            rows = list(range(s, min(s + micro_batch_size, n)))
            conts = [list(rationale[i]) + list(answer[i]) for i in rows]
            zl = torch.tensor([len(rationale[i]) for i in rows], device=device)
            cl = torch.tensor([len(c) for c in conts], device=device)
            C = int(cl.max()) if rows else 0
            rp = [row_prompt[i] for i in rows]
            ntok += int(cl.sum())
            calls += 1
            tg = torch.full((len(rows), max(C, 1)), pad_id, dtype=torch.long)
            for j, c in enumerate(conts):
                tg[j, : len(c)] = torch.tensor(c, dtype=torch.long)
            tg = tg.to(device)
            h0 = torch.stack([last[u] for u in rp])[:, None]  # [n, 1, H]
            if C > 1:  # feed c[:-1]: the last completion token predicts nothing
                Pl = torch.tensor([len(distinct[u]) for u in rp], device=device)
                cache, Pmax = _prefix_cache(kv, rp)
                Cin = C - 1
                mask = _attention_mask(base, Pl, (cl - 1).clamp(min=0), Pmax, Cin, mask_dtype)
                pos = Pl[:, None] + torch.arange(Cin, device=device)[None]
                out = decoder(
                    input_ids=tg[:, :Cin], attention_mask=mask, position_ids=pos, cache=cache, use_cache=True
                ).last_hidden_state
                hid = torch.cat([h0, out], dim=1)  # [n, C, H]
            else:
                hid = h0
            Cc = hid.shape[1]
            tpos = torch.arange(Cc, device=device)[None]
            valid = tpos < cl[:, None]
            lp = head_logprobs_at(head, hid, tg[:, :Cc], valid, o.logits_chunk)
            zm = tpos < zl[:, None]
            am = valid & ~zm
            lz.append((lp * zm).sum(-1))
            ly.append((lp * am).sum(-1))
            if o.return_tokens:
                toks.append((lp, valid))
    out_t = out_m = None
    if o.return_tokens:
        Tc = max(lp.shape[1] for lp, _ in toks)
        out_t = torch.cat([F.pad(lp, (0, Tc - lp.shape[1])) for lp, _ in toks])
        out_m = torch.cat([F.pad(m, (0, Tc - m.shape[1])) for _, m in toks])
    return ScoredBatch(
        torch.cat(lz),
        torch.cat(ly),
        out_t,
        out_m,
        ntok,
        forward_calls=calls,
        n_sequences=n,
        prompt_forwards=1,
        prompt_sequences=len(distinct),
        prompt_tokens=prompt_tokens,
    )


def score(
    model, prompt, rationale, answer, *, shared_prefix: bool = True, lm_head_checkpoint: bool = True, **options
) -> ScoredBatch:
    """Score ``n`` sequences ``[x_i, z_i, a_i]`` (``logp_z`` of Eq. 4, ``logp_y`` of Eq. 7): with
    ``shared_prefix``, where a prompt repeats and :func:`shared_scoring_supported` holds, each distinct prompt is
    encoded once (:func:`score_shared`: same values and gradients, ``prompt_forwards == 1``); otherwise
    :func:`tsallis_ref.scoring.score_sequences` (one forward per micro-batch of whole sequences,
    ``prompt_forwards == 0``). The keyword ``options`` (``pad_id``, ``micro_batch_size``, ``return_tokens``,
    ``autocast_dtype``, ``logits_chunk``) are the other fields of :class:`~tsallis_ref.scoring.ScoringOptions`."""
    if (
        shared_prefix
        and len(set(map(tuple, prompt))) < len(prompt)
        and shared_scoring_supported(model, lm_head_checkpoint)[0]
    ):
        return score_shared(model, prompt, rationale, answer, **options)
    return score_sequences(model, prompt, rationale, answer, lm_head_checkpoint=lm_head_checkpoint, **options)


@torch.no_grad()
def prefill_shared_cache(model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """For ``generate``: a ``DynamicCache`` of every row's context but its last token, computed once per
    distinct row (left-padded ``input_ids`` / ``attention_mask [n, L]``) and expanded to the n rows; None where
    no row repeats another or L < 2. Position ids are generate's own (``cumsum(mask) - 1``, 0 on padding)."""
    from transformers import DynamicCache

    n, L = input_ids.shape
    base = _base(model)
    if L < 2 or not hasattr(base, "get_decoder") or not full_attention_only(base.config):
        return None
    key = torch.cat([input_ids, attention_mask], dim=1)
    uniq, inverse = torch.unique(key, dim=0, return_inverse=True)
    if uniq.shape[0] == n:
        return None
    first = torch.stack([(inverse == u).nonzero()[0, 0] for u in range(uniq.shape[0])])
    ids, att = input_ids[first, : L - 1], attention_mask[first]
    pos = (att.long().cumsum(-1) - 1).masked_fill(att == 0, 0)[:, : L - 1]
    cache = DynamicCache()
    base.get_decoder()(input_ids=ids, attention_mask=att[:, : L - 1], position_ids=pos, cache=cache, use_cache=True)
    data = [(lay.keys.index_select(0, inverse), lay.values.index_select(0, inverse)) for lay in cache.layers]
    return DynamicCache(ddp_cache_data=data)
