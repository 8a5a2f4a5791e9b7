"""Layer-level regularizers and constraints act on the fused (., 4 * units)
matrices, as in keras.layers.LSTM; those in gate_options act per gate.

Every comparison is against keras.layers.LSTM on the same weights, or against
the regularizer applied by the test to the blocks it concatenates itself."""

import keras
import numpy as np
import pytest
from keras import constraints, ops, regularizers

import keras_lstm_gates as klg

KERAS_ORDER = ("input_gate", "forget_gate", "candidate", "output_gate")
UNITS, INPUT_DIM, TIME, BATCH = 3, 2, 4, 4


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def keras_and_klg(rng, **kwargs):
    """A Keras LSTM model and the klg model with the same weights."""
    ref = keras.Sequential([keras.Input((TIME, INPUT_DIM)), keras.layers.LSTM(UNITS, **kwargs)])
    ref.layers[0].set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.layers[0].weights]
    )
    ours = keras.Sequential([keras.Input((TIME, INPUT_DIM)), klg.LSTM.from_keras(ref.layers[0])])
    return ref, ours


def total(losses):
    return float(sum(to_numpy(v) for v in losses))


REGULARIZERS = {
    "l2": {"kernel_regularizer": regularizers.L2(0.01)},
    "all_three": {
        "kernel_regularizer": regularizers.L1L2(0.01, 0.02),
        "recurrent_regularizer": regularizers.L2(0.03),
        "bias_regularizer": regularizers.L1(0.05),
    },
    "orthogonal": {
        "kernel_regularizer": regularizers.OrthogonalRegularizer(0.1, mode="rows"),
        "recurrent_regularizer": regularizers.OrthogonalRegularizer(0.2, mode="columns"),
    },
}


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_losses_match_keras(rng, name):
    ref, ours = keras_and_klg(rng, **REGULARIZERS[name])
    assert len(ours.losses) == len(ref.losses) == len(REGULARIZERS[name])
    np.testing.assert_allclose(
        sorted(to_numpy(v) for v in ours.losses),
        sorted(to_numpy(v) for v in ref.losses),
        rtol=1e-5,
        atol=1e-7,
    )


def test_orthogonal_loss_is_not_the_sum_of_the_blocks(rng):
    # The regression this module fixes: per block, OrthogonalRegularizer gives
    # another number than on the fused matrix.
    reg = regularizers.OrthogonalRegularizer(0.1, mode="rows")
    ref, ours = keras_and_klg(rng, kernel_regularizer=reg)
    kernel = ref.layers[0].get_weights()[0]
    per_block = sum(float(to_numpy(reg(kernel[:, k * UNITS : (k + 1) * UNITS]))) for k in range(4))
    assert abs(per_block - total(ref.losses)) > 1e-3 * abs(total(ref.losses))
    np.testing.assert_allclose(total(ours.losses), total(ref.losses), rtol=1e-5)


def test_gate_variables_carry_no_layer_level_regularizer(rng):
    _, ours = keras_and_klg(rng, kernel_regularizer="l2", recurrent_constraint="non_neg")
    cell = ours.layers[0].cell
    for gate in cell.present_gates.values():
        assert gate.kernel.regularizer is None and gate.kernel_regularizer is None
        assert gate.losses == []


@pytest.mark.parametrize("name", ["all_three", "orthogonal"])
def test_training_loss_of_a_fit_step_matches_keras(rng, name):
    ref, ours = keras_and_klg(rng, **REGULARIZERS[name])
    x = rng.normal(size=(BATCH, TIME, INPUT_DIM)).astype("float32")
    y = rng.normal(size=(BATCH, UNITS)).astype("float32")
    for model in (ref, ours):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    for _ in range(2):
        expected = ref.train_on_batch(x, y)
        got = ours.train_on_batch(x, y)
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    for a, b in zip(klg.get_fused_weights(ours.layers[0]), ref.layers[0].get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_gate_option_takes_its_gate_out_of_the_fused_matrix(rng):
    fused_reg = regularizers.OrthogonalRegularizer(0.1, mode="rows")
    own_reg = regularizers.L2(0.5)
    layer = klg.LSTM(
        UNITS,
        kernel_regularizer=fused_reg,
        gate_options={"forget_gate": {"kernel_regularizer": own_reg}},
    )
    layer.build((None, None, INPUT_DIM))
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    kernels = {n: to_numpy(layer.cell.gates[n].kernel) for n in KERAS_ORDER}
    others = np.concatenate([kernels[n] for n in KERAS_ORDER if n != "forget_gate"], axis=-1)
    expected = [
        fused_reg(others.astype("float32")),
        own_reg(kernels["forget_gate"].astype("float32")),
    ]
    assert len(layer.losses) == 2
    np.testing.assert_allclose(
        sorted(to_numpy(v) for v in layer.losses),
        sorted(to_numpy(v) for v in expected),
        rtol=1e-5,
    )
    assert layer.cell.forget_gate.kernel.regularizer is own_reg


def test_gate_option_none_exempts_the_gate(rng):
    layer = klg.LSTM(
        UNITS, kernel_regularizer="l2", gate_options={"output_gate": {"kernel_regularizer": None}}
    )
    layer.build((None, None, INPUT_DIM))
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    fused = np.concatenate([to_numpy(layer.cell.gates[n].kernel) for n in KERAS_ORDER[:3]], axis=-1)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(total(layer.losses), 0.01 * np.sum(fused**2), rtol=1e-5)


@pytest.mark.parametrize("variant", ["CIFG", "NOG", "FGR"])
def test_variants_fuse_the_gates_they_have(rng, variant):
    reg = regularizers.OrthogonalRegularizer(0.1, mode="rows")
    layer = klg.LSTM(UNITS, variant=variant, kernel_regularizer=reg, recurrent_regularizer="l2")
    layer.build((None, None, INPUT_DIM))
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    present = [n for n in KERAS_ORDER if layer.cell.gates[n] is not None]
    kernel = np.concatenate([to_numpy(layer.cell.gates[n].kernel) for n in present], axis=-1)
    recurrent = np.concatenate(
        [to_numpy(layer.cell.gates[n].recurrent_kernel) for n in present], axis=-1
    )
    expected = [reg(kernel.astype("float32")), 0.01 * np.sum(recurrent**2)]
    if variant == "FGR":
        sig = [n for n in present if n != "candidate"]
        grk = np.concatenate(
            [to_numpy(layer.cell.gates[n].gate_recurrent_kernel) for n in sig], axis=-1
        )
        assert grk.shape == (3 * UNITS, 3 * UNITS)
        expected.append(0.01 * np.sum(grk**2))
    assert len(layer.losses) == len(expected)
    np.testing.assert_allclose(
        sorted(to_numpy(v) for v in layer.losses),
        sorted(float(to_numpy(v)) for v in expected),
        rtol=1e-5,
    )


def test_frozen_layer_has_no_regularization_loss_as_in_keras(rng):
    ref, ours = keras_and_klg(rng, kernel_regularizer="l2", bias_regularizer="l1")
    ref.layers[0].trainable = False
    ours.layers[0].trainable = False
    assert len(ref.losses) == 0
    assert len(ours.losses) == 0


def test_mixed_precision_losses_match_keras(rng):
    keras.config.set_dtype_policy("mixed_float16")
    ref, ours = keras_and_klg(
        rng,
        kernel_regularizer=regularizers.OrthogonalRegularizer(0.1),
        recurrent_regularizer="l2",
    )
    assert len(ours.losses) == len(ref.losses) == 2
    np.testing.assert_allclose(
        sorted(to_numpy(v) for v in ours.losses),
        sorted(to_numpy(v) for v in ref.losses),
        rtol=1e-5,
    )


# -- constraints ----------------------------------------------------------------

CONSTRAINTS = {
    "unit_norm_rows": {
        "kernel_constraint": constraints.UnitNorm(axis=1),
        "recurrent_constraint": constraints.UnitNorm(axis=1),
    },
    "max_norm_rows": {
        "kernel_constraint": constraints.MaxNorm(0.5, axis=1),
        "recurrent_constraint": constraints.MaxNorm(0.7, axis=1),
        "bias_constraint": constraints.MaxNorm(0.5, axis=0),
    },
    "non_neg": {"kernel_constraint": "non_neg", "bias_constraint": "non_neg"},
    "min_max_norm": {
        "kernel_constraint": constraints.MinMaxNorm(0.2, 0.6, rate=0.5, axis=1),
        "recurrent_constraint": constraints.MinMaxNorm(0.3, 0.9, axis=0),
    },
}


# Every constraint in a compiled train step (tf.function, jax.jit, torch);
# two of them also with XLA (jit_compile=True), which is slow to compile.
FIT_CASES = [(name, False) for name in CONSTRAINTS] + [
    ("unit_norm_rows", True),
    ("min_max_norm", True),
]


@pytest.mark.parametrize(
    "name, jit_compile", FIT_CASES, ids=[f"{n}-{'xla' if j else 'plain'}" for n, j in FIT_CASES]
)
def test_weights_after_fit_steps_match_keras(rng, backend_name, name, jit_compile):
    if jit_compile and backend_name == "torch":
        pytest.skip("torch has no jit_compile=True training in Keras")
    ref, ours = keras_and_klg(rng, **CONSTRAINTS[name])
    x = rng.normal(size=(BATCH, TIME, INPUT_DIM)).astype("float32")
    y = rng.normal(size=(BATCH, UNITS)).astype("float32")
    for model in (ref, ours):
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse", jit_compile=jit_compile)
    before = ref.layers[0].get_weights()
    ref.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    ours.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    after = ref.layers[0].get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(after, before))
    for a, b in zip(klg.get_fused_weights(ours.layers[0]), after):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_per_block_unit_norm_would_differ(rng):
    # UnitNorm(axis=1) on each block is not UnitNorm(axis=1) on the fused
    # matrix: the test above could fail.
    kernel = rng.normal(size=(INPUT_DIM, 4 * UNITS)).astype("float32")
    c = constraints.UnitNorm(axis=1)
    fused = to_numpy(c(kernel))
    blocks = np.concatenate(
        [to_numpy(c(kernel[:, k * UNITS : (k + 1) * UNITS])) for k in range(4)], axis=-1
    )
    assert np.abs(fused - blocks).max() > 0.1


def test_constraint_in_gate_options_acts_on_its_block(rng):
    layer = klg.LSTM(
        UNITS,
        kernel_constraint=constraints.UnitNorm(axis=1),
        gate_options={"candidate": {"kernel_constraint": constraints.MaxNorm(0.1, axis=1)}},
    )
    layer.build((None, None, INPUT_DIM))
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    kernels = {n: to_numpy(layer.cell.gates[n].kernel) for n in KERAS_ORDER}
    optimizer = keras.optimizers.SGD(0.0)
    variables = layer.trainable_variables
    optimizer.apply([ops.zeros(v.shape, "float32") for v in variables], variables)
    others = [n for n in KERAS_ORDER if n != "candidate"]
    fused = np.concatenate([kernels[n] for n in others], axis=-1)
    fused = fused / np.linalg.norm(fused, axis=1, keepdims=True)
    for k, n in enumerate(others):
        np.testing.assert_allclose(
            to_numpy(layer.cell.gates[n].kernel), fused[:, k * UNITS : (k + 1) * UNITS], atol=1e-6
        )
    own = kernels["candidate"]
    norms = np.linalg.norm(own, axis=1, keepdims=True)
    np.testing.assert_allclose(
        to_numpy(layer.cell.candidate.kernel), own * np.minimum(norms, 0.1) / norms, atol=1e-6
    )


def test_constraint_skips_a_frozen_gate(rng):
    layer = klg.LSTM(UNITS, kernel_constraint=constraints.UnitNorm(axis=1))
    layer.build((None, None, INPUT_DIM))
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    layer.cell.input_gate.trainable = False
    kernels = {n: to_numpy(layer.cell.gates[n].kernel) for n in KERAS_ORDER}
    optimizer = keras.optimizers.SGD(0.0)
    variables = layer.trainable_variables
    optimizer.apply([ops.zeros(v.shape, "float32") for v in variables], variables)
    fused = np.concatenate([kernels[n] for n in KERAS_ORDER], axis=-1)
    fused = fused / np.linalg.norm(fused, axis=1, keepdims=True)
    np.testing.assert_array_equal(to_numpy(layer.cell.input_gate.kernel), kernels["input_gate"])
    for k, n in enumerate(KERAS_ORDER[1:], start=1):
        np.testing.assert_allclose(
            to_numpy(layer.cell.gates[n].kernel), fused[:, k * UNITS : (k + 1) * UNITS], atol=1e-6
        )


def test_mixed_precision_weights_after_fit_match_keras(rng):
    keras.config.set_dtype_policy("mixed_float16")
    ref, ours = keras_and_klg(
        rng,
        kernel_constraint=constraints.UnitNorm(axis=1),
        recurrent_regularizer=regularizers.OrthogonalRegularizer(0.1),
    )
    x = rng.normal(size=(BATCH, TIME, INPUT_DIM)).astype("float32")
    y = rng.normal(size=(BATCH, UNITS)).astype("float32")
    for model in (ref, ours):
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    ref.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    ours.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    # float16 compute: Keras's own LSTM and klg round differently.
    for a, b in zip(klg.get_fused_weights(ours.layers[0]), ref.layers[0].get_weights()):
        np.testing.assert_allclose(a, b, atol=2e-3)
    np.testing.assert_allclose(
        np.linalg.norm(klg.get_fused_weights(ours.layers[0])[0], axis=1), 1.0, atol=1e-5
    )


@pytest.mark.parametrize("variant", ["CIFG", "NFG"])
def test_variant_constraint_acts_on_the_gates_it_has(rng, variant):
    layer = klg.LSTM(UNITS, variant=variant, recurrent_constraint=constraints.UnitNorm(axis=1))
    layer.build((None, None, INPUT_DIM))
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    present = [n for n in KERAS_ORDER if layer.cell.gates[n] is not None]
    before = np.concatenate(
        [to_numpy(layer.cell.gates[n].recurrent_kernel) for n in present], axis=-1
    )
    variables = layer.trainable_variables
    keras.optimizers.SGD(0.0).apply([ops.zeros(v.shape, "float32") for v in variables], variables)
    expected = before / np.linalg.norm(before, axis=1, keepdims=True)
    after = np.concatenate(
        [to_numpy(layer.cell.gates[n].recurrent_kernel) for n in present], axis=-1
    )
    np.testing.assert_allclose(after, expected, atol=1e-6)


def test_bidirectional_losses_match_keras(rng):
    kwargs = {
        "kernel_regularizer": regularizers.OrthogonalRegularizer(0.1),
        "bias_regularizer": "l2",
    }

    def model(lstm_class):
        return keras.Sequential(
            [
                keras.Input((TIME, INPUT_DIM)),
                keras.layers.Bidirectional(lstm_class(UNITS, **kwargs)),
            ]
        )

    ref, ours = model(keras.layers.LSTM), model(klg.LSTM)
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    fused = ref.get_weights()
    ours.layers[0].forward_layer.set_weights(fused[:3])
    ours.layers[0].backward_layer.set_weights(fused[3:])
    assert len(ours.losses) == len(ref.losses) == 4
    np.testing.assert_allclose(
        sorted(to_numpy(v) for v in ours.losses),
        sorted(to_numpy(v) for v in ref.losses),
        rtol=1e-5,
    )
