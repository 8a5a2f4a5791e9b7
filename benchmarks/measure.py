"""One process's measurements, run by ``benchmarks/run.py``.

Two kinds of process:

* a Keras backend (``KERAS_BACKEND`` is read once, at import): for every
  shape ``(B, T, D, H)`` it builds ``keras.layers.LSTM`` with random weights
  and copies them into ``klg.LSTM`` (``from_keras``), into ``klg.LSTM(...,
  return_gates=True)`` and into ``keras.layers.RNN(keras.layers.LSTMCell)``;
* ``--torch-reference``: ``torch.nn.LSTM`` with the same weights (drawn from
  the same seed), and no Keras.  It runs apart because on a 2-core machine
  PyTorch's OpenMP threads and XLA's thread pool, in one process, keep
  each other from the cores (measured: ``torch.nn.LSTM`` ran 20 to 200 times
  slower next to JAX than on its own, and the Keras layers slowed down too).

All layers return sequences.  Each is compiled the way its framework runs a
model (``tf.function`` on TensorFlow, ``jax.jit`` on JAX, eager on PyTorch),
warmed up, and then timed in rounds: one call of every candidate per round,
in orders where each runs right after every other equally often
(:func:`round_orders`), so that drifts in machine load hit all of them
alike and none is always timed behind the same one.  Reported per candidate: the median wall time over the
rounds and the median CPU time of this process (all its threads).

Memory of one warm training step (forward, loss, gradients w.r.t. the
weights):

* JAX: the scratch memory XLA plans for the compiled step
  (``memory_analysis().temp_size_in_bytes``), which is exact;
* TensorFlow: the peak that TensorFlow's allocator hands out during the step
  above what it held before, from ``tf.config.experimental.get_memory_info``
  in a separate process (``--tf-memory``) run with
  ``TF_CPU_ALLOCATOR_USE_BFC=true``, the allocator that keeps these counts
  on a CPU (the timing processes keep the default allocator);
* every process also records the growth of its resident set (RSS, sampled
  every ~0.2 ms from /proc/self/statm by a second thread), the median of
  three; it shows 0 when the allocator serves the step from memory it
  already holds, so it is a rough check only.

    KERAS_BACKEND=jax python benchmarks/measure.py --grid quick --json out.json
    python benchmarks/measure.py --torch-reference --grid quick --json torch.json
"""

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time

GRIDS = {
    # The grid of the issue: B in {1, 16, 64}, T in {10, 100, 1000},
    # H in {64, 256, 1024}, D = 32.  Hours on a 2-core CPU.
    "full": [(b, t, 32, h) for b in (1, 16, 64) for t in (10, 100, 1000) for h in (64, 256, 1024)],
    # The three reference shapes of the issue and one point at each edge of
    # the grid (B = 1, T = 10, T = 1000, H = 1024).
    "default": [
        (64, 100, 32, 128),
        (32, 200, 16, 256),
        (8, 500, 64, 64),
        (1, 100, 32, 64),
        (16, 10, 32, 256),
        (16, 1000, 32, 64),
        (16, 100, 32, 1024),
    ],
    # The grid of the issue without its two largest shapes (B = 16 and 64 at
    # T = 1000, H = 1024, which alone take hours here), plus the issue's
    # three reference shapes: about 45 minutes on a 2-core CPU.
    "issue": [
        (b, t, 32, h)
        for b in (1, 16, 64)
        for t in (10, 100, 1000)
        for h in (64, 256, 1024)
        if not (b > 1 and t == 1000 and h == 1024)
    ]
    + [(64, 100, 32, 128), (32, 200, 16, 256), (8, 500, 64, 64)],
    # Tiny, for CI: checks that the script runs, not how fast anything is.
    "quick": [(2, 5, 3, 4)],
}

# The shape at which the issue compares with torch.nn.LSTM.
TORCH_REFERENCE_SHAPE = (64, 100, 32, 128)


# -- one worker process per Keras backend ---------------------------------------


def run_per_backend(script, backends, argv):
    """Run ``script --worker argv`` once per Keras backend, each in a process
    of its own (Keras reads KERAS_BACKEND at import), and return the JSON
    object each printed last; a backend whose worker fails is reported on
    stderr and left out."""
    import subprocess

    rows = []
    for backend in backends:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        command = [sys.executable, os.path.abspath(script), "--worker", *argv]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{backend}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


# -- process memory ------------------------------------------------------------


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_growth(fn, repeats=3):
    """Median over ``repeats`` of (peak RSS during ``fn()``) - (RSS before)."""
    if not os.path.exists("/proc/self/statm"):
        return None
    growth = []
    for _ in range(repeats):
        gc.collect()
        base = _rss_bytes()
        peak = [base]
        done = threading.Event()

        def sample(peak=peak, done=done):
            while not done.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                time.sleep(0.0002)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        fn()
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _rss_bytes())
        growth.append(peak[0] - base)
    return int(statistics.median(growth))


# -- compiled calls, one pair (forward, training step) per framework ----------


def keras_fns(layer, x, backend, train=True):
    """``(forward, train_step, xla_temp_bytes)`` for a built Keras layer
    (``train_step`` and ``xla_temp_bytes`` are None unless ``train``)."""
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in layer.trainable_variables]
        other = [v.value for v in layer.non_trainable_variables]
        xj = jnp.asarray(x)

        def output(tv, xs, training):
            out = layer.stateless_call(tv, other, xs, training=training)[0]
            return out[0] if isinstance(out, (tuple, list)) else out

        forward = jax.jit(lambda tv, xs: output(tv, xs, False))
        if not train:
            return lambda: forward(trainable, xj).block_until_ready(), None, None
        grad = jax.jit(jax.grad(lambda tv, xs: jnp.sum(jnp.square(output(tv, xs, True)))))
        # Compiled once, ahead of time: its memory analysis, then its calls.
        grad = grad.lower(trainable, xj).compile()
        temp = getattr(grad.memory_analysis(), "temp_size_in_bytes", None)
        return (
            lambda: forward(trainable, xj).block_until_ready(),
            lambda: jax.block_until_ready(grad(trainable, xj)),
            temp,
        )
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)

        def first(out):
            return out[0] if isinstance(out, (tuple, list)) else out

        forward = tf.function(lambda xs: first(layer(xs, training=False)))

        @tf.function
        def step(xs):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(first(layer(xs, training=True))))
            return tape.gradient(loss, layer.trainable_variables)

        return (lambda: forward(xt), lambda: step(xt), None)
    import torch

    xt = torch.as_tensor(x)
    params = [v.value for v in layer.trainable_variables]

    def first(out):
        return out[0] if isinstance(out, (tuple, list)) else out

    def forward():
        with torch.no_grad():
            return layer(xt, training=False)

    def step():
        loss = torch.sum(torch.square(first(layer(xt, training=True))))
        return torch.autograd.grad(loss, params)

    return (forward, step, None)


def random_problem(shape):
    """The input and Keras-layout LSTM weights of one shape, drawn in the
    same order in every process (so that all of them get the same numbers)."""
    import numpy as np

    batch, steps, features, units = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    # Scaled by fan-in like Keras's initializers, so that the recurrence is
    # stable: with O(1) recurrent weights a large H turns chaotic and float32
    # rounding differences between kernels grow to O(1) over time.
    scales = (1.0 / np.sqrt(features), 0.7 / np.sqrt(units), 0.1)
    weights = [
        (scale * rng.normal(size=size)).astype("float32")
        for scale, size in zip(scales, ((features, 4 * units), (units, 4 * units), (4 * units,)))
    ]
    return x, weights


def numpy_lstm(x, kernel, recurrent_kernel, bias):
    """The LSTM equations in numpy (Keras's gate order i, f, c, o)."""
    import numpy as np

    units = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], units), "float64")
    c = np.zeros_like(h)
    out = []

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = (z[:, k * units : (k + 1) * units] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


def torch_lstm_fns(kernel, recurrent_kernel, bias, x):
    """torch.nn.LSTM with Keras's weights (both use the gate order i, f, g, o)."""
    import torch

    features, four_units = kernel.shape
    lstm = torch.nn.LSTM(features, four_units // 4, batch_first=True)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.as_tensor(kernel.T))
        lstm.weight_hh_l0.copy_(torch.as_tensor(recurrent_kernel.T))
        lstm.bias_ih_l0.copy_(torch.as_tensor(bias))
        lstm.bias_hh_l0.zero_()
    xt = torch.as_tensor(x)
    params = list(lstm.parameters())

    def forward():
        with torch.no_grad():
            return lstm(xt)[0]

    def step():
        loss = torch.sum(torch.square(lstm(xt)[0]))
        return torch.autograd.grad(loss, params)

    return forward, step


def with_threads(fn, threads):
    """``fn`` run with ``torch.set_num_threads(threads)``."""
    import torch

    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)

    return run


def measure_torch_shape(shape, repeats):
    """torch.nn.LSTM with its default thread count and with one thread.

    On a loaded 2-core machine the default (one thread per core) can lose
    by orders of magnitude to one thread, as every op waits at a barrier
    for a thread the OS has parked; the report compares klg with the faster
    of the two, which is the stricter comparison for klg.
    """
    import numpy as np
    import torch

    x, weights = random_problem(shape)
    forward, step = torch_lstm_fns(*weights, x)
    threads = torch.get_num_threads()
    # Parity on a slice (a float64 numpy reference is slow at full size).
    got = forward().numpy()[:2, :20]
    expected = numpy_lstm(x[:2, :20].astype("float64"), *[w.astype("float64") for w in weights])
    batch, steps, features, units = shape
    return {
        "shape": {"B": batch, "T": steps, "D": features, "H": units},
        "parity_max_abs_diff_vs_numpy": float(np.max(np.abs(got - expected))),
        "default_threads": threads,
        "forward": _best_of_threads(forward, threads, repeats),
        "train_step": _best_of_threads(step, threads, repeats),
        "train_step_rss_growth_bytes": {"torch": peak_rss_growth(step)},
    }


def _best_of_threads(fn, threads, repeats):
    candidates = {f"{threads}_threads": fn}
    if threads > 1:
        candidates["1_thread"] = with_threads(fn, 1)
    timed = interleaved(candidates, repeats)
    best = min(timed, key=lambda n: timed[n]["ms"])
    return {"torch": {**timed[best], "threads": best}, **timed}


# -- the per-step floor --------------------------------------------------------


def matmul_loop_fn(batch, units, steps, backend):
    """A compiled loop of ``steps`` recurrent matmuls (batch, units) x
    (units, 4 * units) and nothing else: the floor under any LSTM's forward
    pass on this backend."""
    import numpy as np

    rng = np.random.default_rng(1)
    h0 = rng.normal(size=(batch, units)).astype("float32")
    u = (rng.normal(size=(units, 4 * units)) / np.sqrt(units)).astype("float32")
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def loop(h, u):
            def body(h, _):
                return (h @ u)[:, :units], None

            return jax.lax.scan(body, h, None, length=steps)[0]

        f = jax.jit(loop)
        h0j, uj = jnp.asarray(h0), jnp.asarray(u)
        return lambda: f(h0j, uj).block_until_ready()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def loop(h, u):
            return tf.while_loop(
                lambda t, h: t < steps,
                lambda t, h: (t + 1, tf.matmul(h, u)[:, :units]),
                (tf.constant(0), h),
            )[1]

        h0t, ut = tf.constant(h0), tf.constant(u)
        return lambda: loop(h0t, ut)
    import torch

    h0t, ut = torch.as_tensor(h0), torch.as_tensor(u)

    def loop():
        h = h0t
        for _ in range(steps):
            h = torch.mm(h, ut)[:, :units]
        return h

    return loop


# -- timing --------------------------------------------------------------------


def round_orders(count):
    """Orders of ``count`` candidates, one per round, in which each
    candidate runs right after every other equally often (a Williams
    design).

    What runs just before a call changes its time: after a slow Python loop
    or a long TensorFlow while loop, the framework's threads are still
    spinning and the caches are cold.  Rotating one fixed order keeps every
    candidate behind the same one in all but one round in ``count``, which
    showed as a bias of up to 1.26x between two copies of the same code."""
    first, low, high = [0], 1, count - 1
    while len(first) < count:
        first.append(low)
        low += 1
        if len(first) < count:
            first.append(high)
            high -= 1
    orders = [[(k + shift) % count for k in first] for shift in range(count)]
    if count % 2:
        orders += [order[::-1] for order in orders]
    return orders


def interleaved(fns, repeats, warmup=2):
    """Median wall and CPU milliseconds of every fn, timed in rounds whose
    order changes (:func:`round_orders`)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    orders = round_orders(len(names))
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for r in range(repeats):
        for n in (names[k] for k in orders[r % len(orders)]):
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[n]()
            wall[n].append(time.perf_counter() - start)
            cpu[n].append(time.process_time() - start_cpu)
    return {
        n: {
            "ms": 1000 * statistics.median(wall[n]),
            "cpu_ms": 1000 * statistics.median(cpu[n]),
            "min_ms": 1000 * min(wall[n]),
        }
        for n in names
    }


def tf_allocator_peak(step, runs=3):
    """The median over ``runs`` warm calls of ``step`` of the peak
    TensorFlow's allocator hands out above what it held before (needs
    TF_CPU_ALLOCATOR_USE_BFC=true); two calls first, to warm up."""
    import tensorflow as tf

    step()
    step()
    peaks = []
    for _ in range(runs):
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        tf.config.experimental.reset_memory_stats("CPU:0")
        step()
        peaks.append(tf.config.experimental.get_memory_info("CPU:0")["peak"] - before)
    return int(statistics.median(peaks))


TF_MEMORY_LAYERS = ("keras", "klg", "rnn_cell")


def tf_memory_of_layer(shape, name):
    """Peak bytes TensorFlow's allocator hands out during one warm training
    step of the layer ``name`` (one of :data:`TF_MEMORY_LAYERS`) at
    ``shape``, above what it held before (needs
    TF_CPU_ALLOCATOR_USE_BFC=true)."""
    import keras

    import keras_lstm_gates as klg

    x, weights = random_problem(shape)
    units = shape[3]
    ref = keras.layers.LSTM(units, return_sequences=True)
    ref.build(x.shape)
    ref.set_weights(weights)
    if name == "klg":
        layer = klg.LSTM.from_keras(ref)
    elif name == "rnn_cell":
        layer = keras.layers.RNN(keras.layers.LSTMCell(units), return_sequences=True)
        layer.build(x.shape)
        layer.set_weights(weights)
    else:
        layer = ref
    _, step, _ = keras_fns(layer, x, "tensorflow")
    return tf_allocator_peak(step)


def measure_tf_memory(shape, with_cell=True):
    """:func:`tf_memory_of_layer` for each layer, each in a fresh process.

    The BFC allocator may hand out a larger chunk than asked for, depending
    on which chunks earlier steps left free, so that in one process a
    layer's peak moved with whatever was measured before it (Keras's own at
    1, 10, 32, 64 read 0.44 or 1.00 MiB); a fresh process has no such
    history.
    """
    import subprocess

    names = TF_MEMORY_LAYERS if with_cell else TF_MEMORY_LAYERS[:2]
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true", TF_CPP_MIN_LOG_LEVEL="3")
    peaks = {}
    for name in names:
        command = [sys.executable, os.path.abspath(__file__), "--tf-memory-of"]
        command += [",".join(map(str, shape)), name]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{name} at {shape}: the memory worker failed\n{done.stderr[-2000:]}"
            )
        peaks[name] = int(done.stdout.strip().splitlines()[-1])
    return {"shape": dict(zip("BTDH", shape)), "train_step_tf_allocator_peak_bytes": peaks}


def measure_shape(shape, backend, repeats, with_cell=True):
    import keras
    import numpy as np

    import keras_lstm_gates as klg

    batch, steps, features, units = shape
    x, weights = random_problem(shape)
    ref = keras.layers.LSTM(units, return_sequences=True)
    ref.build(x.shape)
    ref.set_weights(weights)
    ours = klg.LSTM.from_keras(ref)
    traced = klg.LSTM.from_keras(ref, return_gates=True)
    layers = {"keras": ref, "klg": ours}
    if with_cell:
        generic = keras.layers.RNN(keras.layers.LSTMCell(units), return_sequences=True)
        generic.build(x.shape)
        generic.set_weights(weights)
        layers["rnn_cell"] = generic
    forward, train, xla_temp = {}, {}, {}
    for name, layer in layers.items():
        forward[name], train[name], xla_temp[name] = keras_fns(layer, x, backend)
    forward["klg_gates"] = keras_fns(traced, x, backend, train=False)[0]

    # Same numbers before timing anything.
    expected = np.asarray(keras.ops.convert_to_numpy(forward["keras"]()))
    parity = {}
    for name in [n for n in ("klg", "rnn_cell", "klg_gates") if n in forward]:
        got = np.asarray(keras.ops.convert_to_numpy(forward[name]()))
        parity[name] = float(np.max(np.abs(got - expected)))

    result = {
        "shape": {"B": batch, "T": steps, "D": features, "H": units},
        "parity_max_abs_diff": parity,
        "forward": interleaved(forward, repeats),
        "train_step": interleaved(train, repeats),
        "train_step_rss_growth_bytes": {n: peak_rss_growth(fn) for n, fn in train.items()},
    }
    if backend == "jax":
        result["train_step_xla_temp_bytes"] = {n: v for n, v in xla_temp.items() if v is not None}
    return result


def per_step_costs(backend, repeats, torch_reference=False):
    """Microseconds per step: the LSTMs at a size where the arithmetic is
    negligible (B=1, D=H=8, T=500), and a loop of only the recurrent matmul
    at the reference shape."""
    out = {}
    shape = (1, 500, 8, 8)
    x, weights = random_problem(shape)
    fns = {}
    if torch_reference:
        fns["torch_forward"], fns["torch_train_step"] = torch_lstm_fns(*weights, x)
    else:
        import keras

        import keras_lstm_gates as klg

        ref = keras.layers.LSTM(8, return_sequences=True)
        ref.build(x.shape)
        ref.set_weights(weights)
        for name, layer in (("keras", ref), ("klg", klg.LSTM.from_keras(ref))):
            f, s, _ = keras_fns(layer, x, backend)
            fns[name + "_forward"], fns[name + "_train_step"] = f, s
    timed = interleaved(fns, repeats)
    out["tiny_B1_T500_H8_us_per_step"] = {n: 1000 * v["ms"] / 500 for n, v in timed.items()}
    batch, steps, _, units = TORCH_REFERENCE_SHAPE
    floor = interleaved({"matmul_loop": matmul_loop_fn(batch, units, steps, backend)}, repeats)
    out["matmul_only_loop_at_reference"] = {
        "shape": {"B": batch, "T": steps, "H": units},
        "ms": floor["matmul_loop"]["ms"],
        "cpu_ms": floor["matmul_loop"]["cpu_ms"],
        "us_per_step": 1000 * floor["matmul_loop"]["ms"] / steps,
    }
    return out


def environment(backend):
    import numpy as np

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "numpy": np.__version__,
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if backend is not None:
        import keras

        env["keras"] = keras.__version__
    if backend == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
        env["gpu"] = bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        env["jax"] = jax.__version__
        env["gpu"] = jax.default_backend() == "gpu"
    if backend in (None, "torch"):
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["gpu"] = torch.cuda.is_available()
    return env


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="default")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--json", help="where to write the results (required but with --tf-memory-of)"
    )
    parser.add_argument(
        "--torch-reference", action="store_true", help="time torch.nn.LSTM only (no Keras)"
    )
    parser.add_argument(
        "--tf-memory",
        action="store_true",
        help="only TensorFlow's allocator peak per training step (run with "
        "TF_CPU_ALLOCATOR_USE_BFC=true)",
    )
    parser.add_argument(
        "--tf-memory-of",
        nargs=2,
        metavar=("B,T,D,H", "LAYER"),
        help="print the allocator peak of one layer's training step at one shape "
        f"(LAYER: {', '.join(TF_MEMORY_LAYERS)}); what --tf-memory runs per process",
    )
    args = parser.parse_args(argv)
    if args.tf_memory_of:
        shape, name = args.tf_memory_of
        if name not in TF_MEMORY_LAYERS:
            parser.error(f"--tf-memory-of: LAYER is one of {TF_MEMORY_LAYERS}, got {name!r}")
        print(tf_memory_of_layer(tuple(int(n) for n in shape.split(",")), name))
        return 0
    if not args.json:
        parser.error("--json is required")
    if args.tf_memory:
        rows = []
        for shape in GRIDS[args.grid]:
            rows.append(measure_tf_memory(shape, args.grid != "quick"))
            peak = {n: v / 2**20 for n, v in rows[-1]["train_step_tf_allocator_peak_bytes"].items()}
            print(
                f"[tensorflow] B,T,D,H={shape}: train-step allocator peak klg / keras "
                f"{peak['klg']:.1f} / {peak['keras']:.1f} MiB",
                flush=True,
            )
        with open(args.json, "w") as f:
            json.dump({"backend": "tensorflow", "memory": rows}, f, indent=1)
        return 0

    backend = None
    if not args.torch_reference:
        import keras

        backend = keras.backend.backend()
    results = {"backend": backend or "torch.nn.LSTM", "grid": args.grid, "repeats": args.repeats}
    results["environment"] = environment(backend)
    results["shapes"] = []
    for shape in GRIDS[args.grid]:
        start = time.perf_counter()
        if args.torch_reference:
            row = measure_torch_shape(shape, args.repeats)
            message = f"forward {row['forward']['torch']['ms']:.1f} ms, train step "
            message += f"{row['train_step']['torch']['ms']:.1f} ms"
        else:
            # The quick grid checks the machinery; it leaves out the slowest
            # candidate to compile, keras.layers.RNN(LSTMCell).
            row = measure_shape(shape, backend, args.repeats, args.grid != "quick")
            f, t = row["forward"], row["train_step"]
            message = f"klg/keras forward {f['klg']['ms'] / f['keras']['ms']:.2f}, "
            message += f"train step {t['klg']['ms'] / t['keras']['ms']:.2f}"
            temp = row.get("train_step_xla_temp_bytes", {})
            if temp.get("keras") and "klg" in temp:
                mib = {n: v / 2**20 for n, v in temp.items()}
                message += f", train-step XLA scratch {mib['klg']:.1f} / {mib['keras']:.1f} MiB"
            keras.utils.clear_session()
        row["seconds"] = time.perf_counter() - start
        results["shapes"].append(row)
        print(
            f"[{results['backend']}] B,T,D,H={shape}: {message} ({row['seconds']:.0f} s)",
            flush=True,
        )
    if args.grid != "quick":
        results["per_step"] = per_step_costs(backend or "torch", args.repeats, args.torch_reference)
    results["environment"]["loadavg_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
