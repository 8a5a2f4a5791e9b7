"""Every private Keras, TensorFlow and PyTorch API the package uses, in one place.

Each function here wraps one name that is not part of a framework's public
API (``keras.src``, ``tensorflow.python``, an underscored attribute, the call
stack) or a feature that the oldest supported releases lack.  The rest of the
package calls these functions, never the private name itself, and
``tests/core/test_compat.py`` checks each of them against the installed
frameworks, so that an upgrade that removes or changes one fails that test
by name instead of silently changing what the package computes.

Where a public API exists it is used instead, and where a private one is
missing on an older release the fallback is stated next to it.
"""

import contextlib
import sys

# -- Keras ----------------------------------------------------------------------


def dropout_rnn_cell():
    """Keras's ``DropoutRNNCell``: the per-sequence dropout masks of a
    recurrent cell (``get_dropout_mask``, ``get_recurrent_dropout_mask``),
    drawn as ``keras.layers.LSTMCell`` draws them, so that a seeded klg cell
    drops the same units as a seeded Keras cell."""
    from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

    return DropoutRNNCell


def per_part_dropout_masks():
    """Whether the installed Keras draws one dropout mask per gate for
    ``implementation=1`` (its ``DropoutRNNCell`` reads
    ``dropout_mask_count``), and sets ``implementation=1`` when
    ``recurrent_dropout > 0``.  Earlier Keras 3 releases draw one mask
    shared by the gates whatever the implementation."""
    return hasattr(dropout_rnn_cell(), "_create_dropout_mask")


class ExtraLosses:
    """A mixin for layers whose ``extra_losses()`` (a list of scalars) Keras
    counts with their own losses, as it counts the regularizers of their
    variables: in ``layer.losses``, ``model.losses`` and the training loss.

    Keras collects each layer's share through ``Layer._get_own_losses``, the
    only hook that a parent layer or model calls on its sublayers.
    """

    def _get_own_losses(self):
        return super()._get_own_losses() + list(self.extra_losses())


def _in_symbolic_scope():
    try:  # Keras 3.4 and later; before, no symbolic scope existed
        from keras.src.backend.common.symbolic_scope import in_symbolic_scope
    except ImportError:
        return False
    return in_symbolic_scope()


def current_value(variable):
    """The value an optimizer step or a loss sees: under JAX's stateless
    training (``StatelessScope``) the scope's value, else the variable
    (Keras reads a variable so in ``Layer._get_regularization_losses``)."""
    from keras.src import backend

    if backend.in_stateless_scope() and not _in_symbolic_scope():
        value = backend.get_stateless_scope().get_current_value(variable)
        if value is not None:
            return value
    return variable


def keras_backend_lstm():
    """The function behind ``keras.layers.LSTM``'s cuDNN path (it raises
    ``NotImplementedError`` where cuDNN cannot run, and Keras then runs its
    generic loop)."""
    from keras.src import backend

    return backend.lstm


@contextlib.contextmanager
def watching_keras_lstm(record):
    """Within the block, ``record("cudnn")`` whenever Keras's cuDNN LSTM
    runs (a ``keras.layers.LSTM`` or klg's ``"cudnn"`` kernel)."""
    from keras.src import backend

    original = backend.lstm

    def lstm(*args, **kwargs):
        result = original(*args, **kwargs)  # raises where cuDNN cannot run
        record("cudnn")
        return result

    backend.lstm = lstm
    try:
        yield
    finally:
        backend.lstm = original


def stateful_batch_size(layer):
    """The batch size a stateful ``keras.layers.RNN`` was built for, or
    ``None``.  Keras keeps it as ``_expected_batch_size`` from 3.12 on;
    before, the built state variables carry it."""
    size = getattr(layer, "_expected_batch_size", None)
    if size is not None:
        return size
    states = getattr(layer, "states", None)
    if not getattr(layer, "stateful", False) or not states:
        return None
    first = states[0]
    shape = getattr(first, "shape", None)
    return None if not shape or shape[0] is None else int(shape[0])


def own_variables(layer):
    """The variables a layer created itself (not its sublayers'), in the
    order Keras saves them in a layer's group of a weights file."""
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


def direct_sublayers(layer):
    """The layers Keras tracks as attributes of ``layer``, one level down."""
    return list(getattr(layer, "_layers", None) or [])


def sublayers(layer):
    """``layer`` and every layer it holds, at any depth (Keras's own
    traversal, ``Layer._flatten_layers``), each once, parents first."""
    return list(layer._flatten_layers(include_self=True, recursive=True))


def is_functional(model):
    """Whether ``model`` is a functional model (``keras.Model(inputs,
    outputs)``, which ``keras.Sequential`` also is once built)."""
    from keras.src.models.functional import Functional

    return isinstance(model, Functional)


def input_layer_name(tensor):
    """The name of the ``InputLayer`` that made a symbolic input tensor
    (Keras keeps it in the tensor's ``_keras_history``), else the tensor's
    own name."""
    history = getattr(tensor, "_keras_history", None)
    return history[0].name if history else tensor.name


def unsafe_deserialization():
    """A context in which ``from_config`` may rebuild a Python lambda (a
    ``Lambda`` layer's function), for configs that come from live layers of
    this process rather than from a file."""
    from keras.src.saving.serialization_lib import SafeModeScope

    return SafeModeScope(False)


def h5_group_of(store):
    """``(h5py file, path)`` of the group an HDF5 weights store reads a
    layer's variables from, or ``None`` for other stores (``.npz``).  Recent
    Keras releases hand the layer the store itself, which keeps the path in
    ``_h5_entry_path``; earlier ones an entry with ``h5_file`` and ``path``."""
    h5 = getattr(store, "h5_file", None)
    path = getattr(store, "_h5_entry_path", None)
    if path is None and not hasattr(store, "_h5_entry_path"):
        path = getattr(store, "path", None)
    if h5 is None or not path or path not in h5:
        return None
    return h5, path


# -- TensorFlow -----------------------------------------------------------------

# Python modules whose calls trace a graph to be written out: Keras's export
# (SavedModel, ONNX through tf2onnx, LiteRT), TensorFlow Lite's converter and
# tf2onnx itself.
_EXPORTERS = ("keras.src.export", "tensorflow.lite.python", "tf2onnx")


def _callers(modules):
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(modules):
            yield frame
        frame = frame.f_back


def tf_graph_is_exported():
    """Whether the TensorFlow graph being traced is for an artifact written
    out of this process (a SavedModel, a TFLite or ONNX file), not for
    running here.

    ``tf.saved_model.save`` says so through its save context.  The TFLite
    converter and tf2onnx trace functions as any caller would and leave no
    trace of themselves but on the call stack, so they are recognised there,
    by the modules the call passes through.
    """
    from tensorflow.python.saved_model import save_context

    if save_context.in_save_context():
        return True
    return next(_callers(_EXPORTERS), None) is not None


def tf2onnx_converting():
    """Whether the graph being traced is for tf2onnx: traced by tf2onnx
    itself or by Keras's ONNX export, which hands it to tf2onnx (found on
    the call stack, as :func:`tf_graph_is_exported` finds them)."""
    return next(_callers(("tf2onnx", "keras.src.export.onnx")), None) is not None


def jax2onnx_converting():
    """Whether jax2onnx (Keras's ONNX export on JAX) is tracing the current
    function, found on the call stack."""
    return next(_callers(("jax2onnx",)), None) is not None


def tflite_converter():
    """The ``tf.lite.TFLiteConverter`` whose conversion is tracing the
    current graph, or ``None`` (found on the call stack: the converter's
    own method is a caller)."""
    for frame in _callers(("tensorflow.lite.python",)):
        converter = frame.f_locals.get("self")
        if hasattr(converter, "target_spec"):
            return converter
    return None


def tflite_flatbuffer_tools():
    """``(flatbuffer_utils, schema)``: TensorFlow Lite's own reader and
    writer of its flatbuffers (``read``: ``convert_bytearray_to_object``,
    ``write``: ``convert_object_to_bytearray``) and the generated classes of
    its schema (``BuiltinOperator``, ``TensorT``, ``BufferT``, ...).
    Neither is exported under ``tf.lite``."""
    from tensorflow.lite.python import schema_py_generated
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils, schema_py_generated


def tf_tape_recording():
    """Whether a gradient tape (or an outer function's) could record the ops
    run now; ``False`` in ``predict`` and outside every tape."""
    from tensorflow.python.eager import record

    return record.could_possibly_record()


def tf_higher_order_possible(*tensors):
    """Whether the tapes now recording could differentiate ``tensors``
    twice (a persistent tape, or tapes inside tapes).  On a TensorFlow
    without this internal API, ``False``."""
    try:
        from tensorflow.python.ops import gradients_util

        kind = gradients_util.PossibleTapeGradientTypes(tensors)
        return kind == gradients_util.POSSIBLE_GRADIENT_TYPES_HIGHER_ORDER
    except (ImportError, AttributeError):
        return False


# -- PyTorch ----------------------------------------------------------------------


def torch_lstm():
    """PyTorch's own LSTM kernel, the function ``torch.nn.LSTM`` calls
    (``torch._VF.lstm``, also bound as ``torch.lstm``): oneDNN on a CPU,
    cuDNN on CUDA.  Called as ``torch_lstm()(x, (h0, c0), [w_ih, w_hh, b_ih,
    b_hh], has_biases, num_layers, dropout, train, bidirectional,
    batch_first)``, or with a packed sequence as ``(data, batch_sizes, (h0,
    c0), params, has_biases, num_layers, dropout, train, bidirectional)``;
    returns ``(output, h_n, c_n)``."""
    import torch

    return torch._VF.lstm


def torch_onednn_available():
    """Whether PyTorch's CPU kernels can use oneDNN (MKL-DNN)."""
    import torch

    return torch.backends.mkldnn.is_available()


def torch_exporting():
    """Whether PyTorch is recording a graph to export: TorchScript tracing
    (``torch.onnx.export``'s default route), the ONNX exporter, or
    ``torch.export`` (the dynamo route).  ``torch.compiler.is_exporting``
    came with torch 2.7; before, ``torch.compiler.is_compiling`` is the
    nearest (it is also true under ``torch.compile``, where the loops run
    outside the compiler anyway)."""
    import torch

    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    compiler = torch.compiler
    if hasattr(compiler, "is_exporting"):
        return compiler.is_exporting()
    return compiler.is_compiling()


def torch_onnx_exporting():
    """Whether ``torch.onnx.export`` is running (either route), not
    ``torch.jit.trace`` or ``torch.compile`` alone."""
    import torch

    return torch.onnx.is_in_onnx_export()


def onnx_absent_input(graph):
    """A value that stands for an optional input left out of an ONNX node,
    in a ``symbolic`` of TorchScript's ONNX exporter (how PyTorch's own
    ``aten::lstm`` symbolic leaves out ``sequence_lens``)."""
    import torch

    value = graph.op("prim::Constant")
    value.setType(torch._C.OptionalType.ofTensor())
    return value
