"""The time loop under the fused recurrence, one per backend.

``scan(fn, carry, xs)`` runs ``fn(carry, x_t) -> (carry, ys_t)`` over the
leading (time) axis of ``xs`` and returns ``(final_carry, ys)`` with every
entry of ``ys`` stacked over time.  ``carry`` and ``ys_t`` are lists of
tensors; ``xs`` is a tensor or a tuple of tensors.
"""

from keras import backend, tree


def scan(fn, carry, xs):
    name = backend.backend()
    if name == "jax":
        return _scan_jax(fn, carry, xs)
    if name == "tensorflow":
        return _scan_tensorflow(fn, carry, xs)
    return _scan_python(fn, carry, xs)


def _scan_jax(fn, carry, xs):
    import jax

    def body(c, x):
        new_c, ys = fn(list(c), x)
        return tuple(new_c), tuple(ys)

    final, ys = jax.lax.scan(body, tuple(carry), xs)
    return list(final), list(ys)


def _scan_tensorflow(fn, carry, xs):
    import tensorflow as tf

    flat_xs = tree.flatten(xs)
    steps = tf.shape(flat_xs[0])[0]
    static_steps = flat_xs[0].shape[0]
    # One probe of the output structure, traced only (no values are used).
    x0 = tree.pack_sequence_as(xs, [x[0] for x in flat_xs])
    _, ys0 = fn(list(carry), x0)
    arrays = [
        tf.TensorArray(y.dtype, size=steps, element_shape=y.shape, infer_shape=True) for y in ys0
    ]

    def cond(t, *_):
        return t < steps

    def body(t, c, arrs):
        x_t = tree.pack_sequence_as(xs, [x[t] for x in flat_xs])
        new_c, ys = fn(list(c), x_t)
        arrs = [a.write(t, y) for a, y in zip(arrs, ys)]
        new_c = [tf.ensure_shape(n, o.shape) for n, o in zip(new_c, c)]
        return t + 1, new_c, arrs

    _, final, arrays = tf.while_loop(
        cond,
        body,
        (tf.constant(0), list(carry), arrays),
        maximum_iterations=static_steps if static_steps is not None else None,
    )
    return list(final), [a.stack() for a in arrays]


def _scan_python(fn, carry, xs):
    import torch

    flat_xs = tree.flatten(xs)
    collected = None
    for t in range(flat_xs[0].shape[0]):
        x_t = tree.pack_sequence_as(xs, [x[t] for x in flat_xs])
        carry, ys = fn(carry, x_t)
        if collected is None:
            collected = [[] for _ in ys]
        for bucket, y in zip(collected, ys):
            bucket.append(y)
    return list(carry), [torch.stack(b, dim=0) for b in collected]
