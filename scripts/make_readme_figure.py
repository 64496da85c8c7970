#!/usr/bin/env python
"""Draw the README's picture, book/images/jq_family.png, from tsallis_ref.

Left: the J_Q family l_q = -log_q P against the success probability P (paper Eq. 3).
Right: the gradient identity of Prop. 4.1 (Eq. 5) measured with autograd on the enumerable toy model:
||grad l_q|| / ||grad l_0|| (dots) against the amplification P^-q (lines).

    python scripts/make_readme_figure.py [OUT.png]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import tsallis_ref as tr  # noqa: E402
from tsallis_ref.plotting import BOOK_WIDTH, q_colors, use_book_style  # noqa: E402
from tsallis_ref.toy import LatentCategoricalModel  # noqa: E402

Q_VALUES = [0.0, 0.25, 0.5, 0.75, 1.0]
TARGET_PS = [0.3, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]


def log_log(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Both panels' axes: log-log, labelled, at most 4 major ticks on x (the column is narrow)."""
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel, title=title)
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(numticks=4))


def main(out: Path) -> None:
    torch.set_num_threads(1)
    colors = list(q_colors(Q_VALUES).values())  # the book's q colours (viridis without its pale yellow end)
    # the book's fonts at its column width (6.5 in at 100 dpi), so the legends stay legible on the page
    use_book_style()
    plt.rcParams.update({"axes.titlesize": 10, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9})
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(BOOK_WIDTH, 3.1))

    log_p = torch.linspace(math.log(1e-6), 0.0, 300, dtype=torch.float64)
    for q, c in zip(Q_VALUES, colors):
        a1.plot(log_p.exp(), tr.qloss(log_p, q), color=c, label=f"q = {q:g}")
    log_log(a1, "success probability P", r"$\ell_q=-\log_q P$", r"$J_Q$: $q=0$ is RL, $q=1$ likelihood")
    a1.legend(fontsize=9)

    models = [LatentCategoricalModel.random(6, seed=0, target_P=p) for p in TARGET_PS]
    Ps = np.array([float(m.log_P().detach().exp()) for m in models])
    for q, c in zip(Q_VALUES, colors):
        ratio = [float(m.exact_grad(q).norm() / m.exact_grad(0.0).norm()) for m in models]
        a2.plot(Ps, ratio, "o", color=c, ms=4)
        a2.plot(Ps, tr.amplification(torch.tensor(np.log(Ps)), q), "-", color=c, lw=1, label=f"q = {q:g}")
    log_log(
        a2,
        "success probability P (toy model)",
        r"$\|\nabla\ell_q\|\,/\,\|\nabla\ell_0\|$",
        r"autograd (dots) vs $P^{-q}$ (lines)",
    )
    # the same q colours as the left panel, whose legend names them
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "book/images/jq_family.png")
