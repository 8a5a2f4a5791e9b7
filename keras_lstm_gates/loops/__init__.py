"""The time loops under the fused recurrence, one module per backend.

Two entry points, dispatched on ``keras.backend.backend()``:

``lstm_sequence(x, kernels, biases, recurrent_kernels, h0, c0, mask=None, trace=False, return_sequences=True)``
    The vanilla LSTM (sigmoid gates, tanh candidate and output) over a
    time-major sequence, with a hand-written backward pass: no autodiff
    bookkeeping, no stored pre-activations, a few element-wise ops and the
    gates' matmuls per step.  It takes the gate sublayers' own weights, one
    array per gate, and gives their gradients the same way.  This is the
    fast path of :func:`~keras_lstm_gates.recurrence.run_sequence`.

``scan(fn, carry, xs, num_ys)``
    A generic loop for every other configuration (variants, peepholes, other
    activations, recurrent dropout); it is differentiated by the backend's
    autodiff.

Modules:

* :mod:`.common`: the step arithmetic shared by the loops, and the plain
  Python loop.
* :mod:`.jax`: ``jax.lax.scan`` under ``jax.custom_vjp``.
* :mod:`.tensorflow`: ``tf.while_loop`` under ``tf.custom_gradient``, inside
  ``tf.function``s, XLA-compiled when called from a graph.
* :mod:`.torch`: a Python loop inside a ``torch.autograd.Function``.

Each backend module is imported only when its backend runs (and imports its
framework only inside its functions).

Layout: ``x`` is time-major ``(time, batch, features)``, the returned
``hs`` batch-major ``(batch, time, units)`` (the layer's output, so that
TensorFlow keeps no time-major copy of it, nor of its gradient, through the
training step), the traced cell states and activations time-major; the per-gate
weights, activations and gradients are lists in the order input, forget,
output, candidate (the sigmoid gates first); ``mask`` is ``(time, batch, 1)``
booleans.
"""

from keras import backend

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


def lstm_sequence(
    x, kernels, biases, recurrent_kernels, h0, c0, mask=None, trace=False, return_sequences=True
):
    """Run a vanilla LSTM over a time-major sequence.

    Args:
        x: ``(time, batch, features)``.
        kernels: the gates' ``(features, units)`` kernels, in the order
            i, f, o, g.
        biases: their ``(units,)`` biases, same order.
        recurrent_kernels: their ``(units, units)`` recurrent kernels, same
            order.
        h0, c0: ``(batch, units)`` initial states.
        mask: ``None`` or ``(time, batch, 1)`` booleans; a masked step keeps
            ``h`` and ``c`` (its output is the carried ``h``).
        trace: if True also return the carried cell states and the gate
            activations of every step.
        return_sequences: if False return only the last step's ``h`` in
            place of ``hs``, and keep no more of the sequence for the
            backward pass than it needs.

    Returns:
        ``(hs, c_last)``: ``hs`` ``(batch, time, units)`` (batch major, the
        layer's output layout) holds the carried ``h`` of every step and
        ``c_last`` the final cell state (``hs`` is the last ``h``,
        ``(batch, units)``, when not ``return_sequences``).  With
        ``trace=True``, ``(hs, c_last, cs, acts)`` where ``cs`` is
        ``(time, batch, units)`` and ``acts`` the list ``[i, f, o, g]`` of
        ``(time, batch, units)`` activations (zero on masked steps).

    >>> import numpy as np
    >>> T, B, D, H = 5, 2, 3, 4
    >>> rng = np.random.default_rng(0)
    >>> def tensors(*shape):
    ...     return [keras.ops.convert_to_tensor(rng.normal(size=shape).astype("float32"))
    ...             for _ in range(4)]
    >>> x = keras.ops.convert_to_tensor(rng.normal(size=(T, B, D)).astype("float32"))
    >>> kernels, recurrent_kernels, biases = tensors(D, H), tensors(H, H), tensors(H)
    >>> zeros = keras.ops.zeros((B, H))
    >>> hs, c = lstm_sequence(x, kernels, biases, recurrent_kernels, zeros, zeros)
    >>> tuple(hs.shape), tuple(c.shape)
    ((2, 5, 4), (2, 4))
    """
    module = _backend_module()
    if module is None:
        raise NotImplementedError(f"lstm_sequence: no kernel for backend {backend.backend()!r}.")
    parts = [list(p) for p in (kernels, biases, recurrent_kernels)]
    if any(len(p) != common.PARTS for p in parts):
        raise ValueError(
            "lstm_sequence: expected one kernel, bias and recurrent kernel for each of the "
            f"{common.PARTS} parts (i, f, o, g), received {[len(p) for p in parts]}."
        )
    return module.lstm_sequence(x, *parts, h0, c0, mask, trace, return_sequences)


def scan(fn, carry, xs, num_ys):
    """Run ``fn(carry, x_t) -> (carry, ys_t)`` over the leading (time) axis.

    ``carry`` and ``ys_t`` are lists of tensors (``ys_t`` has ``num_ys``
    entries); ``xs`` is a tensor or a tuple of tensors.  Returns
    ``(final_carry, ys)`` with every entry of ``ys`` stacked over time.

    >>> import numpy as np
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
