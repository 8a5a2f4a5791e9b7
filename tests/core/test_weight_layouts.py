"""Keras's fused weight layout in set_weights and load_weights, and no silent
weight drops on load (a saved weight that finds no place is an error).

Numbers are compared with keras.layers.LSTM on the same weights."""

import io
import json
import zipfile

import h5py
import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg
from keras_lstm_gates import saved_parts

KERAS_ORDER = ("input_gate", "forget_gate", "candidate", "output_gate")
UNITS, INPUT_DIM = 4, 3


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def random_weights(layer, rng):
    return [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.weights]


def keras_lstm(rng, **kwargs):
    ref = keras.layers.LSTM(UNITS, **kwargs)
    ref.build((None, None, INPUT_DIM))
    ref.set_weights(random_weights(ref, rng))
    return ref


# -- set_weights ------------------------------------------------------------------


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
def test_set_weights_takes_keras_fused_arrays(rng, use_bias):
    ref = keras_lstm(rng, use_bias=use_bias, return_sequences=True)
    ours = klg.LSTM(UNITS, use_bias=use_bias, return_sequences=True)
    ours.build((None, None, INPUT_DIM))
    ours.set_weights(ref.get_weights())
    fused = ref.get_weights()
    for k, name in enumerate(KERAS_ORDER):
        block = slice(k * UNITS, (k + 1) * UNITS)
        gate = ours.cell.gates[name]
        np.testing.assert_array_equal(to_numpy(gate.kernel), fused[0][:, block])
        np.testing.assert_array_equal(to_numpy(gate.recurrent_kernel), fused[1][:, block])
        if use_bias:
            np.testing.assert_array_equal(to_numpy(gate.bias), fused[2][block])
    x = rng.normal(size=(2, 5, INPUT_DIM)).astype("float32")
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(ref(x)), atol=1e-5)


def test_set_weights_builds_an_unbuilt_layer_from_the_fused_kernel(rng):
    ref = keras_lstm(rng)
    ours = klg.LSTM(UNITS)
    ours.set_weights(ref.get_weights())
    assert ours.built and ours.cell.input_dim == INPUT_DIM
    x = rng.normal(size=(2, 5, INPUT_DIM)).astype("float32")
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(ref(x)), atol=1e-5)


def test_set_weights_keeps_klg_own_layout(rng):
    ours = klg.LSTM(UNITS)
    ours.build((None, None, INPUT_DIM))
    values = random_weights(ours, rng)
    ours.set_weights(values)
    for got, expected in zip(ours.get_weights(), values):
        np.testing.assert_array_equal(got, expected)


def test_cell_set_weights_takes_keras_cell_arrays(rng):
    ref = keras_lstm(rng)
    cell = klg.LSTMCell(UNITS)
    cell.set_weights(ref.cell.get_weights())
    h = np.zeros((2, UNITS), "float32")
    x = rng.normal(size=(2, INPUT_DIM)).astype("float32")
    expected, _ = ref.cell(x, [h, h])
    got, _ = cell(x, [h, h])
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-5)


@pytest.mark.parametrize(
    "arrays",
    [
        [(3, 16), (4, 16)],  # fused without the bias the layer has
        [(3, 16), (4, 16), (8,)],  # wrong bias length
        [(5, 16), (4, 16), (16,)],  # another input_dim
        [(3, 4)] * 11,  # one per-gate array short
    ],
    ids=["two_arrays", "bias_shape", "input_dim", "eleven"],
)
def test_set_weights_error_names_both_layouts(arrays):
    ours = klg.LSTM(UNITS)
    ours.build((None, None, INPUT_DIM))
    weights = [np.zeros(s, "float32") for s in arrays]
    with pytest.raises(ValueError) as info:
        ours.set_weights(weights)
    message = str(info.value)
    assert "per-gate layout" in message and "fused layout" in message
    assert "12 arrays" in message and "[(3, 16), (4, 16), (16,)]" in message
    assert f"received {len(arrays)} arrays with shapes {[tuple(s) for s in arrays]}" in message


def test_set_weights_fused_arrays_on_a_variant_name_the_variant(rng):
    ref = keras_lstm(rng)
    ours = klg.LSTM(UNITS, variant="CIFG")
    ours.build((None, None, INPUT_DIM))
    with pytest.raises(ValueError, match="variant 'CIFG'.*received 3 arrays"):
        ours.set_weights(ref.get_weights())


# -- load_weights from a model built with keras.layers.LSTM ---------------------------


def sequential(lstm_class, **kwargs):
    return keras.Sequential(
        [keras.Input((None, INPUT_DIM)), lstm_class(UNITS, **kwargs), keras.layers.Dense(2)]
    )


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"use_bias": False, "return_sequences": True}],
    ids=["default", "no_bias_sequences"],
)
def test_load_weights_saved_from_keras_lstm(rng, tmp_path, kwargs):
    ref = sequential(keras.layers.LSTM, **kwargs)
    ref.set_weights(random_weights(ref, rng))
    path = tmp_path / "model.weights.h5"
    ref.save_weights(path)
    ours = sequential(klg.LSTM, **kwargs)
    ours.load_weights(path)
    x = rng.normal(size=(2, 5, INPUT_DIM)).astype("float32")
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(ref(x)), atol=1e-5)
    for a, b in zip(klg.get_fused_weights(ours.layers[0]), ref.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_weights_saved_from_keras_bidirectional(rng, tmp_path):
    def model(lstm_class):
        return keras.Sequential(
            [
                keras.Input((None, INPUT_DIM)),
                keras.layers.Bidirectional(lstm_class(UNITS, return_sequences=True)),
            ]
        )

    ref = model(keras.layers.LSTM)
    ref.set_weights(random_weights(ref, rng))
    path = tmp_path / "bidi.weights.h5"
    ref.save_weights(path)
    ours = model(klg.LSTM)
    ours.load_weights(path)
    x = rng.normal(size=(2, 5, INPUT_DIM)).astype("float32")
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(ref(x)), atol=1e-5)


def test_load_keras_weights_into_a_variant_names_the_way_that_works(rng, tmp_path):
    ref = sequential(keras.layers.LSTM)
    path = tmp_path / "model.weights.h5"
    ref.save_weights(path)
    ours = sequential(klg.LSTM, variant="CIFG")
    with pytest.raises(ValueError, match="variant 'CIFG'.*variant='vanilla'.*klg.convert"):
        ours.load_weights(path)


def test_load_keras_weights_with_other_units_names_the_shapes(rng, tmp_path):
    ref = keras.Sequential([keras.Input((None, INPUT_DIM)), keras.layers.LSTM(UNITS + 1)])
    path = tmp_path / "model.weights.h5"
    ref.save_weights(path)
    ours = keras.Sequential([keras.Input((None, INPUT_DIM)), klg.LSTM(UNITS)])
    with pytest.raises(ValueError, match=r"\(3, 20\).*\(3, 16\).*set_weights"):
        ours.load_weights(path)


# -- no silent drops: a .keras file edited to another variant --------------------------


def rewrite_keras_file(src, dst, edit_config=None, edit_h5=None):
    with zipfile.ZipFile(src) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    if edit_config is not None:
        config = json.loads(files["config.json"])
        edit_config(config)
        files["config.json"] = json.dumps(config).encode()
    if edit_h5 is not None:
        buffer = io.BytesIO(files["model.weights.h5"])
        with h5py.File(buffer, "a") as h5:
            edit_h5(h5)
        files["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return dst


def set_in_lstm_config(**values):
    def edit(node):
        if isinstance(node, dict):
            if node.get("class_name") == "LSTM" and "variant" in node.get("config", {}):
                node["config"].update(values)
            for v in node.values():
                edit(v)
        elif isinstance(node, list):
            for v in node:
                edit(v)

    return edit


def saved_model(rng, tmp_path, **kwargs):
    model = sequential(klg.LSTM, **kwargs)
    model.set_weights(random_weights(model, rng))
    path = tmp_path / "model.keras"
    model.save(path)
    return model, path


@pytest.mark.parametrize(
    "saved, edited, lost",
    [
        ({}, {"variant": "CIFG"}, "forget_gate/kernel"),
        ({}, {"variant": "NOG"}, "output_gate/bias"),
        ({"variant": "NIG"}, {"variant": "NFG"}, "forget_gate/kernel"),
        ({"peepholes": True}, {"peepholes": False}, "input_gate/peephole"),
        ({"variant": "FGR"}, {"variant": "vanilla"}, "gate_recurrent_kernel"),
    ],
    ids=["vanilla_to_CIFG", "vanilla_to_NOG", "NIG_to_NFG", "peepholes_off", "FGR_to_vanilla"],
)
def test_edited_variant_is_an_error_not_a_silent_drop(rng, tmp_path, saved, edited, lost):
    _, path = saved_model(rng, tmp_path, **saved)
    edited_path = rewrite_keras_file(
        path, tmp_path / "edited.keras", edit_config=set_in_lstm_config(**edited)
    )
    with pytest.raises(ValueError) as info:
        keras.models.load_model(edited_path)
    message = str(info.value)
    assert "Saved weights with no place here" in message and lost in message
    assert f"configured as variant {edited.get('variant', saved.get('variant', 'vanilla'))!r}" in (
        message
    )


def test_vanilla_gaining_a_gate_is_an_error(rng, tmp_path):
    _, path = saved_model(rng, tmp_path, variant="CIFG")
    edited_path = rewrite_keras_file(
        path, tmp_path / "edited.keras", edit_config=set_in_lstm_config(variant="vanilla")
    )
    with pytest.raises(ValueError, match="Weights here with nothing saved.*forget_gate"):
        keras.models.load_model(edited_path)


def test_saved_record_names_the_parts(rng, tmp_path):
    _, path = saved_model(rng, tmp_path, variant="NOG", peepholes=True)
    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as raw:
        with h5py.File(raw, "r") as h5:
            found = []
            h5.visit(lambda n: found.append(n) if n.endswith(saved_parts.RECORD_KEY) else None)
            assert len(found) == 1
            record = saved_parts.decode(np.asarray(h5[found[0]]))
    assert record["variant"] == "NOG" and record["peepholes"] is True
    assert record["parts"] == {
        "input_gate": ["kernel", "recurrent_kernel", "bias", "peephole"],
        "forget_gate": ["kernel", "recurrent_kernel", "bias", "peephole"],
        "candidate": ["kernel", "recurrent_kernel", "bias"],
    }


@pytest.mark.parametrize("variant", ["vanilla", "CIFG"])
def test_file_without_the_record_still_loads(rng, tmp_path, variant):
    # Files written before the record existed have an empty cell group.
    model, path = saved_model(rng, tmp_path, variant=variant)
    old = rewrite_keras_file(path, tmp_path / "old.keras", edit_h5=drop_record)
    loaded = keras.models.load_model(old)
    x = rng.normal(size=(2, 5, INPUT_DIM)).astype("float32")
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


def drop_record(h5):
    found = []
    h5.visit(lambda n: found.append(n) if n.endswith(saved_parts.RECORD_KEY) else None)
    assert len(found) == 1
    del h5[found[0]]


@pytest.mark.parametrize("edited", ["CIFG", "NIG"])
def test_file_without_the_record_edited_to_fewer_gates_is_an_error(rng, tmp_path, edited):
    _, path = saved_model(rng, tmp_path)
    old = rewrite_keras_file(
        path,
        tmp_path / "old.keras",
        edit_config=set_in_lstm_config(variant=edited),
        edit_h5=drop_record,
    )
    lost = "forget_gate" if edited == "CIFG" else "input_gate"
    with pytest.raises(ValueError, match=f"holds weights of \\['{lost}'\\].*would be dropped"):
        keras.models.load_model(old)


def test_gate_weight_count_mismatch_raises(rng, tmp_path):
    _, path = saved_model(rng, tmp_path)

    def drop_bias(h5):
        found = []
        h5.visit(lambda n: found.append(n) if n.endswith("forget_gate/vars/2") else None)
        assert len(found) == 1
        del h5[found[0]]

    damaged = rewrite_keras_file(path, tmp_path / "damaged.keras", edit_h5=drop_bias)
    with pytest.raises(ValueError, match="forget_gate"):
        keras.models.load_model(damaged)


def test_unknown_entry_in_the_cell_group_is_an_error(rng, tmp_path):
    _, path = saved_model(rng, tmp_path)

    def add_entry(h5):
        found = []
        h5.visit(lambda n: found.append(n) if n.endswith(saved_parts.RECORD_KEY) else None)
        h5[found[0].rsplit("/", 1)[0] + "/extra"] = np.zeros(3, "float32")

    damaged = rewrite_keras_file(path, tmp_path / "extra.keras", edit_h5=add_entry)
    with pytest.raises(ValueError, match="lstm_cell"):
        keras.models.load_model(damaged)
