"""Sphinx extension: an "Open in Colab" badge on every notebook page, driven by one setting.

The setting is Jupyter Book's ``repository.url`` in ``_config.yml`` (with ``repository.branch`` and
``repository.path_to_book``), which Jupyter Book passes to Sphinx as ``html_theme_options["repository_url"]``
(``repository_branch``, ``path_to_docs``). While it is empty, no page gets a badge. The notebooks' Colab setup
cells carry the same URL, written by ``scripts/sync_colab.py`` (``tests/test_book_sources.py`` checks that they
agree with ``_config.yml``).

The badge image is served from the book's own ``_static`` folder, so a page still loads nothing from outside.
"""

from __future__ import annotations

import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ConfigError

COLAB = "https://colab.research.google.com/github"
_GITHUB = re.compile(r"^https://github\.com/(?P<org>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?/?$")


def colab_url(repository_url: str, branch: str, path_to_book: str, docname: str) -> str | None:
    """The Colab address of ``docname``'s notebook, or ``None`` when ``repository_url`` is empty."""
    if not repository_url:
        return None
    m = _GITHUB.match(repository_url.strip())
    if m is None:
        raise ConfigError(
            f"_config.yml repository.url: {repository_url!r} is not a GitHub repository address "
            "(https://github.com/<org>/<repo>); Colab opens notebooks from GitHub only. "
            "Set it to the repository's address, or leave it empty for no Colab badge."
        )
    prefix = path_to_book.strip("/")
    path = f"{prefix}/{docname}.ipynb" if prefix else f"{docname}.ipynb"
    return f"{COLAB}/{m['org']}/{m['repo']}/blob/{branch or 'main'}/{path}"


def _add_static(app: Sphinx) -> None:
    static = str(Path(__file__).parent / "static")
    if static not in app.config.html_static_path:  # api_tidy adds the same folder
        app.config.html_static_path.append(static)


def _badge(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    if doctree is None or context.get("page_source_suffix") != ".ipynb" or "body" not in context:
        return
    opts = app.config.html_theme_options or {}
    url = colab_url(
        opts.get("repository_url", ""), opts.get("repository_branch", "main"), opts.get("path_to_docs", ""), pagename
    )
    if url is None:
        return
    img = context["pathto"]("_static/open-in-colab.svg", 1)
    badge = (
        f'<p class="colab-badge"><a class="reference external" href="{url}">'
        f'<img alt="Open in Colab" src="{img}"/></a></p>\n'
    )
    # after the page's first heading, so the title stays on top
    body = context["body"]
    cut = body.find("</h1>")
    context["body"] = body[: cut + 5] + badge + body[cut + 5 :] if cut >= 0 else badge + body


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _add_static)
    app.connect("html-page-context", _badge)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
