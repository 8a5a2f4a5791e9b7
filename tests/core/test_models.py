"""klg.LSTM inside Keras models: Sequential, functional and subclassed models
compute what the same models with keras.layers.LSTM compute, and they train
(eagerly and under jit_compile=True)."""

import os

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg

BACKEND = keras.backend.backend()


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def copy_model_weights(ours, ref, rng):
    """Random weights for ``ref``; the same numbers into ``ours`` (fused -> per gate)."""
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    ref_layers = [layer for layer in ref.layers if layer.weights]
    our_layers = [layer for layer in ours.layers if layer.weights]
    assert len(ref_layers) == len(our_layers)
    for r, o in zip(ref_layers, our_layers):
        if isinstance(o, klg.LSTM):
            klg.set_gates_from_fused(o, *[to_numpy(w) for w in r.weights])
        else:
            o.set_weights(r.get_weights())


def sequential(lstm):
    return keras.Sequential(
        [keras.Input((None, 3)), lstm(4, return_sequences=True), lstm(3), keras.layers.Dense(2)]
    )


def functional(lstm):
    inputs = keras.Input((None, 3))
    seq, h, c = lstm(4, return_sequences=True, return_state=True)(inputs)
    last = lstm(4)(seq, initial_state=[h, c])
    outputs = keras.layers.Dense(2)(keras.layers.Concatenate()([last, h]))
    return keras.Model(inputs, outputs)


class Subclassed(keras.Model):
    def __init__(self, lstm, **kwargs):
        super().__init__(**kwargs)
        self.encoder = lstm(4, return_state=True)
        self.head = keras.layers.Dense(2)

    def call(self, x):
        out, h, c = self.encoder(x)
        return self.head(ops.concatenate([out, c], axis=-1))


def subclassed(lstm):
    model = Subclassed(lstm)
    model(np.zeros((1, 2, 3), "float32"))
    return model


@pytest.mark.parametrize("build", [sequential, functional, subclassed], ids=lambda f: f.__name__)
def test_model_matches_the_keras_model(rng, build):
    ref, ours = build(keras.layers.LSTM), build(klg.LSTM)
    copy_model_weights(ours, ref, rng)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(ref(x)), atol=1e-5)


def regression_data(rng):
    x = rng.normal(size=(8, 5, 3)).astype("float32")
    y = np.stack([x[:, :, 0].sum(1), x[:, -1, 1]], axis=-1).astype("float32")
    return x, y


def fit_losses(model, x, y, jit_compile, epochs=3):
    """One batch of 8 per epoch: ``epochs`` optimizer steps."""
    model.compile(
        keras.optimizers.Adam(0.05), "mse", jit_compile=jit_compile, run_eagerly=not jit_compile
    )
    history = model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False)
    return history.history["loss"]


def test_fit_eagerly(rng):
    x, y = regression_data(rng)
    model = subclassed(klg.LSTM)
    before = [to_numpy(w) for w in model.trainable_weights]
    losses = fit_losses(model, x, y, jit_compile=False, epochs=2)
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    # Every weight of every gate received an update.
    assert len(model.trainable_weights) == 12 + 2
    for w, old in zip(model.trainable_weights, before):
        assert not np.array_equal(to_numpy(w), old), w.path


@pytest.mark.skipif(
    BACKEND == "torch" and not os.environ.get("KLG_TORCH_COMPILE"),
    reason="jit_compile=True on torch is torch.compile: about a minute on CPU for "
    "this model, as for keras.layers.LSTM; set KLG_TORCH_COMPILE=1 to run it",
)
def test_fit_with_jit_compile(rng):
    x, y = regression_data(rng)
    model = functional(klg.LSTM)
    losses = fit_losses(model, x, y, jit_compile=True)
    assert model.jit_compile
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    # The compiled prediction equals the eager call.
    compiled = model.predict(x, batch_size=8, verbose=0)
    np.testing.assert_allclose(compiled, to_numpy(model(x)), atol=1e-5)


def test_masking_embedding_in_a_model(rng):
    tokens = rng.integers(1, 9, size=(4, 6)).astype("int32")
    tokens[2:, 3:] = 0  # right padding
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(9, 3, mask_zero=True),
            klg.LSTM(4, return_sequences=True),
            klg.LSTM(4),
        ]
    )
    # The mask reaches both LSTMs: padding does not change the prediction.
    out = to_numpy(model(tokens))
    trimmed = to_numpy(model(tokens[2:, :3]))
    np.testing.assert_allclose(out[2:], trimmed, atol=1e-5)


def test_stateful_model_trains(rng):
    # Keras 3.15's own stateful LSTM fails here on torch (its state variable is
    # overwritten in place while autograd still needs it); klg copies it first.
    model = keras.Sequential(
        [keras.Input((5, 3), batch_size=4), klg.LSTM(4, stateful=True), keras.layers.Dense(1)]
    )
    x = rng.normal(size=(8, 5, 3)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    model.compile(keras.optimizers.Adam(0.05), "mse", run_eagerly=True)
    losses = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False).history["loss"]
    assert np.all(np.isfinite(losses))
    # (On JAX, fit's stateless train step does not write the RNN states back:
    # Keras does not track them as variables, for keras.layers.LSTM alike.)
    layer = model.layers[0]
    layer.reset_state()
    model(x[:4])
    state = to_numpy(layer.states[0])
    assert state.shape == (4, 4) and np.any(state != 0.0)
