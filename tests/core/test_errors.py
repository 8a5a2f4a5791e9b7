"""Bad input raises a clear error that names what was expected and what was
received."""

import re

import keras
import numpy as np
import pytest

import keras_lstm_gates as klg

X = np.ones((2, 5, 3), "float32")


def built_layer(units=4, input_dim=3, **kwargs):
    layer = klg.LSTM(units, **kwargs)
    layer.build((None, None, input_dim))
    return layer


# -- inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3), (2, 5, 3, 1)], ids=["rank_2", "rank_4"])
def test_wrong_input_rank(shape):
    with pytest.raises(ValueError, match=r"expected ndim=3, found ndim=\d") as info:
        klg.LSTM(4)(np.ones(shape, "float32"))
    assert str(shape) in str(info.value)


@pytest.mark.parametrize("built_by", ["call", "build"])
def test_feature_size_differs_from_the_built_one(built_by):
    layer = klg.LSTM(4)
    if built_by == "call":
        layer(X)
    else:
        layer.build((None, None, 3))
    with pytest.raises(
        ValueError, match=r"axis -1 .* value 3, but received input with shape \(2, 5, 4\)"
    ):
        layer(np.ones((2, 5, 4), "float32"))


def test_cell_step_input_must_be_2d():
    with pytest.raises(ValueError, match=r"shape \(batch, features\), received shape \(2, 5, 3\)"):
        klg.LSTMCell(4)(X, [np.zeros((2, 4)), np.zeros((2, 4))])


def test_cell_step_input_feature_size():
    cell = klg.LSTMCell(4)
    cell.build((None, 3))
    with pytest.raises(ValueError, match=r"built for 3 input features, received 5"):
        cell.call(np.ones((2, 5), "float32"), [np.zeros((2, 4)), np.zeros((2, 4))])


# -- constructor arguments ----------------------------------------------------------


@pytest.mark.parametrize("units", [0, -3, 2.5, "4", True, None])
def test_units_must_be_a_positive_int(units):
    with pytest.raises(
        ValueError, match=r"positive integer, received units=" + repr(units).replace(".", r"\.")
    ):
        klg.LSTM(units)
    with pytest.raises(ValueError, match="positive integer"):
        klg.LSTMCell(units)


def test_numpy_integer_units_are_accepted():
    assert klg.LSTM(np.int64(3)).units == 3


@pytest.mark.parametrize("rate", [-0.1, 1.5])
@pytest.mark.parametrize("arg", ["dropout", "recurrent_dropout"])
def test_dropout_rate_out_of_range(arg, rate):
    with pytest.raises(ValueError, match=rf"`{arg}` in \[0, 1\], received {arg}={rate}"):
        klg.LSTM(4, **{arg: rate})


@pytest.mark.parametrize("value", ["yes", None, 1, 0, "AUTO"])
def test_use_cudnn_values(value):
    with pytest.raises(
        ValueError, match=r"one of 'auto', True, False; received use_cudnn=" + repr(value)
    ):
        klg.LSTM(4, use_cudnn=value)


@pytest.mark.parametrize("value", ["auto", True, False])
def test_use_cudnn_accepted_values(value):
    # use_cudnn=True is refused only for a configuration cuDNN cannot run
    # (at construction) or where there is no GPU (at call time).
    klg.LSTM(4, use_cudnn=value)


def test_unknown_gate_options_part():
    with pytest.raises(
        ValueError, match=r"unknown part 'forgetgate'; expected one of .*'forget_gate'"
    ):
        klg.LSTM(4, gate_options={"forgetgate": {"bias_initializer": "ones"}})


def test_unknown_gate_option():
    with pytest.raises(
        ValueError, match=r"unknown option\(s\) \['use_bias'\]; expected some of .*'activation'"
    ):
        klg.LSTM(4, gate_options={"forget_gate": {"use_bias": False}})


def test_gate_options_must_be_dicts():
    with pytest.raises(ValueError, match=r"expected a dict of options, received 'ones'"):
        klg.LSTM(4, gate_options={"forget_gate": "ones"})


# -- gate activations ---------------------------------------------------------------


def times_two(x):
    return x * 2


def normalised(x):
    s = keras.ops.sigmoid(x)
    return s / keras.ops.sum(s, axis=-1, keepdims=True)


def steep_sigmoid(x):
    return keras.ops.sigmoid(4.0 * x)


BAD_GATE_ACTIVATIONS = {
    "tanh": ("tanh", r"\(-1, 1\)"),
    "relu": ("relu", r"\[0, inf\)"),
    "linear": ("linear", "unbounded"),
    "softmax": ("softmax", "sum to 1"),
    "tanh_function": (keras.activations.tanh, r"\(-1, 1\)"),
    "custom_x_times_2": (times_two, r"times_two returned values in \[-120, 120\]"),
    "custom_not_elementwise": (normalised, "does not act on each unit independently"),
}


@pytest.mark.parametrize("case", list(BAD_GATE_ACTIVATIONS), ids=list(BAD_GATE_ACTIVATIONS))
@pytest.mark.parametrize("where", ["recurrent_activation", "gate_options"])
def test_gate_activation_outside_unit_interval(case, where):
    activation, reason = BAD_GATE_ACTIVATIONS[case]
    name = activation if isinstance(activation, str) else activation.__name__
    if where == "recurrent_activation":
        kwargs = {"recurrent_activation": activation}
    else:
        kwargs = {"gate_options": {"forget_gate": {"activation": activation}}}
    with pytest.raises(ValueError) as info:
        klg.LSTM(4, **kwargs)
    message = str(info.value)
    assert "[0, 1]" in message and "Expected 'sigmoid' or 'hard_sigmoid'" in message
    assert f"received activation='{name}'" in message
    assert re.search(reason, message), message
    if where == "gate_options":
        assert message.startswith("forget_gate")


@pytest.mark.parametrize("activation", ["sigmoid", "hard_sigmoid", steep_sigmoid])
@pytest.mark.parametrize("where", ["recurrent_activation", "gate_options"])
def test_gate_activations_in_unit_interval_are_accepted(activation, where):
    if where == "recurrent_activation":
        layer = klg.LSTM(4, recurrent_activation=activation)
        gates = ("input_gate", "forget_gate", "output_gate")
    else:
        layer = klg.LSTM(4, gate_options={"output_gate": {"activation": activation}})
        gates = ("output_gate",)
    expected = keras.activations.get(activation)
    for name in gates:
        assert layer.cell.gates[name].activation is expected


def test_candidate_activation_is_free():
    layer = klg.LSTM(4, gate_options={"candidate": {"activation": "relu"}})
    assert layer.cell.candidate.activation is keras.activations.relu


# -- state ------------------------------------------------------------------------------


def test_stateful_needs_a_fixed_batch_size():
    with pytest.raises(ValueError, match=r"batch size must be static.*\(None, 5, 3\)"):
        keras.Sequential([keras.Input((5, 3)), klg.LSTM(4, stateful=True)])


def test_stateful_batch_size_must_not_change():
    layer = klg.LSTM(4, stateful=True)
    layer(X)
    with pytest.raises(ValueError, match=r"built for batch size 2, received 3"):
        layer(np.ones((3, 5, 3), "float32"))


def test_initial_state_count():
    with pytest.raises(ValueError, match=r"list of 2 tensors \(\[h, c\]\), received 1"):
        klg.LSTM(4)(X, initial_state=[np.zeros((2, 4), "float32")])
    with pytest.raises(ValueError, match=r"list of 2 tensors \(\[h, c\]\), received 3"):
        klg.LSTM(4)(X, initial_state=[np.zeros((2, 4), "float32")] * 3)


@pytest.mark.parametrize(
    "shapes, bad",
    [
        (((2, 5), (2, 4)), "initial_state\\[0\\] must have shape \\(2, 4\\), received \\(2, 5\\)"),
        (((2, 4), (3, 4)), "initial_state\\[1\\] must have shape \\(2, 4\\), received \\(3, 4\\)"),
        (((4,), (2, 4)), "initial_state\\[0\\] must have shape \\(2, 4\\), received \\(4,\\)"),
    ],
    ids=["units", "batch", "rank"],
)
def test_initial_state_shape(shapes, bad):
    state = [np.zeros(s, "float32") for s in shapes]
    with pytest.raises(ValueError, match=bad):
        klg.LSTM(4)(X, initial_state=state)


# -- weights --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arrays, message",
    [
        (((3, 15), (4, 16), (16,)), r"kernel: expected shape \(3, 16\), received shape \(3, 15\)"),
        (((4, 16), (4, 16), (16,)), r"kernel: expected shape \(3, 16\), received shape \(4, 16\)"),
        (
            ((3, 16), (4, 12), (16,)),
            r"recurrent_kernel: expected shape \(4, 16\), received shape \(4, 12\)",
        ),
        (((3, 16), (4, 16), (12,)), r"bias: expected shape \(16,\), received shape \(12,\)"),
        (((3, 16), (4, 16), None), r"bias: expected shape \(16,\), received None"),
    ],
    ids=["kernel_width", "kernel_input_dim", "recurrent_kernel", "bias", "missing_bias"],
)
def test_set_gates_from_fused_bad_shapes(arrays, message):
    layer = built_layer()
    before = [np.asarray(keras.ops.convert_to_numpy(w)) for w in layer.weights]
    args = [None if a is None else np.zeros(a, "float32") for a in arrays]
    with pytest.raises(ValueError, match=message):
        klg.set_gates_from_fused(layer, *args)
    # Nothing was half-assigned.
    for w, old in zip(layer.weights, before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), old)


def test_set_gates_from_fused_bias_without_use_bias():
    layer = built_layer(use_bias=False)
    with pytest.raises(ValueError, match=r"use_bias=False, so expected None, received an array"):
        klg.set_gates_from_fused(layer, np.zeros((3, 16)), np.zeros((4, 16)), np.zeros(16))


def test_set_gates_from_fused_needs_a_built_klg_layer():
    with pytest.raises(ValueError, match=r"not built yet: call it on data or call build"):
        klg.set_gates_from_fused(klg.LSTM(4), np.zeros((3, 16)), np.zeros((4, 16)), np.zeros(16))
    with pytest.raises(
        TypeError, match=r"Expected a keras_lstm_gates LSTM or LSTMCell, received LSTM"
    ):
        klg.set_gates_from_fused(keras.layers.LSTM(4), np.zeros((3, 16)), np.zeros((4, 16)))


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            ((3, 16), (4, 15), None),
            r"recurrent_kernel: expected shape \(units, 4 \* units\), received shape \(4, 15\)",
        ),
        (
            ((3, 16), (16,), None),
            r"recurrent_kernel: expected shape \(units, 4 \* units\), received shape \(16,\)",
        ),
        (((3, 12), (4, 16), None), r"kernel: expected shape \(3, 16\), received shape \(3, 12\)"),
        (
            ((16,), (4, 16), None),
            r"kernel: expected shape \(input_dim, 16\), received shape \(16,\)",
        ),
        (((3, 16), (4, 16), (4, 4)), r"bias: expected shape \(16,\), received shape \(4, 4\)"),
    ],
    ids=["recurrent_width", "recurrent_rank", "kernel_width", "kernel_rank", "bias"],
)
def test_split_fused_weights_bad_shapes(arrays, message):
    args = [None if a is None else np.zeros(a) for a in arrays]
    with pytest.raises(ValueError, match=message):
        klg.split_fused_weights(*args)
