"""The analysis of the chapter "Cold start in miniature", on recorded runs (book layer).

The records are written by ``scripts/run_miniature_escape.py`` (``data/miniature/escape_*.json``): each run has
an ``eval_step`` / ``P`` curve, a label ("GARL q=1"), ``q``, ``lr``, ``seed`` and ``p0_target``. Each run's
outcome is ``tsallis_ref.miniature.run_outcome`` (escaped; escaped, then collapsed; collapsed; stalled).

* :func:`outcomes`: ``{(label, lr, seed): (outcome, escape step)}`` of a learning-rate grid.
* :func:`best_stable_lr`: per label, the learning rate at which every seed escapes and stays escaped, with the
  fastest median escape step.
* :func:`p0_sweep`: the escape step against ``p0`` per (label, q, lr), and whether no run of it collapsed.
* :func:`fit_escape_constant`: the one free constant of Theorem 5.2's ``T_q(p0)`` (Eq. 15) that matches a set of
  measured escape steps, fitted in log space.
* :func:`new_record` starts the record a miniature script writes (its command and machine), which
  :func:`provenance` reads back.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence

from ..miniature import run_outcome
from ..theory import escape_time
from .records import wrap_command

__all__ = [
    "load_records",
    "new_record",
    "provenance",
    "outcomes",
    "best_stable_lr",
    "p0_sweep",
    "fit_escape_constant",
]

OUTCOMES = ("escaped", "escaped, then collapsed", "collapsed", "stalled")


def load_records(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """The JSON records at ``paths``, in order. A missing file raises ``FileNotFoundError`` naming it."""
    recs = []
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"record {os.fspath(path)!r} not found: run the command in the chapter's "
                "'recorded by' line, or point the parameter at an existing record"
            )
        with open(path) as f:
            recs.append(json.load(f))
    return recs


def new_record(script: str, argv: Sequence[str] | None = None, **fields) -> dict:
    """The head of the record that ``script`` (a path such as ``scripts/run_miniature_escape.py``) writes:
    ``produced_by``, the script and its arguments (``sys.argv[1:]`` where ``argv`` is None), ``machine``
    (:func:`tsallis_ref.miniature.machine_info`: date, versions, processor, threads), then ``fields`` in their
    order. :func:`provenance` reads the first two back."""
    import sys

    from ..miniature import machine_info

    args = sys.argv[1:] if argv is None else argv
    return {"produced_by": f"{script} " + " ".join(args), "machine": machine_info(), **fields}


def provenance(rec: dict, name: str = "", width: int = 75) -> str:
    """The record's name and command (broken into shell lines of at most ``width`` characters by
    :func:`~tsallis_ref.experiments.records.wrap_command`), then its date, processor, torch version and
    threads."""
    m = rec.get("machine", {})
    head = f"{name}:\n" if name else ""
    return (
        f"{head}{wrap_command(rec.get('produced_by', '?'), width)}\n  date {m.get('date_utc', '?')}, "
        f"{m.get('processor', '?')}, torch {m.get('torch', '?')}, {m.get('torch_threads', '?')} thread"
    )


def outcomes(runs: Sequence[dict], delta: float) -> dict[tuple, tuple[str, int | None]]:
    """``{(label, lr, seed): (outcome, escape step or None)}`` for recorded ``runs`` at threshold ``delta``."""
    return {(r["label"], r["lr"], r["seed"]): run_outcome(r, delta) for r in runs}


def best_stable_lr(outcome: dict[tuple, tuple[str, int | None]]) -> dict[str, tuple[float, int]]:
    """Per label: ``(lr, median escape step)`` at the learning rate where every seed has the outcome "escaped"
    (reached ``delta`` and stayed above ``delta/2``), choosing the fastest median; labels with no such learning
    rate are absent. The median of an even number of seeds is the upper one."""
    by: dict[tuple, list] = {}
    for (label, lr, seed), res in outcome.items():
        by.setdefault((label, lr), []).append(res)
    best: dict[str, tuple[float, int]] = {}
    for (label, lr), res in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if res and all(o == "escaped" for o, _ in res):
            med = sorted(e for _, e in res)[len(res) // 2]
            if label not in best or med < best[label][1]:
                best[label] = (lr, med)
    return best


def p0_sweep(runs: Iterable[dict], configs: Sequence[tuple], delta: float) -> tuple[dict, dict]:
    """``sweep, stable``: for each ``(label, q, lr)`` in ``configs``, the list of
    ``(p0 target, seed, outcome, escape step)`` of the matching ``runs``, and whether none of them collapsed
    (every outcome "escaped" or "stalled")."""
    sweep: dict[tuple, list] = {c: [] for c in configs}
    for r in runs:
        key = (r["label"], r["q"], r["lr"])
        if key in sweep:
            sweep[key].append((r["p0_target"], r["seed"]) + run_outcome(r, delta))
    stable = {c: all(o in ("escaped", "stalled") for _, _, o, _ in v) for c, v in sweep.items()}
    return sweep, stable


def fit_escape_constant(points: Sequence[tuple[float, float]], q: float, delta: float) -> float:
    """The constant ``k`` for which ``k * T_q(p0, delta)`` (Eq. 15, :func:`tsallis_ref.theory.escape_time`) best
    matches measured ``(p0, escape step)`` pairs in log space: ``exp(mean(log(step / T_q(p0))))``. ``k`` absorbs
    the learning rate and the score norm, which Theorem 5.2 leaves free."""
    if not points:
        raise ValueError("fit_escape_constant: no (p0, escape step) pairs to fit")
    logs = []
    for p0, step in points:
        if not (0.0 < p0 < delta) or step <= 0:
            raise ValueError(
                f"fit_escape_constant: need 0 < p0 < delta={delta} and a positive step; got ({p0}, {step})"
            )
        logs.append(math.log(step / escape_time(p0, q, delta)))
    return math.exp(sum(logs) / len(logs))
