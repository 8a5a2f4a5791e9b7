"""Engineering habits: the wheel builds and installs into a fresh virtual
environment, and the code passes ruff's lint and format checks."""

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_ruff_lint():
    run([sys.executable, "-m", "ruff", "check", str(ROOT)], cwd=ROOT)


def test_ruff_format():
    run([sys.executable, "-m", "ruff", "format", "--check", str(ROOT)], cwd=ROOT)


def test_wheel_builds_and_installs_in_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], cwd=ROOT)
    wheels = list(dist.glob("keras_lstm_gates-*.whl"))
    assert len(wheels) == 1, wheels
    names = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheels[0])], capture_output=True, text=True
    ).stdout
    assert "keras_lstm_gates/layer.py" in names
    assert "LICENSE" in names
    assert "tests/" not in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # Installs the wheel with its runtime dependencies only (keras, numpy).
    run([str(python), "-m", "pip", "install", "-q", str(wheels[0])])
    # A backend for Keras to run on: the pinned CPU build of torch.
    run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"])
    check = (
        "import numpy as np, keras_lstm_gates as klg\n"
        "layer = klg.LSTM(3, return_sequences=True)\n"
        "y = layer(np.ones((2, 4, 5), 'float32'))\n"
        "assert tuple(y.shape) == (2, 4, 3), y.shape\n"
        "import importlib.metadata as md\n"
        "reqs = [r for r in md.requires('keras-lstm-gates') if 'extra ==' not in r]\n"
        "assert sorted(r.split('>')[0].split('=')[0] for r in reqs) == ['keras', 'numpy'], reqs\n"
        "print(klg.__version__)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    out = run([str(python), "-c", check], env=env, cwd=tmp_path)
    assert out.stdout.strip() == "0.1.0"
