"""Moving weights between klg.LSTM and keras.layers.LSTM (fused i, f, c, o)."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg

KERAS_ORDER = ("input_gate", "forget_gate", "candidate", "output_gate")


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def random_keras_lstm(rng, units=4, input_dim=3, batch=None, **kwargs):
    ref = keras.layers.LSTM(units, **kwargs)
    ref.build((batch, None, input_dim))
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    return ref


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"use_bias": False}, {"return_sequences": True, "go_backwards": True}],
    ids=["default", "no_bias", "backwards_sequences"],
)
def test_from_keras_to_keras_round_trip(rng, kwargs):
    ref = random_keras_lstm(rng, **kwargs)
    ours = klg.LSTM.from_keras(ref)
    back = ours.to_keras()
    assert isinstance(back, keras.layers.LSTM) and not isinstance(back, klg.LSTM)
    # The numbers survive both ways exactly ...
    for a, b in zip(back.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(klg.get_fused_weights(ours), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    # ... and so does the configuration.
    ref_config, back_config = ref.get_config(), back.get_config()
    for key in ref_config:
        if key != "name":
            assert back_config[key] == ref_config[key], key
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    expected = to_numpy(ref(x))
    np.testing.assert_allclose(to_numpy(ours(x)), expected, atol=1e-5)
    np.testing.assert_array_equal(to_numpy(back(x)), expected)


def test_from_keras_places_each_block_in_its_gate(rng):
    ref = random_keras_lstm(rng)
    ours = klg.LSTM.from_keras(ref)
    kernel, recurrent_kernel, bias = ref.get_weights()
    for k, name in enumerate(KERAS_ORDER):
        gate = ours.cell.gates[name]
        block = slice(4 * k, 4 * (k + 1))
        np.testing.assert_array_equal(to_numpy(gate.kernel), kernel[:, block])
        np.testing.assert_array_equal(to_numpy(gate.recurrent_kernel), recurrent_kernel[:, block])
        np.testing.assert_array_equal(to_numpy(gate.bias), bias[block])


def test_from_keras_overrides(rng):
    ref = random_keras_lstm(rng)
    ours = klg.LSTM.from_keras(
        ref, return_sequences=True, gate_options={"forget_gate": {"kernel_regularizer": "l2"}}
    )
    assert ours.return_sequences and not ref.return_sequences
    assert ours.cell.forget_gate.kernel_regularizer is not None
    np.testing.assert_array_equal(klg.get_fused_weights(ours)[0], ref.get_weights()[0])


def test_stateful_round_trip(rng):
    ref = random_keras_lstm(rng, batch=2, stateful=True, return_sequences=True)
    ours = klg.LSTM.from_keras(ref)
    assert ours.stateful and tuple(ours.states[0].shape) == (2, 4)
    back = ours.to_keras()
    assert back.stateful and tuple(back.states[0].shape) == (2, 4)
    x1, x2 = rng.normal(size=(2, 2, 4, 3)).astype("float32")
    for layer in (ref, ours, back):
        layer(x1)
    second = [to_numpy(layer(x2)) for layer in (ref, ours, back)]
    np.testing.assert_allclose(second[1], second[0], atol=1e-5)
    np.testing.assert_allclose(second[2], second[0], atol=1e-5)


def test_set_gates_from_fused_returns_the_parts(rng):
    layer = klg.LSTM(4)
    layer.build((None, None, 3))
    kernel = rng.normal(size=(3, 16)).astype("float32")
    recurrent_kernel = rng.normal(size=(4, 16)).astype("float32")
    bias = rng.normal(size=(16,)).astype("float32")
    parts = klg.set_gates_from_fused(layer, kernel, recurrent_kernel, bias)
    assert list(parts) == list(KERAS_ORDER)
    for k, name in enumerate(KERAS_ORDER):
        w, u, b = parts[name]
        block = slice(4 * k, 4 * (k + 1))
        np.testing.assert_array_equal(w, kernel[:, block])
        np.testing.assert_array_equal(u, recurrent_kernel[:, block])
        np.testing.assert_array_equal(b, bias[block])
        np.testing.assert_array_equal(to_numpy(layer.cell.gates[name].kernel), w)
    # split_fused_weights gives the same split without touching a layer.
    for name, (w, u, b) in klg.split_fused_weights(kernel, recurrent_kernel, bias).items():
        for a, c in zip((w, u, b), parts[name]):
            np.testing.assert_array_equal(a, c)


def test_set_gates_from_fused_without_bias(rng):
    layer = klg.LSTM(2, use_bias=False)
    layer.build((None, None, 3))
    parts = klg.set_gates_from_fused(layer, np.ones((3, 8)), np.zeros((2, 8)))
    assert all(b is None for _, _, b in parts.values())
    assert len(klg.get_fused_weights(layer)) == 2


def test_set_gates_from_fused_on_a_cell(rng):
    cell = klg.LSTMCell(2)
    cell.build((None, 3))
    kernel = rng.normal(size=(3, 8)).astype("float32")
    klg.set_gates_from_fused(cell, kernel, np.zeros((2, 8)), np.zeros(8))
    np.testing.assert_array_equal(klg.get_fused_weights(cell)[0], kernel)


def test_seeded_initializers_draw_keras_weights():
    # FusedSlice gives each gate its block of the fused draw, so seeded
    # initializers reproduce keras.layers.LSTM's initial weights.  (Keras
    # draws a unit_forget_bias bias block by block, so the bias is compared
    # with unit_forget_bias=False.)
    def kwargs():
        return {
            "kernel_initializer": keras.initializers.GlorotUniform(seed=1),
            "recurrent_initializer": keras.initializers.Orthogonal(seed=2),
            "bias_initializer": keras.initializers.RandomNormal(seed=3),
            "unit_forget_bias": False,
        }

    ref = keras.layers.LSTM(4, **kwargs())
    ref.build((None, None, 3))
    ours = klg.LSTM(4, **kwargs())
    ours.build((None, None, 3))
    for a, b in zip(klg.get_fused_weights(ours), ref.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variant": "CIFG"}, "variant='CIFG'"),
        ({"peepholes": True}, "peepholes=True"),
        (
            {"gate_options": {"forget_gate": {"bias_initializer": "ones"}}},
            "gate_options=\\['forget_gate'\\]",
        ),
        ({"return_gates": True}, "cannot return gates"),
    ],
    ids=["variant", "peepholes", "gate_options", "return_gates"],
)
def test_to_keras_refuses_what_keras_cannot_hold(kwargs, message):
    layer = klg.LSTM(4, **kwargs)
    layer.build((None, None, 3))
    with pytest.raises(ValueError, match=message):
        layer.to_keras()


def test_fused_layout_refuses_variants():
    layer = klg.LSTM(4, variant="NOG")
    layer.build((None, None, 3))
    with pytest.raises(ValueError, match=r"no place for variant 'NOG'"):
        klg.get_fused_weights(layer)
    with pytest.raises(ValueError, match=r"no place for variant 'NOG'.*set its gates one by one"):
        klg.set_gates_from_fused(layer, np.zeros((3, 16)), np.zeros((4, 16)), np.zeros(16))


def test_from_keras_refuses_other_layers():
    with pytest.raises(TypeError, match=r"expects a keras.layers.LSTM, received GRU"):
        klg.LSTM.from_keras(keras.layers.GRU(3))
    with pytest.raises(ValueError, match=r"is not built: call it on data first"):
        klg.LSTM.from_keras(keras.layers.LSTM(3))
