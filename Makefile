# tsallis-ref: two commands do all set-up on a fresh machine.
#
#   make book   build the Jupyter Book (executes the CPU chapters) -> _build/html/index.html
#   make test   run every test: pytest over tests/ and nbval over the book's notebooks
#   make test-fast   the tests not marked slow, no notebooks (the inner loop while editing)
#
# Both create or reuse the virtual environment .venv (scripts/setup_env.sh) and install what they need:
# the package with all extras (torch 2.13.0 CPU first, or the torch the interpreter already has),
# MathJax from npm for the offline book, and Debian's chromium for the browser test.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# 2 cores shared by everything: one thread per process; parallelism comes from pytest-xdist.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# notebooks run in the venv's own "python3" kernel (scripts/setup_env.sh registers it there)
export JUPYTER_PREFER_ENV_PATH := 1
# pytest-xdist workers (a notebook stays on one worker: --dist loadfile). `make test XDIST=` runs serially.
XDIST ?= -n 2 --dist loadfile
# make test REQUIRE_CHROMIUM=0: skip the headless-browser test instead of installing chromium (e.g. Colab).
REQUIRE_CHROMIUM ?= 1
PYTEST_ARGS ?=
NOTEBOOKS = $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' -not -path '*/_build/*' | sort)

.PHONY: help venv book test lint format test-fast clean

help:
	@echo "make book   build the book into _build/html (executes the notebooks)"
	@echo "make test   run pytest over tests/ and nbval over the notebooks"
	@echo "make lint   ruff check + ruff format --check"
	@echo "make test-fast   run the tests not marked slow (no notebooks)"

venv:
	@bash scripts/setup_env.sh

# --all: every page is re-read, so every notebook is re-executed against the current tsallis_ref.
book:
	@bash scripts/setup_env.sh mathjax
	$(VENV)/bin/jupyter-book build . --all -W -n --keep-going
	@$(PY) scripts/check_offline_html.py _build/html
	@echo "book: open _build/html/index.html"

test:
	@bash scripts/setup_env.sh mathjax $(if $(filter 1,$(REQUIRE_CHROMIUM)),chromium)
	TSALLIS_REF_REQUIRE_CHROMIUM=$(REQUIRE_CHROMIUM) $(PY) -m pytest tests $(NOTEBOOKS) \
		--nbval-lax --nbval-current-env --nbval-sanitize-with book/nbval_sanitize.cfg $(XDIST) $(PYTEST_ARGS)

# the inner loop: no notebooks, no tests marked @pytest.mark.slow (they still run in `make test`)
test-fast:
	@bash scripts/setup_env.sh
	$(PY) -m pytest tests -m "not slow" $(XDIST) $(PYTEST_ARGS)

# ruff: lint (pyflakes, pycodestyle, isort, bugbear, pyupgrade) and the formatter's check; `make format` applies it
lint:
	@bash scripts/setup_env.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	@bash scripts/setup_env.sh
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf _build
