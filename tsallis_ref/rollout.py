"""Rollouts: M rationales per prompt, sampled with the KV cache (batched ``model.generate``), with budget
forcing as in the paper (Sec. 7.1, after s1 / Muennighoff et al. 2025).

For each prompt x the sampler draws z_1..z_M ~ p_theta(. | x) up to ``rationale_budget`` new tokens and
stops at the end-of-rationale marker (``</think>`` for Qwen3, a configurable string such as
``"\\nAnswer:"`` otherwise). If the marker has not appeared within the budget (or the model stopped with
EOS before it), the marker is *forced*: its tokens are appended to the rationale. The marker tokens belong
to the rationale z (their log-probability counts in log p(z | x)).

GARL and PAFT never sample an answer: y* is teacher-forced after the rationale (``scoring``). GRPO and RLOO
then sample the model's own answer from [x, z, prefix] with ``answer_budget`` new tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from .config import RolloutConfig
from .shared_prefix import prefill_shared_cache

__all__ = [
    "encode_prompt",
    "encode_answer",
    "StopOnTokenSuffix",
    "left_pad",
    "generate",
    "generate_counted",
    "find_subsequence",
    "cut_at_marker",
    "finish_rationale",
    "Rollouts",
    "sample_rationales",
    "sample_answers",
]


def encode_prompt(tokenizer, prompt: str, *, chat_template: bool, enable_thinking: Optional[bool] = None) -> list[int]:
    """Token ids of x: the chat template with a generation prompt (warm start, chat/thinking model) or
    the raw prompt text (cold start)."""
    if chat_template:
        kw = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, **kw
        )
        return list(tokenizer(text, add_special_tokens=False).input_ids)
    return list(tokenizer(prompt, add_special_tokens=True).input_ids)


def encode_answer(tokenizer, answer: str, rcfg: RolloutConfig) -> list[int]:
    """Token ids of the teacher-forced answer segment: ``answer_prefix + y*`` (+ EOS), the run's answer format
    (:meth:`tsallis_ref.data.answer_format.AnswerFormat.target`, the layout its prompts ask for and its rewards read back)."""
    from .data.answer_format import AnswerFormat

    ids = list(tokenizer(AnswerFormat.from_config(rcfg).target(answer), add_special_tokens=False).input_ids)
    if rcfg.append_eos and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids


def _strip_after_eos(ids: list[int], eos_ids: set[int]) -> tuple[list[int], bool]:
    for i, t in enumerate(ids):
        if t in eos_ids:
            return ids[:i], True
    return ids, False


class StopOnTokenSuffix:
    """A ``generate`` stopping criterion: a row is done once its *generated* tokens end with one of the
    token-id sequences ``stops`` (the end-of-rationale marker's ids).

    Cheap: one comparison of the last ``len(stop)`` ids per decoding step, on the device, no decoding. It is
    the replacement for ``stop_strings=[marker]`` (transformers' ``StopStringCriteria``, which cost 9-14 % more
    CPU time than no marker stop at 16 x 32-128 tokens on the tiny model, this criterion 3 % or less; see
    ``benchmarks/rollout_stop.py``). It matches only the
    marker's own tokenization; a marker that the model writes with other tokens (BPE merges with its
    neighbours) does not stop the row early, but :func:`finish_rationale` still cuts the text after it, so the
    rationale of that call is the same, only the tokens sampled after it are wasted. Only generated tokens are matched
    (a prompt that ends with part of the marker cannot complete it)."""

    def __init__(self, stops: Sequence[Sequence[int]], prompt_len: int):
        self.stops = [torch.tensor(list(s), dtype=torch.long) for s in stops if len(s) > 0]
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        n_new = input_ids.shape[1] - self.prompt_len
        for st in self.stops:
            k = st.numel()
            if n_new >= k:
                done |= (input_ids[:, -k:] == st.to(input_ids.device)).all(-1)
        return done


def left_pad(contexts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids, attention_mask [n, L]`` of token-id contexts, left-padded to the longest (for ``generate``)."""
    L = max(len(c) for c in contexts)
    ids = torch.full((len(contexts), L), pad_id, dtype=torch.long)
    att = torch.zeros((len(contexts), L), dtype=torch.long)
    for i, c in enumerate(contexts):
        ids[i, L - len(c) :] = torch.tensor(list(c), dtype=torch.long)
        att[i, L - len(c) :] = 1
    return ids, att


def generate(model, tokenizer, contexts: Sequence[Sequence[int]], **options) -> list[tuple[list[int], bool]]:
    """Sample continuations of each context: :func:`generate_counted` (same keyword options) without its
    prefill count."""
    return generate_counted(model, tokenizer, contexts, **options)[0]


@torch.no_grad()
def generate_counted(
    model,
    tokenizer,
    contexts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    sampling,
    stop_strings: Optional[list[str]] = None,
    stop_token_ids: Optional[list[list[int]]] = None,
    batch_size: int | str = 0,
    min_new_tokens: int = 0,
    shared_prefix: bool = True,
) -> tuple[list[tuple[list[int], bool]], int]:
    """Sample continuations of each context (left-padded, batched, KV cache). Returns, per context, the new
    token ids cut at the first EOS (EOS excluded) and whether EOS was produced.

    A row also stops early once its generated ids end with one of ``stop_token_ids`` (:class:`StopOnTokenSuffix`,
    cheap) or its text contains one of ``stop_strings`` (transformers' ``StopStringCriteria``, which catches any
    tokenization of the string but costs a text-matching pass per step). After such a stop the row's remaining
    positions hold pad ids: callers cut at the marker (:func:`finish_rationale`). ``min_new_tokens``: EOS is
    suppressed for that many new tokens (a model that ends its turn at once still writes a rationale).
    ``batch_size``: sequences per ``generate`` call; 0 = all; ``"auto"`` = as many as the free GPU memory holds
    the KV cache of (:func:`tsallis_ref.models.auto_generation_batch`; all of them on a CPU). ``shared_prefix``:
    contexts that repeat within a call (the M copies of a prompt) are prefilled once and their KV cache expanded
    to the copies (:func:`tsallis_ref.shared_prefix.prefill_shared_cache`). Returns ``(samples,
    prefill_forwards)``: the shared prefills run (one per ``generate`` call whose contexts repeat)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
    if tokenizer.eos_token_id is not None:
        eos_ids.add(tokenizer.eos_token_id)
    was_training = model.training
    model.eval()
    out: list[tuple[list[int], bool]] = []
    prefills = 0
    from .precision import resolve_generation_batch

    bs = resolve_generation_batch(model, batch_size, len(contexts), max(len(c) for c in contexts) + max_new_tokens)
    try:
        for s in range(0, len(contexts), bs):
            ids, att = left_pad(contexts[s : s + bs], pad)
            L = ids.shape[1]
            kw = dict(
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k if sampling.top_k > 0 else None,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                eos_token_id=sorted(eos_ids),
                use_cache=True,
            )
            if min_new_tokens > 0:
                kw["min_new_tokens"] = min_new_tokens
            if stop_strings:
                kw.update(stop_strings=stop_strings, tokenizer=tokenizer)
            if stop_token_ids:
                from transformers import StoppingCriteriaList

                kw["stopping_criteria"] = StoppingCriteriaList([StopOnTokenSuffix(stop_token_ids, L)])
            if shared_prefix:
                cache = prefill_shared_cache(model, ids.to(device), att.to(device))
                if cache is not None:
                    kw["cache"] = cache
                    prefills += 1
            gen = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), **kw)
            for row in gen[:, L:].tolist():
                out.append(_strip_after_eos(row, eos_ids))
    finally:
        if was_training:
            model.train()
    return out, prefills


def find_subsequence(seq: Sequence[int], sub: Sequence[int]) -> int:
    """Index of the first occurrence of the token ids ``sub`` in ``seq``, or -1."""
    seq, sub = list(seq), list(sub)
    n, k = len(seq), len(sub)
    if k == 0:
        return -1
    for i in range(n - k + 1):
        if seq[i : i + k] == sub:
            return i
    return -1


def cut_at_marker(tokenizer, ids: list[int], marker: str, marker_ids: Sequence[int] = ()) -> Optional[list[int]]:
    """The shortest prefix of ``ids`` that contains the marker (so the rationale ends with the token that
    completes it), or None if the marker is absent. With a ``tokenizer`` the marker is looked for in the decoded
    text of the prefixes (so a marker that BPE merged with its neighbours is found too); with ``tokenizer=None``
    as the token ids ``marker_ids``."""
    if tokenizer is None:
        i = find_subsequence(ids, marker_ids)
        return None if i < 0 else list(ids[: i + len(marker_ids)])
    if marker not in tokenizer.decode(ids, skip_special_tokens=False):
        return None
    lo, hi = 1, len(ids)
    while lo < hi:  # decoded text of a prefix is monotone in the prefix length
        mid = (lo + hi) // 2
        if marker in tokenizer.decode(ids[:mid], skip_special_tokens=False):
            hi = mid
        else:
            lo = mid + 1
    return ids[:lo]


def finish_rationale(
    tokenizer, ids: Sequence[int], marker: str, marker_ids: Sequence[int], eos_ids: Sequence[int] = ()
) -> tuple[list[int], bool]:
    """Budget forcing on one sampled continuation, ``(z, forced)``: THE rule, on token ids, of training
    (:func:`sample_rationales`), evaluation (:func:`tsallis_ref.evaluation.generate_samples`) and the TRL adapter
    (:func:`tsallis_ref.integrations.trl.build_teacher_forced_tail`).

    ``ids`` is cut at its first EOS (if any of ``eos_ids`` occurs); if the rest contains the marker, z is its
    shortest prefix that contains it (:func:`cut_at_marker`: z ends with the token completing the marker, and
    whatever followed, e.g. the model's own answer, is dropped); otherwise (budget exhausted, or EOS before
    the marker) the tokens ``marker_ids`` are appended (``forced=True``). The marker belongs to z either way.
    ``tokenizer=None`` looks for the marker as the token ids ``marker_ids`` only."""
    ids, _ = _strip_after_eos(list(ids), set(eos_ids))
    cut = cut_at_marker(tokenizer, ids, marker, marker_ids) if ids else None
    if cut is None:
        return ids + list(marker_ids), True
    return cut, False


@dataclass
class Rollouts:
    """The sampled pool of a step: ``prompt_ids[b]`` and, for sequence ``i = b*M + m``, ``rationale_ids[i]``
    (marker included), ``forced[i]`` (marker forced by the budget), and for GRPO/RLOO ``answer_ids[i]`` /
    ``answer_text[i]`` (the model's own answer, prefix included in the ids). ``max_completion_length``: the
    constant bound on a completion's tokens that the budgets set (rationale budget + marker, and for sampled
    answers + prefix + answer budget + EOS): Dr. GRPO's normaliser, as TRL's ``max_completion_length``.
    ``prefill_forwards``: the shared-prefix prefills of the rationale sampling (each prompt encoded once for its
    M samples; 0 without sharing)."""

    prompt_ids: list[list[int]]
    M: int
    rationale_ids: list[list[int]]
    forced: list[bool]
    answer_ids: Optional[list[list[int]]] = None
    answer_text: Optional[list[str]] = None
    n_generated: int = 0
    generate_calls: int = 0
    max_completion_length: int = 0
    prefill_forwards: int = 0

    def prompt_of(self, i: int) -> int:
        return i // self.M


def sample_rationales(
    model, tokenizer, prompt_ids: list[list[int]], rcfg: RolloutConfig, *, shared_prefix: bool = True
) -> Rollouts:
    """Draw M rationales per prompt with budget forcing (``shared_prefix``: each prompt prefilled once, see
    :func:`generate`)."""
    M, marker = rcfg.M, rcfg.end_of_rationale
    marker_ids = list(tokenizer(marker, add_special_tokens=False).input_ids)
    contexts = [p for p in prompt_ids for _ in range(M)]
    # stop a row as soon as it has written the marker's ids (cheap); finish_rationale cuts at the marker text
    gens, prefills = generate_counted(
        model,
        tokenizer,
        contexts,
        max_new_tokens=rcfg.rationale_budget,
        sampling=rcfg.sampling,
        stop_token_ids=[marker_ids],
        batch_size=rcfg.generation_batch_size,
        min_new_tokens=rcfg.min_rationale_tokens,
        shared_prefix=shared_prefix,
    )
    rats, forced, n_gen = [], [], 0
    for ids, _eos in gens:
        z, f = finish_rationale(tokenizer, ids, marker, marker_ids)  # budget forcing
        # tokens actually sampled: up to the marker if written, else all of them (+ the EOS)
        n_gen += (len(ids) + (1 if _eos else 0)) if f else len(z)
        rats.append(z)
        forced.append(f)
    return Rollouts(
        prompt_ids=prompt_ids,
        M=M,
        rationale_ids=rats,
        forced=forced,
        n_generated=n_gen,
        generate_calls=1,
        max_completion_length=rcfg.rationale_budget + len(marker_ids),
        prefill_forwards=prefills,
    )


def sample_answers(model, tokenizer, ro: Rollouts, rcfg: RolloutConfig) -> Rollouts:
    """GRPO / RLOO: sample the model's own answer after [x, z, prefix] (``answer_budget`` tokens, stop at EOS).
    The answer ids include the prefix and the EOS when one was produced."""
    prefix = list(tokenizer(rcfg.answer_prefix, add_special_tokens=False).input_ids) if rcfg.answer_prefix else []
    contexts = [ro.prompt_ids[ro.prompt_of(i)] + z + prefix for i, z in enumerate(ro.rationale_ids)]
    gens = generate(
        model,
        tokenizer,
        contexts,
        max_new_tokens=rcfg.answer_budget,
        sampling=rcfg.sampling,
        batch_size=rcfg.generation_batch_size,
    )
    ans_ids, ans_text = [], []
    for ids, eos in gens:
        ro.n_generated += len(ids) + (1 if eos else 0)
        ans_text.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
        ans_ids.append(prefix + list(ids) + ([tokenizer.eos_token_id] if eos else []))
    ro.answer_ids, ro.answer_text = ans_ids, ans_text
    ro.generate_calls += 1
    ro.max_completion_length += len(prefix) + rcfg.answer_budget + 1
    return ro
