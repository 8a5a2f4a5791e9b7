"""The step arithmetic shared by the backend loops.

The step equations are written once against a small namespace ``K`` of
array functions (``sigmoid``, ``tanh``, ``split``, ``concat``, ``where``,
``zeros_like``) so that the JAX and TensorFlow kernels run the same
arithmetic; :func:`python_scan` is the generic loop of the backends that have
no compiled one (PyTorch, and Keras's numpy backend).
"""

from keras import tree


def forward_step(K, units, z, c_prev):
    """``z = x_t W + h_{t-1} U + b`` (i, f, o, g) -> ``h, c, s, g``."""
    zs, zg = K.split(z, (3 * units, units))
    s = K.sigmoid(zs)
    g = K.tanh(zg)
    i, f, o = K.split(s, (units, units, units))
    c = f * c_prev + i * g
    h = o * K.tanh(c)
    return h, c, s, g


def backward_step(K, units, dh, dc, act, c, c_prev):
    """Gradients at one step: from ``dh``, ``dc`` (w.r.t. ``h_t``, ``c_t``) to
    ``dz`` (w.r.t. the pre-activations) and ``dc`` w.r.t. ``c_{t-1}``.

    ``dh_{t-1}`` is ``dz @ U^T``, taken by the caller.
    """
    i, f, o, g = K.split(act, (units, units, units, units))
    tc = K.tanh(c)
    dc = dc + dh * o * (1.0 - tc * tc)
    di = dc * g * i * (1.0 - i)
    df = dc * c_prev * f * (1.0 - f)
    do = dh * tc * o * (1.0 - o)
    dg = dc * i * (1.0 - g * g)
    return K.concat([di, df, do, dg]), dc * f


def backward_through_step(K, units, carry, step, recurrent, trace, masked):
    """One step of the backward loop, shared by the JAX and TensorFlow loops.

    ``carry`` is ``(dh, dc)`` from step ``t + 1``; ``step`` is
    ``(dh_out, act, c, c_prev, extra)`` at ``t``: the output's cotangent,
    the gate activations, the cell states, and ``extra`` (consumed in
    order), which holds, when present, the traced cell state's and gate
    activations' cotangents and the mask.  ``recurrent(dz)`` is
    ``dz @ U^T``.  Returns ``dz``, ``dh_{t-1}`` and ``dc_{t-1}``.
    """
    dh_next, dc_next = carry
    dh_out, act, c, c_prev, extra = step
    dh = dh_next + dh_out
    dc = dc_next + extra.pop(0) if trace else dc_next
    dz, dc_prev = backward_step(K, units, dh, dc, act, c, c_prev)
    if trace:
        dz = dz + extra.pop(0)
    if not masked:
        return dz, recurrent(dz), dc_prev
    m = extra.pop(0)
    dz = K.where(m, dz, K.zeros_like(dz))
    dh_prev = recurrent(dz) + K.where(m, K.zeros_like(dh), dh)
    return dz, dh_prev, K.where(m, dc_prev, dc)


def activation_derivative(K, acts, units):
    """``d act / d z`` for stacked ``acts`` (..., 4 * units): ``s (1 - s)``
    for the sigmoid gates and ``1 - g^2`` for the candidate."""
    s, g = K.split(acts, (3 * units, units))
    return K.concat([s * (1.0 - s), 1.0 - g * g])


def python_scan(fn, carry, xs):
    from keras import ops

    flat_xs = tree.flatten(xs)
    collected = None
    for t in range(flat_xs[0].shape[0]):
        x_t = tree.pack_sequence_as(xs, [x[t] for x in flat_xs])
        carry, ys = fn(carry, x_t)
        if collected is None:
            collected = [[] for _ in ys]
        for bucket, y in zip(collected, ys):
            bucket.append(y)
    return list(carry), [ops.stack(b, axis=0) for b in collected]
