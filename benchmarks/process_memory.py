"""The memory a process needs to train an LSTM model on TensorFlow, as a
user sees it: resident memory (RSS) of a fresh process, measured around
``model.train_on_batch`` of a Keras model ``Input -> LSTM(units)``.

    python benchmarks/process_memory.py                 # the shapes below (~3 min)
    python benchmarks/process_memory.py --out docs/assets/performance
    python benchmarks/process_memory.py --quick      # one tiny shape: what CI runs

Every layer runs in a process of its own.  After ``model.compile`` the
process's RSS is the baseline; the script then reads the kernel's record of
the highest RSS (``VmHWM``) after the first call (which traces the step and,
for klg.LSTM, compiles its loops with XLA) and after each of the next four,
and reports them above the baseline (the record is reset, through
``/proc/self/clear_refs``, before the last call, whose own peak is also
kept).  Linux only.  A third figure, in a process of its own, is the step's own
tensors: the peak TensorFlow's allocator hands out during a warm step, as
``benchmarks/run.py`` measures it.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (batch, steps, features, units): the training step quoted in issue 12,
# and the same at a 4x longer sequence.
SHAPES = [(8, 5000, 32, 64), (8, 20000, 32, 64)]
LAYERS = {
    "keras": "keras.layers.LSTM",
    "keras_xla": "keras.layers.LSTM, jit_compile=True",
    "klg": "klg.LSTM",
}
CALLS = 5


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _model(layer, shape):
    import keras
    import numpy as np

    import keras_lstm_gates as klg

    batch, steps, features, units = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, features)).astype("float32")
    y = rng.standard_normal((batch, units)).astype("float32")
    lstm = klg.LSTM if layer == "klg" else keras.layers.LSTM
    model = keras.Sequential([keras.Input((steps, features)), lstm(units)])
    model.compile("adam", "mse", jit_compile=layer == "keras_xla")
    return model, x, y


def worker(layer, shape):
    """Resident memory of one layer at one shape; print one JSON line."""
    os.environ.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    model, x, y = _model(layer, shape)
    _reset_peak()
    base = _status("VmRSS")
    peaks, seconds = [], []
    for call in range(CALLS):
        if call == CALLS - 1:
            _reset_peak()
        start = time.perf_counter()
        model.train_on_batch(x, y)
        seconds.append(time.perf_counter() - start)
        # The highest RSS so far (for the last call: during it), above the
        # baseline.
        peaks.append(_status("VmHWM") - base)
    row = {
        "layer": layer,
        "shape": dict(zip("BTDH", shape)),
        "first_call_peak_bytes": peaks[0],
        "peak_bytes": max(peaks),
        "peak_bytes_after_each_call": peaks,
        "seconds": seconds,
    }
    print(json.dumps(row))


def allocator_worker(layer, shape):
    """The peak TensorFlow's allocator hands out during a warm step, above
    what it held before (the step's own tensors); print one JSON line."""
    os.environ.update(
        KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", TF_CPU_ALLOCATOR_USE_BFC="true"
    )
    from measure import tf_allocator_peak

    model, x, y = _model(layer, shape)
    peak = tf_allocator_peak(lambda: model.train_on_batch(x, y))
    print(json.dumps({"step_allocator_peak_bytes": peak}))


def _run(mode, layer, shape):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, mode, layer, *map(str, shape)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(shapes):
    rows = []
    for shape in shapes:
        for layer in LAYERS:
            row = _run("--worker", layer, shape)
            row.update(_run("--allocator-worker", layer, shape))
            rows.append(row)
            print(_line(row), flush=True)
    return rows


def _mib(n):
    return f"{n / 2**20:.0f}"


def _line(row):
    s = row["shape"]
    return (
        f"{LAYERS[row['layer']]:38s} B={s['B']} T={s['T']} D={s['D']} H={s['H']}: "
        f"step's tensors {_mib(row['step_allocator_peak_bytes'])} MiB; RSS above baseline: "
        f"first call {_mib(row['first_call_peak_bytes'])} MiB, "
        f"over {CALLS} calls {_mib(row['peak_bytes'])} MiB"
    )


def markdown(report):
    lines = [
        f"Measured {report['measured_at']} on {report['machine']}.",
        "",
        f"| B, T, D, H | layer | step's tensors | first call | peak over {CALLS} calls "
        "| seconds (first / last call) |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        s = row["shape"]
        lines.append(
            f"| {s['B']}, {s['T']}, {s['D']}, {s['H']} | {LAYERS[row['layer']]} | "
            f"{_mib(row['step_allocator_peak_bytes'])} | "
            f"{_mib(row['first_call_peak_bytes'])} | {_mib(row['peak_bytes'])} | "
            f"{row['seconds'][0]:.2f} / {row['seconds'][-1]:.2f} |"
        )
    lines.append("")
    lines.append(
        "MiB. Step's tensors: the peak TensorFlow's allocator hands out during a warm "
        "step (BFC allocator, median of 3). First call and peak over all calls: the "
        "process's resident memory at its highest, above what it held after `model.compile`."
    )
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--worker", "--allocator-worker"):
        run = worker if argv[0] == "--worker" else allocator_worker
        run(argv[1], tuple(int(v) for v in argv[2:6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="folder for process_memory.json and .md")
    parser.add_argument("--render", help="a process_memory.json to render to markdown")
    parser.add_argument("--quick", action="store_true", help="one tiny shape (seconds)")
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            print(markdown(json.load(f)), end="")
        return
    import platform

    report = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "rows": measure([(2, 5, 3, 4)] if args.quick else SHAPES),
    }
    if args.out:
        with open(os.path.join(args.out, "process_memory.json"), "w") as f:
            json.dump(report, f, indent=1)
        with open(os.path.join(args.out, "process_memory.md"), "w") as f:
            f.write(markdown(report))


if __name__ == "__main__":
    main()
