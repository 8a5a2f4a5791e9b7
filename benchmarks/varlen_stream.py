"""A stream of batches whose sequence length changes every batch, as a text
pipeline that pads each batch to its longest sentence makes it.

    python benchmarks/varlen_stream.py                 # TensorFlow, ~5 min
    KERAS_BACKEND=jax python benchmarks/varlen_stream.py --lengths 20
    python benchmarks/varlen_stream.py --extra-variables 18 --out docs/assets/performance
                                                       # for the Performance page

The model is the TensorFlow text-classification tutorial's, on token ids:
``Embedding(mask_zero=True)`` -> ``Bidirectional(LSTM(64))`` -> ``Dense``, built
with ``keras.layers.LSTM`` and converted with ``klg.convert`` (same weights).
Both train on the same stream, batch by batch in turn, in one process:
``train_on_batch`` on 64 sequences of each length (every length once, in a
shuffled order), then ``predict`` on the same stream.  Reported: the total
seconds of each layer, the first call, and the median of the later calls.
A layer whose compiled loop is built anew for every length pays that on
every batch.  ``--extra-variables N`` adds a third model: Keras's, with N
more variables (``klg.LSTM`` holds a kernel, recurrent kernel and bias per
gate, 18 more in this Bidirectional), which times what the optimizer costs
per variable.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, default=50, help="how many distinct lengths")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument(
        "--optimizer",
        default="adam",
        help="the tutorial's adam; sgd keeps no slot per variable (see the Performance page)",
    )
    parser.add_argument(
        "--extra-variables",
        type=int,
        default=0,
        help="also train keras.layers.LSTM's model with this many more variables (zero "
        "vectors added to the LSTM's output), to time the optimizer's cost per variable",
    )
    parser.add_argument("--out", help="write varlen_stream_<backend>.json and .md here")
    args = parser.parse_args(argv)

    import keras
    import measure
    import numpy as np

    import keras_lstm_gates as klg

    rng = np.random.default_rng(0)
    lengths = [20 + 2 * k for k in range(args.lengths)]
    rng.shuffle(lengths)
    vocabulary = 1000

    class Offsets(keras.layers.Layer):
        """Zero vectors added to the input: variables that change no number,
        only how many variables the optimizer updates."""

        def __init__(self, count, **kwargs):
            super().__init__(**kwargs)
            self.count = count

        def build(self, shape):
            self.offsets = [
                self.add_weight(shape=(shape[-1],), initializer="zeros", name=f"offset_{k}")
                for k in range(self.count)
            ]

        def call(self, x):
            for offset in self.offsets:
                x = x + offset
            return x

    def tutorial_model(extra_variables=0):
        inputs = keras.Input((None,), dtype="int32")
        hidden = keras.layers.Embedding(vocabulary, 64, mask_zero=True)(inputs)
        hidden = keras.layers.Bidirectional(keras.layers.LSTM(args.units))(hidden)
        if extra_variables:
            hidden = Offsets(extra_variables)(hidden)
        return keras.Model(inputs, keras.layers.Dense(1)(hidden))

    reference = tutorial_model()
    models = {"keras.layers.LSTM": reference, "klg.LSTM": klg.convert(reference)}
    if args.extra_variables:
        name = f"keras.layers.LSTM, {args.extra_variables} more variables"
        models[name] = tutorial_model(args.extra_variables)
    for model in models.values():
        model.compile(optimizer=args.optimizer, loss="mse")
    batches = []
    for steps in lengths:
        x = rng.integers(1, vocabulary, size=(args.batch, steps)).astype("int32")
        # Sentences shorter than the batch's longest: zero padding, masked.
        for row, n in enumerate(rng.integers(steps // 2, steps + 1, size=args.batch)):
            x[row, n:] = 0
        batches.append((x, rng.normal(size=(args.batch, 1)).astype("float32")))

    results = {}
    for phase in ("train_on_batch", "predict"):
        times = {name: [] for name in models}
        for k, (x, y) in enumerate(batches):
            # The order changes (measure.round_orders), so that neither a
            # change of the machine's load nor what ran before favours one.
            orders = measure.round_orders(len(models))
            names = [list(models)[i] for i in orders[k % len(orders)]]
            for name in names:
                start = time.perf_counter()
                if phase == "train_on_batch":
                    models[name].train_on_batch(x, y)
                else:
                    models[name].predict(x, verbose=0)
                times[name].append(time.perf_counter() - start)
        results[phase] = {
            name: {
                "total_s": sum(t),
                "first_s": t[0],
                "later_median_s": statistics.median(t[1:]),
            }
            for name, t in times.items()
        }
    backend = keras.backend.backend()
    lines = [
        f"{backend}, measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{len(lengths)} lengths ({min(lengths)} to {max(lengths)} steps), batch {args.batch}, "
        f"Bidirectional(LSTM({args.units})), optimizer {args.optimizer}.",
        "",
        "| phase | layer | total (s) | first call (s) | later calls, median (s) |",
        "|---|---|---|---|---|",
    ]
    for phase, rows in results.items():
        for name, r in rows.items():
            lines.append(
                f"| `{phase}` | {name} | {r['total_s']:.1f} | {r['first_s']:.2f} "
                f"| {r['later_median_s']:.3f} |"
            )
    print("\n".join(lines))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        suffix = "" if args.optimizer == "adam" else f"_{args.optimizer}"
        stem = os.path.join(args.out, f"varlen_stream_{backend}{suffix}")
        with open(stem + ".json", "w") as f:
            json.dump({"backend": backend, "lengths": lengths, "results": results}, f, indent=1)
        with open(stem + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
