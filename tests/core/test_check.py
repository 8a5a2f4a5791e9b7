"""``python -m keras_lstm_gates.check``: the quick run on this backend's CPU,
its JSON report, and that a parity failure is reported as one.

The command runs in a subprocess, as a user runs it; its parity numbers are
differences from keras.layers.LSTM computed inside the check, so here they
are read back and held to the parity tests' tolerances.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_lstm_gates as klg

# The module; `klg.check` is its function.
check_module = sys.modules["keras_lstm_gates.check"]

KLG_PATHS = {"cudnn", "onednn", "fused-loop", "scan-loop", "unrolled"}
KERAS_PATHS = {"cudnn", "backend-lstm", "rnn-loop"}


@pytest.fixture(scope="module")
def quick_run():
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", "keras_lstm_gates.check", "--quick", "--json", "--rounds", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout), done.returncode, done.stderr


def test_quick_run_passes_and_says_where_it_ran(quick_run):
    report, status, stderr = quick_run
    assert status == 0, report["verdict"]
    assert report["passed"] is True
    assert report["backend"] == keras.backend.backend()
    assert report["keras"] == keras.__version__
    assert report["quick"] is True
    kinds = {d["kind"] for d in report["devices"]}
    assert "CPU" in kinds
    # This machine has no accelerator: the check says so and does not fail.
    assert report["accelerator"] is False
    assert report["verdict"].startswith("PASS") and "no GPU or TPU" in report["verdict"]


def test_every_configuration_is_reported(quick_run):
    report, _, _ = quick_run
    assert [c["name"] for c in report["configs"]] == list(check_module.CONFIG_NAMES)
    ran = [c for c in report["configs"] if c["status"] != "unsupported"]
    # Every configuration runs on a CPU; mixed precision included.
    assert len(ran) == len(check_module.CONFIG_NAMES), [
        (c["name"], c["error"]) for c in report["configs"] if c["status"] == "unsupported"
    ]


def test_parity_values_are_below_the_parity_tests_tolerances(quick_run):
    report, _, _ = quick_run
    tolerance = {"float32": 1e-5, "mixed_float16": 1e-2, "mixed_bfloat16": 5e-2}
    for config in report["configs"]:
        assert config["passed"], config
        assert config["tolerance"] == tolerance[config["dtype_policy"]]
        for key in ("outputs", "states", "gradients"):
            value = config["parity"][key]
            assert 0.0 <= value <= config["tolerance"], (config["name"], key, value)


def test_paths_are_named_and_follow_the_configuration(quick_run):
    report, _, _ = quick_run
    configs = {c["name"]: c for c in report["configs"]}
    for config in configs.values():
        assert config["klg_path"] in KLG_PATHS, config
        assert config["keras_path"] in KERAS_PATHS, config
        assert config["klg_path"] != "cudnn"  # no GPU here
        assert config["klg_reason"], config
    # The vanilla configurations take the fused loop; the peephole variant
    # needs the autodiff loop, and says why it cannot use cuDNN.
    plain_path = "onednn" if keras.backend.backend() == "torch" else "fused-loop"
    assert configs["plain"]["klg_path"] == plain_path
    assert configs["variant (peepholes at 0)"]["klg_path"] == "scan-loop"
    assert "peepholes=True" in configs["variant (peepholes at 0)"]["klg_reason"]
    assert "return_gates" in configs["return_gates"]["klg_reason"]
    assert configs["plain"]["klg_reason"] == "no GPU"
    # Keras's masked layers never take the backend's LSTM kernel.
    assert configs["masked with holes"]["keras_path"] == "rnn-loop"


def test_timings_are_ratios_of_positive_medians(quick_run):
    report, _, _ = quick_run
    for config in report["configs"]:
        t = config["time"]
        for key in ("keras_forward_ms", "klg_forward_ms", "keras_train_ms", "klg_train_ms"):
            assert t[key] > 0.0
        assert t["forward_ratio"] == pytest.approx(t["klg_forward_ms"] / t["keras_forward_ms"])
        assert t["train_ratio"] == pytest.approx(t["klg_train_ms"] / t["keras_train_ms"])


def test_table_names_every_configuration_and_the_verdict(quick_run):
    report, _, _ = quick_run
    table = check_module.format_report(report)
    for config in report["configs"]:
        assert config["name"] in table
    assert table.rstrip().endswith(report["verdict"])


def test_a_parity_failure_fails_the_check(monkeypatch):
    """A klg twin whose forget-gate bias is off by 0.1 must be caught."""
    build_klg = check_module.build_klg

    def broken(name, ref):
        model = build_klg(name, ref)
        layer = next(la for la in model.layers if isinstance(la, klg.LSTM))
        bias = layer.cell.forget_gate.bias
        bias.assign(keras.ops.convert_to_numpy(bias) + np.float32(0.1))
        return model

    monkeypatch.setattr(check_module, "build_klg", broken)
    report = check_module.check(quick=True, configs=["plain"], rounds=1)
    assert report["passed"] is False
    (config,) = report["configs"]
    assert config["status"] == "parity failed"
    assert config["parity"]["outputs"] > 1e-3
    assert report["verdict"].startswith("FAIL")

    monkeypatch.setattr(check_module, "check", lambda **kwargs: report)
    monkeypatch.setattr(check_module, "_quiet_frameworks", lambda: None)
    assert check_module.main(["--quick", "--json"]) == 1


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="Unknown configuration"):
        check_module.check(configs=["plain", "gru"])
    with pytest.raises(ValueError, match="rounds >= 1"):
        check_module.check(configs=["plain"], rounds=0)
