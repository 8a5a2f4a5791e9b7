"""klg.LSTMCell is a drop-in for keras.layers.LSTMCell: inside
keras.layers.RNN, in a StackedRNNCells list, in configs and in .keras files."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def copy_cell(ours, ref, rng):
    """Random fused weights for a built Keras cell, copied into a built klg cell."""
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    klg.set_gates_from_fused(ours, *[to_numpy(w) for w in ref.weights])


def test_cell_attributes():
    cell = klg.LSTMCell(4)
    assert cell.state_size == [4, 4] and cell.output_size == 4
    h, c = cell.get_initial_state(batch_size=3)
    assert tuple(h.shape) == (3, 4) and tuple(c.shape) == (3, 4)
    assert np.all(to_numpy(h) == 0.0) and np.all(to_numpy(c) == 0.0)
    assert set(cell.present_gates) == {"input_gate", "forget_gate", "candidate", "output_gate"}


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"go_backwards": True, "return_sequences": True}, {"return_state": True, "unroll": True}],
    ids=["default", "backwards_sequences", "state_unrolled"],
)
def test_in_keras_rnn_matches_keras_cell(rng, kwargs):
    ref = keras.layers.RNN(keras.layers.LSTMCell(4), **kwargs)
    ours = keras.layers.RNN(klg.LSTMCell(4), **kwargs)
    ref.build((None, 5, 3))
    ours.build((None, 5, 3))
    copy_cell(ours.cell, ref.cell, rng)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    for a, b in zip(keras.tree.flatten(ours(x, mask=mask)), keras.tree.flatten(ref(x, mask=mask))):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-5)


def test_stacked_cells_match_keras(rng):
    ref = keras.layers.RNN([keras.layers.LSTMCell(4), keras.layers.LSTMCell(3)], return_state=True)
    ours = keras.layers.RNN([klg.LSTMCell(4), klg.LSTMCell(3)], return_state=True)
    ref.build((None, 5, 3))
    ours.build((None, 5, 3))
    for o, r in zip(ours.cell.cells, ref.cell.cells):
        copy_cell(o, r, rng)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    out_ours, out_ref = ours(x), ref(x)
    assert len(keras.tree.flatten(out_ours)) == 5  # output, [h1, c1], [h2, c2]
    for a, b in zip(keras.tree.flatten(out_ours), keras.tree.flatten(out_ref)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-5)


def test_stacked_rnn_cells_object(rng):
    stacked = keras.layers.StackedRNNCells([klg.LSTMCell(4), klg.LSTMCell(2)])
    out = keras.layers.RNN(stacked, return_sequences=True)(
        rng.normal(size=(2, 5, 3)).astype("float32")
    )
    assert tuple(out.shape) == (2, 5, 2)


def test_cell_matches_klg_layer(rng):
    layer = klg.LSTM(4, return_sequences=True)
    layer.build((None, None, 3))
    for w in layer.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    cell = klg.LSTMCell(4)
    cell.build((None, 3))
    for a, b in zip(cell.weights, layer.weights):
        a.assign(b)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    rnn = keras.layers.RNN(cell, return_sequences=True)
    np.testing.assert_allclose(to_numpy(rnn(x)), to_numpy(layer(x)), atol=1e-5)


def test_dropout_in_keras_rnn(rng):
    cell = klg.LSTMCell(4, dropout=0.5, recurrent_dropout=0.5, seed=1)
    rnn = keras.layers.RNN(cell, return_sequences=True)
    plain = keras.layers.RNN(klg.LSTMCell(4), return_sequences=True)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    rnn.build(x.shape)
    plain.build(x.shape)
    for a, b in zip(plain.cell.weights, rnn.cell.weights):
        a.assign(b)
    np.testing.assert_allclose(to_numpy(rnn(x, training=False)), to_numpy(plain(x)), atol=1e-6)
    trained = to_numpy(rnn(x, training=True))
    assert trained.shape == (2, 5, 4) and np.all(np.isfinite(trained))
    assert not np.allclose(trained, to_numpy(plain(x)))


def test_cell_config_round_trip():
    cell = klg.LSTMCell(
        3,
        recurrent_activation="hard_sigmoid",
        dropout=0.2,
        unit_forget_bias=False,
        gate_options={"candidate": {"activation": "relu"}},
    )
    config = cell.get_config()
    keras_keys = set(keras.layers.LSTMCell(3).get_config())
    assert keras_keys <= set(config), sorted(keras_keys - set(config))
    clone = klg.LSTMCell.from_config(config)
    assert clone.get_config() == config
    assert clone.candidate.activation is keras.activations.relu


def test_rnn_of_cells_saves_and_loads(tmp_path, rng):
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            keras.layers.RNN([klg.LSTMCell(4), klg.LSTMCell(2)], return_sequences=True),
        ]
    )
    for w in model.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    assert any("forget_gate/kernel" in w.path for w in model.weights)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    path = tmp_path / "cells.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    cells = loaded.layers[0].cell.cells
    assert all(isinstance(c, klg.LSTMCell) for c in cells)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
