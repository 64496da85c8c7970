#!/usr/bin/env python
"""Check that a built book loads nothing from the network: no external script, stylesheet or font.

Usage: python scripts/check_offline_html.py _build/html

Exits 1, listing the offending references, when a page has a ``<script src=...>``, a
``<link rel=stylesheet|preload|modulepreload href=...>`` or an ``<iframe src=...>`` that points to
another host (``http:``, ``https:`` or ``//``), or when the local MathJax is missing.
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
        for u in mathjax_refs(html):
            uses_mathjax = True
            target = (page.parent / u.split("?")[0]).resolve()
            if not target.is_file():
                bad.append(f"{page.relative_to(root)}: MathJax script {u} does not exist in the build")
    if not uses_mathjax:
        bad.append("no page loads MathJax (expected _static/mathjax/tex-chtml.js)")
    if bad:
        print("check_offline_html: the built book is not self-contained:", file=sys.stderr)
        for b in bad:
            print("  " + b, file=sys.stderr)
        return 1
    print(f"check_offline_html: {len(pages)} pages, no external script/stylesheet/font, MathJax local")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
