"""``load_examples``: the trainer's data entry point (``data.dataset`` in a config) over the three benchmarks.

Maps a benchmark name and a split to a file of the real samples in ``../shared/data`` (located by
:func:`~tsallis_ref.data.loaders.default_data_dir`, or ``data_dir``, or ``$TSALLIS_REF_DATA``), loads it with
:func:`~tsallis_ref.data.loaders.load_benchmark` into the uniform schema and builds the warm- or cold-start
prompts with :func:`~tsallis_ref.data.prompts.to_training_examples`. A Hub dataset id (``"owner/name"``, optionally
``"owner/name:config"``) or a local ``.json``/``.jsonl``/``.parquet`` path goes straight to ``load_benchmark``.

>>> SPLIT_FILES["hotpotqa"]["train"]
'hotpotqa/train_100.json'
"""

from __future__ import annotations

import os
from pathlib import Path

from .loaders import DATASETS, DataFormatError, default_data_dir, load_benchmark
from .prompts import to_training_examples

__all__ = ["SPLIT_FILES", "SPLIT_ALIASES", "HUB_IDS", "resolve_source", "load_examples"]

#: benchmark -> split -> file inside the shared data folder (see ../shared/data/README.md)
SPLIT_FILES = {
    "finqa": {"train": "finqa/train_250_processed.jsonl", "dev": "finqa/dev_838_processed.jsonl"},
    "hotpotqa": {"train": "hotpotqa/train_100.json", "dev": "hotpotqa/dev_distractor_200.jsonl"},
    "musique": {"train": "musique/ans_train_100.json", "dev": "musique/ans_200.jsonl"},
}
SPLIT_ALIASES = {"train": "train", "dev": "dev", "validation": "dev", "valid": "dev", "val": "dev"}
#: Hub copies used when no local folder exists (needs a reachable hub): (dataset id, config, split names).
#: FinQA has none here: ibm-research/finqa is a loading script (finqa.py only), which ``datasets`` >= 4 does not
#: run; pass a local file, or the id of a copy with data files (the flat ibm/dreamerdeo schema loads).
HUB_IDS = {
    "hotpotqa": ("hotpotqa/hotpot_qa", "distractor", {"train": "train", "dev": "validation"}),
    "musique": ("dgslibisey/MuSiQue", None, {"train": "train", "dev": "validation"}),
}


def _norm(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def resolve_source(name: str, split: str = "train", data_dir: str | os.PathLike | None = None) -> dict:
    """Where ``load_examples`` reads from: ``{"kind": "file"|"hub", "source", "dataset", "config", "split"}``.

    Raises ``ValueError`` naming the input and the fix (unknown name / split, no data folder)."""
    if isinstance(name, os.PathLike):  # a pathlib.Path names a local file (or a directory: said so on load)
        name = os.fspath(name)
        return {"kind": "file", "source": name, "dataset": None, "config": None, "split": split}
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset name must be a non-empty string; got {name!r}")
    if (
        name.lower().endswith((".json", ".jsonl", ".parquet", ".pq"))
        or Path(name).is_file()
        or (Path(name).is_dir() and _norm(name) not in DATASETS)
    ):  # a directory: load_benchmark says so
        return {"kind": "file", "source": name, "dataset": None, "config": None, "split": split}
    key = _norm(name)
    if key in DATASETS:
        if split not in SPLIT_ALIASES:
            raise ValueError(
                f"split={split!r} for {key}: use one of {sorted(SPLIT_ALIASES)} "
                "(train -> the train sample, dev/validation -> the dev sample)"
            )
        s = SPLIT_ALIASES[split]
        root = Path(data_dir) if data_dir is not None else default_data_dir()
        if root is not None:
            f = root / SPLIT_FILES[key][s]
            if not f.is_file():
                raise ValueError(
                    f"data_dir={str(root)!r} has no {SPLIT_FILES[key][s]!r} for {key}/{s}; "
                    "point data_dir (or $TSALLIS_REF_DATA) at the shared data folder"
                )
            return {"kind": "file", "source": str(f), "dataset": key, "config": None, "split": s}
        if key in HUB_IDS:
            hid, conf, splits = HUB_IDS[key]
            return {"kind": "hub", "source": hid, "dataset": key, "config": conf, "split": splits[s]}
        raise ValueError(
            f"no local data folder for {key} (set data_dir or $TSALLIS_REF_DATA to the folder holding "
            f"{SPLIT_FILES[key][s]!r}) and no known Hub copy: pass a Hub dataset id as the name"
        )
    if "/" in name:  # a Hub id, optionally "owner/name:config"
        hid, _, conf = name.partition(":")
        return {"kind": "hub", "source": hid, "dataset": None, "config": conf or None, "split": split}
    raise ValueError(f"unknown dataset {name!r}: use one of {DATASETS}, a .json/.jsonl path or a Hub id 'owner/name'")


def load_examples(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    regime: str = "warm",
    limit: int | None = None,
    *,
    context_budget: int | None = None,
    tokenizer=None,
    dataset: str | None = None,
    answer_format=None,
) -> list[dict]:
    """Training / evaluation examples ``[{id, prompt, answer, aliases}]`` of a benchmark.

    ``name``: ``finqa`` | ``hotpotqa`` | ``musique`` (the shared samples; ``split`` train -> the train file,
    dev/validation -> the dev file), a local file, or a Hub id. ``regime``: ``warm`` (task description and
    answer format) or ``cold`` (linearised input only), paper §7.1. ``limit``: the first ``limit`` records.
    ``context_budget``: cap on context tokens (``tokenizer``'s, else white-space), supporting paragraphs kept.
    ``dataset``: the benchmark of a file / Hub source when it cannot be told from the record keys.
    ``answer_format``: the :class:`~tsallis_ref.data.answer_format.AnswerFormat` (or the rollout config) whose
    layout warm prompts ask for; the default asks for a last line "Answer: <answer>".
    Skipped records are counted in a logged warning; a source with no usable record raises ``DataFormatError``.
    """
    if regime not in ("warm", "cold"):
        raise ValueError(f"regime must be 'warm' or 'cold'; got {regime!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None; got {limit!r}")
    src = resolve_source(name, split, data_dir)
    if src["kind"] == "file":
        ds, report = load_benchmark(src["source"], dataset or src["dataset"], limit=limit)
    else:
        ds, report = load_benchmark(
            src["source"], dataset or src["dataset"], split=src["split"], name=src["config"], limit=limit
        )
    if len(ds) == 0:  # every record malformed or unanswerable: say so before any compute
        raise DataFormatError(f"no usable record in {src['source']}: {report}")
    return to_training_examples(
        ds, regime, context_budget=context_budget, tokenizer=tokenizer, limit=limit, answer_format=answer_format
    )
