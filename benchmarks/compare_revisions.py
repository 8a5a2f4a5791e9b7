"""klg.LSTM of the working tree against klg.LSTM of an earlier git revision,
timed side by side in one process per backend.

    python benchmarks/compare_revisions.py --before HEAD~5 --grid issue
    python benchmarks/compare_revisions.py --before main --backends jax --grid quick
    python benchmarks/compare_revisions.py --before main --shapes 1,200,32,64 16,100,32,64

For a restructuring that must not slow anything down.  The package of the
revision ``--before`` is exported with ``git archive`` into a temporary
folder twice, as two importable copies under other names, next to the
working tree's ``keras_lstm_gates``.  For every shape of the grid (see
``benchmarks/measure.py``) the process builds one ``keras.layers.LSTM``
with random weights and gives the same weights to the three klg layers;
then all four run, forward and training step, in interleaved rounds
(``measure.interleaved``).  Reported per shape:

* ``after / before``: the working tree against the revision;
* ``noise``: the earlier revision against its own second copy, the
  same code, which measures how far two equal layers drift apart on this
  machine at this shape;
* ``after / keras`` and ``before / keras``.

A shape slowed down by the change when ``after / before`` is above
``max(noise, 1 / noise)`` (both directions of the noise).  Results go to
``--json`` and, as a markdown table, to standard output.
"""

import argparse
import io
import json
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import measure  # noqa: E402

COPIES = ("klg_before_a", "klg_before_b")


def export_revision(revision, folder):
    """Write the package of ``revision`` into ``folder`` as importable copies
    named :data:`COPIES`; each registers its Keras classes under its own
    name, so that none clashes with the working tree's."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "keras_lstm_gates"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for copy in COPIES:
        unpacked = pathlib.Path(folder, "unpacked")
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(unpacked, filter="data")
        target = pathlib.Path(folder, copy)
        (unpacked / "keras_lstm_gates").rename(target)
        unpacked.rmdir()
        for source in target.rglob("*.py"):
            text = source.read_text()
            renamed = re.sub(r'(PACKAGE\s*=\s*)"keras_lstm_gates"', rf'\1"{copy}"', text)
            if renamed != text:
                source.write_text(renamed)


def worker(shapes, repeats, folder):
    import importlib

    import keras
    import numpy as np

    sys.path.insert(0, folder)
    sys.path.insert(0, str(ROOT))
    import keras_lstm_gates as after

    packages = {"after": after, **{c: importlib.import_module(c) for c in COPIES}}
    backend = keras.backend.backend()
    rows = []
    for shape in shapes:
        start = time.perf_counter()
        x, weights = measure.random_problem(shape)
        ref = keras.layers.LSTM(shape[3], return_sequences=True)
        ref.build(x.shape)
        ref.set_weights(weights)
        layers = {"keras": ref, **{n: p.LSTM.from_keras(ref) for n, p in packages.items()}}
        forward, train = {}, {}
        for name, layer in layers.items():
            forward[name], train[name], _ = measure.keras_fns(layer, x, backend)
        expected = np.asarray(keras.ops.convert_to_numpy(forward["keras"]()))
        for name in packages:
            got = np.asarray(keras.ops.convert_to_numpy(forward[name]()))
            gap = float(np.max(np.abs(got - expected)))
            if gap > 1e-4:
                raise AssertionError(f"{name} differs from keras.layers.LSTM by {gap} at {shape}")
        rows.append(
            {
                "shape": list(shape),
                "forward": measure.interleaved(forward, repeats),
                "train_step": measure.interleaved(train, repeats),
                "seconds": time.perf_counter() - start,
            }
        )
        print(f"[{backend}] {shape}: {_line(rows[-1])}", file=sys.stderr, flush=True)
        keras.utils.clear_session()
    print(json.dumps({"backend": backend, "repeats": repeats, "rows": rows}))


def ratios(row, kind):
    ms = {n: v["ms"] for n, v in row[kind].items()}
    return {
        "after/before": ms["after"] / ms[COPIES[0]],
        "noise": ms[COPIES[1]] / ms[COPIES[0]],
        "after/keras": ms["after"] / ms["keras"],
        "before/keras": ms[COPIES[0]] / ms["keras"],
    }


def slower_than_noise(r):
    noise = max(r["noise"], 1 / r["noise"])
    return r["after/before"] > noise


def _line(row):
    f, t = ratios(row, "forward"), ratios(row, "train_step")
    return (
        f"after/before forward {f['after/before']:.2f} (noise {f['noise']:.2f}), "
        f"train {t['after/before']:.2f} (noise {t['noise']:.2f})"
    )


def table(result):
    lines = [
        f"### {result['backend']}: after / before (noise: before / its own copy)",
        "",
        "| B, T, D, H | forward after/before | noise | train after/before | noise "
        "| after/keras (fwd / train) | before/keras (fwd / train) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        f, t = ratios(row, "forward"), ratios(row, "train_step")
        flag = lambda r: " **slower**" if slower_than_noise(r) else ""  # noqa: E731
        lines.append(
            f"| {', '.join(map(str, row['shape']))} | {f['after/before']:.2f}{flag(f)} "
            f"| {f['noise']:.2f} | {t['after/before']:.2f}{flag(t)} | {t['noise']:.2f} "
            f"| {f['after/keras']:.2f} / {t['after/keras']:.2f} "
            f"| {f['before/keras']:.2f} / {t['before/keras']:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the git revision to compare with")
    parser.add_argument("--grid", choices=sorted(measure.GRIDS), default="default")
    parser.add_argument(
        "--shapes", nargs="+", metavar="B,T,D,H", help="these shapes instead of a grid"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shapes = [tuple(int(n) for n in s.split(",")) for s in args.shapes or []]
    if args.worker:
        worker(shapes or measure.GRIDS[args.grid], args.repeats, args.folder)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        export_revision(args.before, folder)
        argv = ["--before", args.before, "--grid", args.grid, "--repeats", str(args.repeats)]
        if args.shapes:
            argv += ["--shapes", *args.shapes]
        results = measure.run_per_backend(
            __file__, args.backends.split(","), [*argv, "--folder", folder]
        )
    for result in results:
        print(table(result) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"before": args.before, "results": results}, f, indent=1)
    return 0 if len(results) == len(args.backends.split(",")) else 1


if __name__ == "__main__":
    sys.exit(main())
