"""The benchmark script keeps working: its quick grid runs end to end and
writes the JSON, the markdown tables and the plot.

It checks that the numbers are there and well-formed, never how fast
anything is (timings belong in docs/performance.md, not in a test).
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "benchmarks", "run.py")


def run_script(script, *args, timeout=600):
    """Run a benchmark script in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = run_script(RUN, "--grid", "quick", "--out", str(out), "--no-torch")
    assert_ok(proc)
    return out, proc.stdout


def test_writes_json_with_both_backends(quick_run):
    out, _ = quick_run
    report = json.loads((out / "results.json").read_text())
    assert set(report["summary"]) == {"tensorflow", "jax"}
    for backend, rows in report["summary"].items():
        assert len(rows) == 1
        row = rows[0]
        assert (row["B"], row["T"], row["D"], row["H"]) == (2, 5, 3, 4)
        for key in ("keras_fwd_ms", "klg_fwd_ms", "keras_train_ms", "klg_train_ms"):
            assert row[key] > 0, (backend, key)
        assert row["fwd_vs_keras"] > 0 and row["train_vs_keras"] > 0
        # The benchmark compares equal computations: same weights, same outputs.
        assert row["parity"] < 1e-5, (backend, row["parity"])
        assert set(report["targets"][backend]) >= {"forward_vs_keras", "train_step_vs_keras"}
    assert report["environment"]["cpu_count"] >= 1
    assert report["repeats"] >= 7


def test_writes_markdown_tables(quick_run):
    out, stdout = quick_run
    text = (out / "results.md").read_text()
    for backend in ("tensorflow", "jax"):
        assert f"### {backend}: time" in text
    assert "| 2, 5, 3, 4 |" in text
    assert "Targets" in text
    assert "klg / keras.layers.LSTM" in stdout


def test_draws_a_png(quick_run):
    out, _ = quick_run
    data = (out / "performance.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000


def test_memory_only_update_keeps_every_other_result(quick_run, tmp_path):
    out, _ = quick_run
    proc = run_script(
        RUN,
        "--grid",
        "quick",
        "--memory-only",
        "--update",
        str(out / "results.json"),
        "--out",
        str(tmp_path),
    )
    assert_ok(proc)
    before = json.loads((out / "results.json").read_text())
    after = json.loads((tmp_path / "results.json").read_text())
    assert after["backends"]["jax"] == before["backends"]["jax"]
    for old, new in zip(
        before["backends"]["tensorflow"]["shapes"], after["backends"]["tensorflow"]["shapes"]
    ):
        assert new["forward"] == old["forward"] and new["train_step"] == old["train_step"]
        peaks = new["train_step_tf_allocator_peak_bytes"]
        assert set(peaks) == {"keras", "klg"} and min(peaks.values()) > 0
    assert list(after["measured_at"]) == ["tensorflow", "jax", "tensorflow memory"]


def test_bad_arguments_are_refused(tmp_path):
    proc = run_script(RUN, "--backends", "theano", "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert "--backends takes tensorflow, jax and/or torch; got 'theano'" in proc.stderr
    proc = run_script(RUN, "--repeats", "0", "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert "--repeats must be at least 1, got 0" in proc.stderr
    proc = run_script(RUN, "--memory-only", "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert "--memory-only needs --update RESULTS_JSON" in proc.stderr


def test_process_memory_script_runs(tmp_path):
    script = os.path.join(ROOT, "benchmarks", "process_memory.py")
    proc = run_script(script, "--quick", "--out", str(tmp_path))
    assert_ok(proc)
    report = json.loads((tmp_path / "process_memory.json").read_text())
    assert [row["layer"] for row in report["rows"]] == ["keras", "keras_xla", "klg"]
    for row in report["rows"]:
        assert row["shape"] == {"B": 2, "T": 5, "D": 3, "H": 4}
        assert len(row["peak_bytes_after_each_call"]) == 5 and len(row["seconds"]) == 5
        assert row["peak_bytes"] == max(row["peak_bytes_after_each_call"])
        assert row["step_allocator_peak_bytes"] > 0
    assert "| 2, 5, 3, 4 | klg.LSTM |" in (tmp_path / "process_memory.md").read_text()
