"""``python -m keras_lstm_gates.check``: what klg.LSTM does on this machine.

The check is for the machine in front of you (a Colab GPU or TPU runtime, a
workstation, a cluster node): the project's CI has CPUs only, so the claims
that need an accelerator (the cuDNN path, mixed precision on a GPU) are
proved where users run them.

For a fixed set of configurations it builds a model with
``keras.layers.LSTM`` and its twin with :class:`keras_lstm_gates.LSTM`
(:func:`keras_lstm_gates.convert`, so both start from the same weights) and
reports, for each:

* the execution path each layer takes, observed while the model runs
  (``cudnn``; on PyTorch, klg's ``onednn``, PyTorch's own kernel; klg's
  ``fused-loop`` with its hand-written backward pass or its autodiff
  ``scan-loop``; Keras's generic ``rnn-loop``, or on PyTorch its
  ``backend-lstm`` fallback kernel), and why klg did not take cuDNN (and,
  on PyTorch, its kernel);
* parity with ``keras.layers.LSTM`` on the same device: outputs, final
  states, and the gradients of one SGD step (the weight change, in Keras's
  fused layout), against the tolerances of the project's parity tests
  (1e-5 in float32, 1e-2 in mixed_float16, 5e-2 in mixed_bfloat16);
* the time of a forward pass and of a training step of both models,
  measured in interleaved rounds, as the median ratio klg / Keras.

Usage::

    python -m keras_lstm_gates.check            # the table and a verdict
    python -m keras_lstm_gates.check --quick    # small and fast (< 1 min on a CPU)
    python -m keras_lstm_gates.check --json     # the same as JSON

The exit status is 1 when a parity check fails, 0 otherwise; a machine
without an accelerator is not a failure (the CPU paths are checked).
Keras reads its backend once per process: set ``KERAS_BACKEND`` before
running (``KERAS_BACKEND=jax python -m keras_lstm_gates.check``).

>>> import keras_lstm_gates as klg
>>> report = klg.check(quick=True, configs=["plain"], rounds=1)
>>> report["configs"][0]["name"], report["configs"][0]["status"]
('plain', 'ok')
>>> report["passed"]
True
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time

import numpy as np

# Tolerances of tests/core/test_parity.py, by the layers' dtype policy.
TOLERANCES = {"float32": 1e-5, "mixed_float16": 1e-2, "mixed_bfloat16": 5e-2}
CONFIG_NAMES = (
    "plain",
    "masked right-padded",
    "masked with holes",
    "bidirectional",
    "go_backwards",
    "variant (peepholes at 0)",
    "return_gates",
    "mixed_float16",
    "mixed_bfloat16",
)
SHAPES = {"quick": (2, 6, 3, 4), "full": (32, 50, 16, 64)}  # B, T, D, H


# -- the machine ---------------------------------------------------------------


def devices():
    """The devices the Keras backend sees: ``[{"kind", "name", "memory_bytes"}]``."""
    import keras

    name = keras.backend.backend()
    found = []
    if name == "tensorflow":
        import tensorflow as tf

        for kind in ("CPU", "GPU", "TPU"):
            physical = tf.config.list_physical_devices(kind)
            for k, dev in enumerate(tf.config.list_logical_devices(kind)):
                entry = {"kind": kind, "name": dev.name, "memory_bytes": None}
                if kind == "GPU" and k < len(physical):
                    with contextlib.suppress(Exception):
                        details = tf.config.experimental.get_device_details(physical[k])
                        entry["name"] = details.get("device_name", dev.name)
                found.append(entry)
    elif name == "jax":
        import jax

        for dev in jax.devices():
            kind = {"gpu": "GPU", "tpu": "TPU"}.get(dev.platform, "CPU")
            memory = None
            with contextlib.suppress(Exception):
                memory = (dev.memory_stats() or {}).get("bytes_limit")
            found.append({"kind": kind, "name": str(dev.device_kind), "memory_bytes": memory})
    elif name == "torch":
        import torch

        found.append({"kind": "CPU", "name": platform.processor() or "cpu", "memory_bytes": None})
        if torch.cuda.is_available():
            for k in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(k)
                found.append(
                    {"kind": "GPU", "name": props.name, "memory_bytes": props.total_memory}
                )
    else:
        found.append({"kind": "CPU", "name": platform.processor() or "cpu", "memory_bytes": None})
    return found


def _backend_version(name):
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(name)
    if module is None:
        return None
    return __import__(module).__version__


# -- observing the execution path ----------------------------------------------


class PathSpy:
    """Records which kernels run while it is active.

    It watches Keras's cuDNN entry point (of both layers; it raises
    ``NotImplementedError`` where cuDNN cannot run, see
    :func:`keras_lstm_gates.compat.watching_keras_lstm`) and klg's two
    loops.  Kernels are recorded while the models trace or run, so compiled
    steps are seen when they are traced.
    """

    def __init__(self):
        self.events = []

    @contextlib.contextmanager
    def watching(self):
        import keras

        from . import compat, loops

        patched = [(loops, "fused_sequence", "fused-loop"), (loops, "scan", "scan-loop")]
        if keras.backend.backend() == "torch":
            from .loops import torch as torch_loops

            patched.append((torch_loops, "native_sequence", "onednn"))
        originals = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patched]
        for (obj, attr, label), (_, _, original) in zip(patched, originals):
            setattr(obj, attr, self._wrap(original, label))
        try:
            with compat.watching_keras_lstm(self.events.append):
                yield self
        finally:
            for obj, attr, original in originals:
                setattr(obj, attr, original)

    def _wrap(self, fn, label):
        def spy(*args, **kwargs):
            result = fn(*args, **kwargs)  # raises where cuDNN cannot run
            self.events.append(label)
            return result

        return spy


def _observe(model, x, spy):
    spy.events.clear()
    with spy.watching():
        model(x, training=False)
    seen = list(dict.fromkeys(spy.events))
    return seen


def _klg_path(events, model):
    from .layer import LSTM

    lstms = [layer for layer in _walk(model) if isinstance(layer, LSTM)]
    if any(layer.unroll for layer in lstms):
        return "unrolled"
    for label in ("cudnn", "onednn", "fused-loop", "scan-loop"):
        if label in events:
            return label
    return "unknown"


def _keras_path(events):
    from .sequence import gpu_available

    if "cudnn" not in events:
        return "rnn-loop"
    # The backend's LSTM kernel ran. On PyTorch it has a plain fallback that
    # runs on the CPU; elsewhere it runs only where cuDNN can.
    return "cudnn" if gpu_available() else "backend-lstm"


def _klg_reason(model, path):
    """Why klg did not take cuDNN, and on PyTorch why not its own kernel."""
    import keras

    from .layer import LSTM
    from .sequence import gpu_available, onednn_unsupported_reason

    if path == "cudnn":
        return ""
    lstms = [layer for layer in _walk(model) if isinstance(layer, LSTM)]
    reason = next((r for r in (layer.cudnn_unsupported_reason() for layer in lstms) if r), None)
    if reason is None and any(layer.use_cudnn is False for layer in lstms):
        reason = "use_cudnn=False"
    if reason is None:
        reason = "no GPU" if not gpu_available() else "the mask is not right-padded"
    if keras.backend.backend() == "torch" and path != "onednn":
        why = (onednn_unsupported_reason(layer) for layer in lstms)
        reason += "; PyTorch's kernel: " + next(
            (r for r in why if r), "the mask is not right-padded in the order the layer reads"
        )
    return reason


def _walk(model):
    from .walk import layer_paths

    return [layer for layer, _ in layer_paths(model).values()]


# -- the configurations --------------------------------------------------------


def _data(rng, shape, holes=None):
    batch, steps, features, _ = shape
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    if holes == "right":
        x[0, -2:] = 0.0
    elif holes == "inside":
        x[0, 2] = 0.0
        x[-1, 1:3] = 0.0
    return x


def build_keras(name, shape, seed=0):
    """``(keras_model, x, policy)``: the keras.layers.LSTM model of one
    configuration, its input and its dtype policy."""
    import keras

    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    _, steps, features, units = shape
    policy = name if name.startswith("mixed_") else "float32"
    holes = {"masked right-padded": "right", "masked with holes": "inside"}.get(name)
    inputs = keras.Input((steps, features))
    hidden = keras.layers.Masking(0.0)(inputs) if holes else inputs
    lstm = keras.layers.LSTM(
        units,
        return_sequences=True,
        return_state=True,
        go_backwards=name == "go_backwards",
        dtype=policy,
        bias_initializer="random_normal",
    )
    outputs = keras.layers.Bidirectional(lstm)(hidden) if name == "bidirectional" else lstm(hidden)
    return keras.Model(inputs, list(outputs)), _data(rng, shape, holes), policy


def build_klg(name, ref):
    """The klg.LSTM twin of :func:`build_keras`'s model, with its weights."""
    import keras

    from .convert import convert
    from .interop import split_fused_weights
    from .layer import LSTM

    if name not in ("variant (peepholes at 0)", "return_gates"):
        return convert(ref)
    lstm = next(layer for layer in ref.layers if isinstance(layer, keras.layers.LSTM))
    inputs = keras.Input(ref.inputs[0].shape[1:])
    if name == "return_gates":
        *outputs, _gates = LSTM.from_keras(lstm, return_gates=True)(inputs)
        return keras.Model(inputs, outputs)
    # Peepholes start at zero, so the variant computes the vanilla LSTM through
    # its own (generic) loop; the gates take Keras's blocks one by one.
    config = {k: v for k, v in lstm.get_config().items() if k != "name"}
    twin = LSTM(**config, peepholes=True)
    outputs = twin(inputs)
    fused = [keras.ops.convert_to_numpy(w) for w in lstm.cell.weights]
    for gate, (kernel, recurrent_kernel, bias) in split_fused_weights(*fused).items():
        part = twin.cell.gates[gate]
        part.kernel.assign(kernel)
        part.recurrent_kernel.assign(recurrent_kernel)
        part.bias.assign(bias)
    return keras.Model(inputs, list(outputs))


# -- parity and timing ---------------------------------------------------------


def _max_diff(a, b):
    a = np.asarray(a, "float64")
    b = np.asarray(b, "float64")
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def _lstm_weights(model):
    """Keras-layout weights of every LSTM in ``model``, in model order (a klg
    layer's peepholes, which Keras has no place for, are left out)."""
    import keras

    from .layer import LSTM
    from .parts import PARTS

    to_np = keras.ops.convert_to_numpy
    arrays = []
    for layer in _walk(model):
        if isinstance(layer, LSTM):
            gates = [layer.cell.gates[n] for n in PARTS]
            for attr in ("kernel", "recurrent_kernel", "bias"):
                arrays.append(np.concatenate([to_np(getattr(g, attr)) for g in gates], axis=-1))
        elif isinstance(layer, keras.layers.LSTM):
            arrays.extend(to_np(w) for w in layer.cell.weights)
    return arrays


def _train_model(model, policy):
    import keras

    sequence_only = keras.Model(model.inputs, model.outputs[0])
    # SGD with rate 1: the weight change of one step is the gradient.
    sequence_only.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    return sequence_only


def parity(ref, ours, x, policy, seed=0):
    """Max abs differences of outputs, final states and one step's gradients."""
    import keras

    to_np = keras.ops.convert_to_numpy
    out_ref = [to_np(t) for t in ref.predict_on_batch(x)]
    out_ours = [to_np(t) for t in ours.predict_on_batch(x)]
    result = {
        "outputs": _max_diff(out_ours[0], out_ref[0]),
        "states": max(_max_diff(a, b) for a, b in zip(out_ours[1:], out_ref[1:])),
    }
    train_ref, train_ours = _train_model(ref, policy), _train_model(ours, policy)
    target = np.random.default_rng(seed + 1).normal(size=out_ref[0].shape).astype("float32")
    before_ref, before_ours = _lstm_weights(ref), _lstm_weights(ours)
    train_ref.train_on_batch(x, target)
    train_ours.train_on_batch(x, target)
    after_ref, after_ours = _lstm_weights(ref), _lstm_weights(ours)
    worst = 0.0
    for b_ref, a_ref, b_ours, a_ours in zip(before_ref, after_ref, before_ours, after_ours):
        grad_ref, grad_ours = b_ref - a_ref, b_ours - a_ours
        scale = max(1.0, float(np.max(np.abs(grad_ref))) if grad_ref.size else 1.0)
        worst = max(worst, _max_diff(grad_ours, grad_ref) / scale)
    result["gradients"] = worst
    return result, (train_ref, train_ours, target)


def timing(ref, ours, trainers, x, rounds):
    """Median seconds of a forward pass and a training step of both models,
    measured in interleaved rounds, and the klg / Keras ratios."""
    train_ref, train_ours, target = trainers
    runs = {
        "keras_forward": lambda: ref.predict_on_batch(x),
        "klg_forward": lambda: ours.predict_on_batch(x),
        "keras_train": lambda: train_ref.train_on_batch(x, target),
        "klg_train": lambda: train_ours.train_on_batch(x, target),
    }
    for fn in runs.values():  # compiled already by the parity step; once more to settle
        fn()
    samples = {k: [] for k in runs}
    for _ in range(rounds):
        for key, fn in runs.items():
            start = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - start)
    med = {k: float(np.median(v)) for k, v in samples.items()}
    return {
        "forward_ratio": med["klg_forward"] / med["keras_forward"],
        "train_ratio": med["klg_train"] / med["keras_train"],
        **{f"{k}_ms": 1000.0 * v for k, v in med.items()},
        "rounds": rounds,
    }


def check_config(name, shape, rounds, seed=0):
    """The report of one configuration (see :func:`check`)."""
    import keras

    entry = {"name": name, "status": "ok", "passed": True, "error": None}
    try:
        ref, x, policy = build_keras(name, shape, seed)
        keras_events = _observe(ref, x, PathSpy())
    except Exception as exc:  # keras.layers.LSTM itself cannot run it here
        entry.update(status="unsupported", error=f"{type(exc).__name__}: {exc}"[:300])
        keras.backend.clear_session()
        return entry
    entry["dtype_policy"] = policy
    tolerance = TOLERANCES[policy]
    entry["tolerance"] = tolerance
    entry["keras_path"] = _keras_path(keras_events)
    try:
        ours = build_klg(name, ref)
        klg_events = _observe(ours, x, PathSpy())
        entry["klg_path"] = _klg_path(klg_events, ours)
        entry["klg_reason"] = _klg_reason(ours, entry["klg_path"])
        diffs, trainers = parity(ref, ours, x, policy, seed)
        entry["parity"] = diffs
        entry["passed"] = all(diffs[k] <= tolerance for k in ("outputs", "states", "gradients"))
        if not entry["passed"]:
            entry["status"] = "parity failed"
        entry["time"] = timing(ref, ours, trainers, x, rounds)
    except Exception as exc:
        entry.update(status="error", passed=False, error=f"{type(exc).__name__}: {exc}"[:300])
    finally:
        keras.backend.clear_session()
    return entry


def check(quick=False, configs=None, rounds=None, seed=0):
    """Run the check in this process and return its report as a dict.

    Args:
        quick: small shapes and few rounds (under a minute on a CPU).
        configs: names from :data:`CONFIG_NAMES` (default: all).
        rounds: timing rounds (default 3 quick, 15 full).
        seed: seed of the data and the weights.

    Returns:
        ``{"backend", "keras", "devices", "accelerator", "configs": [...],
        "passed", "verdict", ...}``; each config has ``klg_path``,
        ``klg_reason``, ``keras_path``, ``parity`` (max abs differences of
        ``outputs``, ``states``, ``gradients``), ``tolerance``, ``passed`` and
        ``time`` (``forward_ratio``, ``train_ratio``: klg / Keras medians).
    """
    import keras

    from .version import __version__

    names = list(CONFIG_NAMES if configs is None else configs)
    unknown = [n for n in names if n not in CONFIG_NAMES]
    if unknown:
        raise ValueError(f"Unknown configuration(s) {unknown}; expected some of {CONFIG_NAMES}.")
    rounds = (3 if quick else 15) if rounds is None else int(rounds)
    if rounds < 1:
        raise ValueError(f"Expected rounds >= 1, received rounds={rounds}.")
    shape = SHAPES["quick" if quick else "full"]
    found = devices()
    accelerators = sorted({d["kind"] for d in found if d["kind"] != "CPU"})
    entries = [check_config(name, shape, rounds, seed) for name in names]
    failed = [e["name"] for e in entries if not e["passed"]]
    ran = [e for e in entries if e["status"] != "unsupported"]
    where = ", ".join(accelerators) if accelerators else "no GPU or TPU: CPU paths checked"
    if failed:
        verdict = f"FAIL: {len(failed)} of {len(ran)} configurations differ from keras.layers.LSTM ({', '.join(failed)}); {where}"
    else:
        verdict = f"PASS: {len(ran)} configurations match keras.layers.LSTM; {where}"
    backend = keras.backend.backend()
    return {
        "keras_lstm_gates": __version__,
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": _backend_version(backend),
        "python": platform.python_version(),
        "devices": found,
        "accelerator": bool(accelerators),
        "quick": bool(quick),
        "shape": dict(zip(("batch", "time", "features", "units"), shape)),
        "configs": entries,
        "passed": not failed,
        "verdict": verdict,
    }


# -- output --------------------------------------------------------------------


def format_report(report):
    """The report as a plain-text table."""
    shape = report["shape"]
    lines = [
        f"keras_lstm_gates {report['keras_lstm_gates']} | Keras {report['keras']} | "
        f"backend {report['backend']} {report['backend_version'] or ''} | Python {report['python']}",
        "devices: "
        + "; ".join(
            d["kind"]
            + (f" {d['name']}" if d["name"] else "")
            + (f" ({d['memory_bytes'] / 2**30:.1f} GiB)" if d["memory_bytes"] else "")
            for d in report["devices"]
        ),
        f"shape: B={shape['batch']} T={shape['time']} D={shape['features']} H={shape['units']}",
        "",
    ]
    header = (
        "configuration",
        "klg path",
        "keras path",
        "outputs",
        "states",
        "grads",
        "tol",
        "fwd x",
        "train x",
        "result",
    )
    rows = [header]
    for e in report["configs"]:
        if e["status"] == "unsupported":
            rows.append((e["name"], "-", "-", "-", "-", "-", "-", "-", "-", "unsupported here"))
            continue
        p, t = e.get("parity", {}), e.get("time", {})

        def num(d, k, fmt):
            return format(d[k], fmt) if k in d else "-"

        rows.append(
            (
                e["name"],
                e.get("klg_path", "-"),
                e.get("keras_path", "-"),
                num(p, "outputs", ".1e"),
                num(p, "states", ".1e"),
                num(p, "gradients", ".1e"),
                format(e["tolerance"], "g"),
                num(t, "forward_ratio", ".2f"),
                num(t, "train_ratio", ".2f"),
                "ok" if e["passed"] else e["status"].upper(),
            )
        )
    widths = [max(len(str(r[k])) for r in rows) for k in range(len(header))]
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    reasons = [
        f"  {e['name']}: {e['klg_reason']}"
        for e in report["configs"]
        if e.get("klg_reason") and e.get("klg_path") != "cudnn"
    ]
    if reasons:
        lines += ["", "why klg.LSTM did not take cuDNN:", *reasons]
    errors = [f"  {e['name']}: {e['error']}" for e in report["configs"] if e["error"]]
    if errors:
        lines += ["", "errors:", *errors]
    lines += [
        "",
        "fwd x / train x: klg.LSTM time / keras.layers.LSTM time (median of interleaved rounds).",
        report["verdict"],
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_lstm_gates.check",
        description="Check klg.LSTM against keras.layers.LSTM on this machine's devices.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small shapes, few rounds (< 1 min on a CPU)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds")
    parser.add_argument(
        "--config",
        action="append",
        choices=CONFIG_NAMES,
        help="only this configuration (repeatable)",
    )
    args = parser.parse_args(argv)
    _quiet_frameworks()
    report = check(quick=args.quick, configs=args.config, rounds=args.rounds)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["passed"] else 1


def _quiet_frameworks():
    import logging
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")
    logging.getLogger("absl").setLevel(logging.ERROR)
    import keras

    keras.utils.disable_interactive_logging()


if __name__ == "__main__":
    sys.exit(main())
