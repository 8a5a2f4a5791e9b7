"""The layer-normalised LSTM (``variant="LN"``; Ba, Kiros & Hinton 2016)
against the numpy reference of tests/numpy_reference.py, written from the
paper's equations: each part normalises its summed input over the units,
scales it by its gain and adds its bias; the cell state is normalised, with
its own gain and bias, before the output tanh.  Keras and PyTorch have no
such LSTM, so conversion and export to them are refused with an error that
says so.
"""

import keras
import numpy as np
import pytest
from keras import ops
from numpy_reference import lstm_sequence

import keras_lstm_gates as klg

BACKEND = keras.backend.backend()
NAMES = {"input_gate": "i", "forget_gate": "f", "candidate": "g", "output_gate": "o"}
B, T, D, H = 3, 6, 2, 4


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def randomised(layer, rng):
    """Random values for every weight (gains and biases included), so that a
    normalisation left out or misplaced shows."""
    for w in layer.weights:
        w.assign(rng.normal(scale=0.6, size=w.shape).astype("float32") + 0.1)
    return layer


def reference_weights(layer):
    cell = layer.cell
    W, U, b, p, norm = {}, {}, {}, {}, {}
    for name, letter in NAMES.items():
        gate = cell.gates[name]
        W[letter], U[letter] = to_numpy(gate.kernel), to_numpy(gate.recurrent_kernel)
        b[letter] = to_numpy(gate.bias)
        norm[letter] = to_numpy(gate.norm_gain)
        if gate.peephole is not None:
            p[letter] = to_numpy(gate.peephole)
    norm["c_gain"] = to_numpy(cell.output_gate.state_norm_gain)
    norm["c_bias"] = to_numpy(cell.output_gate.state_norm_bias)
    return {"W": W, "U": U, "b": b, "p": p or None, "norm": norm}


def test_parts_own_their_normalisation():
    layer = klg.LSTM(H, variant="LN")
    layer.build((None, None, D))
    for name, gate in layer.cell.present_gates.items():
        names = sorted(w.name for w in gate.weights)
        expected = ["bias", "kernel", "norm_gain", "recurrent_kernel"]
        if name == "output_gate":
            expected += ["state_norm_bias", "state_norm_gain"]
        assert names == sorted(expected), (name, names)
    assert layer.cell.plain_lstm_reason() is not None
    assert layer.execution_path() == "stepwise"


@pytest.mark.parametrize(
    "config",
    [{}, {"go_backwards": True}, {"peepholes": True}, {"masked": True}],
    ids=["plain", "go_backwards", "peepholes", "masked"],
)
def test_matches_the_reference(rng, config):
    config = dict(config)
    masked = config.pop("masked", False)
    layer = klg.LSTM(H, variant="LN", return_sequences=True, return_gates=True, **config)
    layer.build((None, None, D))
    randomised(layer, rng)
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = None
    kwargs = {}
    if masked:
        mask = np.ones((B, T), bool)
        mask[0, -2:] = False
        mask[1, 2] = False
        kwargs["mask"] = mask
    out, gates = layer(x, **kwargs)
    first = "carried" if BACKEND == "jax" else "zeros"
    outputs, h, c, trace = lstm_sequence(
        x,
        **reference_weights(layer),
        mask=mask,
        go_backwards=layer.go_backwards,
        first_output=first,
    )
    np.testing.assert_allclose(to_numpy(out), outputs, atol=1e-5)
    for name, letter in NAMES.items():
        np.testing.assert_allclose(to_numpy(gates[name]), trace[letter], atol=1e-5, err_msg=name)
    np.testing.assert_allclose(to_numpy(gates["cell_state"]), trace["c"], atol=1e-5)


def test_trains_and_every_weight_gets_a_gradient(rng):
    x = rng.normal(size=(8, T, D)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    layer = klg.LSTM(H, variant="LN")
    model = keras.Sequential([keras.Input((T, D)), layer, keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [to_numpy(w) for w in layer.weights]
    losses = model.fit(x, y, epochs=5, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    for w, old in zip(layer.weights, before):
        assert not np.allclose(to_numpy(w), old), f"{w.path} did not change"


def test_saves_and_traces(rng, tmp_path):
    x = rng.normal(size=(B, T, D)).astype("float32")
    model = keras.Sequential([keras.Input((T, D)), klg.LSTM(H, variant="LN", name="ln")])
    randomised(model.layers[0], rng)
    path = tmp_path / "ln.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), atol=1e-6)
    traced = klg.trace(model, x)["ln"]
    _, _, _, trace = lstm_sequence(x, **reference_weights(model.layers[0]), first_output="zeros")
    np.testing.assert_allclose(traced.forget_gate, trace["f"], atol=1e-5)


def test_keras_and_torch_layouts_refuse_it_clearly():
    layer = klg.LSTM(H, variant="LN")
    layer.build((None, None, D))
    with pytest.raises(ValueError, match="variant='LN'"):
        layer.to_keras()
    with pytest.raises(ValueError, match="variant 'LN'"):
        klg.get_fused_weights(layer)
    with pytest.raises(ValueError, match="variant='LN'"):
        klg.to_torch_state_dict(layer)
    model = keras.Sequential([keras.Input((T, D)), layer])
    with pytest.raises(ValueError, match="cannot become a keras.layers.LSTM"):
        klg.convert(model, to="keras")
