"""The step arithmetic shared by the loops, and how a loop holds its weights.

The step equations are written once against a small namespace ``K`` of
array functions (``sigmoid``, ``tanh``, ``split``, ``concat``, ``where``,
``zeros_like``) so that the JAX, TensorFlow and PyTorch loops run the same
arithmetic; :func:`python_scan` is the generic loop of the backends that have
no compiled one (PyTorch, and Keras's numpy backend).

The four parts travel as lists in the order input, forget, output, candidate
(``[i, f, o, g]``): their weights (the gate sublayers' own variables), their
pre-activations, activations and gradients.  A loop multiplies by the
weights either in one block, joined along the gate axis for one matmul per
step, or in four blocks, one matmul per gate (see :func:`weight_blocks`).
"""

from keras import tree

PARTS = 4

# From this many units on, a loop whose shapes are unknown when it is traced
# (TensorFlow graphs, whose batch is usually None) multiplies by each gate's
# weights apart instead of joining them.  Joining copies the weights, and the
# gradients come out joined and are copied again into the gates': two
# (units, 4 * units) buffers that keras.layers.LSTM, whose variables are
# joined already, never makes.  At 256 units they are 1 MiB each, more than
# the whole scratch keras.layers.LSTM needs for a short sequence; below it,
# one matmul instead of four saves more time than the copies cost.
SEPARATE_BLOCKS_MIN_UNITS = 256


def block_count(units, steps=None, batch=None, features=None, training=True):
    """How many weight blocks a loop multiplies by: 1 (joined) or 4.

    With the shapes known when the loop is traced, as in JAX, the choice
    weighs the joined copies, whose size goes with
    the weights' rows (``features + units``), against what multiplying gate
    by gate costs: four smaller matmuls per step and, in the JAX backward,
    the gradient of every pre-activation, kept until the weight gradients
    are taken after the loop, whose size goes with the sequence's rows
    (``steps * batch``).  A forward pass joins from an eighth as many rows
    as weight rows on.  A training step
    joins from twice as many, and, from :data:`SEPARATE_BLOCKS_MIN_UNITS`
    units on, from a batch of 2: a joined backward loop adds into the whole
    weight gradient at every step, which for a single sequence of a large
    layer costs more than the step's own work (0.92 against 0.72 of Keras's
    time at B = 1, T = 1000, H = 256; at B = 2, 0.57 against 0.63 in favour
    of joining; at H = 64 the two are even).  Measured on JAX, CPU, B = 1 to
    64, H = 8 to 1024.

    With the shapes unknown (a TensorFlow graph's batch, the symbolic
    dimensions of ``jax.export``) the rule goes by ``units`` alone
    (:data:`SEPARATE_BLOCKS_MIN_UNITS`).
    """
    if not all(isinstance(d, int) for d in (steps, batch, features)):
        return PARTS if units >= SEPARATE_BLOCKS_MIN_UNITS else 1
    rows, width = steps * batch, features + units
    if training:
        single = batch == 1 and units >= SEPARATE_BLOCKS_MIN_UNITS
        joined = rows >= 2 * width and not single
    else:
        joined = 8 * rows >= width
    return 1 if joined else PARTS


def weight_blocks(K, parts, blocks):
    """``parts`` (one array per gate) as ``blocks`` arrays: joined along the
    last axis when ``blocks`` is 1, as they are otherwise."""
    return [K.concat(list(parts))] if blocks == 1 else list(parts)


def parts_of(K, blocks, units):
    """The per-gate arrays of ``blocks`` (the inverse of :func:`weight_blocks`);
    slices of a joined block."""
    if len(blocks) == 1:
        return list(K.split(blocks[0], (units,) * PARTS))
    return list(blocks)


def forward_step(K, zs, c_prev):
    """Pre-activations ``[z_i, z_f, z_o, z_g]`` -> ``h, c, [i, f, o, g]``."""
    i, f, o = (K.sigmoid(z) for z in zs[:3])
    g = K.tanh(zs[3])
    c = f * c_prev + i * g
    h = o * K.tanh(c)
    return h, c, [i, f, o, g]


def backward_step(K, dh, dc, acts, c, c_prev):
    """Gradients at one step: from ``dh``, ``dc`` (w.r.t. ``h_t``, ``c_t``) to
    ``[dz_i, dz_f, dz_o, dz_g]`` (w.r.t. the pre-activations) and ``dc``
    w.r.t. ``c_{t-1}``.

    ``dh_{t-1}`` is ``sum dz U^T`` over the gates, taken by the caller.
    """
    i, f, o, g = acts
    tc = K.tanh(c)
    dc = dc + dh * o * (1.0 - tc * tc)
    di = dc * g * i * (1.0 - i)
    df = dc * c_prev * f * (1.0 - f)
    do = dh * tc * o * (1.0 - o)
    dg = dc * i * (1.0 - g * g)
    return [di, df, do, dg], dc * f


def backward_through_step(K, carry, step, recurrent, trace, masked):
    """One step of the backward loop, shared by the JAX and TensorFlow loops.

    ``carry`` is ``(dh, dc)`` from step ``t + 1``; ``step`` is
    ``(dh_out, acts, c, c_prev, extra)`` at ``t``: the output's cotangent,
    the gate activations (a list), the cell states, and ``extra`` (consumed
    in order), which holds, when present, the traced cell state's cotangent,
    the traced activations' cotangents times their derivatives (a list) and
    the mask.  ``recurrent(dzs)`` is ``dh_{t-1}`` from the unmasked
    recursion, ``sum dz U^T``.  Returns ``dzs`` (a list), ``dh_{t-1}`` and
    ``dc_{t-1}``.
    """
    dh_next, dc_next = carry
    dh_out, acts, c, c_prev, extra = step
    dh = dh_next + dh_out
    dc = dc_next + extra.pop(0) if trace else dc_next
    dzs, dc_prev = backward_step(K, dh, dc, acts, c, c_prev)
    if trace:
        dzs = [dz + d for dz, d in zip(dzs, extra.pop(0))]
    if not masked:
        return dzs, recurrent(dzs), dc_prev
    m = extra.pop(0)
    dzs = [K.where(m, dz, K.zeros_like(dz)) for dz in dzs]
    dh_prev = recurrent(dzs) + K.where(m, K.zeros_like(dh), dh)
    return dzs, dh_prev, K.where(m, dc_prev, dc)


def activation_derivatives(acts):
    """``d act / d z`` of each part: ``s (1 - s)`` for the sigmoid gates and
    ``1 - g^2`` for the candidate."""
    *sigmoids, g = acts
    return [s * (1.0 - s) for s in sigmoids] + [1.0 - g * g]


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
