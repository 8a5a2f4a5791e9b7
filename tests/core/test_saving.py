"""Configuration and saving: klg.LSTM round-trips through get_config /
from_config and the .keras format (no custom_objects needed), and its weights
are saved under names that say which gate they belong to."""

import zipfile

import h5py
import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg

GATES = ("input_gate", "forget_gate", "candidate", "output_gate")


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def randomize(model, rng):
    for w in model.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))


def save_and_load(model, tmp_path, name="model.keras"):
    path = tmp_path / name
    model.save(path)
    return path, keras.models.load_model(path)


def h5_dataset_paths(path):
    """Every dataset path inside the .keras archive's model.weights.h5."""
    found = []
    with zipfile.ZipFile(path) as archive:
        with archive.open("model.weights.h5") as raw, h5py.File(raw, "r") as h5:
            h5.visititems(
                lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None
            )
    return found


# -- get_config / from_config --------------------------------------------------


def test_config_has_every_keras_lstm_key():
    ours = set(klg.LSTM(4).get_config())
    keras_keys = set(keras.layers.LSTM(4).get_config())
    assert keras_keys <= ours, sorted(keras_keys - ours)
    extra = ours - keras_keys
    assert extra == {
        "use_cudnn",
        "gate_options",
        "variant",
        "peepholes",
        "forget_bias",
        "chrono_t_max",
        "chrono_seed",
        "return_gates",
        # Keras takes `implementation` but leaves it out of its config.
        "implementation",
    }


def test_config_values_match_keras_for_the_same_arguments():
    kwargs = {
        "units": 5,
        "activation": "relu",
        "recurrent_activation": "hard_sigmoid",
        "use_bias": False,
        "unit_forget_bias": False,
        "kernel_regularizer": "l2",
        "dropout": 0.25,
        "recurrent_dropout": 0.5,
        "seed": 3,
        "return_sequences": True,
        "return_state": True,
        "go_backwards": True,
        "stateful": True,
        "unroll": True,
        "zero_output_for_mask": True,
    }
    ours = klg.LSTM(**kwargs).get_config()
    ref = keras.layers.LSTM(**kwargs).get_config()
    for key in ref:
        if key != "name":
            assert ours[key] == ref[key], key


CONFIGS = {
    "default": {},
    "keras_options": {
        "return_sequences": True,
        "go_backwards": True,
        "unit_forget_bias": False,
        "dropout": 0.1,
        "kernel_constraint": "max_norm",
        "bias_regularizer": keras.regularizers.L1(0.01),
    },
    "gate_options": {
        "gate_options": {
            "forget_gate": {"bias_initializer": keras.initializers.Constant(2.0)},
            "output_gate": {"activation": "hard_sigmoid", "kernel_regularizer": "l2"},
        },
        "use_cudnn": False,
    },
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_round_trip(name):
    layer = klg.LSTM(4, **CONFIGS[name])
    config = layer.get_config()
    clone = klg.LSTM.from_config(config)
    assert clone.get_config() == config
    # And through Keras's generic (de)serialization, by registered name.
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is klg.LSTM
    assert revived.get_config() == config


def test_from_config_rebuilds_gate_options():
    layer = klg.LSTM(
        3, gate_options={"forget_gate": {"bias_initializer": "ones", "activation": "hard_sigmoid"}}
    )
    clone = klg.LSTM.from_config(layer.get_config())
    clone.build((None, None, 2))
    np.testing.assert_array_equal(to_numpy(clone.cell.forget_gate.bias), np.ones(3))
    assert clone.cell.forget_gate.activation is keras.activations.hard_sigmoid
    assert clone.cell.input_gate.activation is keras.activations.sigmoid


# -- weight names ---------------------------------------------------------------


def test_weight_paths_name_the_gate():
    layer = klg.LSTM(4, name="encoder")
    layer.build((None, None, 3))
    paths = [w.path for w in layer.weights]
    expected = [
        f"encoder/lstm_cell/{g}/{w}" for g in GATES for w in ("kernel", "recurrent_kernel", "bias")
    ]
    assert paths == expected


def test_saved_file_names_the_gates(tmp_path, rng):
    model = keras.Sequential([keras.Input((None, 3)), klg.LSTM(4, name="encoder")])
    randomize(model, rng)
    path, _ = save_and_load(model, tmp_path)
    datasets = h5_dataset_paths(path)
    # Besides the 12 weights, the cell's record of its parts (saved_parts).
    assert len([d for d in datasets if d.endswith("/cell/vars/klg_parts")]) == 1
    datasets = [d for d in datasets if not d.endswith("klg_parts")]
    assert len(datasets) == 12, datasets
    for gate in GATES:
        inside = [d for d in datasets if f"/{gate}/" in d]
        assert len(inside) == 3, (gate, datasets)
    # The saved numbers are the gates' own weights.
    with zipfile.ZipFile(path) as archive:
        with archive.open("model.weights.h5") as raw, h5py.File(raw, "r") as h5:
            forget = [d for d in datasets if "/forget_gate/" in d]
            stored = sorted(np.asarray(h5[d]).shape for d in forget)
    assert stored == [(3, 4), (4,), (4, 4)]


# -- .keras files -------------------------------------------------------------------


def _check_reload(model, x, tmp_path):
    expected = to_numpy(model(x))
    _, loaded = save_and_load(model, tmp_path)
    np.testing.assert_array_equal(to_numpy(loaded(x)), expected)
    for a, b in zip(loaded.weights, model.weights):
        # (The leading scopes of a path depend on where Keras built the layer.)
        assert b.path.endswith(a.path), (a.path, b.path)
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    return loaded


@pytest.mark.parametrize("name", list(CONFIGS))
def test_save_and_load_without_custom_objects(tmp_path, rng, name):
    model = keras.Sequential(
        [keras.Input((None, 3)), klg.LSTM(4, **CONFIGS[name]), keras.layers.Dense(2)]
    )
    randomize(model, rng)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    loaded = _check_reload(model, x, tmp_path)
    assert isinstance(loaded.layers[0], klg.LSTM)
    assert loaded.layers[0].get_config() == model.layers[0].get_config()


def test_functional_model_with_states_saves(tmp_path, rng):
    inputs = keras.Input((None, 3))
    seq, h, c = klg.LSTM(4, return_sequences=True, return_state=True)(inputs)
    out = klg.LSTM(4, go_backwards=True)(seq, initial_state=[h, c])
    model = keras.Model(inputs, [out, h, c])
    randomize(model, rng)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    _, loaded = save_and_load(model, tmp_path)
    outputs = loaded(x)
    assert len(outputs) == 3
    for a, b in zip(outputs, model(x)):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


@pytest.mark.parametrize("merge_mode", ["concat", "ave"])
def test_bidirectional_saves_and_loads(tmp_path, rng, merge_mode):
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            keras.layers.Bidirectional(klg.LSTM(4, return_sequences=True), merge_mode=merge_mode),
        ]
    )
    randomize(model, rng)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    loaded = _check_reload(model, x, tmp_path)
    wrapper = loaded.layers[0]
    assert isinstance(wrapper.forward_layer, klg.LSTM) and isinstance(
        wrapper.backward_layer, klg.LSTM
    )
    assert wrapper.backward_layer.go_backwards


def test_masked_model_saves_and_loads(tmp_path, rng):
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(9, 3, mask_zero=True),
            klg.LSTM(4),
        ]
    )
    randomize(model, rng)
    tokens = np.array([[3, 1, 4, 1, 5], [9 - 1, 2, 6, 0, 0]], "int32")
    _check_reload(model, tokens, tmp_path)


def test_stateful_layer_saves_and_loads(tmp_path, rng):
    model = keras.Sequential([keras.Input((5, 3), batch_size=2), klg.LSTM(4, stateful=True)])
    randomize(model, rng)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    model.layers[0].reset_state()
    first = to_numpy(model(x))
    _, loaded = save_and_load(model, tmp_path)
    assert loaded.layers[0].stateful
    loaded.layers[0].reset_state()
    np.testing.assert_array_equal(to_numpy(loaded(x)), first)
