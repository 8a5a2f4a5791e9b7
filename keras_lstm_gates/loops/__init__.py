"""The time loops under the fused recurrence, one module per backend.

Two entry points, dispatched on ``keras.backend.backend()``:

``lstm_sequence(x, kernel, bias, recurrent_kernel, h0, c0, mask=None, trace=False)``
    The vanilla LSTM (sigmoid gates, tanh candidate and output) over a
    time-major sequence, with a hand-written backward pass: no autodiff
    bookkeeping, no stored pre-activations, a few element-wise ops and the
    gates' matmuls per step.  This is the fast path of
    :func:`~keras_lstm_gates.recurrence.run_sequence`.

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

Layout: ``x`` is time-major ``(time, batch, features)``; the fused weights
have their gate blocks in the order input, forget, output, candidate (the
sigmoid gates first); ``mask`` is ``(time, batch, 1)`` booleans.
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


def lstm_sequence(x, kernel, bias, recurrent_kernel, h0, c0, mask=None, trace=False):
    """Run a vanilla LSTM over a time-major sequence.

    Args:
        x: ``(time, batch, features)``.
        kernel: ``(features, 4 * units)``, gate blocks in the order i, f, o, g.
        bias: ``(4 * units,)`` in the same order.
        recurrent_kernel: ``(units, 4 * units)``, same order.
        h0, c0: ``(batch, units)`` initial states.
        mask: ``None`` or ``(time, batch, 1)`` booleans; a masked step keeps
            ``h`` and ``c`` (its output is the carried ``h``).
        trace: if True also return the carried cell states and the gate
            activations of every step.

    Returns:
        ``(hs, c_last)``: ``hs`` ``(time, batch, units)`` holds the carried
        ``h`` of every step and ``c_last`` the final cell state.  With
        ``trace=True``, ``(hs, c_last, cs, acts)`` where ``cs`` is
        ``(time, batch, units)`` and ``acts`` ``(time, batch, 4 * units)``
        holds ``i, f, o, g`` (zero on masked steps).

    >>> import numpy as np
    >>> T, B, D, H = 5, 2, 3, 4
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(T, B, D)).astype("float32")
    >>> w = rng.normal(size=(D, 4 * H)).astype("float32")
    >>> u = rng.normal(size=(H, 4 * H)).astype("float32")
    >>> b = np.zeros(4 * H, "float32")
    >>> zeros = np.zeros((B, H), "float32")
    >>> x, w, b, u, zeros = (keras.ops.convert_to_tensor(a) for a in (x, w, b, u, zeros))
    >>> hs, c = lstm_sequence(x, w, b, u, zeros, zeros)
    >>> tuple(hs.shape), tuple(c.shape)
    ((5, 2, 4), (2, 4))
    """
    module = _backend_module()
    if module is None:
        raise NotImplementedError(f"lstm_sequence: no kernel for backend {backend.backend()!r}.")
    return module.lstm_sequence(x, kernel, bias, recurrent_kernel, h0, c0, mask, trace)


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
