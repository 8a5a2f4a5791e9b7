"""One call of :class:`keras_lstm_gates.LSTM` over a sequence.

Data flows one way: the layer checks its arguments and calls :func:`run`;
:func:`run` picks the kernel (:func:`kernel_for`), prepares the sequence
(dropout, time-major layout, ``go_backwards``, the mask in its one form),
runs the loop of :mod:`keras_lstm_gates.loops` and decides, in one place,
what the layer outputs at masked steps (:func:`_masked_outputs`) and what
``return_gates`` records there.

Four kernels:

* ``"cudnn"``: the cuDNN kernel behind ``keras.layers.LSTM``, on a GPU;
* ``"onednn"``: on the PyTorch backend, PyTorch's own LSTM kernel (the one
  ``torch.nn.LSTM`` calls: oneDNN on a CPU), with the parts' weights joined
  at call time; a right-padded mask packs the sequence;
* ``"fused"``: the loops with a hand-written backward pass
  (:meth:`~keras_lstm_gates.LSTMCell.step_derivatives`), for the cells with
  no :meth:`~keras_lstm_gates.LSTMCell.plain_lstm_reason`;
* ``"stepwise"``: every other configuration (variants, peepholes, other
  activations, recurrent dropout, ``unroll``): the backend's autodiff
  differentiates :meth:`~keras_lstm_gates.LSTMCell.step` in a loop.

The last two compute each step with the cell's one step; the first two
are the same equations in C++ kernels, for the cells whose step they are
(no :meth:`~keras_lstm_gates.LSTMCell.plain_lstm_reason`).

A graph being converted may take, in place of those, what the converter
writes as one fused LSTM op (:func:`_export_kernel`): ``"tflite"``,
``"onnx_lstm"`` or ``"plain_lstm"``, for the cells that
:mod:`keras_lstm_gates.fused_op` maps onto those ops.
"""

from keras import backend, ops

from . import compat, fused_op, loops, tflite
from .parts import PARTS, TRACED

KERNELS = ("cudnn", "onednn", "fused", "stepwise")
_LOOP_BACKENDS = ("jax", "tensorflow", "torch")


def gpu_available():
    """Whether the current Keras backend sees a GPU (the cuDNN kernels' home)."""
    name = backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if name == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if name == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def sequence_mask(mask, sequences_shape):
    """The (batch, time) form of a ``mask`` given as (batch, time) or
    (batch, time, 1), as ``keras.layers.RNN`` accepts (the first of a list
    of masks); ``None`` stays ``None``.

    >>> import numpy as np
    >>> tuple(sequence_mask(np.ones((2, 5, 1), bool), (2, 5, 3)).shape)
    (2, 5)
    >>> sequence_mask(np.ones((2, 5, 4), bool), (2, 5, 3))
    Traceback (most recent call last):
    ...
    ValueError: Expected a mask of shape (batch, time) = (2, 5) or (batch, time, 1), received a mask of shape (2, 5, 4).
    """
    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    if mask is None:
        return None
    shape = tuple(mask.shape)
    expected = tuple(sequences_shape[:2])
    if len(shape) == 3 and shape[-1] == 1:
        mask = mask[:, :, 0]
        shape = shape[:2]
    ok = len(shape) == 2 and all(a is None or b is None or a == b for a, b in zip(shape, expected))
    if not ok:
        raise ValueError(
            f"Expected a mask of shape (batch, time) = {expected} or (batch, time, 1), "
            f"received a mask of shape {tuple(mask.shape)}."
        )
    return mask


# -- which kernel -------------------------------------------------------------------


def cudnn_unsupported_reason(layer):
    """Why ``layer``'s configuration cannot run on the cuDNN kernel, or
    ``None`` (whether a GPU is present and the mask right-padded is decided
    at call time)."""
    cell = layer.cell
    reason = cell.plain_lstm_reason()
    if reason is not None:
        return reason
    if cell.recurrent_dropout:
        return "recurrent_dropout must be 0"
    if cell.implementation == 1 and cell.dropout:
        return "implementation=1 with dropout draws one input mask per gate"
    if not cell.use_bias:
        return "use_bias must be True"
    if layer.unroll:
        return "unroll must be False"
    if layer.return_gates:
        return "return_gates needs the per-step gate values"
    return None


def fused_unsupported_reason(layer, training=False):
    """Why a call of ``layer`` cannot run the fused loops, or ``None``."""
    cell = layer.cell
    reason = cell.plain_lstm_reason()
    if reason is not None:
        return reason
    if backend.backend() not in _LOOP_BACKENDS:
        return f"the {backend.backend()} backend has no fused loop"
    if layer.unroll:
        return "unroll=True runs the steps one by one"
    if training and 0.0 < cell.recurrent_dropout < 1.0:
        return "recurrent dropout multiplies h_(t-1) by a mask inside the loop"
    if training and 0.0 < cell.dropout < 1.0 and cell.implementation == 1:
        return "implementation=1 with dropout gives each part its own input mask"
    return None


def onednn_unsupported_reason(layer, training=False, return_gates=None):
    """Why a call of ``layer`` cannot run PyTorch's own LSTM kernel, or
    ``None``.  (A mask that is not right-padded, or a tensor that kernel does
    not run fast, is found at run time, and the call runs the fused loop.)"""
    if backend.backend() != "torch":
        return "PyTorch's LSTM kernel runs on the torch backend only"
    reason = fused_unsupported_reason(layer, training)
    if reason is not None:
        return reason
    if layer.return_gates if return_gates is None else return_gates:
        return "return_gates needs the per-step gate values"
    if not gpu_available() and not compat.torch_onednn_available():
        return "this PyTorch has no oneDNN"
    return None


def kernel_for(layer, training=False, return_gates=None):
    """The kernel a call of ``layer`` takes (the cuDNN and PyTorch kernels can
    still refuse at run time, a mask that is not right-padded, and then the
    call falls back to the fused loop)."""
    if (
        layer.use_cudnn in ("auto", True)
        and cudnn_unsupported_reason(layer) is None
        and gpu_available()
    ):
        return "cudnn"
    if onednn_unsupported_reason(layer, training, return_gates) is None:
        return "onednn"
    return "fused" if fused_unsupported_reason(layer, training) is None else "stepwise"


# -- one call -------------------------------------------------------------------


def run(layer, sequences, initial_state, mask, training, return_gates):
    """Run ``layer`` over ``sequences`` (batch, time, features).

    Returns ``(last_output, outputs, states, gate_values)``: ``outputs`` is
    (batch, time, units) with ``return_sequences``, else ``last_output`` with
    a time axis of 1; ``states`` is ``[h, c]`` (plus the gate carry for FGR);
    ``gate_values`` is ``None`` or, with ``return_gates``, ``{name: (batch,
    time, units)}`` for the four parts and ``cell_state``, in processing
    order, zero at masked steps.
    """
    cell = layer.cell
    mask = sequence_mask(mask, sequences.shape)
    kernel = kernel_for(layer, training, return_gates)
    if kernel == "cudnn":
        try:
            return _run_cudnn(layer, sequences, initial_state, mask, training)
        except NotImplementedError:
            kernel = "fused" if fused_unsupported_reason(layer, training) is None else "stepwise"
    if layer.use_cudnn is True:
        raise ValueError(
            "use_cudnn=True was specified, but the cuDNN kernel cannot run here: "
            + (cudnn_unsupported_reason(layer) or "no GPU, or a mask that is not right-padded")
            + ". Pass use_cudnn='auto' to fall back to the fused kernel."
        )
    input_masks = recurrent_masks = None
    if training and 0.0 < cell.dropout < 1.0:
        input_masks = cell.get_dropout_mask(sequences[:, 0, :])
    if training and 0.0 < cell.recurrent_dropout < 1.0:
        recurrent_masks = cell.get_recurrent_dropout_mask(initial_state[0])
    dtype = ops.convert_to_tensor(cell.candidate.kernel).dtype
    x = ops.cast(sequences, dtype)
    if input_masks is not None and not isinstance(input_masks, list):
        x = x * ops.expand_dims(ops.cast(input_masks, dtype), 1)
        input_masks = None
    if backend.backend() == "tensorflow" and (
        layer.return_sequences or return_gates or kernel != "fused"
    ):
        # Only a loop that collects every step reserves tensor lists, which
        # TFLite's builtin ops need a known batch for.
        from .loops import tensorflow as tf_loops

        tf_loops.check_tflite_batch(sequences.shape[0])
    if layer.go_backwards:
        # Reversed batch major, before the transposes: TFLite's converter
        # rewrites a reversal of a transposed tensor that has other users
        # (the mask of a Bidirectional's two layers) into ops that use the
        # transpose before defining it ("operand does not dominate this use").
        x = ops.flip(x, axis=1)
        mask = None if mask is None else ops.flip(mask, axis=1)
    x = ops.transpose(x, (1, 0, 2))  # time major
    if mask is not None:
        mask = ops.expand_dims(ops.transpose(ops.cast(mask, "bool"), (1, 0)), -1)
    states = [ops.cast(s, dtype) for s in initial_state]
    kernel = _export_kernel(layer, kernel, mask, return_gates, dtype, x.shape[1])
    if kernel == "tflite":
        hs, states, cs, values = _run_tflite(layer, x, states)
    elif kernel == "onnx_lstm":
        hs, states, cs, values = _run_onnx_lstm(layer, x, states)
    elif kernel == "plain_lstm":
        hs, states, cs, values = _run_as_plain_lstm(layer, x, states)
    if kernel == "onednn":
        hs = _run_native(layer, x, states, mask, training)
        if hs is not None:
            hs, states, cs, values = hs
        else:
            kernel = "fused"
    if kernel == "fused":
        hs, states, cs, values = _run_fused(layer, x, states, mask, return_gates)
    elif kernel == "stepwise":
        hs, states, cs, values = _run_stepwise(
            layer, x, states, mask, return_gates, input_masks, recurrent_masks
        )
    last_output, outputs = _masked_outputs(layer, hs, states[0], mask)
    gate_values = None
    if return_gates:
        recorded = dict(zip(PARTS, values))
        recorded["cell_state"] = cs
        gate_values = {}
        for name in TRACED:
            value = recorded[name]
            if mask is not None:
                value = ops.where(mask, value, ops.zeros_like(value))
            gate_values[name] = loops.batch_major(value)
    return last_output, outputs, states, gate_values


def _run_fused(layer, x, states, mask, return_gates, cell=None, weights=None):
    """The fused loops: ``(hs, states, cs, values)``, ``hs`` batch major
    (the last ``h`` alone without ``return_sequences``).  ``cell`` and
    ``weights`` (per-part ``(kernels, recurrent_kernels, biases)``) are the
    layer's own unless given."""
    cell = layer.cell if cell is None else cell
    ws, us, bs = _plain_part_weights(layer.cell, x.dtype) if weights is None else weights
    out = loops.fused_sequence(
        cell, x, ws, bs, us, states[0], states[1], mask, return_gates, layer.return_sequences
    )
    hs, c_last = out[0], out[1]
    h_last = hs[:, -1] if layer.return_sequences else hs
    cs, values = (out[2], out[3]) if return_gates else (None, None)
    return hs, [h_last, c_last], cs, values


def _plain_part_weights(cell, dtype):
    """:meth:`~keras_lstm_gates.LSTMCell.part_weights` of a plain cell, with
    zero biases for a cell without ``use_bias``."""
    ws, us, bs = cell.part_weights(PARTS)
    if bs is None:
        bs = [ops.zeros((cell.units,), dtype) for _ in PARTS]
    return ws, us, bs


def _export_kernel(layer, kernel, mask, return_gates, dtype, batch):
    """The kernel of a call in a graph being converted, in place of
    ``kernel``: ``"tflite"`` (TFLite's fused op, when
    :func:`keras_lstm_gates.to_tflite` converts), ``"onnx_lstm"`` (ONNX's
    LSTM node from PyTorch's exporter), ``"plain_lstm"`` (a CIFG layer as
    the plain LSTM's loop, which tf2onnx makes ONNX's LSTM of), else
    ``kernel``."""
    if _converting_to_tflite():
        reason = tflite.unfused_reason(layer, kernel, mask, return_gates, dtype, batch)
        converted = tflite.fusing()
        if reason is None and converted is not None:
            converted.append(layer)
            return "tflite"
        tflite.warn_unfused(layer, reason)
    if kernel == "stepwise" and _onnx_lstm_reason(layer, mask, return_gates, dtype) is None:
        return "onnx_lstm"
    if kernel == "stepwise" and _tf2onnx_coupled(layer, mask, return_gates):
        return "plain_lstm"
    return kernel


def _run_tflite(layer, x, states):
    """TFLite's fused op (:func:`~keras_lstm_gates.loops.tensorflow.tflite_lstm`):
    ``(hs, states, None, None)`` as :func:`_run_fused`."""
    from .loops import tensorflow as tf_loops

    hs, h_last = tf_loops.tflite_lstm(layer.cell, x, *fused_op.op_weights(layer.cell), *states)
    # The fused op gives no final cell state, which this call does not use.
    hs = ops.transpose(hs, (1, 0, 2)) if layer.return_sequences else h_last
    return hs, [h_last, ops.zeros_like(h_last)], None, None


def _converting_to_tflite():
    if backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.executing_eagerly() and compat.tflite_converter() is not None


def _onnx_lstm_reason(layer, mask, return_gates, dtype):
    """Why this call, on the PyTorch backend, is not exported as ONNX's LSTM
    node by :func:`_run_onnx_lstm`, or ``None``.  (The plain LSTM reaches
    that node through PyTorch's own kernel, :func:`_run_native`.)"""
    if backend.backend() != "torch" or not compat.torch_onnx_exporting():
        return "not an ONNX export on the PyTorch backend"
    return fused_op.call_reason(layer, mask, return_gates, dtype)


def _run_onnx_lstm(layer, x, states):
    """The cells that ONNX's LSTM computes (CIFG and peepholes included) as
    that node, in a graph that PyTorch exports: ``(hs, states, None, None)``
    as :func:`_run_fused`."""
    from .loops import torch as torch_loops

    cell = layer.cell

    def compute(x, h0, c0):
        # What the node computes, run: the cell's step over the sequence.
        final, ys = _stepwise_loop(cell, x, [h0, c0], unroll=True)
        return ys[0], final[0], final[1]

    hs, h_last, c_last = torch_loops.onnx_lstm_sequence(
        cell, x, fused_op.op_parts(cell), fused_op.op_peepholes(cell), *states, compute
    )
    hs = ops.transpose(hs, (1, 0, 2)) if layer.return_sequences else h_last
    return hs, [h_last, c_last], None, None


def _tf2onnx_coupled(layer, mask, return_gates):
    """Whether this call is a CIFG layer in a graph traced for tf2onnx,
    which makes ONNX's LSTM only of the plain LSTM's step
    (:func:`_run_as_plain_lstm`)."""
    cell = layer.cell
    return (
        backend.backend() == "tensorflow"
        and cell.spec.coupled
        and not cell.spec.peepholes
        and fused_op.call_reason(layer, mask, return_gates, "float32") is None
        and compat.tf2onnx_converting()
    )


_PLAIN_CELLS = {}


def _run_as_plain_lstm(layer, x, states):
    """On TensorFlow, the plain LSTM's loop with :func:`~keras_lstm_gates.fused_op.op_parts`
    of ``layer``'s cell, whose equations they are (CIFG's forget gate
    ``1 - i`` as ``sigmoid(-z_i)``): ``(hs, states, None, None)`` as
    :func:`_run_fused`.  The plain cell's step reads no weight of its own."""
    import tensorflow as tf

    from .cell import LSTMCell

    units = layer.cell.units
    if units not in _PLAIN_CELLS:
        with tf.init_scope():  # made eagerly: a cell checks its activations
            _PLAIN_CELLS[units] = LSTMCell(units)
    weights = list(zip(*fused_op.op_parts(layer.cell).values()))
    return _run_fused(layer, x, states, None, False, _PLAIN_CELLS[units], weights)


def _run_native(layer, x, states, mask, training):
    """PyTorch's own kernel (:func:`keras_lstm_gates.loops.torch.native_sequence`):
    ``(hs, states, None, None)`` as :func:`_run_fused`, or ``None`` where it
    does not run this call (a mask that is not right-padded, a tensor its
    fast kernels do not take, a graph being exported with a mask)."""
    from .loops import torch as torch_loops

    lengths = None
    if not torch_loops.native_available(x):
        return None
    if mask is not None:
        if compat.torch_exporting():
            return None
        lengths = torch_loops.right_padded_lengths(mask)
        if lengths is None:
            return None
    ws, us, bs = _plain_part_weights(layer.cell, x.dtype)
    hs, c_last = torch_loops.native_sequence(
        x, ws, bs, us, states[0], states[1], lengths, training, layer.return_sequences
    )
    h_last = hs[:, -1] if layer.return_sequences else hs
    return hs, [h_last, c_last], None, None


def _run_stepwise(layer, x, states, mask, return_gates, input_masks, recurrent_masks):
    """The loop of :meth:`~keras_lstm_gates.LSTMCell.step` with the
    backend's autodiff: ``(hs, states, cs, values)`` as :func:`_run_fused`."""
    if layer.unroll and x.shape[0] is None:
        raise ValueError("unroll=True needs a known number of timesteps.")
    final, ys = _stepwise_loop(
        layer.cell,
        x,
        states,
        mask,
        return_gates,
        input_masks,
        recurrent_masks,
        unroll=layer.unroll,
    )
    hs = loops.batch_major(ys[0]) if layer.return_sequences else final[0]
    cs, values = (ys[-1], ys[1:-1]) if return_gates else (None, None)
    return hs, list(final), cs, values


def _stepwise_loop(
    cell,
    x,
    states,
    mask=None,
    return_gates=False,
    input_masks=None,
    recurrent_masks=None,
    unroll=False,
):
    """``cell``'s step over the time-major ``x``: ``(final_states, ys)``,
    ``ys`` time major (every ``h``, then with ``return_gates`` the parts'
    values and ``c``).  ``unroll`` runs it as a Python loop."""
    kernel, recurrent_kernel, bias = cell.joined_weights()
    # The input projection of every step in one matmul (one per part with
    # per-part dropout masks).
    xz = cell.project(x, kernel, input_masks)
    if bias is not None:
        xz = xz + bias
    carried = bool(cell.spec.carried_gate_units)

    def one_step(carry, inputs):
        xz_t, m_t = inputs if mask is not None else (inputs, None)
        z = xz_t + cell.project(carry[0], recurrent_kernel, recurrent_masks, recurrent=True)
        h, c, values = cell.step(z, carry[1], carry[2] if carried else None)
        new = [h, c] + ([cell.carried_gates(values)] if carried else [])
        if m_t is not None:
            new = [ops.where(m_t, n, o) for n, o in zip(new, carry)]
        ys = [new[0]]
        if return_gates:
            ys += [values[n] for n in PARTS] + [new[1]]
        return new, ys

    xs = (xz, mask) if mask is not None else xz
    if unroll:
        return loops.common.python_scan(one_step, states, xs)
    return loops.scan(one_step, states, xs, 1 + (len(PARTS) + 1) * return_gates)


def keras_starts_output_at_zero(unroll):
    """Whether ``keras.layers.LSTM`` outputs zeros, rather than the carried
    ``h``, at masked steps before a row's first unmasked step.

    Keras's ``backend.rnn`` repeats the previous *output* at a masked step.
    Its TensorFlow and PyTorch loops, and every unrolled loop, start that
    previous output at zeros; its JAX (and numpy) ``lax.scan`` path repeats
    ``states[0]``, the carried ``h``, which is the initial state until a
    step is taken.  The two differ only with a non-zero initial state.
    """
    return bool(unroll) or backend.backend() not in ("jax", "numpy")


def _masked_outputs(layer, hs, h_last, mask):
    """``(last_output, outputs)`` from the carried ``h``: at a masked step
    the layer outputs the carried ``h`` (Keras repeats its previous output),
    or zeros with ``zero_output_for_mask`` and, where Keras does so, before a
    row's first unmasked step (:func:`keras_starts_output_at_zero`)."""
    keep = None
    if mask is not None and layer.zero_output_for_mask:
        keep = mask
    elif mask is not None and keras_starts_output_at_zero(layer.unroll):
        keep = ops.greater(ops.cumsum(ops.cast(mask, "int32"), axis=0), 0)
    if layer.return_sequences:
        outputs = hs
        if keep is not None:
            outputs = ops.where(ops.transpose(keep, (1, 0, 2)), hs, ops.zeros_like(hs))
        return outputs[:, -1], outputs
    last_output = h_last
    if keep is not None:
        last_output = ops.where(keep[-1], h_last, ops.zeros_like(h_last))
    return last_output, ops.expand_dims(last_output, 1)


def _run_cudnn(layer, sequences, initial_state, mask, training):
    cell = layer.cell
    if training and cell.dropout:
        dp_mask = cell.get_dropout_mask(sequences[:, 0, :])
        sequences = sequences * ops.expand_dims(dp_mask, 1)
    kernel, recurrent_kernel, bias = cell.joined_weights()
    last, outputs, states = compat.keras_backend_lstm()(
        sequences,
        initial_state[0],
        initial_state[1],
        mask,
        kernel=kernel,
        recurrent_kernel=recurrent_kernel,
        bias=bias,
        activation=cell.activation,
        recurrent_activation=cell.recurrent_activation,
        return_sequences=layer.return_sequences,
        go_backwards=layer.go_backwards,
        unroll=layer.unroll,
    )
    if backend.backend() == "tensorflow":
        layer.supports_jit = False
    return last, outputs, list(states), None
