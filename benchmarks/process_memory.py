"""The memory a process needs to train an LSTM model on TensorFlow, as a
user sees it: resident memory (RSS) of a fresh process, measured around
``model.train_on_batch`` of a Keras model ``Input -> LSTM(units)``.

    python benchmarks/process_memory.py                 # the shapes below (~3 min)
    python benchmarks/process_memory.py --out docs/assets/performance

Every layer runs in a process of its own.  After ``model.compile`` the
process's RSS is the baseline; the script then reads the kernel's record of
the highest RSS (``VmHWM``) after the first call (which traces the step and,
for klg.LSTM, compiles its loops with XLA) and after each of the next four,
and reports them above the baseline.  A second figure, the warm-step peak,
resets that record (``/proc/self/clear_refs``) before the fifth call.
Linux only.  The step's own tensors, without the process around them, are
the allocator peaks of ``benchmarks/run.py``.
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


def worker(layer, shape):
    """Measure one layer at one shape; print one JSON line."""
    os.environ.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
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
    _reset_peak()
    base = _status("VmRSS")
    peaks, seconds = [], []
    for call in range(CALLS):
        if call == CALLS - 1:
            warm_base = _status("VmRSS")
            _reset_peak()
        start = time.perf_counter()
        model.train_on_batch(x, y)
        seconds.append(time.perf_counter() - start)
        peaks.append(_status("VmHWM") - base)
    warm = _status("VmHWM") - warm_base
    # Each entry of peaks is the highest RSS so far (the last: during the
    # last call, whose record started at warm_base), above the baseline.
    overall = max(peaks)
    print(
        json.dumps(
            {
                "layer": layer,
                "shape": dict(zip("BTDH", shape)),
                "first_call_peak_bytes": peaks[0],
                "peak_bytes": overall,
                "peak_bytes_after_each_call": peaks,
                "warm_step_peak_bytes": warm,
                "seconds": seconds,
            }
        )
    )


def measure(shapes):
    rows = []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    for shape in shapes:
        for layer in LAYERS:
            command = [sys.executable, __file__, "--worker", layer, *map(str, shape)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(_line(row), flush=True)
    return rows


def _mib(n):
    return f"{n / 2**20:.0f}"


def _line(row):
    s = row["shape"]
    return (
        f"{LAYERS[row['layer']]:38s} B={s['B']} T={s['T']} D={s['D']} H={s['H']}: "
        f"first call {_mib(row['first_call_peak_bytes'])} MiB, "
        f"over {CALLS} calls {_mib(row['peak_bytes'])} MiB, "
        f"warm step {_mib(row['warm_step_peak_bytes'])} MiB above baseline"
    )


def markdown(report):
    lines = [
        f"Measured {report['measured_at']} on {report['machine']}.",
        "",
        "| B, T, D, H | layer | first call | peak over "
        f"{CALLS} calls | warm step | seconds (first / warm) |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        s = row["shape"]
        lines.append(
            f"| {s['B']}, {s['T']}, {s['D']}, {s['H']} | {LAYERS[row['layer']]} | "
            f"{_mib(row['first_call_peak_bytes'])} | {_mib(row['peak_bytes'])} | "
            f"{_mib(row['warm_step_peak_bytes'])} | "
            f"{row['seconds'][0]:.2f} / {row['seconds'][-1]:.2f} |"
        )
    lines.append("")
    lines.append("MiB of resident memory above the process's baseline after `model.compile`.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker(argv[1], tuple(int(v) for v in argv[2:6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="folder for process_memory.json and .md")
    parser.add_argument("--render", help="a process_memory.json to render to markdown")
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            print(markdown(json.load(f)), end="")
        return
    import platform

    report = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "rows": measure(SHAPES),
    }
    if args.out:
        with open(os.path.join(args.out, "process_memory.json"), "w") as f:
            json.dump(report, f, indent=1)
        with open(os.path.join(args.out, "process_memory.md"), "w") as f:
            f.write(markdown(report))


if __name__ == "__main__":
    main()
