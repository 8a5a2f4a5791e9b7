"""TensorFlow Lite's fused LSTM op for ``klg.LSTM``: :func:`to_tflite`.

TensorFlow Lite runs a whole LSTM sequence as one op,
``UNIDIRECTIONAL_SEQUENCE_LSTM``.  Its converter makes that op from a
function marked as Keras 2's LSTM (see
:func:`keras_lstm_gates.loops.tensorflow.tflite_lstm`), and makes it with
two differences from the layer's equations:

* a cell clip of 10: the op keeps ``c_t`` in ``[-10, 10]``, so wherever a
  cell state passes 10 the interpreter's outputs leave ``predict``'s (the
  layer never clips);
* no peepholes: the interface carries the kernel, recurrent kernel and bias
  only, though the op has inputs for ``p_i``, ``p_f`` and ``p_o``.

:func:`to_tflite` converts with each ``klg.LSTM`` that the op can compute
handing the converter that function, then writes the op as the layer
computes it: no clip, and the peephole weights in their inputs.  A
``tf.lite.TFLiteConverter`` used alone converts every ``klg.LSTM`` to the
exact ``WHILE`` loop and warns that :func:`to_tflite` gives the fused op.

Which cells the op computes, and their weights in it (CIFG's too), are
:mod:`keras_lstm_gates.fused_op`'s.
"""

import threading
import warnings

import numpy as np
from keras import backend, ops

from . import compat, fused_op

# The op's inputs (tensorflow/lite/kernels/lstm_shared.h): the input-to-cell
# weights, which every variant has, and the three peephole weights.
_INPUT_TO_CELL = 3
_PEEPHOLES = {"input_gate": 9, "forget_gate": 10, "output_gate": 11}

_conversion = threading.local()


def fusing():
    """The list that collects the layers converted to the fused op, while
    :func:`to_tflite` converts; ``None`` otherwise."""
    return getattr(_conversion, "layers", None)


def unfused_reason(layer, kernel, mask, return_gates, dtype, batch):
    """Why this call of ``layer``, traced by TensorFlow Lite's converter,
    cannot become the fused op, or ``None``."""
    if kernel not in ("fused", "stepwise"):
        return f"the call runs the {kernel} kernel"
    reason = fused_op.call_reason(layer, mask, return_gates, dtype)
    if reason is not None:
        return reason
    if layer.return_state or layer.stateful:
        return "the fused op gives no final cell state (return_state, stateful)"
    if batch is None:
        return "the fused op needs a fixed batch size, e.g. keras.Input(..., batch_size=1)"
    return None


def to_tflite(model):
    """Convert a Keras model to TensorFlow Lite, each ``klg.LSTM`` that the
    fused op can compute as ``UNIDIRECTIONAL_SEQUENCE_LSTM``.

    Args:
        model: a Keras model on the TensorFlow backend, or a
            ``tf.lite.TFLiteConverter`` made from one (``from_keras_model``,
            or ``from_concrete_functions`` of functions it traces), for the
            converter's own settings (``target_spec``, ``optimizations``).

    Returns:
        The ``.tflite`` flatbuffer, as ``bytes``.

    A layer becomes the fused op when it is the vanilla LSTM or the CIFG
    variant, with or without peepholes, with sigmoid gates and tanh, a bias,
    float32, a fixed batch size (``keras.Input(..., batch_size=1)``), no
    mask, and neither ``return_state``, ``stateful`` nor ``return_gates``
    (the op gives no final cell state and no gate values).  Every other
    layer converts to the ``WHILE`` loop, with a warning that names the
    reason.  The fused op is written without the converter's cell clip and
    with the layer's peephole weights, so that the interpreter gives
    ``predict``'s numbers.

    Raises:
        TypeError: ``model`` is neither a Keras model nor a converter.
        RuntimeError: the backend is not TensorFlow.
        ValueError: the converter quantized a peephole layer's weights, so
            that its fused op cannot be told apart (convert it without
            ``optimizations``), or two fused layers with the same weights
            have different peepholes.
    """
    if backend.backend() != "tensorflow":
        raise RuntimeError(
            "klg.to_tflite converts with TensorFlow Lite's converter, which traces "
            f"TensorFlow graphs: set KERAS_BACKEND=tensorflow (the backend is {backend.backend()!r})."
        )
    import keras
    import tensorflow as tf

    if isinstance(model, keras.Model):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    elif hasattr(model, "convert") and hasattr(model, "target_spec"):
        converter = model
    else:
        raise TypeError(
            "klg.to_tflite expects a keras.Model or a tf.lite.TFLiteConverter, "
            f"got {type(model).__name__}."
        )
    layers = []
    _conversion.layers = layers
    try:
        flatbuffer = converter.convert()
    finally:
        _conversion.layers = None
    return _as_computed(flatbuffer, layers) if layers else flatbuffer


def _as_computed(flatbuffer, layers):
    """The flatbuffer with its fused LSTM ops as ``layers`` compute them:
    no cell clip, and each peephole layer's weights in its op's inputs (the
    op found by its input-to-cell weights, the candidate's kernel)."""
    flatbuffer_utils, schema = compat.tflite_flatbuffer_tools()
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    fused = schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != fused:
                continue
            op.builtinOptions.cellClip = 0.0
            owners = [
                layer
                for layer in layers
                if _constant_equals(
                    model, subgraph, op.inputs[_INPUT_TO_CELL], layer.cell.candidate.kernel
                )
            ]
            peepholes = [_peepholes(layer) for layer in owners]
            if not owners:
                if any(layer.cell.spec.peepholes for layer in layers):
                    raise ValueError(
                        "klg.to_tflite finds each peephole layer's fused op by its float32 "
                        "weights, and this conversion changed them (quantization?): convert "
                        "without converter.optimizations, or use a klg.LSTM without peepholes."
                    )
                continue
            if any(not _same(p, peepholes[0]) for p in peepholes[1:]):
                names = ", ".join(repr(layer.name) for layer in owners)
                raise ValueError(
                    f"klg.LSTM layers {names} have the same weights but different peepholes, "
                    "so that their fused ops cannot be told apart in the TensorFlow Lite file."
                )
            for gate, value in peepholes[0].items():
                op.inputs[_PEEPHOLES[gate]] = _add_constant(
                    model, subgraph, value, f"{owners[0].name}/{gate}/peephole", schema
                )
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _constant_equals(model, subgraph, index, kernel):
    if index < 0:
        return False
    tensor = subgraph.tensors[index]
    data = model.buffers[tensor.buffer].data
    expected = np.ascontiguousarray(ops.convert_to_numpy(kernel).T, dtype="float32")
    if data is None or len(data) != expected.nbytes:
        return False
    return np.array_equal(np.frombuffer(bytes(data), "<f4").reshape(expected.shape), expected)


def _peepholes(layer):
    return {
        k: ops.convert_to_numpy(v).astype("float32")
        for k, v in fused_op.op_peepholes(layer.cell).items()
    }


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _add_constant(model, subgraph, value, name, schema):
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.asarray(value, "<f4").tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape = np.asarray(value.shape, np.int32)
    tensor.type = schema.TensorType.FLOAT32
    tensor.buffer = len(model.buffers) - 1
    tensor.name = name.encode()
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def warn_unfused(layer, reason):
    """Say why ``layer`` converts to TensorFlow Lite as a ``WHILE`` loop."""
    if reason is None:
        reason = (
            "tf.lite.TFLiteConverter alone would give the fused op a cell clip of 10, "
            "which changes the outputs wherever |c_t| passes 10; klg.to_tflite(model) "
            "converts it to the fused op, exactly"
        )
    warnings.warn(
        f"klg.LSTM {layer.name!r} converts to TensorFlow Lite as a WHILE loop, not as "
        f"its fused UNIDIRECTIONAL_SEQUENCE_LSTM op: {reason}.",
        stacklevel=4,
    )
