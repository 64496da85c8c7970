#!/usr/bin/env python
"""Draw the figure of the algorithm pages' "Results" sections from the recorded miniature runs.

Usage: python scripts/make_algorithm_figures.py   # writes book/images/results_escape_p0.png

Reads every ``data/miniature/escape_p0_*.json`` written by ``scripts/run_miniature_escape.py`` (the records of
the chapter "Cold start in miniature") and plots, for each method, q and learning rate, the step at which each
seed escaped the cold start against the initial success probability p0; runs that did not escape within their
step budget are drawn as open markers on the top line. Nothing is computed here beyond reading the records.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tsallis_ref.plotting import q_color, use_book_style  # noqa: E402

OUT = ROOT / "book" / "images" / "results_escape_p0.png"


def load_runs(root: Path = ROOT) -> list[dict]:
    runs = []
    for f in sorted((root / "data" / "miniature").glob("escape_p0_*.json")):
        if "M1024" in f.name:  # the chapter's separate large-M check at one p0
            continue
        rec = json.loads(f.read_text())
        for r in rec["runs"]:
            runs.append({**r, "record": f.name})
    return runs


def main() -> int:
    runs = load_runs()
    if not runs:
        print("make_algorithm_figures: no data/miniature/escape_p0_*.json records found", file=sys.stderr)
        return 1
    use_book_style()
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["method"], r["q"], r["lr"]), []).append(r)
    budget = max(r["steps_run"] for r in runs)
    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    markers = {"grpo": "s", "garl": "o", "paft": "^"}
    offsets = {}
    for (method, q, lr), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        color = "black" if method == "grpo" else q_color(q)
        label = f"{rs[0]['label']}, lr {lr:g}"
        k = offsets.setdefault(method, {}).setdefault((q, lr), len(offsets[method]))
        jitter = 1.0 + 0.06 * (k - 1)
        xs_e = [r["p0_target"] * jitter for r in rs if r["escape_step"] is not None]
        ys_e = [r["escape_step"] for r in rs if r["escape_step"] is not None]
        xs_n = [r["p0_target"] * jitter for r in rs if r["escape_step"] is None]
        ls = ":" if method == "paft" else "-"
        h = ax.plot(xs_e, ys_e, markers[method], color=color, label=label, ls="none")[0]
        if xs_n:
            ax.plot(xs_n, [budget * 1.4] * len(xs_n), markers[method], mfc="none", color=h.get_color(), ls="none")
        del ls
    ax.axhline(budget * 1.4, color="grey", lw=0.8)
    ax.text(1.2e-4, budget * 1.55, "did not escape within the run", fontsize=9, color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(top=budget * 2.2)
    ax.set_xlabel("initial success probability $p_0$")
    ax.set_ylabel("escape step (first evaluation with $P>0.5$)")
    ax.set_title("Cold start in miniature: escape step per seed")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)
    print(
        f"make_algorithm_figures: {len(runs)} runs from {len({r['record'] for r in runs})} records -> "
        f"{OUT.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
