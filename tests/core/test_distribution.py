"""klg.LSTM under the distribution APIs of Keras and TensorFlow, on simulated devices.

* JAX: ``keras.distribution.DataParallel`` over 4 host devices, and
  ``ModelParallel`` on a 2 x 2 ("batch", "model") mesh whose ``LayoutMap``
  gives the gates different layouts (the forget gate split along its units,
  the candidate along its inputs, the others replicated).
* TensorFlow: ``tf.distribute.MirroredStrategy`` over two logical CPUs.

The device count is fixed when the backend starts, so each scenario runs in
``distribution_worker.py`` in a fresh process (one per scenario, ~15 s of CPU).
There, klg.LSTM is fitted for 4 SGD steps on one device and under the
distribution, and keras.layers.LSTM under the same distribution, from the
same weights.  The tests compare the weights, losses and predictions of the
three runs to 1e-5 and check that the batches and the variables really were
laid out over the devices.  A scenario runs only on its own backend.

The code blocks of docs/many-devices.md that the docs tests cannot run (JAX,
several devices) run here too, in their own processes.  One test runs on
every backend: an unseeded chrono initialisation follows
``keras.utils.set_random_seed``, which is how ``keras.distribution.initialize``
gives every process of a multi-host run the same initial weights.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_lstm_gates as klg

ROOT = Path(__file__).resolve().parents[2]
WORKER_PATH = Path(__file__).with_name("distribution_worker.py")
_spec = importlib.util.spec_from_file_location("distribution_worker", WORKER_PATH)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

ATOL = 1e-5
BACKEND = keras.backend.backend()
jax_only = pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution runs on JAX")
tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="tf.distribute needs the TensorFlow backend"
)


@functools.cache
def scenario(name):
    """Run the worker for one scenario in a fresh process; its JSON result."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)  # the worker chooses
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(WORKER_PATH), name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{name} worker failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def initial_gate_weights():
    """The worker's starting weights, split into the gates as the runs report them."""
    w = worker.initial_weights()
    out = {}
    for k, gate in enumerate(worker.GATES):
        for part in ("kernel", "recurrent_kernel", "bias"):
            out[f"{gate}/{part}"] = worker.block(w[part], k)
    out["dense/kernel"] = w["dense_kernel"]
    out["dense/bias"] = w["dense_bias"]
    return out


def assert_same_training(run, reference, what):
    """Same weights after the fit, same per-epoch losses, same predictions."""
    assert sorted(run["weights"]) == sorted(reference["weights"])
    for key, value in run["weights"].items():
        np.testing.assert_allclose(
            value, reference["weights"][key], rtol=0, atol=ATOL, err_msg=f"{what}: {key}"
        )
    np.testing.assert_allclose(
        run["losses"], reference["losses"], rtol=0, atol=ATOL, err_msg=f"{what}: losses"
    )
    np.testing.assert_allclose(
        run["prediction"], reference["prediction"], rtol=0, atol=ATOL, err_msg=f"{what}: predict"
    )


def assert_distributed_training_matches(result):
    runs = result["runs"]
    start = initial_gate_weights()
    # The fit moved every weight far beyond the tolerance (the least, the forget
    # gate's recurrent kernel, by 6e-4; most by 5e-3 to 0.13), so the comparisons
    # below see a gradient that is wrongly scaled, or not summed over replicas.
    for key, value in runs["single_klg"]["weights"].items():
        moved = np.abs(np.asarray(value) - start[key]).max()
        assert moved > 30 * ATOL, f"{key} moved only {moved:.2e} in the fit"
    assert runs["single_klg"]["losses"][1] < runs["single_klg"]["losses"][0]
    assert_same_training(runs["distributed_klg"], runs["single_klg"], "klg, distributed vs one")
    assert_same_training(
        runs["distributed_klg"], runs["distributed_keras"], "distributed, klg vs keras.layers.LSTM"
    )


def batches(run):
    return [json.loads(seen) for seen in run["batches"]]


def layouts_by_name(layouts):
    """``{"forget_gate/kernel": layout, ...}`` from the worker's per-variable list."""
    return {"/".join(item["path"].split("/")[-2:]): item for item in layouts}


# -- JAX: keras.distribution -------------------------------------------------------


@jax_only
def test_jax_data_parallel_matches_one_device():
    result = scenario("jax_data_parallel")
    assert result["backend"] == "jax"
    assert_distributed_training_matches(result)
    runs = result["runs"]
    # One device held each batch of 8 alone; under DataParallel 4 held 2 rows each.
    assert batches(runs["single_klg"]) == [{"devices": 1, "shard_batch": 8}]
    for kind in ("klg", "keras"):
        assert batches(runs[f"distributed_{kind}"]) == [{"devices": 4, "shard_batch": 2}]
    # Every gate's weights are replicated on the 4 devices, before and after the fit.
    for when in ("before", "after"):
        layouts = layouts_by_name(result["layouts"]["klg"][when])
        assert len(layouts) == 12
        for name, layout in layouts.items():
            assert layout["devices"] == 4, (when, name, layout)
            assert layout["fully_replicated"], (when, name, layout)


@jax_only
def test_jax_model_parallel_shards_gates_and_matches_one_device():
    result = scenario("jax_model_parallel")
    assert result["backend"] == "jax"
    assert_distributed_training_matches(result)
    runs = result["runs"]
    # The 2 x 2 mesh's "batch" axis splits each batch of 8 in two.
    for kind in ("klg", "keras"):
        assert batches(runs[f"distributed_{kind}"]) == [{"devices": 4, "shard_batch": 4}]
    features, units = worker.FEATURES, worker.UNITS
    expected = {
        # ".*forget_gate.*kernel" -> (None, "model"): half of the units per shard.
        "forget_gate/kernel": [features, units // 2],
        "forget_gate/recurrent_kernel": [units, units // 2],
        "forget_gate/bias": [units // 2],
        # ".*candidate.*kernel" -> ("model", None): half of the inputs per shard.
        "candidate/kernel": [features // 2, units],
        "candidate/recurrent_kernel": [units // 2, units],
    }
    for when in ("before", "after"):
        layouts = layouts_by_name(result["layouts"]["klg"][when])
        assert len(layouts) == 12
        for name, layout in layouts.items():
            assert layout["devices"] == 4, (when, name, layout)
            if name in expected:
                assert not layout["fully_replicated"], (when, name, layout)
                assert layout["shard_shape"] == expected[name], (when, name, layout)
            else:  # input and output gates, candidate bias: no rule, replicated
                assert layout["fully_replicated"], (when, name, layout)
                assert layout["shard_shape"] == layout["shape"], (when, name, layout)
    # keras.layers.LSTM's one fused kernel takes one layout for all four gates.
    fused = layouts_by_name(result["layouts"]["keras"]["after"])
    assert fused["lstm_cell/kernel"]["shard_shape"] == [features, 4 * units // 2]
    assert fused["lstm_cell/recurrent_kernel"]["shard_shape"] == [units, 4 * units // 2]


# -- TensorFlow: tf.distribute -------------------------------------------------------


@tensorflow_only
def test_tf_mirrored_strategy_matches_one_device():
    result = scenario("tf_mirrored")
    assert result["backend"] == "tensorflow"
    assert result["replicas"] == 2
    assert_distributed_training_matches(result)
    runs = result["runs"]
    # Each replica traced the step with its half of each batch of 8.
    assert batches(runs["single_klg"]) == [{"shard_batch": 8}]
    for kind in ("klg", "keras"):
        assert batches(runs[f"distributed_{kind}"]) == [{"shard_batch": 4}]
    layouts = layouts_by_name(result["layouts"]["klg"])
    assert len(layouts) == 12
    for name, layout in layouts.items():
        assert layout["type"] == "MirroredVariable", (name, layout)
        assert [d.rsplit("/", 1)[-1] for d in layout["devices"]] == [
            "device:CPU:0",
            "device:CPU:1",
        ], (name, layout)


# -- the "Training on many devices" page ------------------------------------------


def quoted_output():
    """The lines the page quotes as the printout of its ModelParallel block."""
    text = worker.PAGE.read_text(encoding="utf-8")
    match = re.search(r"^prints:\n\n```text\n(?P<body>.*?)^```", text, re.M | re.S)
    assert match, "the page should quote the ModelParallel block's printout"
    return match.group("body").strip().splitlines()


@jax_only
def test_docs_page_jax_blocks_run_on_four_devices():
    """The page's JAX blocks, which the docs tests skip, run on 4 devices and
    print what the page quotes."""
    result = scenario("docs_jax")
    assert result["blocks"] == 2
    printed = [line.rstrip() for line in result["output"].splitlines()]
    assert "['cpu:0', 'cpu:1', 'cpu:2', 'cpu:3']" in printed
    assert "forget_gate/kernel replicated: True" in printed
    quoted = quoted_output()
    assert len(quoted) == 12
    for line in quoted:
        assert line.rstrip() in printed, f"the page quotes {line!r}; the block printed {printed}"


@tensorflow_only
def test_docs_page_tensorflow_block_runs_on_two_replicas():
    """The page's TensorFlow block, after its two-logical-CPU block, runs two replicas."""
    result = scenario("docs_tf")
    assert result["blocks"] == 2
    printed = result["output"].splitlines()
    assert "replicas: 2" in printed
    assert "forget_gate/kernel: MirroredVariable" in printed


# -- every backend: what several processes need ------------------------------------


def test_unseeded_chrono_follows_the_keras_global_seed():
    """Every process of a multi-host run must build the same initial weights.

    ``keras.distribution.initialize`` makes them common by calling
    ``keras.utils.set_random_seed`` with one value in every process; the
    chrono initialisation without ``chrono_seed`` must follow that seed, as
    Keras's own initializers do (it drew its seed from OS entropy before).
    """

    def build(seed):
        keras.utils.set_random_seed(seed)
        layer = klg.LSTM(4, chrono_t_max=50)
        layer.build((None, 3, 2))
        cell = layer.cell
        return {
            "chrono_seed": cell.chrono_seed,
            "forget_bias": keras.ops.convert_to_numpy(cell.forget_gate.bias),
            "input_bias": keras.ops.convert_to_numpy(cell.input_gate.bias),
            "kernel": keras.ops.convert_to_numpy(cell.forget_gate.kernel),
        }

    first, again, other = build(123), build(123), build(124)
    assert first["chrono_seed"] == again["chrono_seed"] != other["chrono_seed"]
    for key in ("forget_bias", "input_bias", "kernel"):
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
        assert not np.array_equal(first[key], other[key]), key
