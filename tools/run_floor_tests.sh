#!/usr/bin/env bash
# A core subset of the tests (parity with keras.layers.LSTM, saving,
# stateful layers, Bidirectional, conversion, the step and its loops, the
# private APIs of compat.py, tracing and GateMonitor) on each backend, in
# .venv-floor: the lowest versions of Keras, TensorFlow, JAX, PyTorch,
# matplotlib and TensorBoard that pyproject.toml declares.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONHASHSEED=0 TF_CPP_MIN_LOG_LEVEL=3 KLG_FAST=1
PYTHON=.venv-floor/bin/python
SUBSET=(
  tests/core/test_parity.py
  tests/core/test_saving.py
  tests/core/test_dropin.py
  tests/core/test_models.py
  tests/core/test_convert.py
  tests/core/test_convert_state.py
  tests/core/test_compat.py
  tests/core/test_step.py
  tests/core/test_loops.py
  tests/core/test_layer_norm.py
  tests/core/test_monitor.py
  tests/core/test_tracing.py
)
"$PYTHON" -c "import keras, tensorflow, jax, torch, numpy; print('floor versions: keras', keras.__version__, '| tensorflow', tensorflow.__version__, '| jax', jax.__version__, '| torch', torch.__version__, '| numpy', numpy.__version__)"
status=0
for backend in ${KLG_BACKENDS:-tensorflow jax torch}; do
  echo "=== floor versions: core subset on KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend "$PYTHON" -m pytest -q -p no:randomly "${SUBSET[@]}" "$@" || status=1
done
exit $status
