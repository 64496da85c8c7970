"""Evaluation harness (above the trainer stack: it samples with :mod:`tsallis_ref.rollout`; the pure verifiers and
metrics it scores with live in ``tsallis_ref.data``): sample k answers per prompt with HF ``generate`` and score p@1, p@k, maj@k (+ EM/F1).

Paper §7.1: 16 samples per prompt at evaluation; p@1, p@16 and m@16 (= maj@16) judged by the *relaxed
substring match*. Per example we also report the training reward (exact match, mean over samples) and the
benchmark metrics: HotpotQA / MuSiQue answer EM and F1 (official normalisation, MuSiQue max over aliases,
means over samples, i.e. the expected single-sample EM/F1) and FinQA execution accuracy (numeric match).

Use :func:`score_samples` directly when the generations come from elsewhere (vLLM, a saved file).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from inspect import Parameter, signature

from .data import verify
from .data.metrics import aggregate, maj_at_k, pass_at_k

__all__ = [
    "EvalResult",
    "score_samples",
    "generate_samples",
    "evaluate",
    "SAMPLING_DEFAULTS",
    "byte_tokenizer",
    "JUDGES",
    "JUDGE_DESCRIPTIONS",
]


def _finqa_key(a: str) -> str:
    """Vote key for FinQA: the number rounded to 5 significant decimals (so 0.1 and 0.10 vote together)."""
    p = verify.parse_number(a)
    if p is None:
        return verify.normalize_answer(a)
    v = p[0] / 100.0 if p[1] else p[0]
    return repr(round(v, 5))


def _judge(name: str, answer: str, aliases: Sequence[str]) -> Callable[[str], bool]:
    if name == "relaxed":
        return lambda p: verify.relaxed_match(p, answer, aliases)
    if name == "exact":
        return lambda p: verify.reward_exact_match(p, answer, aliases) > 0
    if name == "finqa_exec":
        return lambda p: verify.finqa_numeric_match(p, answer) or any(verify.finqa_numeric_match(p, a) for a in aliases)
    raise ValueError(f"judge must be one of {JUDGES}, got {name!r}")


JUDGES = ("relaxed", "exact", "finqa_exec")

#: each judge in words, as reports name it
JUDGE_DESCRIPTIONS = {
    "relaxed": "the relaxed substring match (the paper's evaluation)",
    "exact": "the exact match of the training reward",
    "finqa_exec": "FinQA's numeric match (its execution accuracy)",
}


def score_samples(
    generations: Sequence[str],
    answer: str,
    aliases: Sequence[str] = (),
    *,
    k: int | None = None,
    dataset: str | None = None,
    judge: str = "relaxed",
    extract: bool = True,
    answer_format=None,
) -> dict:
    """Score n sampled generations of one prompt.

    Returns ``{preds, correct, n, c, p@1, p@k, maj@k, reward_em}`` and, by ``dataset``: ``em, f1`` (hotpotqa,
    musique) or ``exec_acc`` (finqa). ``k`` defaults to n. maj@k votes on the normalised answer text; with the
    ``finqa_exec`` judge, which compares numbers, on the number rounded to 5 decimals (so "17%", "0.17" and
    "0.170" vote together). The vote key never merges answers that the judge tells apart.

    Each prediction is read from its generation by ``answer_format``'s rule (:meth:`AnswerFormat.extract
    <tsallis_ref.data.answer_format.AnswerFormat.extract>`: the text after the last end-of-rationale marker, the
    rule the trainer's targets and rewards follow; pass the run's ``AnswerFormat.from_config(cfg.rollout)``), or
    by :func:`~tsallis_ref.data.verify.extract_answer` when no format is given; ``extract=False`` scores the
    generations as they are.
    """
    n = len(generations)
    if n == 0:
        raise ValueError("score_samples needs at least one generation")
    k = n if k is None else k
    aliases = list(aliases or [])
    if answer_format is not None:
        from .data.answer_format import AnswerFormat

        read = AnswerFormat.from_config(answer_format).extract
    else:
        read = verify.extract_answer
    preds = [read(g) if extract else g for g in generations]
    is_ok = _judge(judge, answer, aliases)
    correct = [bool(is_ok(p)) for p in preds]
    c = sum(correct)
    key = _finqa_key if judge == "finqa_exec" else verify.normalize_answer
    out = {
        "preds": preds,
        "correct": correct,
        "n": n,
        "c": c,
        "p@1": pass_at_k(n, c, 1),
        f"p@{k}": pass_at_k(n, c, k),
        f"maj@{k}": maj_at_k(preds, is_ok, k, key=key),
        "reward_em": sum(verify.reward_exact_match(p, answer, aliases) for p in preds) / n,
    }
    if dataset == "hotpotqa":
        out["em"] = sum(verify.squad_em(p, answer) for p in preds) / n
        out["f1"] = sum(verify.hotpot_f1(p, answer) for p in preds) / n
    elif dataset == "musique":
        out["em"] = sum(verify.max_over_aliases(verify.squad_em, p, answer, aliases) for p in preds) / n
        out["f1"] = sum(verify.max_over_aliases(verify.musique_f1, p, answer, aliases) for p in preds) / n
    elif dataset == "finqa":
        fj = _judge("finqa_exec", answer, aliases)
        out["exec_acc"] = sum(fj(p) for p in preds) / n
    return out


def _prompt_text(tokenizer, prompt: str, use_chat_template: bool | None) -> str:
    if use_chat_template is None:
        use_chat_template = bool(getattr(tokenizer, "chat_template", None))
    if not use_chat_template:
        return prompt
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def generate_samples(
    model,
    tokenizer,
    prompts: Sequence[str],
    k: int = 16,
    *,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = 0,
    use_chat_template: bool | None = None,
    progress: bool = True,
    generate_kwargs: dict | None = None,
    think_budget: int | None = None,
    end_marker: str = "</think>",
    forced_suffix: str = "\n</think>\n\n",
) -> list[list[str]]:
    """k sampled continuations per prompt (decoded new tokens, special tokens kept except pad/eos).

    The n_prompts * k sequences are generated ``batch_size`` at a time (left padding), with a tqdm bar.

    Budget forcing (paper §7.1, after Muennighoff et al. 2025): with ``think_budget`` set, the rationale is
    sampled for at most ``think_budget`` new tokens (stopping at ``end_marker``) and closed by the trainer's rule,
    :func:`tsallis_ref.rollout.finish_rationale`, on token ids: cut at the first EOS, then just after
    ``end_marker`` if the model wrote it, else the tokens of ``forced_suffix`` appended. Every sequence then gets
    ``max_new_tokens`` more tokens for the answer (the paper reserves 128), sampled after the prompt's and the
    rationale's own token ids (nothing is re-tokenised at the junction).
    """
    import torch
    from tqdm.auto import tqdm

    if k < 1 or batch_size < 1:
        raise ValueError(f"need k >= 1 and batch_size >= 1, got k={k}, batch_size={batch_size}")
    if think_budget is not None and think_budget < 1:
        raise ValueError(f"think_budget must be a positive number of tokens or None, got {think_budget}")
    texts = [_prompt_text(tokenizer, p, use_chat_template) for p in prompts]
    jobs = [(i, texts[i]) for i in range(len(texts)) for _ in range(k)]
    out: list[list[str]] = [[] for _ in texts]
    if seed is not None:
        torch.manual_seed(seed)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has neither a pad_token nor an eos_token; set tokenizer.pad_token")
    eos_id = tokenizer.eos_token_id
    drop = {t for t in (tokenizer.pad_token, tokenizer.eos_token) if t}
    # the rationale stops at the marker's own tokens (cheap, no decoding per step; rollout.StopOnTokenSuffix);
    # a marker written with other tokens is still cut below, only the tokens sampled after it are wasted
    from transformers import StoppingCriteriaList

    from .rollout import StopOnTokenSuffix, finish_rationale, left_pad

    marker_ids = list(tokenizer(end_marker, add_special_tokens=False).input_ids)
    forced_ids = list(tokenizer(forced_suffix, add_special_tokens=False).input_ids)
    eos_ids = [eos_id] if eos_id is not None else []
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    gk = dict(do_sample=True, temperature=temperature, top_p=top_p, pad_token_id=pad_id)
    gk.update(generate_kwargs or {})

    def text(ids) -> str:
        txt = tokenizer.decode(ids, skip_special_tokens=False)
        for t in drop:
            txt = txt.replace(t, "")
        return txt

    def run_ids(contexts: list[list[int]], n_new: int, stop_at_marker: bool = False) -> list[list[int]]:
        """The new token ids of each context (left-padded batch), pads and all."""
        ids, att = left_pad(contexts, pad_id)
        L = ids.shape[1]
        extra = {}
        if stop_at_marker and marker_ids:
            extra["stopping_criteria"] = StoppingCriteriaList([StopOnTokenSuffix([marker_ids], L)])
        gen = model.generate(
            input_ids=ids.to(device), attention_mask=att.to(device), **gk, max_new_tokens=n_new, **extra
        )
        return [row.tolist() for row in gen[:, L:]]

    def run(batch_texts: list[str], n_new: int) -> list[tuple[str, bool]]:
        enc = tokenizer(batch_texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {kk: v.to(device) for kk, v in enc.items()}
        gen = model.generate(**enc, **gk, max_new_tokens=n_new)
        return [
            (text(row), eos_id is not None and eos_id in row.tolist()) for row in gen[:, enc["input_ids"].shape[1] :]
        ]

    try:
        with torch.inference_mode():
            for s in tqdm(
                range(0, len(jobs), batch_size),
                desc=f"sampling k={k}",
                disable=not progress,
                total=(len(jobs) + batch_size - 1) // batch_size,
            ):
                chunk = jobs[s : s + batch_size]
                if think_budget is None:
                    for (i, _), (txt, _) in zip(chunk, run([t for _, t in chunk], max_new_tokens)):
                        out[i].append(txt)
                    continue
                xs = [list(tokenizer(t, add_special_tokens=False).input_ids) for _, t in chunk]
                # budget forcing: the trainer's rule on token ids (rollout.finish_rationale)
                zs = [
                    finish_rationale(tokenizer, ids, end_marker, forced_ids, eos_ids)[0]
                    for ids in run_ids(xs, think_budget, stop_at_marker=True)
                ]
                answers = run_ids([x + z for x, z in zip(xs, zs)], max_new_tokens)
                for (i, _), z, a in zip(chunk, zs, answers):
                    out[i].append(text(z) + text(a))
    finally:
        tokenizer.padding_side = old_side
        if was_training:
            model.train()
    return out


#: The sampling keywords :func:`evaluate` passes on to :func:`generate_samples`, with their defaults (the
#: marker ones, ``end_marker`` and ``forced_suffix``, come from ``evaluate``'s ``answer_format`` instead).
SAMPLING_DEFAULTS = {
    name: p.default
    for name, p in signature(generate_samples).parameters.items()
    if p.kind is Parameter.KEYWORD_ONLY and name not in ("end_marker", "forced_suffix")
}


@dataclass
class EvalResult:
    per_example: list[dict]
    aggregate: dict
    config: dict = field(default_factory=dict)


def evaluate(
    model,
    tokenizer,
    examples: Sequence[dict],
    k: int = 16,
    *,
    dataset: str | None = None,
    judge: str = "relaxed",
    keep_generations: bool = False,
    answer_format=None,
    **sampling,
) -> EvalResult:
    """Sample k answers per example and score them (paper §7.1: k = 16, relaxed substring judge).

    ``examples`` are :func:`~tsallis_ref.data.prompts.to_training_examples` dicts ``{id, prompt, answer,
    aliases}``. ``dataset`` ("finqa", "hotpotqa", "musique" or None) adds EM/F1 or execution accuracy.
    Returns :class:`EvalResult` with per-example dicts and the aggregate (in %) of p@1, p@k, maj@k,
    reward_em and em/f1/exec_acc where defined. ``think_budget`` turns on budget forcing (see
    :func:`generate_samples`; the paper: FinQA 4096-128, HotpotQA 3072-128, MuSiQue 2048-128 rationale tokens and
    ``max_new_tokens=128`` for the answer). ``answer_format`` (an ``AnswerFormat`` or the run's rollout config)
    sets the marker budget forcing writes and the rule that reads the answers (see :func:`score_samples`).

    ``**sampling`` are the keywords of :func:`generate_samples`, passed on as they are, with its defaults
    (:data:`SAMPLING_DEFAULTS`): ``batch_size``, ``max_new_tokens``, ``temperature``, ``top_p``, ``seed``,
    ``use_chat_template``, ``progress``, ``generate_kwargs``, ``think_budget``. ``EvalResult.config`` records k,
    dataset, judge, batch_size, max_new_tokens, think_budget, temperature, top_p and seed.
    """
    unknown = sorted(set(sampling) - set(SAMPLING_DEFAULTS))
    if unknown:
        raise TypeError(
            f"evaluate: unknown keyword(s) {unknown}; the sampling keywords are those of generate_samples: "
            f"{sorted(SAMPLING_DEFAULTS)} (the end-of-rationale marker is set by answer_format)"
        )
    sampling = {**SAMPLING_DEFAULTS, **sampling}
    if judge not in JUDGES:
        raise ValueError(f"judge must be one of {JUDGES}, got {judge!r}")
    for j, ex in enumerate(examples):
        missing = {"id", "prompt", "answer", "aliases"} - set(ex)
        if missing:
            raise ValueError(f"examples[{j}] lacks keys {sorted(missing)}; build them with to_training_examples")
    marker = {}
    if answer_format is not None:
        from .data.answer_format import AnswerFormat

        answer_format = AnswerFormat.from_config(answer_format)
        marker = dict(end_marker=answer_format.label, forced_suffix=answer_format.forced_suffix)
    gens = generate_samples(
        model,
        tokenizer,
        [e["prompt"] for e in examples],
        k,
        **sampling,
        **marker,
    )
    per = []
    for ex, g in zip(examples, gens):
        s = score_samples(
            g, ex["answer"], ex["aliases"], k=k, dataset=dataset, judge=judge, answer_format=answer_format
        )
        s["id"] = ex["id"]
        if keep_generations:
            s["generations"] = g
        per.append(s)
    keys = ["p@1", f"p@{k}", f"maj@{k}", "reward_em", "em", "f1", "exec_acc"]
    recorded = ("batch_size", "max_new_tokens", "think_budget", "temperature", "top_p", "seed")
    cfg = {"k": k, "dataset": dataset, "judge": judge, **{name: sampling[name] for name in recorded}}
    return EvalResult(per, aggregate(per, keys), cfg)


def byte_tokenizer():
    """A self-contained byte-level tokenizer (259 ids: 256 bytes + <pad> <s> </s>) for tests and CPU demos.

    Needs only the ``tokenizers`` package (a transformers dependency); no hub access.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
