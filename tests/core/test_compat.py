"""Each private framework API in keras_lstm_gates/compat.py still exists and
still means what the package relies on.  An upgrade that removes or changes
one fails here, by name, instead of changing what the package computes."""

import keras
import numpy as np
import pytest

from keras_lstm_gates import compat

BACKEND = keras.backend.backend()
on_tensorflow = pytest.mark.skipif(BACKEND != "tensorflow", reason="a TensorFlow API")
on_torch = pytest.mark.skipif(BACKEND != "torch", reason="a PyTorch API")


def test_dropout_rnn_cell_draws_masks_per_sequence():
    cell_class = compat.dropout_rnn_cell()

    class Cell(cell_class):
        dropout, recurrent_dropout = 0.5, 0.0
        seed_generator = keras.random.SeedGenerator(1)

    cell = Cell()
    first = cell.get_dropout_mask(keras.ops.ones((2, 8)))
    assert cell.get_dropout_mask(keras.ops.ones((2, 8))) is first, "one mask per sequence"
    cell.reset_dropout_mask()
    assert cell.get_recurrent_dropout_mask(keras.ops.ones((2, 8))) is None


def test_extra_losses_reach_the_model():
    class Penalised(compat.ExtraLosses, keras.layers.Dense):
        def extra_losses(self):
            return [keras.ops.sum(keras.ops.square(self.kernel))]

    layer = Penalised(2, kernel_initializer="ones")
    model = keras.Sequential([keras.Input((3,)), layer])
    losses = [float(keras.ops.convert_to_numpy(v)) for v in model.losses]
    assert losses == [6.0]


def test_current_value_reads_a_stateless_scope():
    variable = keras.Variable(np.zeros(2, "float32"))
    assert compat.current_value(variable) is variable
    with keras.StatelessScope(state_mapping=[(variable, np.ones(2, "float32"))]):
        value = compat.current_value(variable)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(value), [1.0, 1.0])


def test_keras_backend_lstm_is_watched_and_restored():
    from keras.src import backend

    original = compat.keras_backend_lstm()
    assert callable(original) and original is backend.lstm
    seen = []
    with compat.watching_keras_lstm(seen.append):
        assert backend.lstm is not original
    assert backend.lstm is original


def test_stateful_batch_size():
    layer = keras.layers.LSTM(2, stateful=True)
    layer(np.zeros((3, 4, 1), "float32"))
    assert compat.stateful_batch_size(layer) == 3
    assert compat.stateful_batch_size(keras.layers.LSTM(2)) is None


def test_own_and_direct_sublayers():
    class Block(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

    block = Block()
    block.dense.build((None, 3))
    assert [v.name for v in compat.own_variables(block)] == ["scale"]
    assert compat.direct_sublayers(block) == [block.dense]


def test_is_functional_and_input_layer_name():
    inputs = keras.Input((3,), name="tokens")
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    assert compat.is_functional(model)

    class Sub(keras.Model):
        def call(self, x):
            return x

    assert not compat.is_functional(Sub())
    assert compat.input_layer_name(model.inputs[0]) == "tokens"


def test_unsafe_deserialization_rebuilds_a_lambda():
    layer = keras.layers.Lambda(lambda x: x + 1.0)
    with compat.unsafe_deserialization():
        again = keras.layers.Lambda.from_config(layer.get_config())
    out = keras.ops.convert_to_numpy(again(np.zeros((1, 2), "float32")))
    np.testing.assert_array_equal(out, [[1.0, 1.0]])


def test_h5_group_of_a_weights_file(tmp_path):
    seen = []

    class Watcher(keras.layers.Dense):
        def load_own_variables(self, store):
            found = compat.h5_group_of(store)
            if found is not None:
                h5, group = found
                found = (group, "vars" in h5[group] and len(h5[group]["vars"]) == 2)
            seen.append(found)
            super().load_own_variables(store)

    model = keras.Sequential([keras.Input((3,)), Watcher(2, name="watcher")])
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    model.load_weights(path)
    group, holds_the_kernel_and_bias = seen[0]
    assert group.endswith("watcher") and holds_the_kernel_and_bias
    assert compat.h5_group_of({}) is None


@on_tensorflow
def test_tf_graph_is_exported_in_a_save_context(tmp_path):
    import tensorflow as tf

    seen = []

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None,), tf.float32)])
        def serve(self, x):
            seen.append(compat.tf_graph_is_exported())
            return x + 1.0

    module = Module()
    module.serve(tf.zeros((2,)))
    tf.saved_model.save(module, str(tmp_path / "saved"))
    assert seen[0] is False and True in seen[1:]


@on_tensorflow
def test_tflite_converter_is_found_while_it_traces():
    import tensorflow as tf

    seen = []

    class Watcher(keras.layers.Layer):
        def call(self, x):
            seen.append(compat.tflite_converter())
            return x * 2.0

    model = keras.Sequential([keras.Input((2,), batch_size=1), Watcher()])
    model(np.zeros((1, 2), "float32"))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.convert()
    assert seen[0] is None  # the eager call
    assert any(found is converter for found in seen[1:]), seen


@on_tensorflow
def test_tflite_flatbuffer_tools_read_and_write_the_fused_op():
    # klg.to_tflite reads a flatbuffer into objects, changes its fused LSTM
    # ops' cell clip and inputs, adds tensors and buffers, and writes it.
    flatbuffer_utils, schema = compat.tflite_flatbuffer_tools()
    assert schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM == 44
    options = schema.UnidirectionalSequenceLSTMOptionsT()
    assert options.cellClip == 0.0 and hasattr(options, "timeMajor")
    tensor, buffer = schema.TensorT(), schema.BufferT()
    for name in ("shape", "type", "buffer", "name"):
        assert hasattr(tensor, name), name
    assert hasattr(buffer, "data") and schema.TensorType.FLOAT32 == 0
    # A model written from objects and read back (TensorFlow 2.16.1's
    # converter aborts on Keras 3 models; test_export converts for real).
    model = schema.ModelT()
    model.version, model.buffers, model.operatorCodes = 3, [schema.BufferT()], []
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators, subgraph.inputs, subgraph.outputs = [], [], [], []
    model.subgraphs = [subgraph]
    written = flatbuffer_utils.convert_object_to_bytearray(model)
    read = flatbuffer_utils.convert_bytearray_to_object(bytearray(written))
    assert read.version == 3 and len(read.subgraphs) == 1 and len(read.buffers) == 1


@on_tensorflow
def test_tf2onnx_converting_is_seen_in_keras_onnx_export(tmp_path):
    pytest.importorskip("tf2onnx")
    seen = []

    class Watcher(keras.layers.Layer):
        def call(self, x):
            seen.append(compat.tf2onnx_converting())
            return x * 2.0

    model = keras.Sequential([keras.Input((2,)), Watcher()])
    model(np.zeros((1, 2), "float32"))
    model.export(str(tmp_path / "watch.onnx"), format="onnx", verbose=False)
    assert seen[0] is False and True in seen[1:], seen


@on_tensorflow
def test_tf_tape_state():
    import tensorflow as tf

    x = tf.constant([1.0])
    assert not compat.tf_tape_recording()
    with tf.GradientTape() as tape:
        tape.watch(x)
        assert compat.tf_tape_recording()
        assert not compat.tf_higher_order_possible(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        assert compat.tf_higher_order_possible(x)


@on_torch
def test_torch_exporting_under_tracing():
    import torch

    seen = []

    def f(x):
        seen.append(compat.torch_exporting())
        return x * 2.0

    f(torch.zeros(2))
    torch.jit.trace(f, torch.zeros(2))
    assert seen[0] is False and True in seen[1:]


def test_per_part_dropout_masks_is_what_keras_draws():
    cell_class = compat.dropout_rnn_cell()

    class Cell(cell_class):
        dropout, recurrent_dropout = 0.5, 0.0
        dropout_mask_count = 4
        seed_generator = keras.random.SeedGenerator(1)

    mask = Cell().get_dropout_mask(keras.ops.ones((2, 8)))
    assert isinstance(mask, list) == compat.per_part_dropout_masks()


@on_torch
def test_torch_onnx_exporting_and_absent_input(tmp_path):
    # ONNX's LSTM node from a symbolic: an absent optional input is a
    # prim::Constant of optional tensor type; the export is seen while it runs.
    import torch

    onnx = pytest.importorskip("onnx")

    seen = []

    class Node(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, r):
            seen.append(compat.torch_onnx_exporting())
            return x[:1, :, :1] * 0.0

        @staticmethod
        def symbolic(g, x, w, r):
            missing = compat.onnx_absent_input(g)
            y, _, _ = g.op("LSTM", x, w, r, missing, missing, hidden_size_i=1, outputs=3)
            return g.op("Squeeze", y, g.op("Constant", value_t=torch.tensor([1])))

    class Module(torch.nn.Module):
        def forward(self, x):
            return Node.apply(x, torch.ones(1, 4, 2), torch.ones(1, 4, 1))

    x = torch.ones(3, 1, 2)
    Module()(x)
    path = str(tmp_path / "node.onnx")
    torch.onnx.export(Module(), (x,), path, dynamo=False)
    node = next(n for n in onnx.load(path).graph.node if n.op_type == "LSTM")
    assert list(node.input)[3] == "" and seen == [False, True], (list(node.input), seen)
