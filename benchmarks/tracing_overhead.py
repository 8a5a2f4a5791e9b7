"""What does ``return_gates=True`` cost?  A compiled forward pass with the
gate trace against the same forward pass without it.

Both layers share one set of weights and return sequences, so the only
difference is the trace: five (batch, time, units) arrays written at every
step.  Timings alternate between the two (plain, traced, plain, ...) so
that drifts in machine load hit both alike.  Reported: the median wall
times and their ratio, and the ratio of median CPU times (the work done by
this process, all threads), which other processes' load disturbs less.

    python benchmarks/tracing_overhead.py                   # TF and JAX
    python benchmarks/tracing_overhead.py --backends torch --repeats 10

Each backend runs in its own process (Keras reads KERAS_BACKEND at import).
"""

import argparse
import json
import sys
import time

from measure import run_per_backend


def measure(args):
    import keras
    import numpy as np

    import keras_lstm_gates as klg

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, args.time, args.features)).astype("float32")
    plain = klg.LSTM(args.units, return_sequences=True)
    traced = klg.LSTM(args.units, return_sequences=True, return_gates=True)
    plain.build(x.shape)
    traced.build(x.shape)
    traced.set_weights(plain.get_weights())
    forward = {"plain": compiled(plain, backend), "return_gates": compiled(traced, backend)}
    for fn in forward.values():  # compile, then warm up
        for _ in range(args.warmup):
            fn(x)
    times = {name: [] for name in forward}
    cpu = {name: [] for name in forward}
    for _ in range(args.repeats):
        for name, fn in forward.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(x)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    cpu_medians = {name: float(np.median(t)) for name, t in cpu.items()}
    return {
        "backend": backend,
        "compiled_with": {"jax": "jax.jit", "tensorflow": "tf.function", "torch": "eager"}[backend],
        "shape": {"B": args.batch, "T": args.time, "D": args.features, "H": args.units},
        "repeats": args.repeats,
        "median_ms": {name: 1000 * m for name, m in medians.items()},
        "cpu_median_ms": {name: 1000 * m for name, m in cpu_medians.items()},
        "ratio": medians["return_gates"] / medians["plain"],
        "cpu_ratio": cpu_medians["return_gates"] / cpu_medians["plain"],
    }


def compiled(layer, backend):
    """A function ``x -> outputs`` that has run to completion on return."""
    if backend == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]
        step = jax.jit(lambda tv, ntv, x: layer.stateless_call(tv, ntv, x)[0])
        return lambda x: jax.block_until_ready(step(trainable, non_trainable, x))
    if backend == "tensorflow":
        import tensorflow as tf

        step = tf.function(lambda x: layer(x))
        return lambda x: step(tf.constant(x))
    import torch

    def run(x):
        with torch.no_grad():
            return layer(torch.as_tensor(x))

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--time", type=int, default=100)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON line per backend")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args)))
        return
    rows = run_per_backend(__file__, args.backends.split(","), sys.argv[1:])
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    if rows:
        s = rows[0]["shape"]
        print(f"B={s['B']} T={s['T']} D={s['D']} H={s['H']}, median of {args.repeats}, interleaved")
    print(
        f"{'backend':<11} {'compiled':<12} {'plain ms':>9} {'gates ms':>9} {'ratio':>6}"
        f" {'CPU-time ratio':>15}"
    )
    for r in rows:
        m = r["median_ms"]
        print(
            f"{r['backend']:<11} {r['compiled_with']:<12} {m['plain']:>9.2f} "
            f"{m['return_gates']:>9.2f} {r['ratio']:>6.2f} {r['cpu_ratio']:>15.2f}"
        )


if __name__ == "__main__":
    main()
