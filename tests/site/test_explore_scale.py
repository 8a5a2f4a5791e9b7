"""benchmarks/explore_scale.py keeps working: a small run builds the page,
opens it in headless Chromium and writes a well-formed JSON. It checks that
the figures are there, never how fast anything is (the measured figures are
on docs/study-your-model.md)."""

import json
import os
import subprocess
import sys

import pytest
import sitebuild
from cdp import find_chromium


def test_small_run_writes_its_figures(tmp_path):
    if find_chromium() is None and os.environ.get("CI", "").lower() != "true":
        pytest.skip("Chromium is not installed")
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(sitebuild.ROOT / "benchmarks" / "explore_scale.py"),
            *("--tokens", "1500", "--units", "16", "--length", "300"),
            *("--connectivity", "10", "--ranges", "3", "--out", str(out)),
        ],
        cwd=sitebuild.ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["tokens"], result["units"], result["tracks"]) == (1500, 16, 6)
    assert result["console_errors_or_requests"] == []
    assert result["kept"] == "8-bit values for all 1,500 tokens"
    for key in ("file_mb", "load_s_median", "selection_ms_median", "selection_ms_max"):
        assert isinstance(result[key], (int, float)) and result[key] >= 0, (key, result[key])
    assert len(result["load_s_runs"]) == 3 and result["selection_ranges"] == 3
