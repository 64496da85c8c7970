"""One plotting style for the book's figures (book layer; needs matplotlib, from the ``book`` extra).

Every chapter calls :func:`use_book_style` once and colours its curves with :func:`q_colors`, so that a
given commitment ``q`` has the same colour on every page and every figure fits the book's text column.

* Width: figures are at most ``BOOK_WIDTH`` (6.5) inches wide (the column is about 7 in at 100 dpi); two
  panels are stacked (:func:`stacked`) rather than set side by side, so the fonts are not shrunk.
* Colour: ``q`` in [0, 1] maps to viridis on [0, 0.85] (dark purple at q=0, green at q=1), which leaves out
  viridis's pale yellow end, hard to see on a white page.

>>> q_colors([0.0, 1.0])[1.0] == q_color(1.0)
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# the widest a figure may be, in inches (the book's text column at the default 100 dpi)
BOOK_WIDTH = 6.5
# viridis is used on [0, VIRIDIS_MAX] only: its last 15 % is the pale yellow
VIRIDIS_MAX = 0.85

RC = {
    "figure.figsize": (BOOK_WIDTH, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "legend.framealpha": 0.85,
}


def use_book_style() -> None:
    """Set matplotlib's rcParams to the book's style (``RC``) and its default colour cycle to tab10."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update(RC)
    mpl.rcParams["axes.prop_cycle"] = cycler(color=mpl.colormaps["tab10"].colors)


def q_color(q: float):
    """The RGBA colour of commitment ``q`` in [0, 1]: viridis at ``VIRIDIS_MAX * q``.

    Raises ``ValueError`` naming ``q`` when it lies outside [0, 1]."""
    import matplotlib as mpl

    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q!r}: a commitment lies in [0, 1]; colour other quantities with the tab10 cycle")
    return mpl.colormaps["viridis"](VIRIDIS_MAX * q)


def q_colors(qs: Iterable[float]) -> dict[float, tuple]:
    """``{q: colour}`` for the commitments ``qs`` (each in [0, 1]); see :func:`q_color`."""
    return {q: q_color(q) for q in qs}


def stacked(n: int = 2, height: float = 3.3, sharex: bool = False) -> tuple:
    """``fig, axes``: ``n`` panels stacked vertically at the book's width, each ``height`` inches tall."""
    import matplotlib.pyplot as plt

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}: the number of stacked panels must be a positive int")
    fig, axes = plt.subplots(n, 1, figsize=(BOOK_WIDTH, height * n), sharex=sharex, squeeze=False)
    return fig, list(axes[:, 0])


def grid(n: int, ncols: int = 2, height: float = 2.8, sharex: bool = False, sharey: bool = False) -> tuple:
    """``fig, axes``: ``n`` small panels in rows of ``ncols`` at the book's width (spare panels removed)."""
    import matplotlib.pyplot as plt

    if not isinstance(n, int) or n < 1 or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"n={n!r}, ncols={ncols!r}: both must be positive ints")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(BOOK_WIDTH, height * nrows), sharex=sharex, sharey=sharey, squeeze=False
    )
    flat: Sequence = [a for row in axes for a in row]
    for a in flat[n:]:
        a.remove()
    return fig, list(flat[:n])


__all__ = ["BOOK_WIDTH", "VIRIDIS_MAX", "RC", "use_book_style", "q_color", "q_colors", "stacked", "grid"]
