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

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import tsallis_ref as tr  # noqa: E402
from tsallis_ref.plotting import q_colors  # noqa: E402
from tsallis_ref.toy import LatentCategoricalModel  # noqa: E402

Q_VALUES = [0.0, 0.25, 0.5, 0.75, 1.0]
TARGET_PS = [0.3, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]


def main(out: Path) -> None:
    torch.set_num_threads(1)
    colors = list(q_colors(Q_VALUES).values())  # the book's q colours (viridis without its pale yellow end)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    plt.rcParams["axes.titlesize"] = 10

    log_p = torch.linspace(math.log(1e-6), 0.0, 300, dtype=torch.float64)
    for q, c in zip(Q_VALUES, colors):
        a1.plot(log_p.exp(), tr.qloss(log_p, q), color=c, label=f"q = {q:g}")
    a1.set(
        xscale="log",
        yscale="log",
        xlabel="success probability P",
        ylabel=r"$\ell_q=-\log_q P$",
        title=r"$J_Q$ family: $q=0$ is RL, $q=1$ is likelihood",
    )
    a1.legend(fontsize=8)

    models = [LatentCategoricalModel.random(6, seed=0, target_P=p) for p in TARGET_PS]
    Ps = np.array([float(m.log_P().detach().exp()) for m in models])
    for q, c in zip(Q_VALUES, colors):
        ratio = [float(m.exact_grad(q).norm() / m.exact_grad(0.0).norm()) for m in models]
        a2.plot(Ps, ratio, "o", color=c, ms=4)
        a2.plot(Ps, tr.amplification(torch.tensor(np.log(Ps)), q), "-", color=c, lw=1, label=f"q = {q:g}")
    a2.set(
        xscale="log",
        yscale="log",
        xlabel="success probability P (toy latent model)",
        ylabel=r"$\|\nabla\ell_q\|\,/\,\|\nabla\ell_0\|$",
        title=r"gradient identity: autograd (dots) vs $P^{-q}$",
    )
    a2.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "book/images/jq_family.png")
