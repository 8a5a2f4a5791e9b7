"""ONNX Runtime latency of exported LSTMs, on the Keras backend of this process.

    python benchmarks/onnx_latency.py                       # TensorFlow, ~1 min
    KERAS_BACKEND=torch python benchmarks/onnx_latency.py --out docs/assets/performance
    KERAS_BACKEND=jax python benchmarks/onnx_latency.py --out docs/assets/performance

For each shape (B, T, D, H) one ``keras.layers.LSTM`` is built with Keras's
own initial weights (seeded); ``klg.LSTM.from_keras`` copies them, and a
``klg.LSTM(peepholes=True)`` gets the same weights and random peepholes.  Each
model is exported with ``model.export(format="onnx")`` (tf2onnx on
TensorFlow, torch.onnx on PyTorch, jax2onnx on JAX) with the sequence length
declared (Keras's export on PyTorch computes one step of a ``None`` length),
and run by ONNX Runtime on one thread, in interleaved rounds in one process.  The table gives what the LSTM became in the file (an ``LSTM``
node, a ``Loop``, or the steps unrolled), the median milliseconds per run, the
time over Keras's export, and the largest difference from Keras's ``predict``
(the peephole model's from its own).
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHAPES = [(1, 100, 32, 64), (8, 100, 32, 128)]


def session(model, folder, name):
    import onnx
    import onnxruntime

    path = os.path.join(folder, f"{name}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.export(path, format="onnx", verbose=False)
    nodes = {node.op_type for node in onnx.load(path).graph.node}
    form = "LSTM node" if "LSTM" in nodes else ("Loop" if "Loop" in nodes else "unrolled")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    runner = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return runner, form


def run(runner, x):
    return runner.run(None, {runner.get_inputs()[0].name: x})[0]


def measure(shape, rounds, folder):
    import keras
    import numpy as np

    import keras_lstm_gates as klg
    from keras_lstm_gates import parts

    batch, steps, features, units = shape
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    inputs = keras.Input((steps, features))
    reference = keras.layers.LSTM(units, return_sequences=True)
    models = {"keras.layers.LSTM": keras.Model(inputs, reference(inputs))}
    models["klg.LSTM"] = keras.Model(inputs, klg.LSTM.from_keras(reference)(inputs))
    peepholes = klg.LSTM(units, return_sequences=True, peepholes=True)
    models["klg.LSTM(peepholes=True)"] = keras.Model(inputs, peepholes(inputs))
    kernel, recurrent_kernel, bias = reference.get_weights()
    for part, gate in peepholes.cell.present_gates.items():
        for name, joined in zip(
            ("kernel", "recurrent_kernel", "bias"), (kernel, recurrent_kernel, bias)
        ):
            getattr(gate, name).assign(parts.split(joined, units)[part])
        if gate.peephole is not None:
            gate.peephole.assign(rng.normal(scale=0.1, size=units).astype("float32"))
    expected = {name: keras.ops.convert_to_numpy(m(x)) for name, m in models.items()}
    expected["klg.LSTM"] = expected["keras.layers.LSTM"]
    runners = {name: session(m, folder, f"m{k}") for k, (name, m) in enumerate(models.items())}
    outputs = {name: run(r, x) for name, (r, _) in runners.items()}
    import measure

    # The first calls above were the warm-up.
    timed = measure.interleaved(
        {name: (lambda r=r: run(r, x)) for name, (r, _) in runners.items()}, rounds, warmup=0
    )
    medians = {name: t["ms"] for name, t in timed.items()}
    return {
        "shape": list(shape),
        "form": {name: form for name, (_, form) in runners.items()},
        "median_ms": medians,
        "over_keras": {n: m / medians["keras.layers.LSTM"] for n, m in medians.items()},
        "max_abs_diff": {n: float(np.max(np.abs(outputs[n] - expected[n]))) for n in outputs},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", help="write onnx_latency_<backend>.json and .md here")
    args = parser.parse_args(argv)
    import keras

    backend = keras.backend.backend()
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(shape, args.rounds, folder) for shape in SHAPES]
    lines = [
        f"{backend}, measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: ONNX "
        f"Runtime on one thread, median of {args.rounds} interleaved rounds.",
        "",
        "| B, T, D, H | model | in the ONNX file | ms | over Keras's | largest difference |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for name, ms in row["median_ms"].items():
            lines.append(
                f"| {', '.join(map(str, row['shape']))} | `{name}` | {row['form'][name]} "
                f"| {ms:.2f} | {row['over_keras'][name]:.2f} | {row['max_abs_diff'][name]:.1e} |"
            )
    print("\n".join(lines))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        stem = os.path.join(args.out, f"onnx_latency_{backend}")
        with open(stem + ".json", "w") as f:
            json.dump({"backend": backend, "rows": rows}, f, indent=1)
        with open(stem + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
