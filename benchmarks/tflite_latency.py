"""TensorFlow Lite interpreter latency: klg.LSTM's fused op against the loop.

    python benchmarks/tflite_latency.py            # the default shapes, ~2 min
    python benchmarks/tflite_latency.py --out docs/assets/performance   # for the Export page

For each shape (B, T, D, H) one ``keras.layers.LSTM`` is built with Keras's
own initial weights (seeded), and ``klg.LSTM.from_keras`` copies them.  Three
conversions with TFLite's builtin ops: klg's model by ``klg.to_tflite`` (one
``UNIDIRECTIONAL_SEQUENCE_LSTM`` op), klg's by ``tf.lite.TFLiteConverter``
alone (a ``WHILE`` loop) and Keras 3's (a ``WHILE`` loop, what every Keras 3
LSTM converts to).  The interpreters run the same input in interleaved
rounds, in one process; the table gives the median milliseconds per
``invoke``, the fused op's time over Keras's loop, and the largest difference
between the outputs.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SHAPES = [(1, 100, 32, 64), (1, 1000, 32, 64), (8, 100, 32, 128), (1, 100, 32, 256)]


def interpreter(model, fused=False):
    import warnings

    import tensorflow as tf

    import keras_lstm_gates as klg

    with warnings.catch_warnings():
        # The loop's conversion says that klg.to_tflite gives the fused op.
        warnings.simplefilter("ignore")
        if fused:
            flatbuffer = klg.to_tflite(model)
        else:
            flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    runner = tf.lite.Interpreter(model_content=flatbuffer, num_threads=1)
    runner.allocate_tensors()
    ops = sorted({op["op_name"] for op in runner._get_ops_details()})
    return runner, ops


def invoke(runner, x):
    runner.set_tensor(runner.get_input_details()[0]["index"], x)
    runner.invoke()
    return runner.get_tensor(runner.get_output_details()[0]["index"])


def measure(shape, rounds):
    import keras
    import numpy as np

    import keras_lstm_gates as klg

    batch, steps, features, units = shape
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    inputs = keras.Input((steps, features), batch_size=batch)
    reference = keras.layers.LSTM(units, return_sequences=True)
    keras_model = keras.Model(inputs, reference(inputs))
    ours = klg.LSTM.from_keras(reference)
    klg_model = keras.Model(inputs, ours(inputs))
    runners = {
        "klg (fused)": interpreter(klg_model, fused=True),
        "klg (WHILE)": interpreter(klg_model),
        "keras (WHILE)": interpreter(keras_model),
    }
    outputs = {name: invoke(r, x) for name, (r, _) in runners.items()}
    import measure

    # The first calls above were the warm-up.
    timed = measure.interleaved(
        {name: (lambda r=r: invoke(r, x)) for name, (r, _) in runners.items()}, rounds, warmup=0
    )
    medians = {name: t["ms"] for name, t in timed.items()}
    return {
        "shape": list(shape),
        "ops": {name: ops for name, (_, ops) in runners.items()},
        "median_ms": medians,
        "fused_over_while": medians["klg (fused)"] / medians["keras (WHILE)"],
        "max_abs_diff": max(
            float(np.max(np.abs(outputs[name] - outputs["keras (WHILE)"]))) for name in outputs
        ),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--out", help="write tflite_latency.json and tflite_latency.md (the table) here"
    )
    args = parser.parse_args(argv)
    rows = [measure(shape, args.rounds) for shape in SHAPES]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, one interpreter "
        f"thread, median of {args.rounds} interleaved rounds.",
        "",
        "| B, T, D, H | klg.LSTM, `klg.to_tflite`: fused op (ms) "
        "| klg.LSTM, `TFLiteConverter`: WHILE (ms) | keras.layers.LSTM: WHILE (ms) "
        "| fused / Keras's WHILE | largest difference |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ms = row["median_ms"]
        lines.append(
            f"| {', '.join(map(str, row['shape']))} | {ms['klg (fused)']:.2f} "
            f"| {ms['klg (WHILE)']:.2f} | {ms['keras (WHILE)']:.2f} | {row['fused_over_while']:.2f} "
            f"| {row['max_abs_diff']:.1e} |"
        )
    print("\n".join(lines))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "tflite_latency.json"), "w") as f:
            json.dump(rows, f, indent=1)
        with open(os.path.join(args.out, "tflite_latency.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
