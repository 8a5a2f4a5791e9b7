"""The fused computation (one matmul for all gates) is the same computation
as the four gate sublayers applied one by one, and both match the numpy
reference step."""

import keras
import numpy as np
import pytest
from keras import ops
from numpy_reference import hard_sigmoid, lstm_step, sigmoid, weights_from_keras_fused

import keras_lstm_gates as klg

ATOL = 1e-6


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def random_cell(rng, units=4, input_dim=3, **kwargs):
    cell = klg.LSTMCell(units, **kwargs)
    cell.build((None, input_dim))
    for gate in cell.present_gates.values():
        for w in gate.weights:
            w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    return cell


def numpy_weights(cell):
    return weights_from_keras_fused(*klg.get_fused_weights(cell))


CONFIGS = {
    "default": {},
    "hard_sigmoid": {"recurrent_activation": "hard_sigmoid"},
    # Different activations per gate: the fused step cannot share one call.
    "mixed_gate_activations": {"gate_options": {"forget_gate": {"activation": "hard_sigmoid"}}},
    "no_bias": {"use_bias": False},
}


def gate_activation(name, config):
    per_gate = config.get("gate_options", {}).get(name, {}).get("activation")
    chosen = per_gate or config.get("recurrent_activation", "sigmoid")
    return {"sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid}[chosen]


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_cell_call_equals_call_per_gate(rng, config):
    kwargs = CONFIGS[config]
    cell = random_cell(rng, **kwargs)
    x = rng.normal(size=(3, 3)).astype("float32")
    h, c = rng.normal(size=(2, 3, 4)).astype("float32")
    out_fused, (h_fused, c_fused) = cell(x, [h, c])
    out_gates, (h_gates, c_gates), gates = cell.call_per_gate(x, [h, c])
    for a, b in ((out_fused, out_gates), (h_fused, h_gates), (c_fused, c_gates)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=ATOL)

    # Both are the equations (numpy reference, float64).
    W, U, b = numpy_weights(cell)
    if kwargs.get("gate_options"):
        expected_gates = {}
        for key, name in (("i", "input_gate"), ("f", "forget_gate"), ("o", "output_gate")):
            act = gate_activation(name, kwargs)
            expected_gates[key] = act(x @ W[key] + h @ U[key] + (0.0 if b is None else b[key]))
        h_ref = None
    else:
        act = gate_activation("input_gate", kwargs)
        h_ref, c_ref, expected_gates = lstm_step(x, h, c, W, U, b, gate_act=act)
        np.testing.assert_allclose(to_numpy(h_fused), h_ref, atol=ATOL)
        np.testing.assert_allclose(to_numpy(c_fused), c_ref, atol=ATOL)
    for key, name in (("i", "input_gate"), ("f", "forget_gate"), ("o", "output_gate")):
        np.testing.assert_allclose(to_numpy(gates[name]), expected_gates[key], atol=ATOL)


def test_each_gate_sublayer_is_its_block_of_the_fused_weights(rng):
    cell = random_cell(rng)
    kernel, recurrent_kernel, bias = klg.get_fused_weights(cell)
    x = rng.normal(size=(2, 3)).astype("float32")
    h = rng.normal(size=(2, 4)).astype("float32")
    z = x @ kernel + h @ recurrent_kernel + bias  # Keras's fused pre-activation
    for k, name in enumerate(("input_gate", "forget_gate", "candidate", "output_gate")):
        gate = cell.gates[name]
        pre = to_numpy(gate.preactivation(x, h))
        np.testing.assert_allclose(pre, z[:, 4 * k : 4 * (k + 1)], atol=ATOL)
        act = np.tanh if name == "candidate" else sigmoid
        np.testing.assert_allclose(to_numpy(gate(x, h)), act(pre), atol=ATOL)


def step_per_gate(cell, x, h0, c0, mask=None, go_backwards=False):
    """The sequence, one ``call_per_gate`` per timestep (masked steps keep the
    state; before a row's first unmasked step they output zeros, except on
    JAX, whose keras.layers.LSTM scan outputs the carried h there)."""
    h, c = h0, c0
    steps = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    outputs = []
    seen = np.zeros((x.shape[0], 1), bool)
    for t in steps:
        _, (h_new, c_new), _ = cell.call_per_gate(x[:, t], [h, c])
        h_new, c_new = to_numpy(h_new), to_numpy(c_new)
        if mask is not None:
            keep = mask[:, t : t + 1]
            seen = seen | keep
            h_new, c_new = np.where(keep, h_new, h), np.where(keep, c_new, c)
        h, c = h_new.astype("float32"), c_new.astype("float32")
        zero_start = mask is not None and keras.backend.backend() != "jax"
        outputs.append(np.where(seen, h, 0.0).astype("float32") if zero_start else h)
    return np.stack(outputs, axis=1), h, c


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_sequence_equals_stepping_the_gates(rng, config, go_backwards):
    kwargs = CONFIGS[config]
    layer = klg.LSTM(
        4, return_sequences=True, return_state=True, go_backwards=go_backwards, **kwargs
    )
    layer.build((None, None, 3))
    for w in layer.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], bool)
    h0, c0 = rng.normal(size=(2, 2, 4)).astype("float32")
    out, h, c = layer(x, initial_state=[h0, c0], mask=mask)
    expected, h_ref, c_ref = step_per_gate(layer.cell, x, h0, c0, mask, go_backwards)
    np.testing.assert_allclose(to_numpy(out), expected, atol=1e-5)
    np.testing.assert_allclose(to_numpy(h), h_ref, atol=1e-5)
    np.testing.assert_allclose(to_numpy(c), c_ref, atol=1e-5)


def test_layer_equals_keras_rnn_over_the_cell(rng):
    # keras.layers.RNN steps LSTMCell.call (the fused step) through Keras's own loop.
    layer = klg.LSTM(4, return_sequences=True)
    layer.build((None, None, 3))
    for w in layer.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    rnn = keras.layers.RNN(layer.cell, return_sequences=True)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(layer(x)), to_numpy(rnn(x)), atol=1e-5)
