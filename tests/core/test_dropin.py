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
from keras_lstm_gates import compat

# Keras draws one dropout mask per gate with recurrent dropout, and then
# sets implementation=1, from the release whose DropoutRNNCell reads
# dropout_mask_count; before, one mask is shared and implementation is kept.
PER_PART = compat.per_part_dropout_masks()

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


# -- item 6: the initial weights of seeded initializers ------------------------

inits = keras.initializers
SEEDED = {
    "RandomNormal": lambda seed: inits.RandomNormal(stddev=0.3, seed=seed),
    "RandomUniform": lambda seed: inits.RandomUniform(-0.5, 0.5, seed=seed),
    "TruncatedNormal": lambda seed: inits.TruncatedNormal(seed=seed),
    "GlorotUniform": lambda seed: inits.GlorotUniform(seed=seed),
    "HeNormal": lambda seed: inits.HeNormal(seed=seed),
    "LecunUniform": lambda seed: inits.LecunUniform(seed=seed),
    "Orthogonal": lambda seed: inits.Orthogonal(seed=seed),
    "VarianceScaling": lambda seed: inits.VarianceScaling(2.0, "fan_out", "uniform", seed=seed),
    "Constant": lambda seed: inits.Constant(0.25),
}
SEEDS = {
    "int_seed": lambda k: 7 + k,
    # A SeedGenerator draws anew at every call: matching Keras needs the
    # same number of calls in the same order.
    "seed_generator": lambda k: keras.random.SeedGenerator(7 + k),
}


def _initializers(name, seed_kind):
    make, seed = SEEDED[name], SEEDS[seed_kind]
    # An orthogonal bias is refused (by Keras too): rank 1.
    make_bias = SEEDED["RandomNormal"] if name == "Orthogonal" else make
    return {
        "kernel_initializer": make(seed(0)),
        "recurrent_initializer": make(seed(1)),
        "bias_initializer": make_bias(seed(2)),
    }


def _initial_fused_weights(layer):
    return [to_numpy(w) for w in klg.get_fused_weights(layer.cell)]


@pytest.mark.parametrize("unit_forget_bias", [True, False], ids=["unit_forget_bias", "plain"])
@pytest.mark.parametrize("seed_kind", list(SEEDS))
@pytest.mark.parametrize("name", list(SEEDED))
def test_seeded_initial_weights_are_keras_ones(name, seed_kind, unit_forget_bias):
    ref = keras.layers.LSTM(5, unit_forget_bias=unit_forget_bias, **_initializers(name, seed_kind))
    ref.build((None, None, 3))
    ours = klg.LSTM(5, unit_forget_bias=unit_forget_bias, **_initializers(name, seed_kind))
    ours.build((None, None, 3))
    for what, a, b in zip(
        ("kernel", "recurrent_kernel", "bias"), _initial_fused_weights(ours), ref.weights
    ):
        assert_close(f"initial {what}", a, b, atol=0.0)


def test_default_initial_weights_are_keras_ones_under_a_global_seed():
    # Unseeded initializers take their seed from Keras's global generator
    # when they are made: klg makes them in Keras's order.
    keras.utils.set_random_seed(11)
    ref = keras.layers.LSTM(5)
    ref.build((None, None, 3))
    keras.utils.set_random_seed(11)
    ours = klg.LSTM(5)
    ours.build((None, None, 3))
    for what, a, b in zip(
        ("kernel", "recurrent_kernel", "bias"), _initial_fused_weights(ours), ref.weights
    ):
        assert_close(f"initial {what}", a, b, atol=0.0)


def test_unit_forget_bias_draws_the_input_block_and_the_candidate_output_blocks_apart():
    # Keras's three draws, written out: init((H,)), ones, init((2H,)).
    init = inits.RandomNormal(seed=3)
    layer = klg.LSTM(4, bias_initializer=init)
    layer.build((None, None, 2))
    cell = layer.cell
    np.testing.assert_array_equal(to_numpy(cell.input_gate.bias), to_numpy(init((4,))))
    np.testing.assert_array_equal(to_numpy(cell.forget_gate.bias), np.ones(4))
    both = to_numpy(init((8,)))
    np.testing.assert_array_equal(to_numpy(cell.candidate.bias), both[:4])
    np.testing.assert_array_equal(to_numpy(cell.output_gate.bias), both[4:])


class _Encoder(keras.Model):
    """A subclassed model without ``build``: Keras builds its LSTM inside the
    model's first symbolic call (on PyTorch, with tensors on the "meta"
    device, where a draw has a shape and no numbers)."""

    def __init__(self, lstm, **kwargs):
        super().__init__(**kwargs)
        self.lstm = lstm

    def call(self, x):
        return self.lstm(x)


@pytest.mark.parametrize("seed_kind", list(SEEDS))
def test_initial_weights_of_a_layer_built_in_a_symbolic_call_are_keras_ones(seed_kind):
    models = {}
    for name, lstm in (("keras", keras.layers.LSTM), ("klg", klg.LSTM)):
        models[name] = _Encoder(lstm(5, **_initializers("GlorotUniform", seed_kind)))
        models[name](np.zeros((1, 2, 3), "float32"))
    ours, ref = models["klg"].lstm, models["keras"].lstm
    for what, a, b in zip(
        ("kernel", "recurrent_kernel", "bias"), _initial_fused_weights(ours), ref.weights
    ):
        assert np.all(np.isfinite(to_numpy(a))), f"initial {what} is not finite"
        assert_close(f"initial {what}", a, b, atol=0.0)


# -- item 1: the implementation argument ---------------------------------------

DROPOUTS = {
    "dropout": {"dropout": 0.4},
    "dropout_impl1": {"dropout": 0.4, "implementation": 1},
    "recurrent": {"recurrent_dropout": 0.3},
    "both": {"dropout": 0.3, "recurrent_dropout": 0.4},
    "both_impl2": {"dropout": 0.3, "recurrent_dropout": 0.4, "implementation": 2},
}


@pytest.mark.parametrize(
    "config, unroll", [(c, False) for c in DROPOUTS] + [("both", True)], ids=str
)
def test_seeded_dropout_drops_the_units_keras_drops(rng, config, unroll):
    # Keras draws the masks from the cell's seed generator at every call (in
    # training or not): four per kind with implementation=1, which
    # recurrent_dropout > 0 implies.  A klg layer seeded alike draws the same
    # masks, so training outputs agree to float rounding over several calls.
    kwargs = DROPOUTS[config]
    # Keras's own cuDNN attempt fails on every backend with implementation=1
    # and input dropout alone (it broadcasts the list of four masks as one):
    # use_cudnn=False takes Keras's generic loop.
    ref, ours = keras_pair(
        rng,
        units=6,
        input_dim=4,
        seed=5,
        use_cudnn=False,
        unroll=unroll,
        return_sequences=True,
        **kwargs,
    )
    assert ours.implementation == ref.cell.implementation
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    for k, training in enumerate((True, False, True)):
        assert_close(
            f"call {k} (training={training})", ours(x, training=training), ref(x, training=training)
        )


@pytest.mark.skipif(not PER_PART, reason="this Keras draws one dropout mask shared by the gates")
def test_per_gate_masks_differ():
    # implementation=1 really draws four masks: the training output differs
    # from the shared-mask one of the same seed (implementation=2).
    x = np.random.default_rng(0).normal(size=(4, 6, 8)).astype("float32")
    outs = []
    for implementation in (1, 2):
        layer = klg.LSTM(5, dropout=0.5, seed=3, implementation=implementation)
        layer.build((None, None, 8))
        layer.set_weights([np.full(w.shape, 0.1, "float32") for w in layer.weights])
        outs.append(to_numpy(layer(x, training=True)))
    assert not np.allclose(outs[0], outs[1])


@pytest.mark.parametrize("config", ["dropout_impl1", "both"])
def test_cell_in_keras_rnn_drops_the_units_keras_drops(rng, config):
    # The cell alone, stepped by keras.layers.RNN, against Keras's cell.
    kwargs = DROPOUTS[config]
    ref_cell = keras.layers.LSTMCell(6, seed=5, **kwargs)
    ours_cell = klg.LSTMCell(6, seed=5, **kwargs)
    ref = keras.layers.RNN(ref_cell, return_sequences=True)
    ours = keras.layers.RNN(ours_cell, return_sequences=True)
    ref.build((None, None, 4))
    ours.build((None, None, 4))
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    klg.set_gates_from_fused(ours_cell, *[to_numpy(w) for w in ref_cell.weights])
    assert ours_cell.implementation == ref_cell.implementation
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    assert_close("RNN(LSTMCell) training", ours(x, training=True), ref(x, training=True))


@pytest.mark.parametrize("implementation", [1, 2])
def test_implementation_without_dropout_changes_nothing(rng, implementation):
    # Keras's own test_correctness, in short: same numbers on either setting.
    ref, ours = keras_pair(rng, implementation=implementation, return_sequences=True)
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    assert_same_call(ref, ours, x, f"implementation={implementation}", training=True)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, 2),
        ({"implementation": 1}, 1),
        ({"implementation": 2}, 2),
        ({"recurrent_dropout": 0.2}, 1 if PER_PART else 2),
        ({"recurrent_dropout": 0.2, "implementation": 2}, 1 if PER_PART else 2),
    ],
)
def test_implementation_value_and_config(kwargs, expected):
    ref = keras.layers.LSTM(3, **kwargs)
    layer = klg.LSTM(3, **kwargs)
    cell = klg.LSTMCell(3, **kwargs)
    assert layer.implementation == cell.implementation == ref.cell.implementation == expected
    assert layer.get_config()["implementation"] == expected
    assert cell.get_config()["implementation"] == expected
    assert klg.LSTM.from_config(layer.get_config()).implementation == expected
    assert klg.LSTMCell.from_config(cell.get_config()).implementation == expected


def test_implementation_survives_saving(tmp_path):
    model = keras.Sequential([keras.Input((4, 3)), klg.LSTM(3, dropout=0.2, implementation=1)])
    path = str(tmp_path / "model.keras")
    model.save(path)
    assert keras.models.load_model(path).layers[0].implementation == 1


def test_from_keras_and_to_keras_carry_implementation():
    ref = keras.layers.LSTM(3, implementation=1)
    ref.build((None, None, 2))
    ours = klg.LSTM.from_keras(ref)
    assert ours.implementation == 1
    assert ours.to_keras().cell.implementation == 1


@pytest.mark.parametrize("bad", [0, 3, True, "2", None])
@pytest.mark.parametrize("cls", [klg.LSTM, klg.LSTMCell], ids=["LSTM", "LSTMCell"])
def test_bad_implementation(cls, bad):
    with pytest.raises(ValueError, match=r"Expected `implementation` to be 1 .* or 2 .*received"):
        cls(3, implementation=bad)


# -- trainable=False at construction ---------------------------------------------


@pytest.mark.parametrize("frozen_at", ["constructor", "from_config"])
def test_trainable_false_freezes_every_gate_as_keras_freezes_its_weights(frozen_at):
    ref = keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(3, trainable=False)])
    layer = klg.LSTM(3, trainable=False)
    if frozen_at == "from_config":
        layer = klg.LSTM.from_config(layer.get_config())
    ours = keras.Sequential([keras.Input((4, 3)), layer])
    assert len(ref.trainable_weights) == 0
    assert len(ours.trainable_weights) == len(ref.trainable_weights)
    assert len(ref.non_trainable_weights) == 3
    assert len(ours.non_trainable_weights) == 12
    assert all(not v.trainable for v in ours.weights)
