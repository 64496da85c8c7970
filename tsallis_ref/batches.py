"""What a training run reads: its examples (from the config), their seeded and resumable order, and the
encoded batch a step takes (:class:`Batch`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import ConfigError, TrainConfig, validate_examples
from .data.answer_format import AnswerFormat
from .data.loaders import DataFormatError, read_records
from .rollout import encode_answer, encode_prompt

__all__ = ["load_examples", "DataOrder", "Batch", "encode_examples"]


def load_examples(cfg: TrainConfig) -> list[dict]:
    """The training examples, as the trainer's contract says: dicts ``{id, prompt, answer[, aliases]}``.

    * ``data.path`` is a JSONL of such dicts: read as is;
    * ``data.path`` is a benchmark file (FinQA / HotpotQA / MuSiQue, original or processed) and/or
      ``data.dataset`` names the benchmark: ``tsallis_ref.data.load_examples`` (the warm or cold prompt
      builder of ``data.regime``);
    * ``data.dataset`` alone: ``tsallis_ref.data.load_examples`` resolves the benchmark's ``data.split``
      (train / dev) under ``data.data_dir`` (default: the shared samples, ``default_data_dir()``), or a Hub id.

    ``data.context_budget`` caps the context of benchmark prompts (supporting paragraphs kept first).
    """
    from .data import load_examples as data_load_examples

    d = cfg.data
    rows = None
    if d.path:
        p = Path(d.path)
        if not p.exists():
            raise ConfigError(f"config field `data.path`: file {str(p)!r} does not exist")
        if d.dataset is None and p.suffix == ".jsonl":
            try:  # the data loaders' reader: a file that is not UTF-8 or not JSON is named with the fix
                records = read_records(p)
            except DataFormatError as e:
                raise ConfigError(f"config field `data.path`: {e}") from None
            first = records[0] if records else None
            if isinstance(first, dict) and {"id", "prompt", "answer"} <= set(first):
                rows = records
    if rows is None:
        try:  # a benchmark file (data.path), or a benchmark name resolved under data.data_dir / a Hub id
            rows = data_load_examples(
                d.path or d.dataset,
                split=d.split,
                data_dir=d.data_dir,
                regime=d.regime,
                limit=d.limit,
                context_budget=d.context_budget,
                dataset=d.dataset if d.path else None,
                answer_format=AnswerFormat.from_config(cfg.rollout),
            )
        except ValueError as e:
            fieldname = "data.path" if d.path else "data.dataset / data.split / data.data_dir"
            raise ConfigError(f"config field `{fieldname}`: {e}") from e
    if d.limit is not None:
        rows = rows[: d.limit]
    return validate_examples(rows)


class DataOrder:
    """A seeded order over the examples: one permutation per epoch (``seed + epoch``), resumable from
    ``(epoch, pos)``."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.pos = 0, 0
        self._perm = self._make(0)

    def _make(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng(self.seed + epoch).permutation(self.n)

    def next(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos == self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self._perm = self._make(self.epoch)
            out.append(int(self._perm[self.pos]))
            self.pos += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "order": self._perm.tolist()}

    def load_state_dict(self, st: dict) -> None:
        self.epoch, self.pos = st["epoch"], st["pos"]
        self._perm = np.asarray(st["order"])


@dataclass
class Batch:
    """The prompts of one step, encoded: ``prompt_ids[b]`` (x), ``target_ids[b]`` (the teacher-forced answer
    segment ``answer_prefix + y* (+ EOS)``, GARL / PAFT), the gold ``answers[b]`` and ``aliases[b]`` (the
    verifier's, GRPO / RLOO / MaxRL) and the examples' ``ids``."""

    ids: list[str]
    prompt_ids: list[list[int]]
    target_ids: list[list[int]]
    answers: list[str]
    aliases: list[Sequence[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def select(self, idx: Sequence[int]) -> Batch:
        """The sub-batch of the examples at positions ``idx``."""
        al = self.aliases or [()] * len(self)
        return Batch(
            [self.ids[i] for i in idx],
            [self.prompt_ids[i] for i in idx],
            [self.target_ids[i] for i in idx],
            [self.answers[i] for i in idx],
            [al[i] for i in idx],
        )


def encode_examples(tokenizer, examples: Sequence[dict], cfg: TrainConfig) -> Batch:
    """Every example encoded once (x with the model's chat template if configured; the answer segment)."""
    return Batch(
        ids=[ex["id"] for ex in examples],
        prompt_ids=[
            encode_prompt(
                tokenizer,
                ex["prompt"],
                chat_template=cfg.model.chat_template,
                enable_thinking=cfg.model.enable_thinking,
            )
            for ex in examples
        ],
        target_ids=[encode_answer(tokenizer, ex["answer"], cfg.rollout) for ex in examples],
        answers=[ex["answer"] for ex in examples],
        aliases=[tuple(ex.get("aliases", ())) for ex in examples],
    )
