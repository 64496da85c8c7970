# tsallis-ref: two commands do all set-up on a fresh machine.
#
#   make book   build the Jupyter Book (executes the CPU chapters) -> _build/html/index.html
#   make test   run every test: pytest over tests/ and nbval over the book's notebooks
#
# Both create or reuse the virtual environment .venv (scripts/setup_env.sh) and install what they need.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# 2 cores shared by everything: one thread per process, parallelism comes from pytest-xdist.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# pytest-xdist workers (notebooks stay whole: --dist loadfile). `make test XDIST=` runs serially.
XDIST ?= -n 2 --dist loadfile
PYTEST_ARGS ?=
NOTEBOOKS := $(shell git ls-files 'book/*.ipynb' 'book/**/*.ipynb' 2>/dev/null || find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*')

.PHONY: book test venv clean help

help:
	@echo "make book   build the book into _build/html (executes the notebooks)"
	@echo "make test   run pytest over tests/ and nbval over the notebooks"

venv:
	@bash scripts/setup_env.sh

book:
	@bash scripts/setup_env.sh mathjax
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@$(PY) scripts/check_offline_html.py _build/html
	@echo "book: open _build/html/index.html"

test:
	@bash scripts/setup_env.sh mathjax chromium
	$(PY) -m pytest tests $(NOTEBOOKS) --nbval-lax --sanitize-with book/nbval_sanitize.cfg $(XDIST) $(PYTEST_ARGS)

clean:
	rm -rf _build
