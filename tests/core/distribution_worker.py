"""Train klg.LSTM and keras.layers.LSTM on simulated devices; used by
test_distribution.py, one subprocess per scenario.

    python tests/core/distribution_worker.py jax_data_parallel
    python tests/core/distribution_worker.py jax_model_parallel
    python tests/core/distribution_worker.py tf_mirrored

The device count is fixed when the backend starts (``XLA_FLAGS`` for JAX,
logical CPUs for TensorFlow), so each scenario runs in a fresh process that
sets them before Keras is imported.  In that one process the same model
(LSTM(8) then Dense(1), weights set from one numpy seed) is fitted for a few
SGD steps three ways: klg.LSTM on one device, and klg.LSTM and
keras.layers.LSTM under the scenario's distribution.  It prints one JSON line: each run's
weights after the fit (split into the four gates, in klg's names, for both
layers), its per-epoch losses and predictions, and where the distributed
runs' variables live.

Nothing runs on import (``pytest --doctest-modules`` imports this file).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

DEVICES = 4  # simulated JAX host devices
TF_REPLICAS = 2  # logical TensorFlow CPUs
BATCH, TIME, FEATURES, UNITS = 16, 6, 4, 8
GATES = ("input_gate", "forget_gate", "candidate", "output_gate")  # Keras's fused order
SCENARIOS = ("jax_data_parallel", "jax_model_parallel", "tf_mirrored", "docs_jax", "docs_tf")
PAGE = Path(__file__).resolve().parents[2] / "docs" / "many-devices.md"
# A titled code block of the page: ```py title="..." (not run by the docs
# tests, which run only ```python blocks) or ```python title="...".
TITLED_BLOCK = re.compile(
    r'^```(?P<lang>py|python) title="(?P<title>[^"]*)"[ \t]*\n(?P<body>.*?)^```[ \t]*$', re.M | re.S
)


def configure_environment(scenario):
    """Set the backend and the device count; must run before Keras is imported."""
    if scenario.startswith("jax"):
        os.environ["KERAS_BACKEND"] = "jax"
        os.environ["JAX_PLATFORMS"] = "cpu"
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={DEVICES}".strip()
        )
    else:
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(TF_REPLICAS)]
        )


def initial_weights():
    """Keras-layout LSTM weights (gates i, f, c, o side by side) and Dense weights."""
    import numpy as np

    rng = np.random.default_rng(7)
    scale = 0.4
    return {
        "kernel": rng.uniform(-scale, scale, (FEATURES, 4 * UNITS)).astype("float32"),
        "recurrent_kernel": rng.uniform(-scale, scale, (UNITS, 4 * UNITS)).astype("float32"),
        "bias": rng.uniform(-0.1, 0.1, (4 * UNITS,)).astype("float32"),
        "dense_kernel": rng.uniform(-0.5, 0.5, (UNITS, 1)).astype("float32"),
        "dense_bias": np.zeros((1,), "float32"),
    }


def data():
    import numpy as np

    rng = np.random.default_rng(11)
    x = rng.normal(size=(BATCH, TIME, FEATURES)).astype("float32")
    y = np.tanh(x.sum(axis=(1, 2)) / 4.0)[:, None].astype("float32")
    return x, y


def block(array, k):
    return array[..., k * UNITS : (k + 1) * UNITS]


# What the probe layer saw of each batch, per run (see ``batch_probe``).
SEEN = []


def describe_batch(x):
    """How one batch reaching the probe is laid out: its per-device batch size
    and, on JAX, how many devices hold it."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        if isinstance(x, jax.core.Tracer):

            def record(sharding):
                SEEN.append(
                    {
                        "devices": len(sharding.device_set),
                        "shard_batch": sharding.shard_shape(tuple(x.shape))[0],
                    }
                )

            jax.debug.inspect_array_sharding(x, callback=record)
    elif x.shape[0] is not None:
        # Under MirroredStrategy each replica traces the step with its share.
        SEEN.append({"shard_batch": int(x.shape[0])})


def batch_probe():
    """An identity layer that records how the batches reaching it are laid out."""
    import keras

    class BatchProbe(keras.layers.Layer):
        def call(self, x):
            describe_batch(x)
            return x

    return BatchProbe(name="probe")


def build_model(kind):
    """A probe, LSTM(UNITS) then Dense(1), with the weights of ``initial_weights()``.

    The LSTM is ``klg.LSTM`` (``kind="klg"``) or ``keras.layers.LSTM``.  The
    klg gates get the fused blocks by plain slicing, not through klg's own
    interop code.
    """
    import keras

    import keras_lstm_gates as klg

    w = initial_weights()
    lstm = klg.LSTM(UNITS, name="lstm") if kind == "klg" else keras.layers.LSTM(UNITS, name="lstm")
    dense = keras.layers.Dense(1, name="dense")
    model = keras.Sequential([keras.Input((TIME, FEATURES)), batch_probe(), lstm, dense])
    if kind == "klg":
        for k, name in enumerate(GATES):
            gate = lstm.cell.gates[name]
            gate.kernel.assign(block(w["kernel"], k))
            gate.recurrent_kernel.assign(block(w["recurrent_kernel"], k))
            gate.bias.assign(block(w["bias"], k))
    else:
        lstm.cell.kernel.assign(w["kernel"])
        lstm.cell.recurrent_kernel.assign(w["recurrent_kernel"])
        lstm.cell.bias.assign(w["bias"])
    dense.kernel.assign(w["dense_kernel"])
    dense.bias.assign(w["dense_bias"])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.2), loss="mse")
    return model


def gate_weights(model):
    """The trained weights as numpy, named ``<gate>/<kernel|recurrent_kernel|bias>``."""
    import keras
    import numpy as np

    def np_(v):
        return np.asarray(keras.ops.convert_to_numpy(v.value))

    lstm, dense = model.get_layer("lstm"), model.get_layer("dense")
    out = {}
    for k, name in enumerate(GATES):
        if hasattr(lstm.cell, "gates"):
            gate = lstm.cell.gates[name]
            parts = (np_(gate.kernel), np_(gate.recurrent_kernel), np_(gate.bias))
        else:
            cell = lstm.cell
            parts = tuple(block(np_(v), k) for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
        for part, value in zip(("kernel", "recurrent_kernel", "bias"), parts):
            out[f"{name}/{part}"] = value
    out["dense/kernel"] = np_(dense.kernel)
    out["dense/bias"] = np_(dense.bias)
    return out


def fit(model, epochs=2, batch_size=8):
    """A few SGD steps in a fixed order; returns the per-epoch losses and predictions."""
    x, y = data()
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    prediction = model.predict(x, batch_size=batch_size, verbose=0)
    return history.history["loss"], prediction


def run(model):
    del SEEN[:]
    losses, prediction = fit(model)
    return {
        "batches": sorted({json.dumps(seen, sort_keys=True) for seen in SEEN}),
        "losses": [float(v) for v in losses],
        "prediction": prediction.tolist(),
        "weights": {k: v.tolist() for k, v in gate_weights(model).items()},
    }


def jax_layout(variable):
    """Where a JAX-backed Keras variable lives: its devices and shard shape."""
    sharding = variable.value.sharding
    return {
        "path": variable.path,
        "devices": len(sharding.device_set),
        "fully_replicated": bool(sharding.is_fully_replicated),
        "shape": list(variable.shape),
        "shard_shape": list(sharding.shard_shape(tuple(variable.shape))),
    }


def jax_distribution(kind, scenario):
    """The scenario's keras.distribution for the klg or the Keras layer."""
    import keras

    dist = keras.distribution
    devices = dist.list_devices("cpu")
    assert len(devices) == DEVICES, devices
    if scenario == "jax_data_parallel":
        return dist.DataParallel(devices=devices)
    mesh = dist.DeviceMesh((2, 2), ("batch", "model"), devices=devices)
    layout_map = dist.LayoutMap(mesh)
    if kind == "klg":
        # One gate's weights split along its units over the "model" axis,
        # the candidate's split along its inputs; the other two replicated.
        layout_map[".*forget_gate.*kernel"] = (None, "model")
        layout_map[".*forget_gate.*bias"] = ("model",)
        layout_map[".*candidate.*kernel"] = ("model", None)
    else:
        # keras.layers.LSTM holds one fused array per kind: one layout for all gates.
        layout_map[".*lstm_cell.*kernel"] = (None, "model")
        layout_map[".*lstm_cell.*bias"] = ("model",)
    return dist.ModelParallel(layout_map=layout_map, batch_dim_name="batch")


def main_jax(scenario):
    import keras

    result = {"backend": keras.backend.backend(), "runs": {}, "layouts": {}}
    result["runs"]["single_klg"] = run(build_model("klg"))
    for kind in ("klg", "keras"):
        distribution = jax_distribution(kind, scenario)
        with distribution.scope():
            model = build_model(kind)
            layouts_before = [jax_layout(v) for v in model.get_layer("lstm").weights]
            result["runs"][f"distributed_{kind}"] = run(model)
            result["layouts"][kind] = {
                "before": layouts_before,
                "after": [jax_layout(v) for v in model.get_layer("lstm").weights],
            }
    return result


def main_tf():
    import keras
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) == TF_REPLICAS, devices
    strategy = tf.distribute.MirroredStrategy(devices)
    result = {"backend": keras.backend.backend(), "runs": {}, "layouts": {}}
    result["runs"]["single_klg"] = run(build_model("klg"))
    for kind in ("klg", "keras"):
        with strategy.scope():
            model = build_model(kind)
        result["runs"][f"distributed_{kind}"] = run(model)
        lstm = model.get_layer("lstm")
        result["layouts"][kind] = [
            {
                "path": v.path,
                "type": type(v.value).__name__,
                "devices": sorted({c.device for c in strategy.experimental_local_results(v.value)}),
            }
            for v in lstm.weights
        ]
    result["replicas"] = strategy.num_replicas_in_sync
    return result


def page_blocks(lang, title_start):
    """The page's ``lang`` blocks whose title starts with ``title_start``, in order."""
    text = PAGE.read_text(encoding="utf-8")
    return [
        m.group("body")
        for m in TITLED_BLOCK.finditer(text)
        if m.group("lang") == lang and m.group("title").startswith(title_start)
    ]


def run_page_blocks(blocks):
    """Run the blocks in order in one namespace; their printed output."""
    namespace = {"__name__": "__main__"}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for k, code in enumerate(blocks, start=1):
            exec(compile(code, f"{PAGE.name} (block {k})", "exec"), namespace)
    return {"blocks": len(blocks), "output": output.getvalue()}


def main_docs(scenario):
    """The page's blocks that the docs tests cannot run, on simulated devices.

    JAX: every ``py`` block titled "JAX backend..." (the first sets
    ``XLA_FLAGS`` itself).  TensorFlow: the "TensorFlow backend, 2 logical
    CPUs" ``py`` block, then the ``python`` block titled "TensorFlow backend".
    """
    if scenario == "docs_jax":
        os.environ["JAX_PLATFORMS"] = "cpu"
        return run_page_blocks(page_blocks("py", "JAX backend"))
    os.environ["KERAS_BACKEND"] = "tensorflow"  # whatever ~/.keras/keras.json says
    return run_page_blocks(
        page_blocks("py", "TensorFlow backend, 2 logical CPUs")
        + page_blocks("python", "TensorFlow backend")
    )


def main(argv):
    if len(argv) != 2 or argv[1] not in SCENARIOS:
        sys.stderr.write(f"usage: distribution_worker.py {{{','.join(SCENARIOS)}}}\n")
        return 2
    scenario = argv[1]
    if scenario.startswith("docs"):
        result = main_docs(scenario)
    else:
        configure_environment(scenario)
        result = main_tf() if scenario == "tf_mirrored" else main_jax(scenario)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
