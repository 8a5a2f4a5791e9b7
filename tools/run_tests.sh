#!/usr/bin/env bash
# The whole test suite: tests/core and the doctests once per Keras backend
# (KERAS_BACKEND is read at import, so each backend gets its own process),
# then tests/site (lint, packaging, docs, browser, notebooks) once.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONHASHSEED=0 TF_CPP_MIN_LOG_LEVEL=3 KLG_FAST=1
BACKENDS=${KLG_BACKENDS:-"tensorflow jax torch"}
status=0
for backend in $BACKENDS; do
  echo "=== tests/core + doctests on KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend python -m pytest -q tests/core keras_lstm_gates \
    --doctest-modules -p no:randomly "$@" || status=1
done
if [ -z "${KLG_SKIP_SITE:-}" ]; then
  echo "=== tests/site (lint, packaging, docs, browser, notebooks) on KERAS_BACKEND=tensorflow"
  KERAS_BACKEND=tensorflow python -m pytest -q tests/site "$@" || status=1
fi
exit $status
