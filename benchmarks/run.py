"""Speed and memory of klg.LSTM against keras.layers.LSTM, torch.nn.LSTM and
keras.layers.RNN(keras.layers.LSTMCell).

    python benchmarks/run.py                    # default grid, TF and JAX (~10 min)
    python benchmarks/run.py --grid quick       # seconds; what CI runs
    python benchmarks/run.py --grid issue       # issue #5's grid but its 2 largest shapes (~45 min)
    python benchmarks/run.py --grid full        # the whole grid of issue #5 (hours)
    python benchmarks/run.py --backends tensorflow,jax,torch --out /tmp/bench
    python benchmarks/run.py --render docs/assets/performance/results.json
    python benchmarks/run.py --backends jax --no-torch \
        --update docs/assets/performance/results.json   # re-measure one backend
    python benchmarks/run.py --grid issue --memory-only \
        --update docs/assets/performance/results.json   # re-measure TensorFlow's memory

Results go to ``docs/assets/performance/`` unless ``--out`` says otherwise:
the Performance page of the docs shows that folder's table and plot.

Each Keras backend runs in a process of its own (``benchmarks/measure.py``;
Keras reads KERAS_BACKEND once, at import), one after the other so that they
do not compete for the cores.  Within a process every candidate shares one
set of weights and is timed in interleaved rounds; the medians and their
ratios are printed and written to ``<out>/results.json``,
``<out>/results.md`` (markdown tables) and ``<out>/performance.png``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The targets of issue #5 (reported, never asserted).
TARGETS = {
    "forward_vs_keras": 0.5,
    "train_step_vs_keras": 0.7,
    "vs_torch_at_reference": 1.2,
    "memory_vs_keras": 1.0,
    "return_gates_overhead": 1.5,
}
REFERENCE = {"B": 64, "T": 100, "D": 32, "H": 128}


def run_worker(name, grid, repeats, workdir):
    """Run measure.py for one Keras backend (or, for ``name="torch.nn.LSTM"``,
    the torch reference; for ``"tensorflow-memory"``, TensorFlow's allocator
    counts) in a process of its own; return its parsed JSON."""
    path = os.path.join(workdir, f"{name}.json")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    command = [sys.executable, os.path.join(HERE, "measure.py"), "--grid", grid]
    command += ["--repeats", str(repeats), "--json", path]
    if name == "torch.nn.LSTM":
        command.append("--torch-reference")
    elif name == "tensorflow-memory":
        command.append("--tf-memory")
        env.update(KERAS_BACKEND="tensorflow", TF_CPU_ALLOCATOR_USE_BFC="true")
    else:
        env["KERAS_BACKEND"] = name
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    subprocess.run(command, env=env, check=True)
    with open(path) as f:
        return json.load(f)


def attach_memory(result, memory):
    """Put the ``tensorflow-memory`` worker's allocator peaks into the rows
    of a TensorFlow result, shape by shape."""
    for row, extra in zip(result["shapes"], memory["memory"]):
        if row["shape"] != extra["shape"]:
            raise ValueError(f"memory row {extra['shape']} does not match {row['shape']}")
        row["train_step_tf_allocator_peak_bytes"] = extra["train_step_tf_allocator_peak_bytes"]


def have_torch():
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


# -- summaries -------------------------------------------------------------------


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def summarize(result, torch_result=None):
    """Per-shape ratios of one backend's results (with torch.nn.LSTM's times,
    measured in its own process, where it has the shape)."""
    torch_rows = {}
    for row in (torch_result or {}).get("shapes", []):
        torch_rows[tuple(row["shape"].values())] = row
    rows = []
    for row in result["shapes"]:
        f, t = dict(row["forward"]), dict(row["train_step"])
        other = torch_rows.get(tuple(row["shape"].values()))
        if other is not None:
            f["torch"], t["torch"] = other["forward"]["torch"], other["train_step"]["torch"]
        rss = row["train_step_rss_growth_bytes"]
        # The exact count where there is one: XLA's plan on JAX,
        # TensorFlow's allocator on TensorFlow.
        exact = row.get("train_step_xla_temp_bytes") or row.get(
            "train_step_tf_allocator_peak_bytes", {}
        )
        rows.append(
            {
                **row["shape"],
                "keras_fwd_ms": f["keras"]["ms"],
                "klg_fwd_ms": f["klg"]["ms"],
                "cell_fwd_ms": f.get("rnn_cell", {}).get("ms"),
                "torch_fwd_ms": f.get("torch", {}).get("ms"),
                "keras_train_ms": t["keras"]["ms"],
                "klg_train_ms": t["klg"]["ms"],
                "cell_train_ms": t.get("rnn_cell", {}).get("ms"),
                "torch_train_ms": t.get("torch", {}).get("ms"),
                "fwd_vs_keras": ratio(f["klg"]["ms"], f["keras"]["ms"]),
                "train_vs_keras": ratio(t["klg"]["ms"], t["keras"]["ms"]),
                "fwd_vs_keras_cpu": ratio(f["klg"]["cpu_ms"], f["keras"]["cpu_ms"]),
                "train_vs_keras_cpu": ratio(t["klg"]["cpu_ms"], t["keras"]["cpu_ms"]),
                "fwd_vs_cell": ratio(f["klg"]["ms"], f.get("rnn_cell", {}).get("ms")),
                "train_vs_cell": ratio(t["klg"]["ms"], t.get("rnn_cell", {}).get("ms")),
                "fwd_vs_torch": ratio(f["klg"]["ms"], f.get("torch", {}).get("ms")),
                "train_vs_torch": ratio(t["klg"]["ms"], t.get("torch", {}).get("ms")),
                "gates_overhead": ratio(f["klg_gates"]["ms"], f["klg"]["ms"]),
                "keras_rss_mb": _mb(rss.get("keras")),
                "klg_rss_mb": _mb(rss.get("klg")),
                "keras_peak_mb": _mb(exact.get("keras")),
                "klg_peak_mb": _mb(exact.get("klg")),
                "parity": row["parity_max_abs_diff"]["klg"],
            }
        )
    return rows


def _mb(n):
    return None if n is None else n / 2**20


def reference_row(rows):
    """The row of the reference shape (64, 100, 32, 128), or None."""
    return next((r for r in rows if all(r[k] == v for k, v in REFERENCE.items())), None)


def targets(rows):
    """Which targets one backend meets (None where not measured)."""
    if not rows:
        return {}
    ref = reference_row(rows)
    memory = []
    for r in rows:
        keras_mb = r["keras_peak_mb"] if r["keras_peak_mb"] is not None else r["keras_rss_mb"]
        klg_mb = r["klg_peak_mb"] if r["klg_peak_mb"] is not None else r["klg_rss_mb"]
        # Below 1 MiB the allocator serves a step from memory it already
        # holds, and RSS growth says nothing.
        if keras_mb is not None and klg_mb is not None and max(keras_mb, klg_mb) >= 1.0:
            memory.append(klg_mb / keras_mb if keras_mb > 0 else None)
    memory = [m for m in memory if m is not None]
    out = {
        "forward_vs_keras": max(r["fwd_vs_keras"] for r in rows),
        "train_step_vs_keras": max(r["train_vs_keras"] for r in rows),
        "vs_torch_at_reference": (
            max(ref["fwd_vs_torch"], ref["train_vs_torch"])
            if ref and ref["fwd_vs_torch"] is not None
            else None
        ),
        "memory_vs_keras": max(memory) if memory else None,
        "return_gates_overhead": max(r["gates_overhead"] for r in rows),
    }
    return {
        k: {"worst": v, "target": TARGETS[k], "met": None if v is None else v <= TARGETS[k]}
        for k, v in out.items()
    }


# -- markdown ----------------------------------------------------------------------


def _fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(report):
    lines = []
    env = report["environment"]
    lines.append(
        f"Machine: {env.get('cpu_count')} CPU cores ({env.get('cpu_model')}), "
        f"GPU: {'yes' if env.get('gpu') else 'none'}; Python {env.get('python')}, "
        + ", ".join(f"{k} {env[k]}" for k in ("keras", "tensorflow", "jax", "torch") if env.get(k))
        + f". Grid `{report['grid']}`, median of {report['repeats']} interleaved rounds."
    )
    parts = report.get("measured_at")
    if parts:
        lines.append("")
        lines.append(
            "Measured in parts (`--update`), on the same grid: "
            + "; ".join(f"{name}: {when}" for name, when in parts.items())
            + "."
        )
    lines.append("")
    for backend, rows in report["summary"].items():
        lines.append(f"### {backend}: time (median ms, forward / training step)")
        lines.append("")
        lines.append(
            "| B, T, D, H | keras.layers.LSTM | klg.LSTM | klg / keras | "
            "RNN(LSTMCell) | torch nn.LSTM (own process) | klg / torch | return_gates cost |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in rows:
            lines.append(
                f"| {r['B']}, {r['T']}, {r['D']}, {r['H']} "
                f"| {_fmt(r['keras_fwd_ms'])} / {_fmt(r['keras_train_ms'])} "
                f"| {_fmt(r['klg_fwd_ms'])} / {_fmt(r['klg_train_ms'])} "
                f"| **{_fmt(r['fwd_vs_keras'], 2)} / {_fmt(r['train_vs_keras'], 2)}** "
                f"| {_fmt(r['cell_fwd_ms'])} / {_fmt(r['cell_train_ms'])} "
                f"| {_fmt(r['torch_fwd_ms'])} / {_fmt(r['torch_train_ms'])} "
                f"| {_fmt(r['fwd_vs_torch'], 2)} / {_fmt(r['train_vs_torch'], 2)} "
                f"| {_fmt(r['gates_overhead'], 2)}x |"
            )
        lines.append("")
        lines.append(f"### {backend}: memory of one training step (MiB) and CPU-time ratios")
        lines.append("")
        header = "| B, T, D, H | RSS growth keras / klg |"
        exact = any(r["keras_peak_mb"] is not None for r in rows)
        if exact:
            source = "XLA scratch" if backend == "jax" else "allocator peak"
            header += f" {source} keras / klg |"
        header += " klg / keras CPU time (fwd / train) | max abs diff vs keras |"
        lines.append(header)
        lines.append("|" + "---|" * (header.count("|") - 1))
        for r in rows:
            line = (
                f"| {r['B']}, {r['T']}, {r['D']}, {r['H']} "
                f"| {_fmt(r['keras_rss_mb'])} / {_fmt(r['klg_rss_mb'])} |"
            )
            if exact:
                line += f" {_fmt(r['keras_peak_mb'])} / {_fmt(r['klg_peak_mb'])} |"
            line += (
                f" {_fmt(r['fwd_vs_keras_cpu'], 2)} / {_fmt(r['train_vs_keras_cpu'], 2)} "
                f"| {r['parity']:.1e} |"
            )
            lines.append(line)
        lines.append("")
    lines.append("### Targets (worst case over the grid)")
    lines.append("")
    lines.append("| target | " + " | ".join(report["targets"]) + " |")
    lines.append("|---|" + "---|" * len(report["targets"]))
    names = {
        "forward_vs_keras": "forward <= 0.5 x keras.layers.LSTM",
        "train_step_vs_keras": "training step <= 0.7 x keras.layers.LSTM",
        "vs_torch_at_reference": "<= 1.2 x torch nn.LSTM at 64, 100, 32, 128",
        "memory_vs_keras": "training-step memory <= keras.layers.LSTM",
        "return_gates_overhead": "return_gates forward <= 1.5 x plain",
    }
    for key, label in names.items():
        cells = []
        for backend in report["targets"]:
            t = report["targets"][backend].get(key)
            if t is None or t["worst"] is None:
                cells.append("not measured")
            else:
                cells.append(f"{t['worst']:.2f} ({'met' if t['met'] else 'not met'})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for backend, result in report["backends"].items():
        per_step = result.get("per_step")
        if not per_step:
            continue
        tiny = per_step["tiny_B1_T500_H8_us_per_step"]
        floor = per_step["matmul_only_loop_at_reference"]
        line = (
            f"Per step on {backend}: at B=1, D=H=8 (arithmetic negligible) keras "
            f"{tiny['keras_forward']:.1f} / {tiny['keras_train_step']:.1f} µs, klg "
            f"{tiny['klg_forward']:.1f} / {tiny['klg_train_step']:.1f} µs (forward / "
            f"training step); a loop of only the recurrent matmul at "
            f"{floor['shape']['B']}, {floor['shape']['T']}, {floor['shape']['H']} takes "
            f"{floor['us_per_step']:.0f} µs per step ({floor['ms']:.1f} ms)"
        )
        ref = reference_row(report["summary"].get(backend, []))
        if ref:
            line += (
                f", {floor['ms'] / ref['keras_fwd_ms']:.2f} x the forward pass of "
                f"keras.layers.LSTM at that shape ({ref['keras_fwd_ms']:.1f} ms): "
                "no LSTM built on this backend's matmul can go below that ratio"
            )
        lines.append(line + ".")
        lines.append("")
    torch_steps = (report.get("torch_reference") or {}).get("per_step")
    if torch_steps:
        tiny = torch_steps["tiny_B1_T500_H8_us_per_step"]
        floor = torch_steps["matmul_only_loop_at_reference"]
        lines.append(
            f"Per step, torch nn.LSTM: {tiny['torch_forward']:.1f} / "
            f"{tiny['torch_train_step']:.1f} µs at B=1, D=H=8; a loop of only torch.mm at "
            f"{floor['shape']['B']}, {floor['shape']['T']}, {floor['shape']['H']} takes "
            f"{floor['us_per_step']:.0f} µs per step."
        )
        lines.append("")
    return "\n".join(lines)


# -- plot --------------------------------------------------------------------------


def plot(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(report["summary"])
    most = max(len(rows) for rows in report["summary"].values())
    # One row of panels for a few shapes, one panel per line for many.
    wide = most > 10
    fig, axes = plt.subplots(
        len(backends) if wide else 1,
        1 if wide else len(backends),
        figsize=(max(6.5, 0.45 * most), 4.2 * len(backends))
        if wide
        else (6.5 * len(backends), 4.2),
        squeeze=False,
    )
    for ax, backend in zip(axes.flat, backends):
        rows = report["summary"][backend]
        labels = [f"{r['B']},{r['T']},{r['D']},{r['H']}" for r in rows]
        xs = range(len(rows))
        width = 0.38
        ax.axhline(1.0, color="black", linewidth=0.8)
        series = (
            ("fwd_vs_keras", "forward", "forward_vs_keras", "#4c72b0", -1),
            ("train_vs_keras", "forward + backward", "train_step_vs_keras", "#dd8452", 1),
        )
        for key, label, target, color, side in series:
            heights = [r[key] for r in rows]
            ax.bar([x + side * width / 2 for x in xs], heights, width, label=label, color=color)
            ax.axhline(
                TARGETS[target],
                color=color,
                linestyle="--",
                linewidth=0.9,
                label=f"target, {label} ({TARGETS[target]})",
            )
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("B, T, D, H")
        ax.set_ylabel("time of klg.LSTM / keras.layers.LSTM")
        ax.set_title(f"{backend} backend, CPU (median of {report['repeats']})", pad=20)
        # Above the axes, where it hides no bar.
        ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main ----------------------------------------------------------------------------


def print_summary(report):
    for backend, rows in report["summary"].items():
        print(f"\n{backend}: klg / keras.layers.LSTM (median wall time; < 1 is faster)")
        print(f"{'B, T, D, H':>20} {'forward':>8} {'train':>8} {'vs torch':>14} {'gates':>6}")
        for r in rows:
            shape = f"{r['B']}, {r['T']}, {r['D']}, {r['H']}"
            torch_cell = f"{_fmt(r['fwd_vs_torch'], 2)}/{_fmt(r['train_vs_torch'], 2)}"
            print(
                f"{shape:>20} {r['fwd_vs_keras']:8.2f} {r['train_vs_keras']:8.2f} "
                f"{torch_cell:>14} {r['gates_overhead']:6.2f}"
            )
        for key, t in report["targets"][backend].items():
            if t["worst"] is not None:
                print(
                    f"  {key}: worst {t['worst']:.2f}, target {t['target']}: "
                    f"{'met' if t['met'] else 'NOT met'}"
                )


def write_report(report, out):
    """``results.md`` and ``performance.png`` of a report, into ``out``."""
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown(report) + "\n")
    plot(report, os.path.join(out, "performance.png"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", choices=("quick", "default", "issue", "full"), default="default")
    parser.add_argument(
        "--backends",
        default="tensorflow,jax",
        help="comma-separated Keras backends (tensorflow, jax, torch)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=7,
        help="interleaved rounds per candidate (the median is reported)",
    )
    # By default the results land where the Performance page reads them.
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "assets", "performance"))
    parser.add_argument("--no-torch", action="store_true", help="skip torch.nn.LSTM")
    parser.add_argument(
        "--render",
        metavar="RESULTS_JSON",
        help="measure nothing: rewrite results.md and performance.png in --out "
        "from an earlier results.json",
    )
    parser.add_argument(
        "--update",
        metavar="RESULTS_JSON",
        help="measure only --backends (and torch.nn.LSTM unless --no-torch) and take "
        "every other result from this earlier results.json, of the same grid; "
        "--backends '' measures torch.nn.LSTM alone",
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="with --update: measure only the TensorFlow training step's allocator peaks "
        "and take every other result from the earlier results.json",
    )
    args = parser.parse_args(argv)
    if args.memory_only and not args.update:
        parser.error("--memory-only needs --update RESULTS_JSON")
    if args.render:
        with open(args.render) as f:
            report = json.load(f)
        os.makedirs(args.out, exist_ok=True)
        write_report(report, args.out)
        return 0
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - {"tensorflow", "jax", "torch"})
    if unknown or not (backends or args.update):
        parser.error(f"--backends takes tensorflow, jax and/or torch; got {args.backends!r}")
    earlier = None
    if args.update:
        with open(args.update) as f:
            earlier = json.load(f)
        if earlier["grid"] != args.grid or earlier["repeats"] != args.repeats:
            parser.error(
                f"--update: {args.update} has grid {earlier['grid']!r} and "
                f"{earlier['repeats']} repeats, not {args.grid!r} and {args.repeats}"
            )
    os.makedirs(args.out, exist_ok=True)

    start = time.time()
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        if args.memory_only:
            backends = []
            results["tensorflow"] = earlier["backends"]["tensorflow"]
            memory = run_worker("tensorflow-memory", args.grid, args.repeats, workdir)
            attach_memory(results["tensorflow"], memory)
        for backend in backends:
            results[backend] = run_worker(backend, args.grid, args.repeats, workdir)
            if backend == "tensorflow":
                memory = run_worker("tensorflow-memory", args.grid, args.repeats, workdir)
                attach_memory(results[backend], memory)
        torch_result = None
        if not args.no_torch and not args.memory_only and have_torch():
            torch_result = run_worker("torch.nn.LSTM", args.grid, args.repeats, workdir)
    seconds = time.time() - start
    measured = sorted(results) + (["torch.nn.LSTM"] if torch_result else [])
    if args.memory_only:
        measured = ["tensorflow memory"]
    if earlier is not None:
        results = {**earlier["backends"], **results}
        torch_result = torch_result or earlier.get("torch_reference")
        seconds += earlier["seconds"]
    summary = {b: summarize(r, torch_result) for b, r in results.items()}
    environment = {}
    for r in list(results.values()) + [torch_result or {"environment": {}}]:
        environment.update({k: v for k, v in r["environment"].items() if v is not None})
    report = {
        "grid": args.grid,
        "repeats": args.repeats,
        "seconds": seconds,
        "environment": environment,
        "targets": {b: targets(rows) for b, rows in summary.items()},
        "summary": summary,
        "backends": results,
        "torch_reference": torch_result,
    }
    if earlier is not None:
        # When each part of the report was measured.
        first = [
            *earlier["backends"],
            *(["torch.nn.LSTM"] if earlier.get("torch_reference") else []),
        ]
        parts = earlier.get("measured_at") or {name: "the first run" for name in first}
        now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        report["measured_at"] = {**parts, **{name: now for name in measured}}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    write_report(report, args.out)
    print_summary(report)
    print(f"\nwrote results.json, results.md and performance.png to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
