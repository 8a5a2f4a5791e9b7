"""Connectivity (Madsen 2019, "Visualizing memorization in RNNs", distill):
how strongly the model's output at step ``t`` depends on its input at each
step ``s``, as the L2 norm over features of the gradient

    || d y[t, k] / d x[s] ||,   k = the component the model predicts at t

computed with the backend's own autodiff (``tf.GradientTape``,
``jax.grad``, ``torch.autograd``).  For token ids read through a
``keras.layers.Embedding``, ``x[s]`` is the embedding vector: an id has no
gradient.

One backward pass gives the row of one output step; many rows are computed
together by repeating the sample along the batch, one copy per output step,
and summing the picked outputs: the copies do not interact (inference
mode), so each copy's gradient is its own row.
"""

import contextlib

import keras
import numpy as np

# Rows per backward pass: the batch of copies is at most this many steps long.
_STEPS_PER_PASS = 16384
_MAX_COPIES = 256


def _embeddings(model):
    found, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.layers.Embedding):
            found.append(layer)
        for child in getattr(layer, "_layers", None) or getattr(layer, "layers", []) or []:
            visit(child)

    visit(model)
    return found


class _Nudge:
    """Adds ``delta`` to the output of one Embedding for one call (an
    instance-level ``call``, as klg.trace records gates), so that the
    gradient with respect to ``delta`` is the one with respect to the
    embedding vectors."""

    def __init__(self, layer):
        self.layer = layer
        self.delta = None

    def __enter__(self):
        layer = self.layer
        self.had_own = "call" in layer.__dict__
        self.original = layer.__dict__.get("call", layer.call)

        def call(*args, **kwargs):
            out = self.original(*args, **kwargs)
            return out if self.delta is None else out + self.delta

        layer.__dict__["call"] = call
        return self

    def __exit__(self, *exc):
        if self.had_own:
            self.layer.__dict__["call"] = self.original
        else:
            self.layer.__dict__.pop("call", None)
        return False


def _single(output, what="connectivity"):
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        if len(output) != 1:
            raise ValueError(
                f"{what} reads a model with one output; this one has {len(output)}. "
                "Pass connectivity=False, or a model with a single output."
            )
        output = output[0]
    return output


def _picked_sum(y, rows_t, rows_k, per_step):
    """Sum over copies j of ``y[j, t_j, k_j]`` (or ``y[j, k_j]``)."""
    ops = keras.ops
    n = len(rows_t)
    flat = ops.reshape(y, (n, -1)) if not per_step else ops.reshape(y, (n, y.shape[1], -1))
    if per_step:
        onehot_t = np.zeros((n, flat.shape[1], 1), np.float32)
        onehot_t[np.arange(n), rows_t, 0] = 1.0
        flat = ops.sum(flat * ops.convert_to_tensor(onehot_t), axis=1)
    onehot_k = np.zeros((n, flat.shape[-1]), np.float32)
    onehot_k[np.arange(n), rows_k] = 1.0
    return ops.sum(flat * ops.convert_to_tensor(onehot_k))


def _gradient(model, x, delta_shape, objective, nudge, call_kwargs):
    """d objective / d delta, where delta is added to ``x`` (float inputs)
    or to the embedding output (``nudge``)."""
    backend = keras.backend.backend()
    ops = keras.ops
    zeros = np.zeros(delta_shape, np.float32)

    def forward(delta):
        if nudge is not None:
            nudge.delta = delta
            return objective(_single(model(ops.convert_to_tensor(x), **call_kwargs)))
        return objective(_single(model(ops.convert_to_tensor(x) + delta, **call_kwargs)))

    if backend == "tensorflow":
        import tensorflow as tf

        delta = tf.constant(zeros)
        with tf.GradientTape() as tape:
            tape.watch(delta)
            value = forward(delta)
        grad = tape.gradient(value, delta)
    elif backend == "jax":
        import jax

        grad = jax.grad(forward)(ops.convert_to_tensor(zeros))
    elif backend == "torch":
        import torch

        delta = ops.convert_to_tensor(zeros)
        delta.requires_grad_(True)
        with torch.enable_grad():
            value = forward(delta)
            (grad,) = torch.autograd.grad(value, delta, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(delta)
    else:  # pragma: no cover - Keras 3 has no other backend with autodiff here
        raise ValueError(f"connectivity: no autodiff for the {backend!r} backend.")
    return np.asarray(ops.convert_to_numpy(grad), np.float64)


def connectivity(model, inputs, stream, positions, window, mask=None):
    """Gradient-norm rows for the stream ``positions`` (flat token indices).

    Returns ``{"positions", "before", "after", "norms"}``: ``norms[r, j]``
    is the norm for input step ``positions[r] - before + j`` (NaN outside
    the sample); ``after`` is ``window`` for a model whose outputs read
    later steps (a Bidirectional layer), else 0.
    """
    if isinstance(inputs, (list, tuple, dict)):
        raise ValueError(
            "connectivity reads a model with one input array; pass connectivity=False "
            "for a model with several inputs."
        )
    x = np.asarray(keras.ops.convert_to_numpy(inputs))
    call_kwargs = {"training": False}
    if mask is not None:
        call_kwargs["mask"] = mask
    nudge = None
    if not np.issubdtype(x.dtype, np.floating):
        layers = _embeddings(model)
        if not layers:
            raise ValueError(
                f"connectivity needs float inputs or a keras.layers.Embedding to take the "
                f"gradient at; the inputs have dtype {x.dtype} and {model.name!r} holds no "
                "Embedding. Pass connectivity=False."
            )
        nudge = _Nudge(layers[0])
    batch, time = x.shape[:2]

    with nudge if nudge is not None else contextlib.nullcontext():
        probe_delta = _delta_shape(model, x[:1], nudge, call_kwargs)
        y0 = _single(model(keras.ops.convert_to_tensor(x), **call_kwargs))
    y0 = np.asarray(keras.ops.convert_to_numpy(y0))
    per_step = y0.ndim >= 3 or (y0.ndim == 2 and y0.shape[1] == time)
    if not per_step:
        # One output per sequence: its row is at the last step of each sample.
        last = {sample: start + length - 1 for start, length, sample in stream.segments}
        positions = sorted(last.values())
    positions = np.asarray(positions, np.int64)
    samples, steps = stream.sample[positions], stream.step[positions]
    if per_step:
        scores = y0.reshape(batch, time, -1)[samples, steps]
    else:
        scores = y0.reshape(batch, -1)[samples]
    picks = scores.argmax(axis=-1)

    copies = int(np.clip(_STEPS_PER_PASS // max(time, 1), 1, _MAX_COPIES))
    full = np.zeros((len(positions), time), np.float64)
    with nudge if nudge is not None else contextlib.nullcontext():
        for first in range(0, len(positions), copies):
            rows = slice(first, first + copies)
            xb = x[samples[rows]]
            kw = dict(call_kwargs)
            if mask is not None:
                kw["mask"] = np.asarray(mask)[samples[rows]]
            n = len(xb)
            t_rows, k_rows = steps[rows], picks[rows]

            def objective(y, t_rows=t_rows, k_rows=k_rows):
                return _picked_sum(y, t_rows, k_rows, per_step)

            shape = (n, *probe_delta[1:])
            grad = _gradient(model, xb, shape, objective, nudge, kw)
            full[rows] = np.sqrt((grad.reshape(n, time, -1) ** 2).sum(axis=-1))

    later = np.triu(np.ones((time, time), bool), k=1)[steps]
    peak = full.max(axis=1, keepdims=True)
    causal = not np.any(full[later] > 1e-6 * np.broadcast_to(peak, full.shape)[later])
    after = 0 if causal else window
    width = window + 1 + after
    at = steps[:, None] - window + np.arange(width)[None, :]
    inside = (at >= 0) & (at < time)
    clipped = np.clip(at, 0, time - 1)
    inside &= stream.mask[samples[:, None], clipped]
    picked = np.take_along_axis(full, clipped, axis=1)
    norms = np.where(inside, picked, np.nan).astype(np.float32)
    return {"positions": positions, "before": window, "after": after, "norms": norms}


def _delta_shape(model, x1, nudge, call_kwargs):
    """The shape of what the gradient is taken at, for a batch of one."""
    if nudge is None:
        return x1.shape
    seen = {}
    original = nudge.layer.__dict__["call"]

    def spy(*args, **kwargs):
        out = nudge.original(*args, **kwargs)
        seen["shape"] = tuple(out.shape)
        return out

    nudge.layer.__dict__["call"] = spy
    try:
        kw = {k: v for k, v in call_kwargs.items() if k != "mask"}
        model(keras.ops.convert_to_tensor(x1), **kw)
    finally:
        nudge.layer.__dict__["call"] = original
    return seen["shape"]
