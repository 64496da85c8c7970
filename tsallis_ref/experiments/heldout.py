"""The analysis of the chapter "Held-out accuracy from a cold start", on recorded runs (book layer; needs pandas,
and matplotlib for the figures).

The records are written by ``scripts/run_heldout.py`` (one JSON file per dataset / method / q / seed in
``data/heldout/``, and the untrained model's test per dataset and seed in ``data/heldout/base/``): the run's
settings, the id sets of its training, validation and test questions, the validation curve (p@1, p@k, maj@k at
every validation step), the per-step training curve (``log_wbar_mean`` for GARL / PAFT, ``reward_mean`` for
GRPO / RLOO / MaxRL, ``loss``) and the test metrics of the checkpoint with the best validation maj@k (the paper's
protocol, Sec. 7.1).

* :func:`load_records` / :func:`load_base`: read and check a folder of records (a malformed one raises
  :class:`RecordError` naming its file and field).
* :func:`id_overlaps` / :func:`assert_disjoint`: the training, validation and test ids of a run are disjoint.
* :func:`table1`, :func:`table2`, :func:`table3`: the paper's Tables 1-3 with ours beside them on the same
  dataset, each "ours" cell the per-seed values; :func:`for_reader` shows their mean and the values per seed,
  and "not run" where nothing ran.
* :func:`runs_table`, :func:`signal_table`: one row per run (validation at step 0, at its peak and at the end;
  the tested checkpoint) and its training signal (log wbar or the mean reward) early and late.
* :func:`plot_validation`, :func:`plot_training`: the learning curves.
* :func:`every_seed`: for each pair of methods run on the same seeds (>= 2), whether one is >= the other on
  every seed; the chapter's asserts and findings use only these.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional

from ..evaluation import JUDGE_DESCRIPTIONS
from .paper import PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3

__all__ = [
    "RecordError",
    "METHODS",
    "PLAN",
    "key_of",
    "method_name",
    "validate_record",
    "load_records",
    "load_base",
    "id_overlaps",
    "assert_disjoint",
    "runs_table",
    "signal_table",
    "settings_table",
    "table1",
    "table2",
    "table3",
    "for_reader",
    "every_seed",
    "plot_validation",
    "plot_training",
    "plan_status",
    "provenance_table",
    "portable_command",
    "findings",
    "scale_statement",
]

METHODS = ("grpo", "rloo", "maxrl", "garl", "paft")
#: the verifier-reward methods (their training signal is the mean 0/1 reward); GARL / PAFT log log wbar
VERIFIER = ("grpo", "rloo", "maxrl")
#: the runs of ``scripts/run_heldout_sweep.py`` per dataset: ``{(method, q): seeds}``
PLAN = {
    ("grpo", None): (0, 1),
    ("rloo", None): (0,),
    ("maxrl", None): (0,),
    ("garl", 0.0): (0,),
    ("garl", 0.5): (0,),
    ("garl", 0.75): (0, 1),
    ("garl", 1.0): (0, 1),
    ("paft", 0.75): (0,),
    ("paft", 1.0): (0,),
}
#: the metrics of a test, and their name in the paper's tables (k = 16 there)
METRICS = ("p@1", "p@k", "maj@k")
_PAPER_METRIC = {"p@1": "p@1", "p@k": "p@16", "maj@k": "m@16"}


class RecordError(ValueError):
    """A held-out record that does not have the fields the chapter reads (the message names the file)."""


# ---------------------------------------------------------------------------------------------------------
# Reading and checking records
# ---------------------------------------------------------------------------------------------------------
def key_of(method: str, q) -> tuple:
    """``(method, q)`` with ``q`` None for the verifier methods and a float rounded to 4 digits otherwise."""
    return (method, None) if method in VERIFIER or method == "base" or q is None else (method, round(float(q), 4))


def method_name(method: str, q=None) -> str:
    """How a table row names a method: "GRPO", "MaxRL", "GARL q=0 (RB-RLOO)", "PAFT q=0.75", "Base (untrained)"."""
    if method == "base":
        return "Base (untrained)"
    if method in VERIFIER:
        return {"grpo": "GRPO", "rloo": "RLOO", "maxrl": "MaxRL"}[method]
    return f"{method.upper()} q={q:g}" + (" (RB-RLOO)" if method == "garl" and q == 0 else "")


def _need(rec: dict, path: str, field: str, kind, where: str = ""):
    obj = rec
    for part in field.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise RecordError(
                f"record {path}: field `{field}` is missing{where}; it is not a complete scripts/run_heldout.py "
                "record (re-run that run, or move the file out of the folder)"
            )
        obj = obj[part]
    if not isinstance(obj, kind) or (kind is not bool and isinstance(obj, bool) and bool not in _tuple(kind)):
        raise RecordError(
            f"record {path}: field `{field}`{where} is {type(obj).__name__} {str(obj)[:60]!r}, expected "
            f"{' or '.join(k.__name__ for k in _tuple(kind))}"
        )
    return obj


def _tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def validate_record(rec, path: str = "<record>") -> dict:
    """Check that ``rec`` (a ``scripts/run_heldout.py`` record read from ``path``) has every field the chapter
    reads, with the right types; return it. Raises :class:`RecordError` naming ``path`` and the field."""
    if not isinstance(rec, dict):
        raise RecordError(f"record {path}: a JSON object is expected, found {type(rec).__name__}")
    for field, kind in (
        ("label", str),
        ("command", str),
        ("date", str),
        ("hardware", str),
        ("settings", dict),
        ("dataset", str),
        ("method", str),
        ("seed", int),
        ("ids.train", list),
        ("ids.validation", list),
        ("ids.test", list),
        ("validation_curve", list),
        ("train_curve", list),
        ("best_step", int),
        ("test_best", dict),
        ("settings.eval.k", int),
        ("settings.steps", int),
    ):
        _need(rec, path, field, kind)
    if rec["method"] not in METHODS:
        raise RecordError(f"record {path}: field `method` is {rec['method']!r}; one of {METHODS} is expected")
    q = rec.get("q")
    if rec["method"] in VERIFIER:
        if q is not None:
            raise RecordError(f"record {path}: field `q` is {q!r} for {rec['method']}; a verifier method has q null")
    elif isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 <= q <= 1.0:
        raise RecordError(f"record {path}: field `q` is {q!r}; {rec['method']} needs a commitment q in [0, 1]")
    if not rec["validation_curve"]:
        raise RecordError(f"record {path}: field `validation_curve` is empty; the run was not validated")
    for i, p in enumerate(rec["validation_curve"]):
        for m in ("step",) + tuple(f"val/{m}" for m in METRICS):
            _need(p, path, m, (int, float) if m != "step" else int, f" (validation_curve[{i}])")
    signal = "reward_mean" if rec["method"] in VERIFIER else "log_wbar_mean"
    for i, p in enumerate(rec["train_curve"]):
        for m, kind in (("step", int), ("loss", (int, float)), (signal, (int, float))):
            _need(p, path, m, kind, f" (train_curve[{i}])")
    for m in METRICS:
        _need(rec, path, f"test_best.test/{m}", (int, float))
    if rec["best_step"] not in [p["step"] for p in rec["validation_curve"]]:
        raise RecordError(
            f"record {path}: field `best_step` is {rec['best_step']}, not a step of `validation_curve` "
            f"({[p['step'] for p in rec['validation_curve']]})"
        )
    return rec


def load_records(folder: str | os.PathLike, include_smoke: bool = False) -> list[dict]:
    """Every run record ``<folder>/*.json`` (sorted by file name; not ``base/``), each checked with
    :func:`validate_record`; the smoke runs of ``--smoke`` (label ``smoke_*``, the tiny model) are left out
    unless ``include_smoke``. A folder that does not exist gives an empty list (nothing recorded yet)."""
    folder = Path(folder)
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RecordError(f"record {path}: not valid JSON ({e}); re-run that run or remove the file") from None
        validate_record(rec, str(path))
        if rec["label"] != path.stem:
            raise RecordError(f"record {path}: field `label` is {rec['label']!r}, the file name says {path.stem!r}")
        if include_smoke or not rec["label"].startswith("smoke_"):
            out.append(rec)
    return out


def load_base(folder: str | os.PathLike) -> list[dict]:
    """The untrained model's tests ``<folder>/base/<dataset>_seed<seed>.json`` as ``[{"dataset", "seed", "k",
    "judge", "test"}]`` (``judge`` None when the file names none), sorted by file name (empty when there is none).
    Raises :class:`RecordError` naming a malformed file."""
    out = []
    d = Path(folder) / "base"
    for path in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RecordError(f"record {path}: not valid JSON ({e}); remove the file") from None
        for field, kind in (("key.dataset", str), ("key.seed", int), ("key.eval.k", int), ("test", dict)):
            _need(rec, str(path), field, kind)
        for m in METRICS:
            _need(rec, str(path), f"test.test/{m}", (int, float))
        out.append({"dataset": rec["key"]["dataset"], "seed": rec["key"]["seed"], "k": rec["key"]["eval"]["k"],
                    "judge": rec["key"]["eval"].get("judge"), "test": rec["test"]})  # fmt: skip
    return out


def id_overlaps(rec: dict) -> dict:
    """``{"train & validation", "train & test", "validation & test"}``: the ids the two sets of ``rec`` share
    (sorted lists; all empty for a run of the protocol), plus ``"duplicates"`` within a set."""
    ids = {k: rec["ids"][k] for k in ("train", "validation", "test")}
    out = {
        f"{a} & {b}": sorted(set(ids[a]) & set(ids[b]))
        for a, b in (("train", "validation"), ("train", "test"), ("validation", "test"))
    }
    out["duplicates"] = sorted({f"{k}:{i}" for k, v in ids.items() for i in v if v.count(i) > 1})
    return out


def assert_disjoint(records: Iterable[dict]) -> int:
    """Assert that the training, validation and test ids of every record are disjoint (and none repeats within
    a set); return the number of records checked. The AssertionError names the run and the shared ids."""
    n = 0
    for rec in records:
        bad = {k: v[:5] for k, v in id_overlaps(rec).items() if v}
        assert not bad, f"{rec['label']}: held-out ids shared with another set: {bad}"
        n += 1
    return n


# ---------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------
def _by_key(records: Iterable[dict], dataset: str) -> dict:
    """``{(method, q): [records of dataset, by seed]}``."""
    out: dict = {}
    for r in records:
        if r["dataset"] == dataset:
            out.setdefault(key_of(r["method"], r.get("q")), []).append(r)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in out.items()}


def _ours(runs: Sequence[dict], metric: str) -> tuple:
    """The per-seed test values (best validation checkpoint) of ``runs``, in seed order; () when none ran."""
    return tuple(float(r["test_best"][f"test/{metric}"]) for r in runs)


def _row_keys(records: Iterable[dict], dataset: str, paper_keys: Iterable[tuple]) -> list[tuple]:
    """The paper's rows, then every (method, q) of the plan or of the records that the paper has not."""
    keys = [key_of(m, q) for m, q in paper_keys]
    extra = set(PLAN) | set(_by_key(records, dataset))
    order = {m: i for i, m in enumerate(METHODS)}
    keys += sorted((k for k in extra if k not in keys), key=lambda k: (order[k[0]], -1 if k[1] is None else k[1]))
    return keys


def table1(records: Sequence[dict], dataset: str = "finqa"):
    """Table 1 layout: cold-start methods x (p@1, p@k, maj@k), ours = the test of the best validation checkpoint
    (a tuple of per-seed values, () where not run), in %. On FinQA the paper's Table 1 column (p@1, p@16, m@16;
    None where the paper has no such row) stands beside ours; the paper's Table 1 is FinQA only, so for another
    ``dataset`` there is no paper column. Column ``seeds``: the seeds that ran."""
    import pandas as pd

    runs = _by_key(records, dataset)
    paper = {key_of(m, q): v for (m, q), v in PAPER_TABLE1.items()} if dataset == "finqa" else None
    rows = []
    for key in _row_keys(records, dataset, PAPER_TABLE1 if dataset == "finqa" else ()):
        row = {"method": method_name(*key)}
        if paper is not None:
            p = paper.get(key)
            row.update({f"paper {_PAPER_METRIC[m]}": (None if p is None else p[i]) for i, m in enumerate(METRICS)})
        rs = runs.get(key, [])
        row.update({f"ours {m}": _ours(rs, m) for m in METRICS})
        row["seeds"] = tuple(r["seed"] for r in rs)
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def table2(records: Sequence[dict], dataset: str):
    """Table 2 layout on ``dataset``: the paper's warm-start GRPO against its cold-start GARL q = 0.75, 1, ours
    beside them (we ran cold starts only: warm GRPO is "not run"), and our cold-start GRPO as a row of its own
    (on FinQA beside the paper's Table 1 GRPO row, the paper's only cold-start GRPO)."""
    import pandas as pd

    if dataset not in PAPER_TABLE2:
        raise ValueError(f"dataset={dataset!r}: the paper's Table 2 has {sorted(PAPER_TABLE2)}")
    runs = _by_key(records, dataset)
    rows = []
    entries = list(PAPER_TABLE2[dataset].items())
    entries.append((("grpo", None, "cold"), PAPER_TABLE1[("grpo", None)] if dataset == "finqa" else None))
    for (method, q, regime), paper in entries:
        rs = runs.get(key_of(method, q), []) if regime == "cold" else []
        row = {"method": f"{method_name(method, q)} ({regime})"}
        row.update({f"paper {_PAPER_METRIC[m]}": (None if paper is None else paper[i]) for i, m in enumerate(METRICS)})
        row.update({f"ours {m}": _ours(rs, m) for m in METRICS})
        row["seeds"] = tuple(r["seed"] for r in rs)
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def table3(records: Sequence[dict], base: Sequence[dict], dataset: str):
    """Table 3 layout on ``dataset``: maj@k per method, the paper's (warm start, maj@16, "*" = a peak before a
    collapse) beside ours (cold start: the test of the best validation checkpoint, per seed). The base row is
    the untrained model's test (``base``, from :func:`load_base`), per seed."""
    import pandas as pd

    runs = _by_key(records, dataset)
    paper = {key_of(m, q): v[dataset] for (m, q), v in PAPER_TABLE3.items()}
    rows = []
    for key in _row_keys(records, dataset, PAPER_TABLE3):
        if key[0] == "base":
            bs = sorted((b for b in base if b["dataset"] == dataset), key=lambda b: b["seed"])
            ours = tuple(float(b["test"]["test/maj@k"]) for b in bs)
            p1 = tuple(float(b["test"]["test/p@1"]) for b in bs)
            seeds = tuple(b["seed"] for b in bs)
        else:
            rs = runs.get(key, [])
            ours, p1, seeds = _ours(rs, "maj@k"), _ours(rs, "p@1"), tuple(r["seed"] for r in rs)
        rows.append(
            {
                "method": method_name(*key),
                "paper m@16 (warm start)": paper.get(key),
                "ours maj@k (cold start)": ours,
                "ours p@1 (cold start)": p1,
                "seeds": seeds,
            }
        )
    return pd.DataFrame(rows).set_index("method")


def _cell(v, digits: int) -> str:
    if isinstance(v, tuple):
        if not v:
            return "not run"
        mean = sum(v) / len(v)
        return f"{mean:.{digits}f}" if len(v) == 1 else f"{mean:.{digits}f} ({', '.join(f'{x:.{digits}f}' for x in v)})"
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def for_reader(table, digits: int = 1):
    """``table`` (from :func:`table1` / :func:`table2` / :func:`table3`) as a reader should see it: each "ours"
    cell the mean over seeds, followed by the per-seed values in brackets when more than one seed ran (seed
    order: column ``seeds``), "not run" where no run is recorded; the paper's numbers rounded to ``digits``,
    "-" where the paper has no such row."""
    if not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits={digits!r}: the number of decimals must be a non-negative int")
    out = table.copy()
    for c in out.columns:
        if c == "seeds":
            out[c] = [", ".join(str(s) for s in v) if v else "-" for v in out[c]]
        else:
            out[c] = [_cell(v, digits) for v in out[c]]
    return out


# ---------------------------------------------------------------------------------------------------------
# One row per run: what validation saw, and the training signal
# ---------------------------------------------------------------------------------------------------------
def _signal(rec: dict) -> tuple[str, list, list]:
    name = "reward_mean" if rec["method"] in VERIFIER else "log_wbar_mean"
    return name, [p["step"] for p in rec["train_curve"]], [float(p[name]) for p in rec["train_curve"]]


def runs_table(records: Sequence[dict], dataset: Optional[str] = None):
    """One row per run (of ``dataset``, or all): validation maj@k at step 0 (the untrained model), at its peak and
    at the last validation; the best (tested) step; whether the best is the untrained model (step 0) and whether
    validation fell after its peak; the test p@1, p@k, maj@k of the best checkpoint."""
    import pandas as pd

    rows = []
    for r in records:
        if dataset is not None and r["dataset"] != dataset:
            continue
        v = r["validation_curve"]
        maj = [p["val/maj@k"] for p in v]
        rows.append(
            {
                "dataset": r["dataset"],
                "method": method_name(r["method"], r.get("q")),
                "seed": r["seed"],
                "val maj@k step 0": maj[0],
                "val maj@k peak": max(maj),
                "val maj@k last": maj[-1],
                "best step": r["best_step"],
                "best = untrained": r["best_step"] == 0,
                "fell after peak": maj[-1] < max(maj),
                **{f"test {m}": r["test_best"][f"test/{m}"] for m in METRICS},
            }
        )
    return pd.DataFrame(rows)


def signal_table(records: Sequence[dict], dataset: Optional[str] = None, window: int = 5):
    """One row per run: its training signal (``log_wbar_mean``, the log of the mean over the M rationales of
    p(y*|x, z_m) (the likelihood weights w_m of Eq. 7), for GARL / PAFT; ``reward_mean``, the mean 0/1 reward, for GRPO /
    RLOO / MaxRL), averaged over the first and the last ``window`` steps, its maximum, and the fraction of steps
    with a non-zero reward (verifier methods: a step with none has a zero advantage for every rationale)."""
    import pandas as pd

    rows = []
    for r in records:
        if dataset is not None and r["dataset"] != dataset:
            continue
        name, steps, y = _signal(r)
        if not y:
            continue
        rows.append(
            {
                "dataset": r["dataset"],
                "method": method_name(r["method"], r.get("q")),
                "seed": r["seed"],
                "signal": name,
                f"first {window} steps": sum(y[:window]) / len(y[:window]),
                f"last {window} steps": sum(y[-window:]) / len(y[-window:]),
                "max": max(y),
                "steps with reward > 0": (sum(v > 0 for v in y) / len(y)) if name == "reward_mean" else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def settings_table(records: Sequence[dict]):
    """The protocol's settings as the records hold them: one row per setting, its value(s) over all records
    (several values joined with " / " when records differ)."""
    import pandas as pd

    def get(r, path):
        obj = r
        for p in path.split("."):
            obj = obj.get(p) if isinstance(obj, dict) else None
        return obj

    fields = {
        "model": lambda r: r["settings"]["model"]["name_or_path"],
        "base weights": lambda r: "4-bit NF4" if get(r, "settings.model.load_in_4bit") else "float32",
        "LoRA rank r": lambda r: get(r, "settings.model.lora.r"),
        "prompts": lambda r: get(r, "settings.data.regime"),
        "context budget (tokens)": lambda r: get(r, "settings.data.context_budget"),
        "M (rationales per prompt)": lambda r: get(r, "settings.rollout.M"),
        "rationale budget (tokens)": lambda r: get(r, "settings.rollout.rationale_budget"),
        "answer budget (tokens)": lambda r: get(r, "settings.rollout.answer_budget"),
        "GARL baseline (Eq. 12)": lambda r: get(r, "settings.method.baseline") if r["method"] == "garl" else None,
        "optimizer, lr": lambda r: f"{get(r, 'settings.optim.optimizer')}, {get(r, 'settings.optim.lr'):g}",
        "prompts per step": lambda r: get(r, "settings.optim.prompts_per_step"),
        "steps": lambda r: get(r, "settings.steps"),
        "validate every (steps)": lambda r: get(r, "settings.eval.every"),
        "training questions": lambda r: len(r["ids"]["train"]),
        "validation questions": lambda r: len(r["ids"]["validation"]),
        "test questions": lambda r: len(r["ids"]["test"]),
        "k (samples per question)": lambda r: get(r, "settings.eval.k"),
        "judge": lambda r: get(r, "settings.eval.judge"),
    }
    rows = []
    for name, f in fields.items():
        vals = []
        for r in records:
            v = f(r)
            if v is not None and v not in vals:
                vals.append(v)
        rows.append({"setting": name, "value": " / ".join(str(v) for v in vals) or "-"})
    return pd.DataFrame(rows).set_index("setting")


# ---------------------------------------------------------------------------------------------------------
# What every seed shows
# ---------------------------------------------------------------------------------------------------------
def every_seed(records: Sequence[dict], dataset: str, metrics: Sequence[str] = ("p@1", "maj@k"), min_seeds: int = 2):
    """For each pair of methods (A, B) of ``dataset`` that ran on the same ``min_seeds`` or more seeds, and each
    test metric: the per-seed values on their common seeds and the relation that holds on *every* one of them:
    "A > B", "A >= B" (not strict on some seed), "A = B", or "mixed" (A ahead on one seed, B on another). A is
    the one ahead (or the first in the table's order when equal). A statement not "mixed" is what every recorded
    seed shows; the chapter asserts and reports only those."""
    import pandas as pd

    runs = _by_key(records, dataset)
    keys = [k for k in _row_keys(records, dataset, ()) if k in runs]
    rows = []
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            ra = {r["seed"]: r for r in runs[a]}
            rb = {r["seed"]: r for r in runs[b]}
            seeds = sorted(set(ra) & set(rb))
            if len(seeds) < min_seeds:
                continue
            for m in metrics:
                va = tuple(float(ra[s]["test_best"][f"test/{m}"]) for s in seeds)
                vb = tuple(float(rb[s]["test_best"][f"test/{m}"]) for s in seeds)
                ge, le = all(x >= y for x, y in zip(va, vb)), all(x <= y for x, y in zip(va, vb))
                if not ge and le:  # B is ahead: name it A
                    a_, b_, va, vb, ge, le = b, a, vb, va, True, False
                else:
                    a_, b_ = a, b
                rel = (
                    "A = B"
                    if ge and le
                    else ("mixed" if not ge else ("A > B" if all(x > y for x, y in zip(va, vb)) else "A >= B"))
                )
                rows.append(
                    {
                        "A": method_name(*a_),
                        "B": method_name(*b_),
                        "metric": f"test {m}",
                        "seeds": tuple(seeds),
                        "A per seed": va,
                        "B per seed": vb,
                        "relation on every seed": rel,
                    }
                )
    cols = ["A", "B", "metric", "seeds", "A per seed", "B per seed", "relation on every seed"]
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------------------------------------
# Learning curves
# ---------------------------------------------------------------------------------------------------------
_DATASET = {"finqa": "FinQA", "hotpotqa": "HotpotQA", "musique": "MuSiQue"}
_BASELINE_STYLE = {"grpo": ("black", ":"), "rloo": ("0.55", ":"), "maxrl": ("tab:brown", ":")}


def _style(rec: dict) -> dict:
    from ..plotting import q_color

    m = rec["method"]
    color, ls = _BASELINE_STYLE[m] if m in VERIFIER else (q_color(rec["q"]), "-" if m == "garl" else "--")
    return {
        "color": color,
        "linestyle": ls,
        "marker": "os^v"[rec["seed"] % 4],
        "alpha": 1.0 if rec["seed"] == 0 else 0.6,
    }


def _label(rec: dict) -> str:
    return f"{method_name(rec['method'], rec.get('q'))}, seed {rec['seed']}"


def _runs_of(records: Sequence[dict], dataset: str) -> list[dict]:
    runs = [r for r in records if r["dataset"] == dataset]
    order = {k: i for i, k in enumerate(_row_keys(records, dataset, ()))}
    return sorted(runs, key=lambda r: (order[key_of(r["method"], r.get("q"))], r["seed"]))


def plot_validation(records: Sequence[dict], dataset: str, metrics: Sequence[str] = ("p@1", "maj@k")):
    """Validation p@1 and maj@k (in %, k of the records) against the training step, one line per run of
    ``dataset`` (GARL solid and PAFT dashed in their q colour, the verifier methods dotted; the marker is the
    seed), the panels stacked at the book's width. Returns the figure (None when ``dataset`` has no run)."""
    from ..plotting import stacked

    runs = _runs_of(records, dataset)
    if not runs:
        return None
    fig, axes = stacked(len(metrics), height=2.6, sharex=True)
    k = runs[0]["settings"]["eval"]["k"]
    for ax, m in zip(axes, metrics):
        for r in runs:
            v = r["validation_curve"]
            ax.plot([p["step"] for p in v], [p[f"val/{m}"] for p in v], label=_label(r), **_style(r))
        ax.set_ylabel(f"validation {m.replace('k', str(k))} (%)")
        top = max(p[f"val/{m}"] for r in runs for p in r["validation_curve"])
        ax.set_ylim(-0.04 * max(top, 5.0), 1.08 * max(top, 5.0))  # 0 % at the bottom, even when every run is flat
    axes[-1].set_xlabel("training step")
    axes[0].set_title(f"{_DATASET.get(dataset, dataset)}: validation during training")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8)
    return fig


def plot_training(records: Sequence[dict], dataset: str):
    """The training signal against the step, one line per run of ``dataset``: log wbar (``log_wbar_mean``, the
    mean over the step's prompts of the log of the mean weight p(y*|x, z_m) over its M rationales) for GARL /
    PAFT in the upper panel, the mean 0/1 reward of the step's rationales for GRPO / RLOO / MaxRL in the lower.
    Returns the figure (None when ``dataset`` has no run)."""
    from ..plotting import stacked

    runs = _runs_of(records, dataset)
    if not runs:
        return None
    fig, axes = stacked(2, height=2.6, sharex=True)
    for r in runs:
        name, steps, y = _signal(r)
        ax = axes[1] if name == "reward_mean" else axes[0]
        ax.plot(steps, y, label=_label(r), markersize=3, **_style(r))
    axes[0].set_ylabel("log wbar (GARL, PAFT)")
    axes[1].set_ylabel("mean reward (verifier)")
    top = max([v for r in runs if r["method"] in VERIFIER for v in _signal(r)[2]] + [0.25])
    axes[1].set_ylim(-0.04 * top, 1.08 * top)  # a reward of 0 at the bottom, not in the middle of the panel
    axes[1].set_xlabel("training step")
    axes[0].set_title(f"{_DATASET.get(dataset, dataset)}: the training signal")
    for ax in axes:
        if not ax.lines:
            ax.text(0.5, 0.5, "no run recorded", transform=ax.transAxes, ha="center", va="center")
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------------------
# What was run, what came out, and what this scale can show (the chapter's generated text)
# ---------------------------------------------------------------------------------------------------------
def plan_status(records: Sequence[dict], datasets: Sequence[str]):
    """Per run of the plan (:data:`PLAN`, per dataset): the seeds recorded, and "not run" for the others; runs
    recorded outside the plan are listed too."""
    import pandas as pd

    keys = []
    for ds in datasets:
        keys += [k for k in _row_keys(records, ds, ()) if k not in keys]
    rows = []
    for key in keys:
        row = {"method": method_name(*key)}
        for ds in datasets:
            have = [r["seed"] for r in _by_key(records, ds).get(key, [])]
            planned = PLAN.get(key, ())
            missing = [s for s in planned if s not in have]
            cell = ", ".join(f"seed {s}" for s in sorted(have)) if have else "not run"
            if have and missing:
                cell += "; " + ", ".join(f"seed {s} not run" for s in missing)
            row[ds] = cell
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def portable_command(command: str) -> str:
    """``command`` with every absolute path made relative to the repository (``/x/repo/data/heldout`` ->
    ``data/heldout``; a path outside the repository's ``data``, ``runs``, ``scripts``, ``configs`` folders keeps
    its file name only), so that a record's command reads the same on every machine."""
    import re

    def rel(tok: str) -> str:
        if not tok.startswith("/"):
            return tok
        m = re.search(r"/((?:data|runs|scripts|configs)(?:/.*)?)$", tok)
        return m.group(1) if m else os.path.basename(tok.rstrip("/"))

    return " ".join(rel(t) for t in command.split(" "))


def provenance_table(records: Sequence[dict]):
    """One row per record: its label, the command that wrote it (:func:`portable_command`), the date, the
    hardware, whether it resumed from a checkpoint, and its wall time (training in the last process, test) in
    seconds."""
    import pandas as pd

    rows = []
    for r in records:
        w = r.get("wall_s") or {}
        rows.append(
            {
                "run": r["label"],
                "command": portable_command(r["command"]),
                "date": r["date"],
                "hardware": r["hardware"],
                "resumed": bool(r.get("resumed")),
                "train s (last process)": round(w["train_this_process"]) if "train_this_process" in w else None,
                "test s": round(w["test"]) if "test" in w else None,
            }
        )
    return pd.DataFrame(rows)


def _fmt(xs: Sequence[float]) -> str:
    return ", ".join(f"{x:.1f}" for x in xs)


def _judged_by(bs: Sequence[dict]) -> str:
    """The judge of the untrained model's tests ``bs`` in words: "the judge of the tables" when they name none."""
    judges = sorted({b.get("judge") for b in bs if b.get("judge")})
    if not judges:
        return "the judge of the tables"
    return " / ".join(JUDGE_DESCRIPTIONS.get(j, f"the judge {j!r}") for j in judges) + ", the judge of the tables"


def findings(records: Sequence[dict], datasets: Sequence[str], base: Sequence[dict] = (), window: int = 5) -> dict:
    """What came out, per dataset, as sentences computed from the records (the chapter shows them as its
    findings): ``{dataset: [sentence, ...]}``. Each dataset says how many runs are recorded, in how many runs the
    best validation checkpoint is the untrained model (step 0, so its test is the untrained model's), which runs
    improved on their step-0 validation, which run has the highest test p@1 and maj@k (flagged when its method
    has one seed, and when that score is the untrained model's test), what every seed shows for GARL against GRPO
    (and every other pair run on two seeds or more), and the training signal: how often the verifier methods saw a non-zero reward, and how
    GARL / PAFT's log wbar moved between the first and the last ``window`` steps. With ``base`` (from
    :func:`load_base`): the untrained model's test p@1 under the judge of the tables (the one its tests name, e.g.
    FinQA's numeric match) and under the exact match that the verifier methods are rewarded with in training."""
    out = {}
    for ds in datasets:
        runs = _runs_of(records, ds)
        planned = sum(len(s) for s in PLAN.values())
        if not runs:
            out[ds] = [f'No run recorded (the plan has {planned}): every cell of this dataset says "not run".']
            continue
        lines = [f"{len(runs)} of the {planned} planned runs are recorded."]
        bs = sorted((b for b in base if b["dataset"] == ds), key=lambda b: b["seed"])
        if bs and all("test/reward_em" in b["test"] for b in bs):
            lines.append(
                f"The untrained model (seeds {', '.join(str(b['seed']) for b in bs)}): test p@1 "
                f"{_fmt([b['test']['test/p@1'] for b in bs])} under {_judged_by(bs)}, "
                f"{_fmt([b['test']['test/reward_em'] for b in bs])} under the exact match that GRPO, RLOO and MaxRL "
                "are rewarded with in training."
            )
        t = runs_table(runs)
        at0 = int(t["best = untrained"].sum())
        lines.append(
            f"In {at0} of {len(runs)} runs no later validation beat the untrained model's maj@k (step 0), so the "
            "tested checkpoint is the untrained model."
        )
        up = t[t["val maj@k peak"] > t["val maj@k step 0"]]
        lines.append(
            "Validation maj@k rose above its step-0 value in "
            + (", ".join(f"{m} seed {s}" for m, s in zip(up["method"], up["seed"])) if len(up) else "no run")
            + "."
        )
        fell = t[t["fell after peak"] & (t["val maj@k peak"] > t["val maj@k step 0"])]
        if len(fell):
            lines.append(
                "After its peak, validation fell again in "
                + ", ".join(f"{m} seed {s}" for m, s in zip(fell["method"], fell["seed"]))
                + "."
            )
        below = t[t["val maj@k last"] < t["val maj@k step 0"]]
        if len(below):
            lines.append(
                "The last validation maj@k is below the untrained model's (step 0) in "
                + ", ".join(
                    f"{m} seed {s} ({a:.1f} against {b:.1f})"
                    for m, s, a, b in zip(
                        below["method"], below["seed"], below["val maj@k last"], below["val maj@k step 0"]
                    )
                )  # fmt: skip
                + "."
            )
        seeds = t.groupby("method")["seed"].nunique()
        for metric in ("p@1", "maj@k"):
            col = f"test {metric}"
            top = t[t[col] == t[col].max()]
            one = sorted({m for m in top["method"] if seeds[m] == 1})
            lines.append(
                f"Highest test {metric}: {t[col].max():.1f}, by "
                + ", ".join(f"{m} seed {s}" for m, s in zip(top["method"], top["seed"]))
                + (f" ({', '.join(one)}: one seed recorded, so not a ranking)" if one else "")
                + (
                    " (each the untrained model's test: these runs kept step 0)"
                    if top["best = untrained"].all()
                    else ""
                )
                + "."
            )
        for _, row in every_seed(runs, ds).iterrows():
            vs = f"{row['metric']} on seeds {', '.join(map(str, row['seeds']))}: {_fmt(row['A per seed'])} against {_fmt(row['B per seed'])}"
            rel = row["relation on every seed"]
            if rel == "mixed":
                lines.append(f"Neither {row['A']} nor {row['B']} is ahead on every seed ({vs}).")
            elif rel == "A = B":
                lines.append(f"{row['A']} and {row['B']} are equal on every seed ({vs}).")
            else:
                word = "above" if rel == "A > B" else "at or above"
                lines.append(f"{row['A']} is {word} {row['B']} on every seed ({vs}).")
        s = signal_table(runs, window=window)
        for _, row in s.iterrows():
            if row["signal"] == "reward_mean":
                lines.append(
                    f"{row['method']} seed {row['seed']}: a non-zero mean reward in {100 * row['steps with reward > 0']:.0f} % "
                    "of its steps (a step without reward has a zero advantage for every rationale, so no update)."
                )
            else:
                lines.append(
                    f"{row['method']} seed {row['seed']}: log wbar {row[f'first {window} steps']:.2f} over the first "
                    f"{window} steps, {row[f'last {window} steps']:.2f} over the last {window}."
                )
        out[ds] = lines
    return out


def scale_statement(records: Sequence[dict]) -> list[str]:
    """What the recorded scale can and cannot show, with its numbers read from the records (the paper's: Qwen3
    0.6B, M = 32, k = 16, rationale budgets of thousands of tokens, hundreds of validation and test questions)."""
    if not records:
        return ["No run is recorded yet: nothing can be concluded on this page."]

    def vals(f):
        return sorted({f(r) for r in records})

    nval, ntest = vals(lambda r: len(r["ids"]["validation"])), vals(lambda r: len(r["ids"]["test"]))
    ks, steps = vals(lambda r: r["settings"]["eval"]["k"]), vals(lambda r: r["settings"]["steps"])
    M, rb = vals(lambda r: r["settings"]["rollout"]["M"]), vals(lambda r: r["settings"]["rollout"]["rationale_budget"])
    seeds = vals(lambda r: r["seed"])
    j = lambda xs: " / ".join(str(x) for x in xs)  # noqa: E731
    spread = ""
    gaps = [
        (abs(rs[0]["test_best"]["test/maj@k"] - rs[1]["test_best"]["test/maj@k"]), ds, key)
        for ds in vals(lambda r: r["dataset"])
        for key, rs in _by_key(records, ds).items()
        if len(rs) >= 2
    ]
    if gaps:
        g, ds, key = max(gaps)
        spread = (
            f" The two seeds of one method differ by up to {g:.1f} points in test maj@k ({method_name(*key)} on "
            f"{ds}): a smaller difference between two methods is not a ranking."
        )
    names = {"smollm2-gguf": "SmolLM2-135M-Instruct"}
    model = vals(lambda r: names.get(r["settings"]["model"]["name_or_path"], r["settings"]["model"]["name_or_path"]))
    return [
        f"Scale: {j(model)}, M = {j(M)} "
        f"rationales of at most {j(rb)} tokens, {j(steps)} training steps, {j(nval)} validation and {j(ntest)} test "
        f"questions, k = {j(ks)} samples per question (the paper: Qwen3 0.6B, M = 32, k = 16, budgets of thousands "
        "of tokens, hundreds of questions), seeds " + j(seeds) + ".",
        f"Resolution: one validation question is {100 / min(nval):.1f} points of validation maj@k, one test "
        f"question {100 / min(ntest):.1f} points of test maj@k." + spread,
        "It can show: whether a method moves a cold-start model off its untrained accuracy within this budget, on "
        "questions it never trained on; how the training signal (log wbar, the reward) behaves when p(y*|x) starts "
        "tiny; whether a difference between methods holds on every recorded seed.",
        "It cannot show: the paper's numbers (its model, budgets and step counts are far larger), an escape that "
        "needs more steps than were run, or a ranking of methods that differ by less than a few questions.",
    ]
