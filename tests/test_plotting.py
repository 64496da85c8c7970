"""The book's plotting style: colours per q without pale yellow, figures no wider than the text column."""

import pytest

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tsallis_ref import plotting  # noqa: E402


def _luminance(rgba) -> float:
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_q_colours_are_ordered_distinct_and_not_pale():
    cols = plotting.q_colors([0.0, 0.25, 0.5, 0.75, 1.0])
    assert len({tuple(c) for c in cols.values()}) == 5
    # viridis darkest at q=0; the q=1 colour stays well below viridis's pale yellow end
    assert _luminance(cols[0.0]) < _luminance(cols[1.0])
    assert _luminance(cols[1.0]) < _luminance(mpl.colormaps["viridis"](1.0)) - 0.1
    assert plotting.q_color(1.0) == cols[1.0]


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_q_colour_outside_unit_interval_names_q(bad):
    with pytest.raises(ValueError, match="q="):
        plotting.q_color(bad)


def test_style_and_layouts_fit_the_column():
    with mpl.rc_context():
        plotting.use_book_style()
        fig, ax = plt.subplots()
        assert fig.get_size_inches()[0] <= 7.0
        assert mpl.rcParams["legend.fontsize"] >= 9
        plt.close(fig)
    fig, axes = plotting.stacked(2)
    assert len(axes) == 2 and fig.get_size_inches()[0] <= 7.0
    plt.close(fig)
    fig, axes = plotting.grid(3, ncols=2)
    assert len(axes) == 3 and len(fig.axes) == 3 and fig.get_size_inches()[0] <= 7.0
    plt.close(fig)
    with pytest.raises(ValueError, match="n=0"):
        plotting.stacked(0)
