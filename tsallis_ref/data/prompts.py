"""Warm-start and cold-start prompts (paper §7.1; paper-notes §5.1) and context truncation to a token budget.

* **Warm start**: a natural-language prompt with a task description and an answer-format instruction, so the
  un-adapted model sometimes answers correctly. The paper does not publish its templates; ours are
  :data:`WARM_TEMPLATES` (written out verbatim in the book chapter ``benchmarks_data``).
* **Cold start**: the *linearised* input x* and the gold output y* only, **no task description and no
  answer-format instruction** (:data:`COLD_TEMPLATE`: context then question). The model must discover both how
  to solve and how to format, so the initial P_theta(y*|x*) is tiny.

The contract with the trainer is :func:`to_training_examples`, a list of dicts with exactly the keys
``id, prompt, answer, aliases`` (``answer`` is y*, teacher-forced after the rationale as
:meth:`AnswerFormat.target <tsallis_ref.data.answer_format.AnswerFormat.target>` writes it). Prompts are
plain text; applying a chat template (e.g. Qwen3's, which opens ``<think>``) is the consumer's job.

Context truncation (:func:`truncate_paragraphs`) keeps the supporting paragraphs first (when known), then
adds the others in their original order while they fit, and writes the kept ones in their original order.
Token counts come from a tokenizer when given, otherwise from a whitespace split.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .answer_format import DEFAULT_ANSWER_FORMAT, AnswerFormat
from .loaders import linearise_paragraphs

__all__ = [
    "WARM_TEMPLATES",
    "COLD_TEMPLATE",
    "warm_template",
    "ANSWER_FORMATS",
    "make_counter",
    "truncate_paragraphs",
    "build_prompt",
    "to_training_examples",
]

#: answer-format instructions of the warm prompts (the gold answers are written in these formats)
ANSWER_FORMATS = {
    "finqa": (
        "Write only the number: no units, no currency sign, no thousands separators. Write a percentage "
        "as a decimal fraction (0.2345 for 23.45%) and round to at most five decimal places. "
        "For a yes/no question write yes or no."
    ),
    "hotpotqa": (
        "Write only the short answer: the entity, date, number or phrase that answers the question, or yes or no."
    ),
    "musique": "Write only the short answer: the entity, date, number or phrase that answers the question.",
}

_TASKS = {
    "finqa": (
        "You are a financial analyst. Below is an excerpt of a company's financial report (text and a "
        'table with cells separated by " | ") and a question that needs a numerical computation over it.'
    ),
    "hotpotqa": (
        "Answer a multi-hop question using the Wikipedia paragraphs below. The answer needs facts from "
        "more than one paragraph; some paragraphs are distractors."
    ),
    "musique": (
        "Answer a multi-hop question using the Wikipedia paragraphs below. The question is a chain of "
        "2 to 4 single-hop questions, each answered by one paragraph; most paragraphs are distractors."
    ),
}


def warm_template(dataset: str, answer_format: AnswerFormat | None = None) -> str:
    """The warm-start template of ``dataset`` for ``answer_format`` (fields context and question): the task
    description, the context, the question, then :meth:`~tsallis_ref.data.answer_format.AnswerFormat.instruction` (the layout the trainer
    teacher-forces and the reward reads back) and the dataset's answer-writing rules (:data:`ANSWER_FORMATS`)."""
    if dataset not in _TASKS:
        raise ValueError(f"unknown dataset {dataset!r}: one of {sorted(_TASKS)}")
    fmt = DEFAULT_ANSWER_FORMAT if answer_format is None else AnswerFormat.from_config(answer_format)
    return (
        f"{_TASKS[dataset]}\n\n{{context}}\n\nQuestion: {{question}}\n\n"
        f"{fmt.instruction().replace('{', '{{').replace('}', '}}')} {ANSWER_FORMATS[dataset]}"
    )


#: Warm-start templates for the default answer format (a last line ``Answer: <answer>``), exactly as used by a
#: run whose rollout ends the rationale with "\nAnswer:"; :func:`warm_template` gives those of other formats
#: (after ``</think>``: "write only the final answer"). Their fields are context and question.
WARM_TEMPLATES = {name: warm_template(name) for name in _TASKS}

#: The cold-start x*, the linearised input only; its fields are context and question.
COLD_TEMPLATE = "{context}\n\n{question}"


def make_counter(tokenizer=None) -> tuple[Callable[[str], int], Callable[[str, int], str]]:
    """``(count, cut)``: token count of a text and its first n tokens, from ``tokenizer`` or white space."""
    if tokenizer is None:

        def count(t: str) -> int:
            return len(t.split())

        def cut(t: str, n: int) -> str:
            # the text up to the end of its n-th word, its own white space kept (a table keeps one row per line)
            words = list(re.finditer(r"\S+", t))
            if n <= 0 or not words:
                return ""
            return t[words[0].start() : words[min(n, len(words)) - 1].end()]

        return count, cut

    def count(t: str) -> int:
        return len(tokenizer(t, add_special_tokens=False)["input_ids"])

    def cut(t: str, n: int) -> str:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"][: max(n, 0)]
        return tokenizer.decode(ids)

    return count, cut


def truncate_paragraphs(
    paragraphs: Sequence[dict], supporting: Sequence[int], budget: int | None, dataset: str, tokenizer=None
) -> tuple[str, dict]:
    """Linearised context of at most ``budget`` tokens that keeps the supporting paragraphs.

    Order of preference: supporting paragraphs (in order), then the others in their original order, each
    added only if the whole context still fits. If the supporting paragraphs alone exceed the budget, the
    last ones are cut token-wise. Returns ``(context, info)`` with ``info = {kept, cut, n_tokens, truncated}``.
    ``budget=None`` keeps everything.
    """
    if budget is not None and (not isinstance(budget, int) or budget < 1):
        raise ValueError(f"budget must be a positive int (tokens) or None, got {budget!r}")
    paras = [dict(p) for p in paragraphs]
    n = len(paras)
    bad = [i for i in supporting if not 0 <= i < n]
    if bad:
        raise ValueError(f"supporting indices {bad} out of range for {n} paragraphs")
    count, cut = make_counter(tokenizer)
    full = linearise_paragraphs(paras, dataset)
    if budget is None or count(full) <= budget:
        return full, {"kept": list(range(n)), "cut": [], "n_tokens": count(full), "truncated": False}

    sup = list(dict.fromkeys(supporting))
    kept: list[int] = []
    cut_idx: list[int] = []

    def text_of(idx: list[int]) -> str:
        return linearise_paragraphs([paras[i] for i in sorted(idx)], dataset)

    for i in sup:
        if count(text_of(kept + [i])) <= budget:
            kept.append(i)
            continue
        used = count(text_of(kept)) if kept else 0
        room = budget - used - 2  # separator / title slack
        if room > 0:
            orig = paras[i]["text"]
            lo, hi = 0, count(orig)
            while lo < hi:  # largest prefix that keeps the whole under budget
                mid = (lo + hi + 1) // 2
                paras[i]["text"] = cut(orig, mid)
                if count(text_of(kept + [i])) <= budget:
                    lo = mid
                else:
                    hi = mid - 1
            paras[i]["text"] = cut(orig, lo)
            if lo > 0:
                kept.append(i)
                cut_idx.append(i)
        break
    if len(kept) == len(sup):
        for i in range(n):
            if i in kept:
                continue
            if count(text_of(kept + [i])) <= budget:
                kept.append(i)
    text = text_of(kept)
    return text, {"kept": sorted(kept), "cut": cut_idx, "n_tokens": count(text), "truncated": True}


def build_prompt(
    row: dict,
    mode: str = "warm",
    *,
    context_budget: int | None = None,
    tokenizer=None,
    answer_format: AnswerFormat | None = None,
) -> tuple[str, dict]:
    """The prompt for one uniform record (``mode`` "warm" or "cold"); returns ``(prompt, truncation_info)``.

    A warm prompt asks for ``answer_format`` (:class:`~tsallis_ref.data.answer_format.AnswerFormat`, or a rollout
    config; default: a last line "Answer: <answer>"); a cold prompt asks for nothing."""
    if mode not in ("warm", "cold"):
        raise ValueError(f"mode must be 'warm' or 'cold', got {mode!r}")
    ds = row["dataset"]
    if ds not in WARM_TEMPLATES:
        raise ValueError(f"record {row.get('id')!r}: unknown dataset {ds!r}")
    paragraphs = list(row["paragraphs"])
    ctx, info = truncate_paragraphs(paragraphs, list(row["supporting"] or []), context_budget, ds, tokenizer)
    tpl = warm_template(ds, answer_format) if mode == "warm" else COLD_TEMPLATE
    return tpl.format(context=ctx, question=row["question"].strip()), info


def to_training_examples(
    ds,
    mode: str = "warm",
    *,
    context_budget: int | None = None,
    tokenizer=None,
    limit: int | None = None,
    answer_format: AnswerFormat | None = None,
) -> list[dict]:
    """The trainer contract: ``[{id, prompt, answer, aliases}]`` from a uniform ``datasets.Dataset`` (or rows).

    ``answer`` is the gold output y*; ``aliases`` the other accepted strings (MuSiQue aliases, FinQA's other
    renderings of the same number). ``context_budget`` caps the context in tokens (``tokenizer`` or
    white-space tokens), keeping supporting paragraphs. ``answer_format``: the layout warm prompts ask for
    (the run's ``AnswerFormat.from_config(cfg.rollout)``, so the prompt asks for what is teacher-forced).
    """
    out = []
    for j, row in enumerate(ds):
        if limit is not None and j >= limit:
            break
        prompt, _ = build_prompt(
            row, mode, context_budget=context_budget, tokenizer=tokenizer, answer_format=answer_format
        )
        out.append({"id": row["id"], "prompt": prompt, "answer": row["answer"], "aliases": list(row["aliases"] or [])})
    return out
