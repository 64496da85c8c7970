#!/usr/bin/env python
"""Check a built book: it loads nothing from the network, links to no placeholder, and its outputs are clean.

Usage: python scripts/check_offline_html.py _build/html

Exits 1, listing what it found, when a page has a ``<script src=...>``, a
``<link rel=stylesheet|preload|modulepreload href=...>``, an ``<img src=...>`` or an ``<iframe src=...>`` that
points to another host (``http:``, ``https:`` or ``//``), when the local MathJax is missing, when a link points
at a placeholder repository (a dead badge, e.g. ``YOUR-ORG``), or when a notebook output shows a Python warning,
an absolute path of the machine that ran it, or undecodable bytes.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

EXTERNAL = re.compile(r"^\s*(https?:)?//", re.I)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag in ("script", "iframe", "img") and a.get("src"):
            self.refs.append((tag, a["src"]))
        if tag == "link" and a.get("href"):
            rel = a.get("rel", "").lower()
            if any(r in rel for r in ("stylesheet", "preload", "modulepreload", "icon")):
                self.refs.append((f"link rel={rel}", a["href"]))


def external_refs(html: str) -> list[tuple[str, str]]:
    """The (tag, url) pairs of ``html`` that would be fetched from another host."""
    p = _Refs()
    p.feed(html)
    return [(t, u) for t, u in p.refs if EXTERNAL.match(u)]


#: a link to a repository that does not exist: a placeholder organisation or user
PLACEHOLDER = re.compile(r"YOUR[-_ ]?(ORG|USER|NAME|REPO)|<org>|%3Corg%3E|example\.(com|org)/", re.I)
#: what must not appear in a notebook's output: warnings, absolute paths, undecodable bytes
NOISE = {
    "a Python warning": re.compile(r"\b[A-Z]\w*Warning\b"),
    "an absolute path": re.compile(r"(?<![\w.:/])/(?:work|home|tmp|root|usr|opt|var|Users|mnt|content)/[\w.-]+"),
    "a site-packages path": re.compile(r"site-packages"),
    "undecodable bytes": re.compile("\ufffd"),
}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


def placeholder_links(html: str) -> list[str]:
    """The links of ``html`` that point at a placeholder (e.g. a Colab badge for ``YOUR-ORG``)."""
    p = _Links()
    p.feed(html)
    return [u for u in p.links if PLACEHOLDER.search(u)]


class _Outputs(HTMLParser):
    """The text inside notebook cell outputs (``<div class="cell_output ...">``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # div nesting inside the current output, 0 = outside
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "div":
            return
        cls = (dict(attrs).get("class") or "").split()
        if self.depth:
            self.depth += 1
        elif "cell_output" in cls:
            self.depth = 1
            self.chunks.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.chunks[-1] += data


def output_noise(html: str) -> list[str]:
    """What a reader should not see in ``html``'s notebook outputs: ``["<kind>: <context>", ...]``."""
    p = _Outputs()
    p.feed(html)
    found = []
    for text in p.chunks:
        for kind, pat in NOISE.items():
            for m in pat.finditer(text):
                found.append(f"{kind}: {text[max(0, m.start() - 60) : m.end() + 40]!r}")
    return found


def mathjax_refs(html: str) -> list[str]:
    p = _Refs()
    p.feed(html)
    return [u for t, u in p.refs if t == "script" and "mathjax" in u.lower()]


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "_build/html")
    pages = sorted(root.rglob("*.html"))
    if not pages:
        print(f"check_offline_html: no HTML under {root}; build the book first (make book)", file=sys.stderr)
        return 1
    bad = []
    uses_mathjax = False
    for page in pages:
        html = page.read_text(encoding="utf-8", errors="replace")
        bad += [f"{page.relative_to(root)}: <{t}> {u}" for t, u in external_refs(html)]
        bad += [f"{page.relative_to(root)}: link to a placeholder repository {u}" for u in placeholder_links(html)]
        bad += [f"{page.relative_to(root)}: output shows {n}" for n in output_noise(html)]
        for u in mathjax_refs(html):
            uses_mathjax = True
            target = (page.parent / u.split("?")[0]).resolve()
            if not target.is_file():
                bad.append(f"{page.relative_to(root)}: MathJax script {u} does not exist in the build")
    if not uses_mathjax:
        bad.append("no page loads MathJax (expected _static/mathjax/tex-chtml.js)")
    if bad:
        print("check_offline_html: the built book is not self-contained or not clean:", file=sys.stderr)
        for b in bad:
            print("  " + b, file=sys.stderr)
        return 1
    print(
        f"check_offline_html: {len(pages)} pages, no external script/stylesheet/font, MathJax local, "
        "no placeholder link, no warning or local path in outputs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
