"""The built book, opened in a real browser: the maths is typeset by the local MathJax and the plots load.

The book is built with our own ``_config.yml`` and ``_toc.yml`` into a temporary folder, with notebook execution
switched off (the committed outputs are rendered; ``make book`` is what executes them). The pages are served on
127.0.0.1 and opened in headless Chromium (Debian's ``chromium``), and the DOM after MathJax has run is checked.
A negative control loads the same page with MathJax's script path broken and checks that the same assertions
then fail, so this test cannot pass without the local MathJax.

Every page is also checked the way a reader meets it: no raw TeX outside typeset maths (a broken ``$`` pairing
leaves ``\\alpha`` or ``$`` in the prose, sidebar or titles), no display equation wider than the text column at
1280 px (it is cut at the right or scrolls), no link to a placeholder repository (a dead badge), and no Python
warning, absolute path or undecodable bytes in a notebook's output. Negative controls inject each defect into a
copy of a page and check that the same probes see it. At phone width (420 px, every page in an iframe of
one harness page) no page may scroll sideways as a whole: a long identifier wraps instead. At 1280 px no code
cell and no output block may hold content wider than its box (a code block there shows 75 columns); a negative
control injects an over-long line. ``python tests/test_book_html.py <built html dir> [page ...]`` prints, per page,
the blocks that are too wide.

Needs: ``.mathjax/`` (``scripts/setup_env.sh mathjax``) and ``chromium`` (``scripts/setup_env.sh chromium``);
``make test`` provides both. Without chromium the test is skipped, unless TSALLIS_REF_REQUIRE_CHROMIUM=1
(which ``make test`` sets). TSALLIS_REF_SCREENSHOT_DIR=<dir> keeps a screenshot of the chapter there.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from html.parser import HTMLParser  # noqa: E402

from check_offline_html import external_refs, output_noise, placeholder_links  # noqa: E402

CHAPTER = "book/qlog.html"  # the chapter whose figures and maths are checked
MIN_FIGURES = 5  # book/qlog.ipynb draws five figures

pytestmark = pytest.mark.slow


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        msg = "Debian's chromium is not installed (scripts/setup_env.sh chromium installs it)"
        if os.environ.get("TSALLIS_REF_REQUIRE_CHROMIUM") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    """Build the real book (execution off) with our config into a temporary folder; return its html dir."""
    if not (ROOT / ".mathjax" / "static" / "mathjax" / "tex-chtml.js").is_file():
        pytest.fail("the local MathJax is missing: run `bash scripts/setup_env.sh mathjax` (make test does)")
    out = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    # local extensions are found relative to the config file, which now lives in a temporary folder
    local = config.get("sphinx", {}).get("local_extensions") or {}
    for name, path in local.items():
        local[name] = str(ROOT / path)
    cfg = out / "_config.yml"
    cfg.write_text(yaml.safe_dump(config))
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(jb) if jb.exists() else "jupyter-book",
        "build",
        str(ROOT),
        "--path-output",
        str(out),
        "--config",
        str(cfg),
        "--toc",
        str(ROOT / "_toc.yml"),
        "-W",
        "-n",
        "--keep-going",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    html = out / "_build" / "html"
    assert (html / CHAPTER).is_file(), sorted(p.name for p in html.rglob("*.html"))
    return html


@pytest.fixture(scope="module")
def server(built_book):
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


def _chrome(url: str, tmp_path: Path, *extra: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=20000",
        *extra,
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _probe_page(html_dir: Path, page: str, *, break_mathjax: bool = False) -> str:
    """A copy of ``page`` that records, once loaded, how many PNG images really decoded."""
    src = (html_dir / page).read_text(encoding="utf-8")
    probe = """<script>window.addEventListener('load', function () {
      var n = 0; for (var i of document.images) { if (i.complete && i.naturalWidth > 0 && /\\.png$/.test(i.src)) n++; }
      document.body.setAttribute('data-png-loaded', String(n)); });</script></body>"""
    src = src.replace("</body>", probe)
    if break_mathjax:
        src, n = re.subn(r"_static/mathjax/tex-chtml\.js", "_static/mathjax/missing.js", src)
        assert n == 1
    name = page.replace(".html", "-broken.html" if break_mathjax else "-probe.html")
    (html_dir / name).write_text(src, encoding="utf-8")
    return name


def _visible_text(dom: str) -> str:
    # what a reader sees: not the <head> (its <title> is plain text), scripts, code or MathJax's hidden MathML
    dom = re.sub(r"(?is)<(head|script|style|pre|code|mjx-assistive-mml|textarea)\b.*?</\1>", " ", dom)
    return re.sub(r"(?s)<[^>]+>", " ", dom)


def _raw_tex_context(dom: str) -> list[str]:
    text = _visible_text(dom)
    return [text[max(0, m.start() - 80) : m.start() + 80] for m in re.finditer(r"\\[(\[]", text)][:3]


def _math_report(dom: str) -> dict:
    text = _visible_text(dom)
    return {
        "mjx": len(re.findall(r"<mjx-container\b", dom)),
        "merror": len(re.findall(r"<mjx-merror\b", dom)),
        "raw_inline": text.count("\\("),
        "raw_display": text.count("\\["),
        "png_loaded": int(m.group(1)) if (m := re.search(r'data-png-loaded="(\d+)"', dom)) else -1,
    }


def test_book_is_self_contained(built_book):
    for page in built_book.rglob("*.html"):
        assert external_refs(page.read_text(encoding="utf-8")) == [], page
    src = (built_book / CHAPTER).read_text(encoding="utf-8")
    assert "_static/mathjax/tex-chtml.js" in src
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "cdn.jsdelivr" not in src and "mathjax@3" not in src


def test_chapter_maths_typeset_and_figures_load(built_book, server, tmp_path):
    src = (built_book / CHAPTER).read_text(encoding="utf-8")
    n_math = len(re.findall(r'class="math[ "]', src))
    assert n_math >= 10, f"expected the chapter to contain maths, found {n_math} math elements"
    n_img = len(re.findall(r'<img[^>]+src="[^"]+\.png"', src))
    assert n_img >= MIN_FIGURES, f"expected >= {MIN_FIGURES} figures in {CHAPTER}, found {n_img}"

    page = _probe_page(built_book, CHAPTER)
    dom = _chrome(f"{server}/{page}", tmp_path, "--dump-dom")
    rep = _math_report(dom)
    rep["raw_tex_context"] = _raw_tex_context(dom)
    assert rep["mjx"] >= n_math, f"MathJax typeset {rep['mjx']} of {n_math} math elements: {rep}"
    assert rep["merror"] == 0, rep
    assert rep["raw_inline"] == 0 and rep["raw_display"] == 0, f"raw TeX left on the page: {rep}"
    assert rep["png_loaded"] >= MIN_FIGURES, f"only {rep['png_loaded']} PNG figures decoded: {rep}"

    shot = tmp_path / "qlog.png"
    _chrome(f"{server}/{page}", tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    assert shot.is_file() and shot.stat().st_size > 20_000
    if os.environ.get("TSALLIS_REF_SCREENSHOT_DIR"):
        dest = Path(os.environ["TSALLIS_REF_SCREENSHOT_DIR"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "qlog.png")


def test_intro_maths_typeset(built_book, server, tmp_path):
    rep = _math_report(_chrome(f"{server}/book/intro.html", tmp_path, "--dump-dom"))
    assert rep["mjx"] >= 5 and rep["raw_inline"] == 0 and rep["raw_display"] == 0, rep


def test_negative_control_without_mathjax(built_book, server, tmp_path):
    """The same checks on the same page with MathJax's path broken must see raw TeX and no typeset maths."""
    page = _probe_page(built_book, CHAPTER, break_mathjax=True)
    rep = _math_report(_chrome(f"{server}/{page}", tmp_path, "--dump-dom"))
    assert rep["mjx"] == 0, rep
    assert rep["raw_inline"] + rep["raw_display"] > 0, rep
    assert rep["png_loaded"] >= MIN_FIGURES, rep  # the figures do not depend on MathJax


# ---------------------------------------------------------------------------------------------------------
# Every page, as a reader meets it
# ---------------------------------------------------------------------------------------------------------
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html", "index.html"}  # index.html: a redirect

#: runs after MathJax has typeset the page: how many display equations are wider than the text column
LAYOUT_PROBE = """<script>window.addEventListener('load', function () {
  var done = function () {
    var col = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
    var right = col.getBoundingClientRect().right, bad = [];
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (c) {
      if (c.scrollWidth > c.clientWidth + 2 || c.getBoundingClientRect().right > right + 2) {
        bad.push((c.querySelector('mjx-assistive-mml') || c).textContent.slice(0, 60));
      }
    });
    document.body.setAttribute('data-clipped-display', String(bad.length));
    document.body.setAttribute('data-clipped-what', bad.slice(0, 3).join(' | '));
  };
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { MathJax.startup.promise.then(done); }
  else { done(); }
});</script></body>"""

#: TeX macros that the book's maths uses; one of them left as text means a math span was not typeset
TEX_MACROS = (
    "alpha beta gamma delta epsilon varepsilon theta lambda mu sigma tau phi psi omega nabla partial ell "
    "Delta Theta Omega Sigma Phi sum prod int frac tfrac dfrac sqrt log exp mathrm mathbb mathcal mathbf "
    "operatorname text left right big Big bigl bigr to downarrow uparrow rightarrow leftarrow Rightarrow "
    "leq geq le ge neq approx propto infty cdot cdots ldots times tilde bar hat dot qquad quad begin end "
    "in sim mid neg top"
).split()
#: TeX left as text: one of those macros, or a $...$ pair in prose
RAW_TEX = re.compile(r"\\(?:" + "|".join(TEX_MACROS) + r")(?![A-Za-z])|(?<![\w$])\$[^$\s][^$]{0,200}\$(?![\w$])")


class _ProseText(HTMLParser):
    """The text a reader sees as prose: not code, outputs, scripts, the head or MathJax's hidden MathML."""

    SKIP = {"head", "script", "style", "pre", "code", "mjx-assistive-mml", "textarea", "mjx-container"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.text: list[str] = []

    def _skipping(self) -> bool:
        return any(skip for _, skip in self.stack)

    def handle_starttag(self, tag, attrs) -> None:
        if tag in ("br", "img", "hr", "input", "meta", "link", "wbr", "source", "col", "area", "base", "embed"):
            return
        cls = (dict(attrs).get("class") or "").split()
        self.stack.append((tag, tag in self.SKIP or "cell_output" in cls))

    def handle_endtag(self, tag) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data) -> None:
        if not self._skipping():
            self.text.append(data)


def _raw_tex(dom: str) -> list[str]:
    p = _ProseText()
    p.feed(dom)
    text = " ".join(p.text)
    return [text[max(0, m.start() - 50) : m.end() + 30] for m in RAW_TEX.finditer(text)][:3]


def _layout_probe(html_dir: Path, page: str, inject: str = "") -> str:
    src = (html_dir / page).read_text(encoding="utf-8")
    if inject:
        src = src.replace('<article class="bd-article">', '<article class="bd-article">' + inject, 1)
    src = src.replace("</body>", LAYOUT_PROBE)
    name = page.replace(".html", "-layout.html" if not inject else "-layout-injected.html")
    (html_dir / name).write_text(src, encoding="utf-8")
    return name


def _reader_report(server: str, html_dir: Path, page: str, tmp_path: Path, inject: str = "") -> dict:
    dom = _chrome(
        f"{server}/{_layout_probe(html_dir, page, inject)}", tmp_path, "--dump-dom", "--window-size=1280,2000"
    )
    m = re.search(r'data-clipped-display="(\d+)"', dom)
    what = re.search(r'data-clipped-what="([^"]*)"', dom)
    return {
        "clipped": int(m.group(1)) if m else -1,
        "clipped_what": what.group(1) if what else "",
        "raw_tex": _raw_tex(dom),
        "merror": len(re.findall(r"<mjx-merror\b", dom)),
    }


def _pages(html_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(html_dir))
        for p in html_dir.rglob("*.html")
        if p.name not in SKIP_PAGES
        and "_static" not in p.parts
        and not re.search(r"-(probe|broken|layout|layout-injected)\.html$", p.name)
    )


def test_every_page_reads_cleanly(built_book, server, tmp_path):
    """No raw TeX in prose, titles or sidebar; no display equation wider than the column; no MathJax error."""
    bad = {}
    for page in _pages(built_book):
        rep = _reader_report(server, built_book, page, tmp_path)
        if rep["clipped"] != 0 or rep["raw_tex"] or rep["merror"]:
            bad[page] = rep
    assert not bad, f"pages a reader would find broken: {bad}"


def test_reader_probes_see_injected_defects(built_book, server, tmp_path):
    """Negative control: a too-wide display equation and TeX outside maths, injected into a page, are seen."""
    wide = "+".join(f"x_{{{i}}}" for i in range(120))
    inject = (
        f'<div class="math notranslate nohighlight">\\[{wide}\\]</div>'
        "<p>broken pairing: \\alpha_j and $q\\downarrow0$</p>"
    )
    rep = _reader_report(server, built_book, CHAPTER, tmp_path, inject)
    assert rep["clipped"] >= 1, rep
    assert rep["raw_tex"], rep


def test_no_dead_badge_and_clean_outputs(built_book):
    """No link to a placeholder repository; no warning, local path or undecodable bytes in any output."""
    problems = {}
    for page in _pages(built_book):
        html = (built_book / page).read_text(encoding="utf-8")
        found = [f"placeholder link {u}" for u in placeholder_links(html)] + output_noise(html)
        if found:
            problems[page] = found[:4]
    assert not problems, problems
    # with repository.url unset (the committed setting) no page carries a Colab badge at all
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    if not ((config.get("repository") or {}).get("url") or "").strip():
        for page in _pages(built_book):
            assert "colab.research.google.com" not in (built_book / page).read_text(encoding="utf-8"), page


# ---------------------------------------------------------------------------------------------------------
# Every page on a phone
# ---------------------------------------------------------------------------------------------------------
PHONE_WIDTH = 420  # px; headless Chromium will not open a window this narrow, an iframe is laid out at it

#: runs in a harness page holding every page in a PHONE_WIDTH iframe: which pages scroll sideways as a whole
PHONE_PROBE = """<script>window.addEventListener('load', function () {
  var frames = Array.from(document.querySelectorAll('iframe'));
  var ready = frames.map(function (f) {
    var mj = f.contentWindow.MathJax;
    return mj && mj.startup && mj.startup.promise ? mj.startup.promise : Promise.resolve();
  });
  Promise.all(ready).then(function () {
    var bad = [];
    frames.forEach(function (f) {
      var d = f.contentDocument.documentElement;
      if (d.scrollWidth > d.clientWidth + 2) bad.push(f.dataset.page + ':' + d.scrollWidth);
    });
    document.body.setAttribute('data-wide-pages', bad.join(' ') || 'none');
  });
});</script>"""


def _pages_wider_than_a_phone(server: str, html_dir: Path, pages: list[str], tmp_path: Path) -> list[str]:
    frames = "".join(
        f'<iframe src="{p}" data-page="{p}" style="width:{PHONE_WIDTH}px;height:600px;border:0"></iframe>'
        for p in pages
    )
    (html_dir / "phone-layout.html").write_text(f"<html><body>{frames}{PHONE_PROBE}</body></html>", encoding="utf-8")
    dom = _chrome(
        f"{server}/phone-layout.html", tmp_path, "--dump-dom", "--window-size=1280,2000", "--hide-scrollbars"
    )  # a phone overlays its scrollbars: the text column is the full width
    m = re.search(r'data-wide-pages="([^"]*)"', dom)
    assert m, "the phone probe did not report (a page failed to load in its frame?)"
    return [] if m.group(1) == "none" else m.group(1).split()


def test_no_page_scrolls_sideways_on_a_phone(built_book, server, tmp_path):
    """At 420 px a long identifier (a module path in a title, an API signature) wraps; the page never widens."""
    wide = _pages_wider_than_a_phone(server, built_book, _pages(built_book), tmp_path)
    assert not wide, f"pages wider than a {PHONE_WIDTH} px screen (page:width): {wide}"


def test_phone_probe_sees_a_wide_page(built_book, server, tmp_path):
    """Negative control: a copy of a page with an element wider than the phone is reported."""
    page = _layout_probe(built_book, CHAPTER, '<div style="width:900px">a wide element</div>')
    wide = _pages_wider_than_a_phone(server, built_book, [CHAPTER, page], tmp_path)
    assert [w.split(":")[0] for w in wide] == [page], wide


def _split_streams(html: str) -> int:
    """How many code cells show their printed output in more than one box (one box per print)."""
    n = 0
    for chunk in html.split('class="cell_output')[1:]:
        chunk = chunk.split('class="cell docutils')[0]
        n += chunk.count('class="output stream') > 1
    return n


def test_printed_output_in_one_box(built_book):
    """A cell that prints several times shows one output box (myst-nb's nb_merge_streams)."""
    split = {page: n for page in _pages(built_book) if (n := _split_streams((built_book / page).read_text()))}
    assert not split, f"cells whose prints are split over several boxes, per page: {split}"
    # the probe sees a split output
    box = '<div class="output stream highlight-myst-ansi notranslate"><pre>x</pre></div>'
    assert _split_streams(f'<div class="cell docutils"><div class="cell_output docutils">{box}{box}</div></div>') == 1


# ---------------------------------------------------------------------------------------------------------
# Every code cell and output at desktop width
# ---------------------------------------------------------------------------------------------------------
DESKTOP_WIDTH = 1280  # px; a laptop window: no code cell or output may scroll sideways in it

#: runs in a harness page holding every page in a DESKTOP_WIDTH iframe: in each, which code cell inputs, output
#: blocks, code blocks and tables of the text hold content wider than their box (they scroll sideways, or spill
#: past the text column)
WIDE_BLOCK_PROBE = """<script>window.addEventListener('load', function () {
  var report = {};
  document.querySelectorAll('iframe').forEach(function (f) {
    var doc = f.contentDocument, bad = [];
    var col = doc.querySelector('article.bd-article') || doc.body, right = col.getBoundingClientRect().right;
    var seen = new Set();
    doc.querySelectorAll(
      'div.cell_input pre, div.cell_output pre, div.cell_output div.output, div.cell_output table, '
      + 'article.bd-article div.highlight pre, article.bd-article table'
    ).forEach(function (el) {
      var block = el.closest('div.cell_input') || el.closest('div.output') || el;
      if (seen.has(block)) return;
      if (el.scrollWidth > el.clientWidth + 2 || el.getBoundingClientRect().right > right + 2) {
        seen.add(block);
        var lines = (el.innerText || '').split('\\n'), widest = '';
        lines.forEach(function (l) { if (l.length > widest.length) widest = l; });
        bad.push((block.classList.contains('cell_input') ? 'in' : (el.closest('div.cell_output') ? 'out' : 'text')) + ' ' + el.scrollWidth + '>'
                 + el.clientWidth + ' (' + widest.length + ' chars) ' + widest.slice(0, 70));
      }
    });
    report[f.dataset.page] = bad;
  });
  document.body.setAttribute('data-wide-blocks', JSON.stringify(report));
});</script>"""


def wide_blocks(server: str, html_dir: Path, pages: list[str], tmp_path: Path) -> dict[str, list[str]]:
    """Per page, the code cell inputs and output blocks wider than their box at DESKTOP_WIDTH px.

    Each entry reads ``in|out <scrollWidth>> <clientWidth> (<n> chars) <start of the widest line>``.
    """
    frames = "".join(
        f'<iframe src="{p}" data-page="{p}" style="width:{DESKTOP_WIDTH}px;height:800px;border:0"></iframe>'
        for p in pages
    )
    (html_dir / "desktop-layout.html").write_text(
        f"<html><body>{frames}{WIDE_BLOCK_PROBE}</body></html>", encoding="utf-8"
    )
    dom = _chrome(f"{server}/desktop-layout.html", tmp_path, "--dump-dom", f"--window-size={DESKTOP_WIDTH + 40},2000")
    m = re.search(r"data-wide-blocks='([^']*)'|data-wide-blocks=\"([^\"]*)\"", dom)
    assert m, "the desktop probe did not report (a page failed to load in its frame?)"
    import html as _html
    import json

    return {p: v for p, v in json.loads(_html.unescape(m.group(1) or m.group(2))).items() if v}


def test_no_code_or_output_scrolls_sideways(built_book, server, tmp_path):
    """At 1280 px every code cell and every output fits its box: no block scrolls sideways."""
    wide = wide_blocks(server, built_book, _pages(built_book), tmp_path)
    counts = " ".join(f"{p}:{len(v)}" for p, v in sorted(wide.items()))
    assert not wide, f"code or output blocks wider than their box at {DESKTOP_WIDTH} px (page:count): {counts}"


def test_wide_block_probe_sees_a_long_line(built_book, server, tmp_path):
    """Negative control: a copy of a page with one over-long code line and one over-long output line."""
    long = "x = " + " + ".join(f"value_{i}" for i in range(40))
    inject = (
        f'<div class="cell docutils container"><div class="cell_input docutils container">'
        f'<div class="highlight"><pre>{long}</pre></div></div>'
        f'<div class="cell_output docutils container"><div class="output stream"><div class="highlight">'
        f"<pre>{long}</pre></div></div></div></div>"
    )
    page = _layout_probe(built_book, CHAPTER, inject)
    wide = wide_blocks(server, built_book, [CHAPTER, page], tmp_path)
    clean = len(wide.get(CHAPTER, []))
    assert len(wide.get(page, [])) == clean + 2, wide


if __name__ == "__main__":
    # script mode: `python tests/test_book_html.py <built html dir> [page ...]` prints, per page, the blocks
    # wider than their box at 1280 px (build the book first, e.g. as the `built_book` fixture does)
    import tempfile

    html_dir = Path(sys.argv[1]).resolve()
    pages = sys.argv[2:] or _pages(html_dir)
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        found = wide_blocks(f"http://127.0.0.1:{httpd.server_address[1]}", html_dir, pages, Path(tmp))
    httpd.shutdown()
    for p in pages:
        print(f"{p}: {len(found.get(p, []))}")
        for line in found.get(p, []):
            print("   ", line)
    print("total", sum(map(len, found.values())))
