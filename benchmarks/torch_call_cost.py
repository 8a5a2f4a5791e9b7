"""Where the time of a ``klg.LSTM`` call goes on the PyTorch backend, next
to ``torch.nn.LSTM``: both run PyTorch's own LSTM kernel (oneDNN on a CPU),
so the difference is what happens around it.

    KERAS_BACKEND=torch python benchmarks/torch_call_cost.py
    KERAS_BACKEND=torch python benchmarks/torch_call_cost.py --threads 2
    KERAS_BACKEND=torch python benchmarks/torch_call_cost.py --out docs/assets/performance

Forward passes under ``torch.no_grad()``, interleaved rounds, medians, on
the shapes of ``benchmarks/anchors.py``.  The candidates add one cost at a
time:

- ``kernel``: PyTorch's kernel on weights joined once, before timing;
- ``torch.nn.LSTM``: the module (its checks, a batch-first transpose);
- ``kernel, joined per call``: the kernel with the four gates' weights
  joined into its layout at every call, as ``klg.LSTM`` does (the gates
  hold the only copy of the weights);
- ``Keras layer around kernel``: a minimal Keras layer whose ``call`` is the
  kernel on weights joined once: what being a Keras layer costs;
- ``klg.LSTM``: the layer.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def candidates(shape):
    import keras
    import measure
    import torch

    import keras_lstm_gates as klg

    x, (kernel, recurrent_kernel, bias) = measure.random_problem(shape)
    units = shape[3]
    keras_layer = keras.layers.LSTM(units, return_sequences=True)
    keras_layer.build(x.shape)
    keras_layer.set_weights([kernel, recurrent_kernel, bias])
    ours = klg.LSTM.from_keras(keras_layer)
    module_forward = measure.torch_lstm_fns(kernel, recurrent_kernel, bias, x)[0]
    xt = torch.as_tensor(x)
    time_major = xt.transpose(0, 1)
    zeros = torch.zeros((1, shape[0], units))
    split = [
        [torch.as_tensor(w[..., k * units : (k + 1) * units]) for k in range(4)]
        for w in (kernel, recurrent_kernel, bias)
    ]

    def join():
        params = [
            torch.cat([w.t() for w in split[0]]),
            torch.cat([u.t() for u in split[1]]),
            torch.cat(split[2]),
        ]
        return params + [torch.zeros_like(params[2])]

    joined = join()

    def run_kernel(params):
        return torch.lstm(time_major, (zeros, zeros), params, True, 1, 0.0, False, False, False)

    class KernelLayer(keras.layers.Layer):
        def call(self, inputs):
            state = torch.zeros((1, inputs.shape[0], units))
            out = torch.lstm(
                inputs.transpose(0, 1), (state, state), joined, True, 1, 0.0, False, False, False
            )
            return out[0].transpose(0, 1)

    wrapped = KernelLayer()

    def no_grad(fn):
        def run():
            with torch.no_grad():
                return fn()

        return run

    return {
        "kernel": no_grad(lambda: run_kernel(joined)),
        "torch.nn.LSTM": module_forward,
        "kernel, joined per call": no_grad(lambda: run_kernel(join())),
        "Keras layer around kernel": no_grad(lambda: wrapped(xt)),
        "klg.LSTM": no_grad(lambda: ours(xt, training=False)),
    }


def render(results):
    """The markdown table of a run (``results`` as ``main`` writes it)."""
    names = results["candidates"]
    lines = [
        f"PyTorch {results['torch']}, measured {results['date']}, {results['threads']} "
        "thread(s): median milliseconds of a forward pass.",
        "",
        "| B, T, D, H | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for row in results["rows"]:
        shape = ", ".join(str(v) for v in row["shape"])
        lines.append(f"| {shape} | " + " | ".join(f"{row['ms'][n]:.2f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", help="write torch_call_cost.json and .md here")
    args = parser.parse_args(argv)
    import anchors
    import keras
    import measure
    import torch

    if keras.backend.backend() != "torch":
        raise SystemExit("run with KERAS_BACKEND=torch")
    torch.set_num_threads(args.threads)
    rows, names = [], None
    for shape in anchors.SHAPES:
        fns = candidates(shape)
        names = list(fns)
        times = measure.interleaved(fns, args.repeats, warmup=5)
        rows.append({"shape": list(shape), "ms": {n: times[n]["ms"] for n in names}})
    results = {
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "threads": args.threads,
        "candidates": names,
        "rows": rows,
    }
    table = render(results)
    print(table)
    if args.out:
        with open(os.path.join(args.out, "torch_call_cost.json"), "w") as f:
            json.dump(results, f, indent=1)
        with open(os.path.join(args.out, "torch_call_cost.md"), "w") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
