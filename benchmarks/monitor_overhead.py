"""What does ``klg.GateMonitor`` cost?  Epoch times on the demo task with and
without the monitor, and whether it changes the training result.

Three copies of the demo model (``keras_lstm_gates.demo``: remember the first
of 60 steps, 3000 training sequences, 24 units, batch 64) start from the
same weights and train side by side, one epoch at a time in turn (plain,
monitor, monitor + TensorBoard, plain, ...), so that drifts in machine load
hit all three alike:

- ``plain``: no monitor;
- ``monitor``: ``klg.GateMonitor(x_probe)`` at its default settings (every
  epoch, 64 test sequences, statistics in ``monitor.history``);
- ``tensorboard``: the same with ``log_dir``, which also writes histograms
  every epoch and draws the two images (every ``images_every`` traced epochs).

An epoch's time runs from ``on_epoch_begin`` to the end of the monitor's
``on_epoch_end`` (a timing callback placed after it), so it includes the
monitor's work.  Reported: the median epoch time of each, the ratio to
``plain``, the monitor's own mean time per epoch and its share of a plain
epoch (the direct measure, which the load of other processes disturbs less
than the ratio of two epoch times), and whether the three models end with
identical weights (shuffling is off so that they see the same batches; the
monitor must not change anything).

    python benchmarks/monitor_overhead.py                     # TF and JAX
    python benchmarks/monitor_overhead.py --backends torch --epochs 4

Each backend runs in its own process (Keras reads KERAS_BACKEND at import).
"""

import argparse
import json
import os
import sys
import tempfile
import time

from measure import run_per_backend


def measure(args):
    import keras
    import numpy as np

    import keras_lstm_gates as klg
    from keras_lstm_gates.demo import build_model, make_task

    backend = keras.backend.backend()
    length, classes, units = 60, 4, 24
    x, y = make_task(args.train, length, classes, 0)
    x_probe, _ = make_task(args.probe, length, classes, 1)

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    log_dir = tempfile.mkdtemp(prefix="klg-monitor-bench-")
    runs = {}
    for name in ("plain", "monitor", "tensorboard"):
        model = build_model(length, classes + 2, classes, units, seed=0)
        monitors = []
        if name == "monitor":
            monitors = [klg.GateMonitor(x_probe)]
        elif name == "tensorboard":
            monitors = [klg.GateMonitor(x_probe, log_dir=os.path.join(log_dir, "tb"))]
        runs[name] = {"model": model, "monitors": monitors, "timer": EpochTimer()}

    def epoch(run, k):
        run["model"].fit(
            x,
            y,
            batch_size=64,
            epochs=k + 1,
            initial_epoch=k,
            shuffle=False,
            verbose=0,
            callbacks=run["monitors"] + [run["timer"]],
        )

    for k in range(args.warmup):  # compile and warm up each
        for run in runs.values():
            epoch(run, k)
    for run in runs.values():
        run["timer"].times.clear()
        for m in run["monitors"]:
            m.seconds, m.history[:] = 0.0, []
    spent = {name: [] for name in ("monitor", "tensorboard")}  # the monitor's own time
    for k in range(args.warmup, args.warmup + args.epochs):
        for name, run in runs.items():
            before = run["monitors"][0].seconds if run["monitors"] else 0.0
            epoch(run, k)
            if run["monitors"]:
                spent[name].append(run["monitors"][0].seconds - before)

    medians = {name: float(np.median(run["timer"].times)) for name, run in runs.items()}
    weights = {name: run["model"].get_weights() for name, run in runs.items()}
    identical = all(
        all(np.array_equal(a, b) for a, b in zip(weights["plain"], weights[name]))
        for name in ("monitor", "tensorboard")
    )
    monitor_ms = {name: 1000 * float(np.mean(t)) for name, t in spent.items()}
    monitor_median_ms = {name: 1000 * float(np.median(t)) for name, t in spent.items()}
    return {
        "backend": backend,
        "task": {"train": args.train, "T": length, "H": units, "batch": 64, "probe": args.probe},
        "epochs": args.epochs,
        "median_epoch_s": medians,
        "ratio": {name: medians[name] / medians["plain"] for name in ("monitor", "tensorboard")},
        "monitor_ms_per_epoch": monitor_ms,
        "monitor_median_ms": monitor_median_ms,
        "monitor_share": {name: monitor_ms[name] / 1000 / medians["plain"] for name in spent},
        "identical_weights": identical,
    }


def markdown(rows, args):
    """The results as the Markdown table on the "Watching the gates train" page."""
    lines = [
        "| backend | epoch, no monitor | with the monitor | ratio | monitor's own time "
        "| with `log_dir` | ratio | monitor's own time | same weights |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    names = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
    for r in rows:
        m, q = r["median_epoch_s"], r["ratio"]
        ms, sh = r["monitor_ms_per_epoch"], r["monitor_share"]
        lines.append(
            f"| {names.get(r['backend'], r['backend'])} | {m['plain']:.2f} s | {m['monitor']:.2f} s "
            f"| {q['monitor']:.2f} | {ms['monitor']:.0f} ms ({sh['monitor']:.1%}) "
            f"| {m['tensorboard']:.2f} s | {q['tensorboard']:.2f} "
            f"| {ms['tensorboard']:.0f} ms ({sh['tensorboard']:.1%}) "
            f"| {'yes' if r['identical_weights'] else 'NO'} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--epochs", type=int, default=6, help="measured epochs per model")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--probe", type=int, default=64, help="sequences the monitor traces")
    parser.add_argument("--json", action="store_true", help="print one JSON line per backend")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
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
    if args.markdown:
        print(markdown(rows, args))
        return
    print(f"demo task, median of {args.epochs} epochs per model, interleaved")
    print(
        f"{'backend':<11} {'plain s':>8} {'monitor s':>10} {'ratio':>6} {'+TB s':>7} {'ratio':>6}"
        f" {'monitor ms':>11} {'share':>6} {'+TB ms':>7} {'share':>6}  same weights"
    )
    for r in rows:
        m, q, ms, sh = (
            r["median_epoch_s"],
            r["ratio"],
            r["monitor_ms_per_epoch"],
            r["monitor_share"],
        )
        print(
            f"{r['backend']:<11} {m['plain']:>8.3f} {m['monitor']:>10.3f} {q['monitor']:>6.3f}"
            f" {m['tensorboard']:>7.3f} {q['tensorboard']:>6.3f} {ms['monitor']:>11.1f}"
            f" {sh['monitor']:>6.1%} {ms['tensorboard']:>7.1f} {sh['tensorboard']:>6.1%}"
            f"  {r['identical_weights']}"
        )
    if any(not r["identical_weights"] for r in rows):
        sys.exit("the monitor changed the training result")


if __name__ == "__main__":
    main()
