"""What the loops of every backend share: how a loop holds the parts'
weights, one forward step and one backward step of the fused loops, and the
plain Python loop.

The fused loops run :meth:`keras_lstm_gates.LSTMCell.step` forward and its
hand-written derivative (:meth:`~keras_lstm_gates.LSTMCell.step_derivatives`,
:meth:`~keras_lstm_gates.LSTMCell.step_backward`) backward; what is written
here is only how a loop feeds them: the matmuls, the mask and the cotangents
of the recorded gate values.

The parts travel as lists in :data:`~keras_lstm_gates.parts.PARTS` order
(``[i, f, c, o]``): their weights (the gate sublayers' own variables), their
pre-activations, values and gradients.  A loop multiplies by the weights
either in one block, joined along the part axis for one matmul per step, or
in four blocks, one matmul per part (see :func:`block_count`).
"""

from keras import ops, tree

from .. import parts
from ..parts import PARTS

# From this many units on, a loop whose shapes are unknown when it is traced
# (TensorFlow graphs, whose batch is usually None) multiplies by each part's
# weights apart instead of joining them.  Joining copies the weights, and
# the gradients come out joined and are copied again into the parts': two
# (units, 4 * units) buffers that keras.layers.LSTM, whose variables are
# joined already, never makes, and that outweigh the whole scratch of a
# short sequence from this size on.  Below it, one matmul instead of four
# saves more time than the copies cost.
SEPARATE_BLOCKS_MIN_UNITS = 256


def block_count(units, steps=None, batch=None, features=None, training=True):
    """How many weight blocks a loop multiplies by: 1 (joined) or 4.

    With the shapes known when the loop is traced, as in JAX, the choice
    weighs the joined copies, whose size goes with the weights' rows
    (``features + units``), against what multiplying part by part costs:
    four smaller matmuls per step and, in the backward loop, the gradient of
    every pre-activation kept until the weight gradients are taken after the
    loop, whose size goes with the sequence's rows (``steps * batch``).  A
    forward pass joins from an eighth as many rows as weight rows on; a
    training step from twice as many and, from
    :data:`SEPARATE_BLOCKS_MIN_UNITS` units on, from a batch of 2 (a joined
    backward loop adds into the whole weight gradient at every step, which
    for a single sequence of a large layer costs more than the step itself).
    The Performance page has the measurements.

    With the shapes unknown (a TensorFlow graph's batch, the symbolic
    dimensions of ``jax.export``) the rule goes by ``units`` alone.
    """
    if not all(isinstance(d, int) for d in (steps, batch, features)):
        return len(PARTS) if units >= SEPARATE_BLOCKS_MIN_UNITS else 1
    rows, width = steps * batch, features + units
    if training:
        single = batch == 1 and units >= SEPARATE_BLOCKS_MIN_UNITS
        joined = rows >= 2 * width and not single
    else:
        joined = 8 * rows >= width
    return 1 if joined else len(PARTS)


def weight_blocks(arrays, blocks):
    """The parts' arrays as ``blocks`` arrays: joined when ``blocks`` is 1."""
    return [parts.join(list(arrays))] if blocks == 1 else list(arrays)


def per_part(blocks, units):
    """The inverse of :func:`weight_blocks`: one array per part, in
    :data:`~keras_lstm_gates.parts.PARTS` order (slices of a joined block)."""
    if len(blocks) == 1:
        return list(parts.split(blocks[0], units).values())
    return list(blocks)


def forward_step(cell, z_blocks, c_prev, units):
    """``cell.step`` from the blocks of the pre-activations:
    ``(h, c, [i, f, c~, o])``."""
    z = dict(zip(PARTS, per_part(z_blocks, units)))
    h, c, values = cell.step(z, c_prev)
    return h, c, [values[n] for n in PARTS]


def value_derivatives(cell, values):
    """``d value / dz`` of each part at its recorded ``values`` (a list in
    PARTS order): what the cotangent of a recorded gate value becomes."""
    return [cell.gates[n].derivative(v) for n, v in zip(PARTS, values)]


def backward_step(cell, carry, step, recurrent, return_gates, masked, where=ops.where):
    """One step of a fused backward loop, the same on every backend.

    ``carry`` is ``(dh, dc)`` from step ``t + 1``; ``step`` is
    ``(dh_out, factors, extra)`` at ``t``: the cotangent of the layer's
    output ``h_t``, the step's :meth:`~keras_lstm_gates.LSTMCell.step_derivatives`,
    and ``extra`` (consumed in order), which holds, when present, the
    cotangent of the recorded cell state, those of the recorded part values
    times their derivatives (a list), and the mask.  ``recurrent(dz)`` is
    ``sum dz W_h^T`` over the parts.  A masked step passes ``dh`` and ``dc``
    through and has no ``dz``; ``where`` is the backend's own ``where`` (in a
    Python loop Keras's dispatch costs more than the op).  Returns ``dz`` (a
    list), ``dh_(t-1)`` and ``dc_(t-1)``.
    """
    dh_next, dc_next = carry
    dh_out, factors, extra = step
    dh = dh_next + dh_out
    dc = dc_next + extra.pop(0) if return_gates else dc_next
    dz, dc_prev = cell.step_backward(dh, dc, factors)
    dz = [dz[n] for n in PARTS]
    if return_gates:
        dz = [d + recorded for d, recorded in zip(dz, extra.pop(0))]
    if not masked:
        return dz, recurrent(dz), dc_prev
    m = extra.pop(0)
    dz = [where(m, d, 0.0) for d in dz]
    dh_prev = recurrent(dz) + where(m, 0.0, dh)
    return dz, dh_prev, where(m, dc_prev, dc)


def python_scan(fn, carry, xs):
    """``fn(carry, x_t) -> (carry, ys_t)`` over the leading axis of ``xs``,
    in Python; ``ys`` stacked over time."""
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
