#!/usr/bin/env bash
# One entry point for everything a developer or CI runs.
#
#   bash tasks.sh demo    # set up, then train klg.LSTM on a long-memory task (CPU, < 2 min)
#   bash tasks.sh test    # set up, then run the whole test suite on all three backends
#   bash tasks.sh docs    # set up, then build the site and serve it on http://127.0.0.1:8000
#   bash tasks.sh site    # set up, then build the site strictly into site/ (what CI publishes)
#   bash tasks.sh bench   # set up, then run the speed benchmark (see docs/performance.md)
#   bash tasks.sh check   # set up, then check klg.LSTM against keras.layers.LSTM on this
#                         # machine's devices, one backend at a time (--quick, --json)
#   bash tasks.sh floor   # set up .venv-floor with the lowest versions pyproject.toml
#                         # declares, then run a core subset of the tests there
#
# Setup is idempotent: a virtual environment in .venv with TensorFlow, JAX and
# PyTorch (CPU builds), the test and docs tools, and KaTeX for the site.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=.venv

setup_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  local stamp="$VENV/.klg-setup-$(cat pyproject.toml tools/requirements-dev.txt | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    python -m pip install -q --upgrade pip
    # torch is pinned here (a CPU build), never in the package metadata.
    python -m pip install -q -r tools/requirements-dev.txt
    python -m pip install -q -e ".[test,docs,plot,tensorboard,export]"
    touch "$stamp"
  fi
}

setup_floor() {
  # The lowest declared versions (tools/requirements-floor.txt), installed by
  # uv, which reads no local pip constraints and resolves in seconds.
  setup_python
  python -m pip install -q uv
  local floor=.venv-floor
  local stamp="$floor/.klg-floor-$(cat pyproject.toml tools/requirements-floor.txt | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    rm -rf "$floor"
    uv venv -q --python "$(command -v "$PY")" "$floor"
    uv pip install -q --python "$floor/bin/python" -r tools/requirements-floor.txt
    uv pip install -q --python "$floor/bin/python" --no-deps -e .
    touch "$stamp"
  fi
}

setup_site() {
  # KaTeX from the npm registry, copied into the site at build time.
  if [ ! -f node_modules/katex/dist/katex.min.js ]; then
    npm install --no-audit --no-fund --silent
  fi
}

setup_browser() {
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
  fi
}

case "${1:-}" in
  demo)
    setup_python
    shift
    # TensorFlow reads these when the package imports it, before the demo's
    # own code runs: without them its log lines come first.
    export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
    export TF_ENABLE_ONEDNN_OPTS=${TF_ENABLE_ONEDNN_OPTS:-0}
    KERAS_BACKEND=${KERAS_BACKEND:-tensorflow} python -m keras_lstm_gates.demo "$@"
    ;;
  test)
    setup_python
    setup_site
    setup_browser
    shift
    bash tools/run_tests.sh "$@"
    ;;
  docs)
    setup_python
    setup_site
    mkdocs serve -a 127.0.0.1:8000
    ;;
  site)
    setup_python
    setup_site
    mkdocs build --strict
    ;;
  bench)
    setup_python
    shift
    python benchmarks/run.py "$@"
    # klg against every anchor of each backend in one process (Keras with
    # jit_compile=True, torch.nn.LSTM), on the shapes of benchmarks/anchors.py.
    for backend in tensorflow jax torch; do
      KERAS_BACKEND=$backend python benchmarks/anchors.py
    done
    ;;
  floor)
    setup_floor
    shift
    bash tools/run_floor_tests.sh "$@"
    ;;
  check)
    setup_python
    shift
    status=0
    for backend in ${KLG_BACKENDS:-tensorflow jax torch}; do
      KERAS_BACKEND=$backend python -m keras_lstm_gates.check "$@" || status=1
    done
    exit $status
    ;;
  *)
    sed -n '2,14p' "$0"
    exit 2
    ;;
esac
