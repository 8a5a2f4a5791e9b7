"""klg.convert carries every layer's state, not only its weights: an adapted
Normalization's statistics, Discretization's bins and the vocabularies of
StringLookup, IntegerLookup and TextVectorization (held in lookup tables,
outside the weights).  klg.trace and klg.GateMonitor take raw strings where
the model does, and a saved klg model loads in a fresh process once the
package is imported.

Every case compares the converted model's predictions with the original
Keras model's on the same inputs.  String inputs run on TensorFlow only:
Keras's other backends have no string tensors.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEXTS = ["the cat sat", "a dog ran far", "the dog sat", "cats and dogs ran", "a cat"]
on_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="string tensors exist on TensorFlow only"
)


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def assert_same_predictions(original, converted, x):
    want = to_numpy(original.predict(x, verbose=0))
    got = to_numpy(converted.predict(x, verbose=0))
    np.testing.assert_allclose(got, want, atol=1e-5)
    return want


def lstm_of(model):
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.LSTM, klg.LSTM))]


def test_adapted_normalization_keeps_its_statistics(rng):
    """The issue's snippet: the adapted mean and variance live in the layer's
    non-weight state; a converted model that drops them predicts other numbers."""
    norm = keras.layers.Normalization(axis=-1)
    norm.adapt(rng.normal(3, 2, size=(20, 6, 2)).astype("float32"))
    model = keras.Sequential([keras.Input((6, 2)), norm, keras.layers.LSTM(4)])
    converted = klg.convert(model)
    np.testing.assert_allclose(to_numpy(converted.layers[0].mean), to_numpy(norm.mean))
    np.testing.assert_allclose(to_numpy(converted.layers[0].variance), to_numpy(norm.variance))
    x = rng.normal(3, 2, size=(3, 6, 2)).astype("float32")
    assert_same_predictions(model, converted, x)
    back = klg.convert(converted, to="keras")
    assert_same_predictions(model, back, x)


def test_inverted_normalization_and_discretization(rng):
    inverse = keras.layers.Normalization(axis=-1, invert=True)
    inverse.adapt(rng.normal(-1, 5, size=(30, 3)).astype("float32"))
    bins = keras.layers.Discretization(num_bins=6)
    bins.adapt(rng.normal(size=(200,)).astype("float32"))
    values = keras.Input((5,))
    steps = keras.layers.Embedding(6, 3)(bins(values))
    model = keras.Model(values, keras.layers.LSTM(4)(inverse(steps)))
    converted = klg.convert(model)
    x = rng.normal(size=(4, 5)).astype("float32")
    assert_same_predictions(model, converted, x)


def test_adapted_integer_lookup_keeps_its_vocabulary(rng):
    lookup = keras.layers.IntegerLookup()
    lookup.adapt(rng.integers(10, 20, size=(50,)))
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            lookup,
            keras.layers.Embedding(lookup.vocabulary_size(), 4, mask_zero=True),
            keras.layers.LSTM(3),
        ]
    )
    converted = klg.convert(model)
    assert converted.layers[0].get_vocabulary() == lookup.get_vocabulary()
    # 20 and 21 were never seen: the out-of-vocabulary index.
    x = rng.integers(10, 22, size=(4, 6)).astype("int32")
    assert_same_predictions(model, converted, x)
    assert_same_predictions(model, klg.convert(converted, to="keras"), x)


@on_tensorflow
def test_adapted_string_lookup_keeps_its_vocabulary():
    import tensorflow as tf

    lookup = keras.layers.StringLookup()
    lookup.adapt(np.array(["a", "b", "c", "d"]))
    model = keras.Sequential(
        [
            keras.Input((3,), dtype="string"),
            lookup,
            keras.layers.Embedding(lookup.vocabulary_size(), 4),
            keras.layers.LSTM(3),
        ]
    )
    converted = klg.convert(model)
    assert converted.layers[0].get_vocabulary() == lookup.get_vocabulary()
    assert_same_predictions(model, converted, tf.constant([["a", "b", "z"], ["d", "c", "a"]]))


def text_model(bidirectional=True, return_sequences=False):
    """The TensorFlow text-classification tutorial's model, small."""
    encoder = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=6)
    encoder.adapt(TEXTS)
    text = keras.Input((), dtype="string")
    x = keras.layers.Embedding(encoder.vocabulary_size(), 8, mask_zero=True)(encoder(text))
    lstm = keras.layers.LSTM(4, return_sequences=return_sequences, name="lstm")
    x = keras.layers.Bidirectional(lstm, name="bi")(x) if bidirectional else lstm(x)
    if return_sequences:
        x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(text, keras.layers.Dense(1)(x))


@on_tensorflow
def test_text_vectorization_model_predicts_after_conversion():
    """The issue's second snippet: before, the converted model failed at
    predict with 'Table not initialized'."""
    import tensorflow as tf

    snippet = keras.layers.TextVectorization(max_tokens=100)
    snippet.adapt(["a b c", "b c d"])
    model = keras.Sequential(
        [snippet, keras.layers.Embedding(100, 8, mask_zero=True), keras.layers.LSTM(4)]
    )
    strings = tf.constant(["a b"])
    model.predict(strings, verbose=0)  # built by a call, as in the issue
    assert_same_predictions(model, klg.convert(model), strings)

    model = text_model()
    strings = tf.constant(TEXTS + ["an unseen word"])
    converted = klg.convert(model)
    assert isinstance(converted.get_layer("bi").forward_layer, klg.LSTM)
    assert_same_predictions(model, converted, strings)
    assert_same_predictions(model, klg.convert(converted, to="keras"), strings)


@on_tensorflow
def test_trace_and_monitor_take_raw_strings():
    """klg.trace of a Keras model with a TextVectorization traces its
    converted twin on the strings themselves; its h is the original LSTM's."""
    import tensorflow as tf

    model = text_model(bidirectional=False, return_sequences=True)
    strings = tf.constant(TEXTS)
    traces = klg.trace(model, strings)
    hidden = keras.Model(model.input, model.get_layer("lstm").output)(strings)
    np.testing.assert_allclose(traces["lstm"].hidden, to_numpy(hidden), atol=1e-5)
    # Padding (token 0) is masked by the Embedding: the mask reaches the trace.
    tokens = to_numpy(model.layers[1](strings))
    np.testing.assert_array_equal(traces["lstm"].mask, tokens != 0)

    converted = klg.convert(model)
    converted.compile(optimizer="sgd", loss="mse")
    monitor = klg.GateMonitor(strings, every=1)
    converted.fit(strings, np.zeros((len(TEXTS), 1)), epochs=2, verbose=0, callbacks=[monitor])
    assert [h["epoch"] for h in monitor.history] == [0, 1]
    hidden = keras.Model(converted.input, converted.get_layer("lstm").output)(strings)
    np.testing.assert_allclose(monitor.trace()["lstm"].hidden, to_numpy(hidden), atol=1e-5)


class _Forgetful(keras.layers.Layer):
    """A layer whose saved assets do not come back: its load step ignores them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.table = {"offset": 0.0}

    def call(self, x):
        return x + self.table["offset"]

    def save_assets(self, dir_path):
        pathlib.Path(dir_path, "table.txt").write_text(str(self.table["offset"]))

    def load_assets(self, dir_path):
        pass


def test_state_that_cannot_be_carried_is_an_error_naming_the_layer(rng):
    forgetful = _Forgetful(name="forgetful")
    forgetful.table["offset"] = 2.0
    model = keras.Sequential([keras.Input((4, 2)), forgetful, keras.layers.LSTM(3)])
    with pytest.raises(ValueError, match=r"'forgetful' \(_Forgetful\).*outside what Keras"):
        klg.convert(model)


def test_a_failing_load_step_is_an_error_naming_the_layer(rng):
    class Broken(_Forgetful):
        def load_assets(self, dir_path):
            raise OSError("no table here")

    model = keras.Sequential([keras.Input((4, 2)), Broken(name="broken"), keras.layers.LSTM(3)])
    with pytest.raises(ValueError, match=r"'broken' \(Broken\).*OSError: no table here"):
        klg.convert(model)


LOAD = """
import os, sys
import numpy as np
import keras
if sys.argv[2] == "import":
    import keras_lstm_gates
try:
    model = keras.saving.load_model(sys.argv[1])
except TypeError as err:
    print("TypeError:", str(err).splitlines()[-1])
    sys.exit(3)
x = np.load(sys.argv[1] + ".x.npy")
np.save(sys.argv[1] + ".y.npy", keras.ops.convert_to_numpy(model.predict(x, verbose=0)))
"""


def test_a_saved_model_loads_in_a_fresh_process_after_the_import(tmp_path, rng):
    """Without ``import keras_lstm_gates`` recent Keras releases cannot find
    the class (they import no package they do not know; earlier ones import
    the module the file names, and load); with the import, the model loads
    and predicts what it predicted when saved."""
    model = keras.Sequential([keras.Input((5, 2)), klg.LSTM(3), keras.layers.Dense(1)])
    path = tmp_path / "model.keras"
    model.save(path)
    x = rng.normal(size=(2, 5, 2)).astype("float32")
    np.save(f"{path}.x.npy", x)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    script = textwrap.dedent(LOAD)

    def run(mode):
        return subprocess.run(
            [sys.executable, "-c", script, str(path), mode],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    without = run("no-import")
    assert without.returncode in (0, 3), without.stdout + without.stderr
    if without.returncode == 3:
        assert "Could not locate class 'LSTM'" in without.stdout, without.stdout
        assert "keras_lstm_gates>LSTM" in without.stdout, without.stdout
    # The pages that tell users to import first quote the error they would see.
    first_sentence = "Could not locate class 'LSTM'"
    for page in ("install.md", "bring-your-own-model.md", "export.md"):
        text = (ROOT / "docs" / page).read_text()
        assert "import keras_lstm_gates" in text and "keras.saving.load_model" in text, page
        assert first_sentence in " ".join(text.split()), page
    with_import = run("import")
    assert with_import.returncode == 0, with_import.stdout + with_import.stderr
    np.testing.assert_allclose(
        np.load(f"{path}.y.npy"), to_numpy(model.predict(x, verbose=0)), atol=1e-6
    )
