"""The paper's Tables 1-3 (Lin & Ie, §7, v1) as data, and our rows beside them (book layer; needs pandas).

``PAPER_TABLE1`` / ``PAPER_TABLE2`` / ``PAPER_TABLE3`` hold the numbers printed in the paper; :func:`table1`,
:func:`table2` and :func:`table3` put a list of result rows of :func:`~tsallis_ref.experiments.runs.run_method`
beside them, with NaN (and ``ran = False``) where a row was not run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

__all__ = ["PAPER_TABLE1", "PAPER_TABLE2", "PAPER_TABLE3", "table1", "table2", "table3", "for_reader"]

# ---------------------------------------------------------------------------------------------------------
# The paper's tables (its §7, Tables 1-3) and ours beside them
# ---------------------------------------------------------------------------------------------------------
#: the paper's Table 1, cold-start GARL on FinQA (p@1, p@16, m@16 in %)
PAPER_TABLE1 = {
    ("grpo", None): (0.0, 0.0, 0.0),
    ("garl", 0.0): (0.0, 0.0, 0.0),
    ("garl", 0.25): (0.0, 0.0, 0.0),
    ("garl", 0.5): (0.0, 0.0, 0.0),
    ("garl", 0.75): (30.5, 61.1, 38.3),
    ("garl", 1.0): (21.9, 58.7, 33.5),
}
#: the paper's Table 2, warm-start GRPO vs cold-start GARL (p@1, p@16, m@16 in %)
PAPER_TABLE2 = {
    "finqa": {
        ("grpo", None, "warm"): (18.9, 48.4, 26.9),
        ("garl", 0.75, "cold"): (30.5, 61.1, 38.3),
        ("garl", 1.0, "cold"): (21.9, 58.7, 33.5),
    },
    "hotpotqa": {
        ("grpo", None, "warm"): (29.1, 55.1, 33.5),
        ("garl", 0.75, "cold"): (53.5, 74.1, 57.2),
        ("garl", 1.0, "cold"): (48.7, 75.5, 56.6),
    },
    "musique": {
        ("grpo", None, "warm"): (13.6, 37.3, 15.8),
        ("garl", 0.75, "cold"): (26.8, 58.9, 34.8),
        ("garl", 1.0, "cold"): (21.6, 58.1, 32.5),
    },
}
#: the paper's Table 3, warm-start maj@16 in % ("*" marks a peak before collapse, HotpotQA / MuSiQue GARL)
PAPER_TABLE3 = {
    ("base", None): {"finqa": "12.6", "hotpotqa": "22.2", "musique": "8.9"},
    ("grpo", None): {"finqa": "26.9", "hotpotqa": "33.5", "musique": "15.8"},
    ("garl", 0.0): {"finqa": "38.3", "hotpotqa": "21.6*", "musique": "9.1*"},
    ("garl", 0.25): {"finqa": "38.7", "hotpotqa": "22.9*", "musique": "24.3*"},
    ("garl", 0.75): {"finqa": "37.6", "hotpotqa": "46.8*", "musique": "19.7*"},
    ("paft", 0.25): {"finqa": "26.6", "hotpotqa": "47.0", "musique": "9.0"},
    ("paft", 0.75): {"finqa": "28.6", "hotpotqa": "47.9", "musique": "22.4"},
}


def _name(method: str, q: Optional[float]) -> str:
    if method == "base":
        return "Base (no training, prompted)"
    if method == "grpo":
        return "GRPO"
    return f"{method.upper()} (q={q:g})" + (" = RB-RLOO" if method == "garl" and q == 0 else "")


def _find(rows: Sequence[dict], dataset: str, method: str, q, regime: str) -> Optional[dict]:
    for r in rows:
        if (
            r["dataset"] == dataset
            and r["method"] == method
            and r["regime"] == regime
            and (r["q"] is None and q is None or (r["q"] is not None and q is not None and math.isclose(r["q"], q)))
        ):
            return r
    return None


def _ours(r: Optional[dict], key: str) -> float:
    if r is None or "eval" not in r:
        return float("nan")
    agg = r["eval"]
    if key == "p@1":
        return agg["p@1"]
    k = r.get("settings", {}).get("eval_k") or next(int(x[2:]) for x in agg if x.startswith("p@") and x != "p@1")
    return agg[f"{key}@{k}"]


def _paper_vs_ours(label: str, paper: tuple, r: Optional[dict]) -> dict:
    """One row of Tables 1-2: the paper's (p@1, p@16, m@16) in % beside ours (NaN where ``r`` did not run)."""
    return {
        "method": label,
        "paper p@1": paper[0],
        "paper p@16": paper[1],
        "paper m@16": paper[2],
        "ours p@1": _ours(r, "p@1"),
        "ours p@k": _ours(r, "p"),
        "ours m@k": _ours(r, "maj"),
        "ran": r is not None,
    }


def table1(rows: Sequence[dict], dataset: str = "finqa"):
    """Table 1 layout: cold-start methods x (p@1, p@16, m@16); the paper's numbers are FinQA's, ours are on
    ``dataset`` (rows we did not run show NaN and ``ran=False``)."""
    import pandas as pd

    out = [
        _paper_vs_ours(_name(method, q), paper, _find(rows, dataset, method, q, "cold"))
        for (method, q), paper in PAPER_TABLE1.items()
    ]
    return pd.DataFrame(out).set_index("method")


def table2(rows: Sequence[dict], dataset: str):
    """Table 2 layout: warm-start GRPO vs cold-start GARL q = 0.75, 1 on ``dataset``."""
    import pandas as pd

    out = [
        _paper_vs_ours(f"{_name(method, q)} ({regime})", paper, _find(rows, dataset, method, q, regime))
        for (method, q, regime), paper in PAPER_TABLE2[dataset].items()
    ]
    return pd.DataFrame(out).set_index("method")


def table3(rows: Sequence[dict], dataset: str):
    """Table 3 layout: warm-start maj@16 per method, the paper's column for ``dataset`` beside ours."""
    import pandas as pd

    out = []
    for (method, q), paper in PAPER_TABLE3.items():
        r = _find(rows, dataset, method, q, "warm")
        out.append(
            {
                "method": _name(method, q),
                "paper m@16": paper[dataset],
                "ours m@k": _ours(r, "maj"),
                "ours p@1": _ours(r, "p@1"),
                "ran": r is not None,
            }
        )
    return pd.DataFrame(out).set_index("method")


def for_reader(table, digits: int = 1):
    """``table`` (from :func:`table1` / :func:`table2` / :func:`table3`) as a reader should see it: numbers
    rounded to ``digits``, and "not run" in every "ours" cell of a row that was not run (``ran`` False), where
    the raw table holds NaN. The ``ran`` column itself is dropped, since the cells now say it."""
    import pandas as pd

    if not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits={digits!r}: the number of decimals must be a non-negative int")
    out = table.copy()
    ours = [c for c in out.columns if str(c).startswith("ours")]
    ran = out["ran"] if "ran" in out.columns else pd.Series(True, index=out.index)
    for c in out.columns:
        if c == "ran":
            continue
        out[c] = [
            (
                "not run"
                if (c in ours and not r)
                else (f"{v:.{digits}f}" if isinstance(v, float) and v == v else ("-" if isinstance(v, float) else v))
            )
            for v, r in zip(out[c], ran)
        ]
    return out.drop(columns=["ran"]) if "ran" in out.columns else out
