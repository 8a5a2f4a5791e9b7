"""The time loops under :mod:`keras_lstm_gates.sequence`, one module per backend.

Two entry points, dispatched on ``keras.backend.backend()``:

``fused_sequence(cell, x, kernels, biases, recurrent_kernels, h0, c0, mask, return_gates, return_sequences)``
    A cell with no :meth:`~keras_lstm_gates.LSTMCell.plain_lstm_reason` over
    a time-major sequence, each step :meth:`~keras_lstm_gates.LSTMCell.step`,
    with the hand-written backward pass of
    :meth:`~keras_lstm_gates.LSTMCell.step_derivatives`: no autodiff
    bookkeeping, no stored pre-activations.  It takes the parts' own
    weights, one array per part, and gives their gradients the same way.

``scan(fn, carry, xs, num_ys)``
    A generic loop for every other configuration; it is differentiated by
    the backend's autodiff.

Modules:

* :mod:`.common`: what the loops share (how they hold the weights, one
  backward step, the plain Python loop).
* :mod:`.jax`: ``jax.lax.scan`` under ``jax.custom_vjp``.
* :mod:`.tensorflow`: ``tf.while_loop`` under ``tf.custom_gradient``, inside
  ``tf.function``s, XLA-compiled when called from a graph.
* :mod:`.torch`: a Python loop inside a ``torch.autograd.Function``.

Each backend module is imported only when its backend runs (and imports its
framework only inside its functions).

Layout: ``x`` is time-major ``(time, batch, features)``; the returned ``hs``
batch-major ``(batch, time, units)`` (the layer's output, so that TensorFlow
keeps no time-major copy of it, nor of its gradient, through the training
step); the recorded cell states and part values time-major; the per-part
weights, values and gradients lists in :data:`~keras_lstm_gates.parts.PARTS`
order; ``mask`` ``(time, batch, 1)`` booleans.
"""

from keras import backend, ops

from ..parts import PARTS
from . import common


def _backend_module():
    """The loop module of the running Keras backend, or ``None``."""
    name = backend.backend()
    if name == "jax":
        from . import jax as module
    elif name == "tensorflow":
        from . import tensorflow as module
    elif name == "torch":
        from . import torch as module
    else:
        module = None
    return module


def fused_sequence(
    cell,
    x,
    kernels,
    biases,
    recurrent_kernels,
    h0,
    c0,
    mask=None,
    return_gates=False,
    return_sequences=True,
):
    """Run a plain cell over a time-major sequence.

    Args:
        cell: the :class:`~keras_lstm_gates.LSTMCell` whose step runs.
        x: ``(time, batch, features)``.
        kernels, biases, recurrent_kernels: the parts' ``(features, units)``,
            ``(units,)`` and ``(units, units)`` arrays, in PARTS order.
        h0, c0: ``(batch, units)`` initial states.
        mask: ``None`` or ``(time, batch, 1)`` booleans; a masked step keeps
            ``h`` and ``c``.
        return_gates: also return the carried cell states and the part
            values of every step.
        return_sequences: if False return only the last step's ``h`` in
            place of ``hs``, and keep no more of the sequence for the
            backward pass than it needs.

    Returns:
        ``(hs, c_last)``: ``hs`` ``(batch, time, units)`` holds the carried
        ``h`` of every step (the last ``h``, ``(batch, units)``, without
        ``return_sequences``) and ``c_last`` the final cell state.  With
        ``return_gates``, ``(hs, c_last, cs, values)``: ``cs`` ``(time,
        batch, units)`` and ``values`` the list ``[i, f, c~, o]`` of
        ``(time, batch, units)`` values.  At a masked step those values are
        the ones of a step not taken: the backward pass ignores their
        cotangents, and the caller zeroes them (:mod:`~keras_lstm_gates.sequence`
        decides what a masked step records).

    >>> import numpy as np, keras_lstm_gates as klg
    >>> T, B, D, H = 5, 2, 3, 4
    >>> rng = np.random.default_rng(0)
    >>> def tensors(*shape):
    ...     return [keras.ops.convert_to_tensor(rng.normal(size=shape).astype("float32"))
    ...             for _ in range(4)]
    >>> x = keras.ops.convert_to_tensor(rng.normal(size=(T, B, D)).astype("float32"))
    >>> kernels, recurrent_kernels, biases = tensors(D, H), tensors(H, H), tensors(H)
    >>> zeros = keras.ops.zeros((B, H))
    >>> hs, c = fused_sequence(klg.LSTMCell(H), x, kernels, biases, recurrent_kernels, zeros, zeros)
    >>> tuple(hs.shape), tuple(c.shape)
    ((2, 5, 4), (2, 4))
    """
    module = _backend_module()
    if module is None:
        raise NotImplementedError(f"fused_sequence: no loop for backend {backend.backend()!r}.")
    reason = cell.plain_lstm_reason()
    if reason is not None:
        raise ValueError(f"fused_sequence runs only the plain LSTM cell; this one: {reason}.")
    weights = [list(p) for p in (kernels, biases, recurrent_kernels)]
    if any(len(p) != len(PARTS) for p in weights):
        raise ValueError(
            "fused_sequence: expected one kernel, bias and recurrent kernel for each of the "
            f"{len(PARTS)} parts {PARTS}, received {[len(p) for p in weights]}."
        )
    return module.fused_sequence(cell, x, *weights, h0, c0, mask, return_gates, return_sequences)


def scan(fn, carry, xs, num_ys):
    """Run ``fn(carry, x_t) -> (carry, ys_t)`` over the leading (time) axis.

    ``carry`` and ``ys_t`` are lists of tensors (``ys_t`` has ``num_ys``
    entries); ``xs`` is a tensor or a tuple of tensors.  Returns
    ``(final_carry, ys)`` with every entry of ``ys`` stacked over time.

    >>> from keras import ops
    >>> def add(carry, x):
    ...     total = carry[0] + x
    ...     return [total], [total]
    >>> final, (sums,) = scan(add, [ops.zeros((2,))], ops.ones((3, 2)), num_ys=1)
    >>> ops.convert_to_numpy(sums)[:, 0].tolist()
    [1.0, 2.0, 3.0]
    """
    module = _backend_module()
    if module is None:
        return common.python_scan(fn, carry, xs)
    return module.scan(fn, carry, xs, num_ys)


def batch_major(sequence):
    """A time-major sequence ``(time, batch, ...)`` as ``(batch, time, ...)``.

    >>> from keras import ops
    >>> tuple(batch_major(ops.zeros((5, 2, 3))).shape)
    (2, 5, 3)
    """
    module = _backend_module()
    if module is not None and hasattr(module, "batch_major"):
        return module.batch_major(sequence)
    return ops.swapaxes(sequence, 0, 1)
