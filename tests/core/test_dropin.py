"""klg.LSTM as a drop-in for keras.layers.LSTM in the corners issue 11 lists.

Every test here builds a keras.layers.LSTM and a klg.LSTM on the current
backend and compares what they compute or how they start:

* masked leading steps after a non-zero initial state (given or stateful),
  on every unroll setting: Keras's TensorFlow and PyTorch loops (and every
  unrolled loop) output zeros there, its JAX scan the carried h;
* masks of shape (batch, time, 1);
* the initial weights drawn by seeded initializers, bias with
  ``unit_forget_bias`` included;
* the ``implementation`` argument and its per-gate dropout masks.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg

BACKEND = keras.backend.backend()
ATOL = 1e-5


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def assert_close(what, actual, expected, atol=ATOL):
    actual, expected = to_numpy(actual), to_numpy(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    assert diff <= atol, f"{what}: max abs difference {diff:.3g} > {atol:g}"


def keras_pair(rng, units=4, input_dim=3, batch=None, **kwargs):
    """A keras.layers.LSTM with N(0, 0.5) weights and a klg.LSTM with the
    same configuration and weights."""
    ref = keras.layers.LSTM(units, **kwargs)
    ref.build((batch, None, input_dim))
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    ours = klg.LSTM(units, **kwargs)
    ours.build((batch, None, input_dim))
    klg.set_gates_from_fused(ours, *[to_numpy(w) for w in ref.cell.weights])
    return ref, ours


def as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def assert_same_call(ref, ours, x, what, **call_kwargs):
    got, want = as_list(ours(x, **call_kwargs)), as_list(ref(x, **call_kwargs))
    assert len(got) == len(want), what
    for k, (a, b) in enumerate(zip(got, want)):
        assert_close(f"{what}: result {k}", a, b)
    return got, want


# -- item 2: masked leading steps after a non-zero initial state -------------

# Row 0 is left-padded, row 1 masked in the middle, row 2 masked throughout,
# row 3 not masked.
MASK = np.array(
    [
        [False, False, True, True, True],
        [True, False, False, True, True],
        [False, False, False, False, False],
        [True, True, True, True, True],
    ]
)

KERAS_QUIRKS = {
    # keras/src/backend/torch/rnn.py calls torch.flip on a tuple of masks.
    ("torch", True, True): "Keras's unrolled torch loop fails with a mask and go_backwards",
}


def _skip_keras_quirks(unroll, go_backwards):
    reason = KERAS_QUIRKS.get((BACKEND, unroll, go_backwards))
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
def test_masked_leading_steps_after_initial_state(rng, unroll, go_backwards, return_sequences):
    _skip_keras_quirks(unroll, go_backwards)
    ref, ours = keras_pair(
        rng,
        unroll=unroll,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        return_state=True,
    )
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    h0, c0 = rng.normal(size=(2, 4, 4)).astype("float32")
    got, want = assert_same_call(
        ref, ours, x, "initial state + mask", initial_state=[h0, c0], mask=MASK
    )
    # The case is the one the issue names: the leading masked outputs differ
    # between Keras's backends, so the check above would catch either answer.
    out = to_numpy(want[0])
    first = out[2] if not return_sequences else out[2, 0]
    expected_first = h0[2] if (BACKEND == "jax" and not unroll) else np.zeros(4)
    np.testing.assert_allclose(first, expected_first, atol=1e-6)
    # The states of the row masked throughout are the initial ones.
    np.testing.assert_allclose(to_numpy(got[-2])[2], h0[2], atol=1e-6)
    np.testing.assert_allclose(to_numpy(got[-1])[2], c0[2], atol=1e-6)


@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
def test_masked_leading_steps_with_return_gates(rng, unroll):
    # The output fix leaves the traces alone: masked steps are zero in them,
    # and the outputs are still Keras's.
    ref, ours = keras_pair(rng, unroll=unroll, return_sequences=True)
    traced = klg.LSTM(4, return_sequences=True, unroll=unroll, return_gates=True)
    traced.build((None, None, 3))
    traced.set_weights(ours.get_weights())
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    h0, c0 = rng.normal(size=(2, 4, 4)).astype("float32")
    out, gates = traced(x, initial_state=[h0, c0], mask=MASK)
    assert_close("outputs with return_gates", out, ref(x, initial_state=[h0, c0], mask=MASK))
    for name, value in gates.items():
        assert np.all(to_numpy(value)[~MASK] == 0.0), name


@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
def test_masked_leading_steps_stateful(rng, unroll):
    # The state carried by a stateful layer plays the initial state's part.
    ref, ours = keras_pair(rng, batch=4, unroll=unroll, stateful=True, return_sequences=True)
    x1, x2 = rng.normal(size=(2, 4, 5, 3)).astype("float32")
    assert_same_call(ref, ours, x1, "stateful call 1")
    assert_same_call(ref, ours, x2, "stateful call 2, masked", mask=MASK)
    assert_close("state h", ours.states[0], ref.states[0])
    assert_close("state c", ours.states[1], ref.states[1])


@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
def test_zero_output_for_mask_after_initial_state(rng, unroll):
    if BACKEND == "jax" and unroll:
        pytest.skip("Keras's unrolled JAX loop ignores zero_output_for_mask")
    ref, ours = keras_pair(rng, unroll=unroll, return_sequences=True, zero_output_for_mask=True)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    h0, c0 = rng.normal(size=(2, 4, 4)).astype("float32")
    assert_same_call(ref, ours, x, "zero_output_for_mask", initial_state=[h0, c0], mask=MASK)


# -- item 4: masks of shape (batch, time, 1) ----------------------------------


@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
def test_mask_with_trailing_axis(rng, unroll, return_sequences):
    ref, ours = keras_pair(rng, unroll=unroll, return_sequences=return_sequences)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    mask = MASK[:, :, None]
    got, _ = assert_same_call(ref, ours, x, "(batch, time, 1) mask", mask=mask)
    # The same as the (batch, time) mask.
    assert_close("(batch, time, 1) == (batch, time)", got[0], ours(x, mask=MASK))


def test_mask_with_trailing_axis_return_gates(rng):
    layer = klg.LSTM(4, return_sequences=True, return_gates=True)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    out, gates = layer(x, mask=MASK[:, :, None])
    out2, gates2 = layer(x, mask=MASK)
    assert_close("outputs", out, out2, atol=0.0)
    for name in gates:
        assert_close(name, gates[name], gates2[name], atol=0.0)


def test_mask_with_trailing_axis_in_a_functional_model(rng):
    ref, ours = keras_pair(rng, return_sequences=True)
    x = rng.normal(size=(4, 5, 3)).astype("float32")

    def model(lstm):
        seq = keras.Input((5, 3))
        mask = keras.Input((5, 1), dtype="bool")
        return keras.Model([seq, mask], lstm(seq, mask=mask))

    mask = MASK[:, :, None]
    assert_close("model", model(ours)([x, mask]), model(ref)([x, mask]))


@pytest.mark.parametrize(
    "shape", [(4, 5, 2), (4, 5, 1, 1), (4,), (4, 6), (3, 5)], ids=lambda s: str(s)
)
def test_mask_of_a_wrong_shape(rng, shape):
    layer = klg.LSTM(4)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"Expected a mask of shape \(batch, time\)"):
        layer(x, mask=np.ones(shape, bool))
