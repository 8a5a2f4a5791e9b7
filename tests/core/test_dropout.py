"""Dropout and recurrent dropout of klg.LSTM.

Seeded masks match Keras bit for bit (tests/core/test_dropin.py); the
tests here check the properties: inference ignores dropout; in training one
mask per sequence is drawn for the inputs and one per gate for ``h_{t-1}``
(the same features are dropped at every timestep, Gal & Ghahramani 2016;
the probe below reads the candidate's); the kept fraction is
``1 - rate`` and kept values are scaled by ``1 / (1 - rate)``; a seed makes it
reproducible.

The masks are made observable with a "probe" layer whose weights are chosen
so that the trace reads them off: with ``W_i = I`` and ``U_i = 0`` the input
gate is ``sigmoid(x_t * m_x)``; with ``W_c = 0`` and ``U_c = I`` the candidate
is ``tanh(h_{t-1} * m_h)``.  A layer with the same seed and shapes draws the
same masks, which lets a random-weight layer be compared with the numpy
reference run on ``x * m_x`` and ``h * m_h``.
"""

import keras
import numpy as np
import pytest
from keras import ops
from numpy_reference import lstm_sequence, lstm_step, weights_from_keras_fused

import keras_lstm_gates as klg


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def probe_layer(units, dropout, recurrent_dropout, seed):
    layer = klg.LSTM(
        units,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        seed=seed,
        return_sequences=True,
        return_gates=True,
    )
    layer.build((None, None, units))
    eye, zero = np.eye(units, dtype="float32"), np.zeros((units, units), "float32")
    for gate in layer.cell.gates.values():
        gate.kernel.assign(zero)
        gate.recurrent_kernel.assign(zero)
        gate.bias.assign(np.zeros(units, "float32"))
    layer.cell.input_gate.kernel.assign(eye)
    layer.cell.candidate.recurrent_kernel.assign(eye)
    return layer


def read_masks(layer, x, h0, c0):
    """The input and recurrent masks of one training call, per timestep."""
    out, trace = layer(x, initial_state=[h0, c0], training=True)
    i = to_numpy(trace["input_gate"])
    g = to_numpy(trace["candidate"])
    h_prev = np.concatenate([np.asarray(h0, "float64")[:, None], to_numpy(out)[:, :-1]], axis=1)
    m_x = np.log(i / (1.0 - i)) / x
    m_h = np.arctanh(g) / h_prev
    return m_x, m_h


def inputs(rng, batch, steps, units):
    x = rng.uniform(0.5, 1.0, size=(batch, steps, units)).astype("float32")
    h0 = np.full((batch, units), 0.5, "float32")
    c0 = np.ones((batch, units), "float32")
    return x, h0, c0


def test_inference_ignores_dropout(rng):
    ref = keras.layers.LSTM(4, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    ref.build((None, None, 3))
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    ours = klg.LSTM.from_keras(ref)
    plain = klg.LSTM.from_keras(ref, dropout=0.0, recurrent_dropout=0.0)
    assert (ours.dropout, ours.recurrent_dropout) == (0.5, 0.5)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    expected = to_numpy(ref(x, training=False))
    for out in (ours(x), ours(x, training=False), plain(x, training=True)):
        np.testing.assert_allclose(to_numpy(out), expected, atol=1e-5)


@pytest.mark.parametrize("dropout, recurrent_dropout", [(0.5, 0.0), (0.0, 0.4), (0.3, 0.3)])
def test_one_mask_per_sequence(rng, dropout, recurrent_dropout):
    units, steps = 6, 5
    layer = probe_layer(units, dropout, recurrent_dropout, seed=11)
    x, h0, c0 = inputs(rng, 3, steps, units)
    m_x, m_h = read_masks(layer, x, h0, c0)
    for m, rate in ((m_x, dropout), (m_h, recurrent_dropout)):
        # The same mask at every timestep ...
        np.testing.assert_allclose(m, np.repeat(m[:, :1], steps, axis=1), atol=1e-3)
        # ... whose entries are 0 (dropped) or 1 / (1 - rate) (kept, rescaled).
        kept = np.abs(m[:, 0] - 1.0 / (1.0 - rate)) < 1e-3
        dropped = np.abs(m[:, 0]) < 1e-3
        assert np.all(kept | dropped)
        if rate == 0.0:
            assert np.all(kept)
        else:
            # Different sequences of the batch get different masks.
            assert dropped.any() and kept.any()
            assert not all(np.array_equal(dropped[0], d) for d in dropped[1:])


def test_kept_fraction(rng):
    rate = 0.3
    # 8 sequences x 64 features = 512 draws per mask.  The binomial standard
    # deviation of the kept fraction is at most 0.5 / sqrt(512) = 0.022; the
    # bound below is 4 standard deviations.
    units = 64
    layer = probe_layer(units, rate, rate, seed=5)
    x, h0, c0 = inputs(rng, 8, 2, units)
    m_x, m_h = read_masks(layer, x, h0, c0)
    for m in (m_x, m_h):
        kept = float(np.mean(m[:, 0] > 0.5))
        assert abs(kept - (1.0 - rate)) < 4 * 0.5 / np.sqrt(m[:, 0].size), kept


# Recurrent dropout draws one mask per gate (as Keras does), which the shared
# masks of the reference below do not model; test_dropin.py compares that
# case with keras.layers.LSTM, mask for mask.
@pytest.mark.parametrize("dropout, recurrent_dropout", [(0.5, 0.0)])
def test_training_output_is_the_lstm_on_masked_inputs(rng, dropout, recurrent_dropout):
    units, steps, seed = 4, 5, 23
    x, h0, c0 = inputs(rng, 3, steps, units)
    x = rng.normal(size=x.shape).astype("float32")
    m_x, m_h = read_masks(
        probe_layer(units, dropout, recurrent_dropout, seed), *inputs(rng, 3, steps, units)
    )
    m_x, m_h = m_x[:, 0], m_h[:, 0]

    ours = klg.LSTM(
        units,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        seed=seed,
        return_sequences=True,
    )
    ours.build((None, None, units))
    fused = [
        rng.normal(scale=0.5, size=w.shape).astype("float32") for w in klg.get_fused_weights(ours)
    ]
    klg.set_gates_from_fused(ours, *fused)
    out = to_numpy(ours(x, initial_state=[h0, c0], training=True))

    # The numpy reference, written from the equations, on x * m_x and h * m_h.
    W, U, b = weights_from_keras_fused(*fused)
    h, c, expected = h0.astype("float64"), c0.astype("float64"), []
    for t in range(steps):
        h, c, _ = lstm_step(x[:, t] * m_x, h * m_h, c, W, U, b)
        expected.append(h)
    np.testing.assert_allclose(out, np.stack(expected, 1), atol=1e-4)
    if not recurrent_dropout:
        # Input dropout alone: a no-dropout run on the masked inputs.
        plain = lstm_sequence(x * m_x[:, None], W, U, b, h0=h0, c0=c0)[0]
        np.testing.assert_allclose(out, plain, atol=1e-4)


def test_seed_makes_it_reproducible(rng):
    x, h0, c0 = inputs(rng, 2, 4, 6)

    def run(seed, calls=1):
        layer = klg.LSTM(6, dropout=0.5, recurrent_dropout=0.5, seed=seed, return_sequences=True)
        layer.build((None, None, 6))
        klg.set_gates_from_fused(
            layer,
            *[np.random.default_rng(0).normal(size=w.shape) for w in klg.get_fused_weights(layer)],
        )
        return [to_numpy(layer(x, training=True)) for _ in range(calls)]

    first, second = run(7, calls=2)
    np.testing.assert_array_equal(run(7)[0], first)
    assert not np.allclose(run(8)[0], first)
    # A new mask for every call (one per sequence, not one per layer).
    assert not np.allclose(first, second)
