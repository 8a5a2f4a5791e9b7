"""The demo's whole output is its own: no framework log line before or
between its lines (tests/site/framework_logs.py).

It runs as a reader runs it, ``python -m keras_lstm_gates.demo``, from an
environment that sets nothing to quiet TensorFlow, on a small task.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sitebuild
from framework_logs import QUIETING_ENV, framework_lines


@pytest.mark.xfail(
    strict=True,
    reason=(
        "python -m keras_lstm_gates.demo imports the package, and with it TensorFlow, "
        "before demo.py runs: the quieting variables must be set before that import "
        "(tasks.sh demo or the package's __init__, outside the docs' files)"
    ),
)
def test_demo_output_has_no_framework_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in QUIETING_ENV}
    env.update(KERAS_BACKEND="tensorflow", PYTHONPATH=str(sitebuild.ROOT))
    small = ["--epochs", "1", "--train", "128", "--length", "12", "--units", "8"]
    done = subprocess.run(
        [sys.executable, "-m", "keras_lstm_gates.demo", *small, "--out", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert output.lstrip().startswith("keras_lstm_gates demo"), output[:500]
    assert not framework_lines(output), "\n".join(framework_lines(output))
