"""The demo's whole output is its own: no framework log line before or
between its lines (tests/site/framework_logs.py).

It runs as ``bash tasks.sh demo`` runs it: ``python -m keras_lstm_gates.demo``
with the two settings tasks.sh exports (TensorFlow reads them when the package
imports it, before the demo's code runs), from an environment that sets
nothing else to quiet TensorFlow, on a small task.
"""

from __future__ import annotations

import os
import subprocess
import sys

import sitebuild
from framework_logs import QUIETING_ENV, framework_lines

TASKS_SETTINGS = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


def test_tasks_demo_sets_what_tensorflow_reads_first():
    tasks = (sitebuild.ROOT / "tasks.sh").read_text()
    demo = tasks[tasks.index("  demo)") : tasks.index(";;", tasks.index("  demo)"))]
    for name, value in TASKS_SETTINGS.items():
        assert f"export {name}=${{{name}:-{value}}}" in demo, name


def test_demo_output_has_no_framework_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in QUIETING_ENV}
    env.update(TASKS_SETTINGS, KERAS_BACKEND="tensorflow", PYTHONPATH=str(sitebuild.ROOT))
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
