"""klg.LSTM against every anchor on one Keras backend, in one process:
keras.layers.LSTM (default, and compiled with ``jit_compile=True`` on
TensorFlow, where klg.LSTM is timed so compiled too) and torch.nn.LSTM with
the same weights.

    KERAS_BACKEND=torch python benchmarks/anchors.py
    KERAS_BACKEND=tensorflow python benchmarks/anchors.py --out docs/assets/performance

Every candidate of a shape is timed in interleaved rounds (medians), once
with the process's default thread count and once with one thread (PyTorch
runs its OpenMP threads badly on a loaded 2-core machine; a user gets the
default).  Ratios are each candidate's time over keras.layers.LSTM's
default path in the same rounds.  Forward passes run with no gradient
kept; a training step is the gradient of ``sum(h**2)`` over every output.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The shapes of the issue that asked for these anchors: B, T, D, H.
SHAPES = [
    (64, 100, 32, 128),
    (16, 400, 8, 96),
    (32, 150, 24, 192),
    (1, 1000, 32, 64),
    (64, 10, 32, 256),
]


def candidates(shape, backend):
    """``{name: (forward, train_step)}`` with the same weights, and the
    largest difference of each forward output from Keras's."""
    import keras
    import measure
    import numpy as np

    import keras_lstm_gates as klg

    x, weights = measure.random_problem(shape)
    keras_layer = keras.layers.LSTM(shape[3], return_sequences=True)
    keras_layer.build(x.shape)
    keras_layer.set_weights(weights)
    ours = klg.LSTM.from_keras(keras_layer)
    fns = {
        "keras": measure.keras_fns(keras_layer, x, backend)[:2],
        "klg": measure.keras_fns(ours, x, backend)[:2],
    }
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        # A model compiled with jit_compile=True: the whole call is one XLA
        # program, for either layer.
        fns["keras_jit"] = _jit_fns(tf, keras_layer, xt)
        fns["klg_jit"] = _jit_fns(tf, ours, xt)
    fns["torch.nn.LSTM"] = measure.torch_lstm_fns(*weights, x)
    expected = np.asarray(keras.ops.convert_to_numpy(fns["keras"][0]()))
    parity = {}
    for name, (forward, _) in fns.items():
        got = forward()  # torch.nn.LSTM's is a torch tensor on every backend
        got = got.detach().numpy() if hasattr(got, "detach") else keras.ops.convert_to_numpy(got)
        parity[name] = float(np.max(np.abs(got - expected)))
    return fns, parity


def _jit_fns(tf, layer, xt):
    """``(forward, train_step)`` of ``layer`` in ``tf.function(jit_compile=True)``."""
    forward = tf.function(lambda xs: layer(xs, training=False), jit_compile=True)

    @tf.function(jit_compile=True)
    def step(xs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(xs, training=True)))
        return tape.gradient(loss, layer.trainable_variables)

    return (lambda: forward(xt), lambda: step(xt))


def measure_shape(shape, backend, repeats):
    import measure
    import torch

    fns, parity = candidates(shape, backend)
    threads = torch.get_num_threads()
    result = {"shape": dict(zip("BTDH", shape)), "parity_max_abs_diff": parity}
    for count in sorted({threads, 1}, reverse=True):
        for phase, index in (("forward", 0), ("train_step", 1)):
            timed = measure.interleaved(
                {n: measure.with_threads(f[index], count) for n, f in fns.items()}, repeats
            )
            result[f"{phase}_{count}_threads"] = {n: t["ms"] for n, t in timed.items()}
    result["default_threads"] = threads
    return result


def render(results):
    backend, rows = results["backend"], results["rows"]
    names = [n for n in rows[0]["parity_max_abs_diff"] if n != "keras"]
    lines = [
        f"{backend} backend, measured {results['date']}: time over keras.layers.LSTM's "
        f"(default path) in the same rounds, forward / training step; "
        f"{results['cpu_count']} CPU cores.",
        "",
        "| B, T, D, H | threads | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for row in rows:
        shape = ", ".join(str(v) for v in row["shape"].values())
        for count in sorted({row["default_threads"], 1}, reverse=True):
            forward, train = row[f"forward_{count}_threads"], row[f"train_step_{count}_threads"]
            cells = [
                f"{forward[n] / forward['keras']:.2f} / {train[n] / train['keras']:.2f}"
                for n in names
            ]
            lines.append(f"| {shape} | {count} | " + " | ".join(cells) + " |")
    worst = max(max(r["parity_max_abs_diff"].values()) for r in rows)
    lines += ["", f"Largest difference of any forward output from Keras's: {worst:.1e}."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", help="write anchors_<backend>.json and .md here")
    args = parser.parse_args(argv)

    import keras

    backend = keras.backend.backend()
    rows = []
    for shape in SHAPES:
        rows.append(measure_shape(shape, backend, args.repeats))
        print(f"[{backend}] {shape}: done", file=sys.stderr, flush=True)
    results = {
        "backend": backend,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    table = render(results)
    print(table)
    if args.out:
        with open(os.path.join(args.out, f"anchors_{backend}.json"), "w") as f:
            json.dump(results, f, indent=1)
        with open(os.path.join(args.out, f"anchors_{backend}.md"), "w") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
