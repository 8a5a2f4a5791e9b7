"""The LSTM variants of Greff et al. (2017) and peepholes, against an
independent numpy reference (tests/numpy_reference.py, written from the
equations, not from klg).

For each configuration: the removed gates have no weights; outputs, final
states and gate traces match the reference (with masks and go_backwards);
autodiff gradients match central finite differences of the reference in
float64; a ``.keras`` file restores the same outputs; a jit-compiled model
trains a step; and the combinations that make no sense are refused.
"""

import contextlib
import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from numpy_reference import lstm_sequence, lstm_step  # noqa: E402

BACKEND = keras.backend.backend()
GATES = ("input_gate", "forget_gate", "candidate", "output_gate")
SHORT = {"input_gate": "i", "forget_gate": "f", "candidate": "g", "output_gate": "o"}
SIGMOID = ("input_gate", "forget_gate", "output_gate")
# Which parts each variant keeps (Greff et al. 2017, table 1).
KEEPS = {
    "vanilla": GATES,
    "NP": GATES,
    "NIG": ("forget_gate", "candidate", "output_gate"),
    "NFG": ("input_gate", "candidate", "output_gate"),
    "NOG": ("input_gate", "forget_gate", "candidate"),
    "NIAF": GATES,
    "NOAF": GATES,
    "CIFG": ("input_gate", "candidate", "output_gate"),
    "FGR": GATES,
    "LN": GATES,
}
CONFIGS = [(v, p) for v in klg.VARIANTS for p in (False, True) if not (v == "NP" and p)]
IDS = [f"{v}{'+peepholes' if p else ''}" for v, p in CONFIGS]
# Every variant, with peepholes wherever it can have them ("NP" is the plain
# LSTM without them).
WITH_PEEPHOLES = [(v, v != "NP") for v in klg.VARIANTS]
WITH_PEEPHOLES_IDS = [f"{v}{'+peepholes' if p else ''}" for v, p in WITH_PEEPHOLES]


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def random_layer(rng, variant, peepholes, input_dim=3, units=4, scale=0.5, **kwargs):
    """A built klg.LSTM whose every weight (peepholes included) is N(0, scale)."""
    layer = klg.LSTM(units, variant=variant, peepholes=peepholes, **kwargs)
    layer.build((None, None, input_dim))
    for w in layer.weights:
        w.assign(rng.normal(scale=scale, size=w.shape).astype(w.dtype))
    return layer


def reference_weights(cell):
    """The reference's W, U, b, p, R, norm dicts, read gate by gate from klg.

    A removed gate gets no entry in ``p``/``R`` and zero W, U, b: the
    reference ignores them for that variant (it uses the constant 1).
    ``norm`` (the LN variant's gains, and the cell state's gain and bias) is
    ``None`` for the other variants.
    """
    units, input_dim = cell.units, cell.input_dim
    W = {k: np.zeros((input_dim, units)) for k in "ifgo"}
    U = {k: np.zeros((units, units)) for k in "ifgo"}
    b = {k: np.zeros(units) for k in "ifgo"}
    p, R = {}, {}
    for name, gate in cell.present_gates.items():
        k = SHORT[name]
        W[k] = to_numpy(gate.kernel).astype("float64")
        U[k] = to_numpy(gate.recurrent_kernel).astype("float64")
        if gate.bias is not None:
            b[k] = to_numpy(gate.bias).astype("float64")
        if gate.peephole is not None:
            p[k] = to_numpy(gate.peephole).astype("float64")
        if gate.gate_recurrent_kernel is not None:
            R[k] = to_numpy(gate.gate_recurrent_kernel).astype("float64")
    norm = None
    if cell.spec.layer_norm:
        norm = {SHORT[n]: to_numpy(g.norm_gain).astype("float64") for n, g in cell.gates.items()}
        norm["c_gain"] = to_numpy(cell.output_gate.state_norm_gain).astype("float64")
        norm["c_bias"] = to_numpy(cell.output_gate.state_norm_bias).astype("float64")
    return W, U, b, p, (R or None), norm


def padded_batch(rng, batch=3, steps=6, features=3):
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    mask = np.ones((batch, steps), bool)
    mask[1, 4:] = False  # right padding
    mask[2, 1] = False  # a hole
    return x, mask


# -- structure ---------------------------------------------------------------


@pytest.mark.parametrize("variant,peepholes", CONFIGS, ids=IDS)
def test_removed_parts_have_no_weights(variant, peepholes):
    layer = klg.LSTM(4, variant=variant, peepholes=peepholes)
    layer.build((None, 5, 3))
    cell = layer.cell
    kept = KEEPS[variant]
    for name in GATES:
        part = getattr(cell, name)
        assert (part is not None) == (name in kept), name
        assert (cell.gates[name] is not None) == (name in kept)
    removed = [n for n in GATES if n not in kept]
    paths = [w.path for w in layer.weights]
    assert not [p for p in paths if any(f"/{n}/" in p for n in removed)]
    # 3 weights per kept part, a peephole per kept gate, a (3u, u) gate
    # recurrence per gate under FGR.
    kept_gates = [n for n in kept if n in SIGMOID]
    expected = 3 * len(kept) + (len(kept_gates) if peepholes else 0)
    expected += len(kept_gates) if variant == "FGR" else 0
    # LN: a gain per part, and the output gate's gain and bias of the cell state.
    expected += len(kept) + 2 if variant == "LN" else 0
    assert len(layer.weights) == len(layer.trainable_weights) == expected, paths
    for name in kept_gates:
        gate = getattr(cell, name)
        assert (gate.peephole is not None) == peepholes
        if peepholes:
            assert tuple(gate.peephole.shape) == (4,)
        if variant == "FGR":
            assert tuple(gate.gate_recurrent_kernel.shape) == (12, 4)
        else:
            assert gate.gate_recurrent_kernel is None
    assert cell.candidate.peephole is None  # peepholes feed gates only
    assert tuple(cell.state_size) == ((4, 4, 12) if variant == "FGR" else (4, 4))
    plain = variant in ("vanilla", "NP") and not peepholes
    fast = "onednn" if BACKEND == "torch" else "fused"
    assert layer.execution_path() == (fast if plain else "stepwise")
    if (variant, peepholes) not in (("vanilla", False), ("NP", False)):
        assert variant in layer.cudnn_unsupported_reason()
    assert layer.variant == variant and layer.peepholes == peepholes


def test_peephole_semantics_in_variants_without_a_gate():
    """Peepholes belong to the gates that exist: NIG has p_f and p_o, NOG
    p_i and p_f, NFG and CIFG p_i and p_o (CIFG's f = 1 - i sees c_{t-1}
    through p_i)."""
    expected = {
        "vanilla": {"input_gate", "forget_gate", "output_gate"},
        "NIG": {"forget_gate", "output_gate"},
        "NFG": {"input_gate", "output_gate"},
        "NOG": {"input_gate", "forget_gate"},
        "CIFG": {"input_gate", "output_gate"},
    }
    for variant, gates in expected.items():
        cell = klg.LSTMCell(2, variant=variant, peepholes=True)
        cell.build((None, 3))
        have = {n for n, g in cell.present_gates.items() if g.peephole is not None}
        assert have == gates, variant


# -- against the numpy reference ---------------------------------------------


@pytest.mark.parametrize("variant,peepholes", CONFIGS, ids=IDS)
def test_matches_numpy_reference(rng, variant, peepholes):
    """Outputs, final states and every gate trace, with a mask; backwards for
    every second configuration."""
    go_backwards = CONFIGS.index((variant, peepholes)) % 2 == 1
    layer = random_layer(
        rng,
        variant,
        peepholes,
        return_sequences=True,
        return_state=True,
        return_gates=True,
        go_backwards=go_backwards,
    )
    x, mask = padded_batch(rng)
    result = layer(x, mask=mask)
    y, h, c, gates = result[0], result[1], result[2], result[-1]
    W, U, b, p, R, norm = reference_weights(layer.cell)
    ref_y, ref_h, ref_c, trace = lstm_sequence(
        x, W, U, b, mask=mask, go_backwards=go_backwards, variant=variant, p=p, R=R, norm=norm
    )
    np.testing.assert_allclose(to_numpy(y), ref_y, atol=2e-6)
    np.testing.assert_allclose(to_numpy(h), ref_h, atol=2e-6)
    np.testing.assert_allclose(to_numpy(c), ref_c, atol=2e-6)
    for name in GATES:
        np.testing.assert_allclose(to_numpy(gates[name]), trace[SHORT[name]], atol=2e-6)
    np.testing.assert_allclose(to_numpy(gates["cell_state"]), trace["c"], atol=2e-6)
    if variant == "FGR":  # the third state carries [i, f, o] of the last kept step
        assert tuple(result[3].shape) == (3, 12)
    # A removed gate is reported as what stands for it: 1, or 1 - i for CIFG.
    f, i = to_numpy(gates["forget_gate"]), to_numpy(gates["input_gate"])
    kept_steps = mask[:, ::-1] if go_backwards else mask
    if variant == "CIFG":
        np.testing.assert_allclose(f[kept_steps], 1.0 - i[kept_steps], atol=1e-7)
    for name in GATES:
        if name not in KEEPS[variant] and variant != "CIFG":
            assert np.all(to_numpy(gates[name])[kept_steps] == 1.0), name


@pytest.mark.parametrize("variant", klg.VARIANTS)
def test_cell_in_keras_rnn_matches_reference(rng, variant):
    """klg.LSTMCell(variant=...) inside keras.layers.RNN (the per-step call)."""
    peepholes = variant != "NP"
    cell = klg.LSTMCell(4, variant=variant, peepholes=peepholes)
    rnn = keras.layers.RNN(cell, return_sequences=True)
    rnn.build((None, None, 3))
    for w in rnn.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    x, _ = padded_batch(rng, steps=5)
    W, U, b, p, R, norm = reference_weights(cell)
    ref_y = lstm_sequence(x, W, U, b, variant=variant, p=p, R=R, norm=norm)[0]
    np.testing.assert_allclose(to_numpy(rnn(x)), ref_y, atol=2e-6)


@pytest.mark.parametrize("variant", ["NIG", "NFG", "CIFG", "FGR", "LN"])
def test_call_per_gate_matches_reference_step(rng, variant):
    cell = klg.LSTMCell(4, variant=variant, peepholes=True)
    cell.build((None, 3))
    for w in cell.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    x = rng.normal(size=(2, 3)).astype("float32")
    h0, c0 = (rng.normal(size=(2, 4)).astype("float32") for _ in range(2))
    states = [h0, c0]
    prev = None
    if variant == "FGR":
        prev = rng.uniform(size=(2, 12)).astype("float32")
        states.append(prev)
    W, U, b, p, R, norm = reference_weights(cell)
    ref_h, ref_c, _ = lstm_step(x, h0, c0, W, U, b, variant, p, R, prev, norm=norm)
    h, new_states, _ = cell.call_per_gate(x, states)
    np.testing.assert_allclose(to_numpy(h), ref_h, atol=2e-6)
    np.testing.assert_allclose(to_numpy(new_states[1]), ref_c, atol=2e-6)
    h_fused, fused_states = cell(x, states)
    np.testing.assert_allclose(to_numpy(h_fused), ref_h, atol=2e-6)
    np.testing.assert_allclose(to_numpy(fused_states[1]), ref_c, atol=2e-6)


# -- gradients ---------------------------------------------------------------


def float64():
    """JAX computes in float32 unless 64-bit types are switched on."""
    if BACKEND == "jax":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def autodiff_gradients(layer, x, mask, cotangent):
    """d sum(layer(x) * cotangent) / d weights, by the backend's autodiff."""
    variables = list(layer.trainable_variables)
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss(values):
            y, _ = layer.stateless_call(values, non_trainable, x, mask=mask)
            return jnp.sum(y * cotangent)

        found = jax.grad(loss)([v.value for v in variables])
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, mask=mask) * cotangent)
        found = tape.gradient(loss, [v.value for v in variables])
    else:
        import torch

        loss = torch.sum(layer(x, mask=mask) * torch.as_tensor(cotangent))
        found = torch.autograd.grad(loss, [v.value for v in variables])
    return {v.path: to_numpy(g) for v, g in zip(variables, found)}


def reference_entry(weights, path):
    """The reference array (in W, U, b, p, R) that holds the klg weight ``path``."""
    W, U, b, p, R, norm = weights
    gate, kind = path.split("/")[-2:]
    if kind.startswith("state_norm_"):
        return norm["c_" + kind.removeprefix("state_norm_")]
    table = {"kernel": W, "recurrent_kernel": U, "bias": b, "peephole": p}
    table["gate_recurrent_kernel"] = R
    table["norm_gain"] = norm
    return table[kind][SHORT[gate]]


@pytest.mark.parametrize("variant", klg.VARIANTS)
def test_gradients_match_finite_differences_of_reference(rng, variant):
    """float64 autodiff gradients of klg against central differences of the
    numpy reference, for two entries of every weight."""
    peepholes = variant != "NP"
    go_backwards = variant in ("NIG", "CIFG", "FGR")
    x, mask = padded_batch(rng, steps=4)
    x = x.astype("float64")
    cotangent = rng.normal(size=(3, 4, 4))
    with float64():
        layer = random_layer(
            rng,
            variant,
            peepholes,
            return_sequences=True,
            dtype="float64",
            go_backwards=go_backwards,
        )
        grads = autodiff_gradients(layer, x, mask, cotangent)
    assert all(g.dtype == np.float64 for g in grads.values())
    weights = reference_weights(layer.cell)

    def loss():
        y = lstm_sequence(
            x,
            *weights[:3],
            mask=mask,
            go_backwards=go_backwards,
            variant=variant,
            p=weights[3],
            R=weights[4],
            norm=weights[5],
        )[0]
        return float(np.sum(y * cotangent))

    eps = 1e-6
    assert set(grads) == {w.path for w in layer.trainable_weights}
    for path, grad in grads.items():
        array = reference_entry(weights, path)
        assert array.shape == grad.shape, path
        for _ in range(2):
            idx = tuple(int(rng.integers(n)) for n in array.shape)
            keep = array[idx]
            array[idx] = keep + eps
            up = loss()
            array[idx] = keep - eps
            down = loss()
            array[idx] = keep
            numeric = (up - down) / (2 * eps)
            assert abs(grad[idx] - numeric) <= 1e-6 + 1e-5 * abs(numeric), (path, idx)


# -- saving ------------------------------------------------------------------


def test_every_configuration_survives_a_keras_file(rng, tmp_path):
    """One model with every variant side by side (with peepholes where
    possible), saved and loaded."""
    inputs = keras.Input((None, 3))
    outputs = []
    for (variant, peepholes), name in zip(WITH_PEEPHOLES, WITH_PEEPHOLES_IDS):
        layer = klg.LSTM(
            4,
            variant=variant,
            peepholes=peepholes,
            return_sequences=True,
            name=name.replace("+", "_"),
        )
        outputs.append(layer(inputs))
    model = keras.Model(inputs, outputs)
    for w in model.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    x, _ = padded_batch(rng, steps=4)
    before = [to_numpy(y) for y in model(x)]
    path = tmp_path / "variants.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    after = [to_numpy(y) for y in loaded(x)]
    for name, a, b in zip(WITH_PEEPHOLES_IDS, before, after):
        np.testing.assert_allclose(b, a, atol=1e-7, err_msg=name)
    for (variant, peepholes), name in zip(WITH_PEEPHOLES, WITH_PEEPHOLES_IDS):
        original = model.get_layer(name.replace("+", "_"))
        restored = loaded.get_layer(name.replace("+", "_"))
        assert isinstance(restored, klg.LSTM)
        assert (restored.variant, restored.peepholes) == (variant, peepholes)
        tail = lambda layer: [w.path.split("/")[-2:] for w in layer.weights]  # noqa: E731
        assert tail(restored) == tail(original)
        for name_ in GATES:
            assert (getattr(restored.cell, name_) is None) == (name_ not in KEEPS[variant])


def test_cell_with_fgr_survives_a_keras_file(rng, tmp_path):
    """klg.LSTMCell(variant="FGR") inside keras.layers.RNN: three states."""
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            keras.layers.RNN(klg.LSTMCell(4, variant="FGR", peepholes=True)),
        ]
    )
    for w in model.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    x, _ = padded_batch(rng, steps=4)
    path = tmp_path / "cell.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), atol=1e-7)
    assert loaded.layers[0].cell.spec.name == "FGR"


# -- training under jit ------------------------------------------------------

# torch.compile of a Keras train step takes one to three minutes per model on
# a small CPU, most of it Dynamo tracing Keras's own train step (a Dense-only
# model takes about as long).  In fast mode (KLG_FAST=1, as in
# tools/run_tests.sh) the torch backend trains every variant eagerly instead;
# run without KLG_FAST to compile them all.
TORCH_JIT_SKIPPED = BACKEND == "torch" and os.environ.get("KLG_FAST") == "1"


@pytest.mark.skipif(TORCH_JIT_SKIPPED, reason="torch.compile takes minutes on a CPU (KLG_FAST=1)")
@pytest.mark.parametrize("variant,peepholes", WITH_PEEPHOLES, ids=WITH_PEEPHOLES_IDS)
def test_trains_a_step_under_jit(rng, variant, peepholes):
    _train(rng, variant, peepholes, jit_compile=True)


@pytest.mark.parametrize("variant,peepholes", WITH_PEEPHOLES, ids=WITH_PEEPHOLES_IDS)
def test_trains_a_step_eagerly(rng, variant, peepholes):
    if BACKEND != "torch":
        pytest.skip("the jit test above covers this backend")
    _train(rng, variant, peepholes, jit_compile=False)


def _train(rng, variant, peepholes, jit_compile):
    steps = 3
    x = rng.normal(size=(8, steps, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    lstm = klg.LSTM(3, variant=variant, peepholes=peepholes)
    model = keras.Sequential([keras.Input((steps, 3)), lstm, keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit_compile)
    before = [to_numpy(w).copy() for w in lstm.weights]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    for w, old in zip(lstm.weights, before):
        new = to_numpy(w)
        assert np.all(np.isfinite(new)), w.path
        assert not np.array_equal(new, old), f"{w.path} did not change"


# -- refused combinations ----------------------------------------------------


def _raises(match, **kwargs):
    with pytest.raises(ValueError, match=match):
        klg.LSTM(4, **kwargs)
    with pytest.raises(ValueError, match=match):
        klg.LSTMCell(4, **kwargs)


def test_unknown_variant_is_refused():
    _raises(r"expected one of .*received variant='GRU'", variant="GRU")
    _raises(r"expected one of", variant="nig")


def test_np_with_peepholes_is_refused():
    _raises(r"variant='NP' means no peepholes, but peepholes=True", variant="NP", peepholes=True)


@pytest.mark.parametrize("variant", ["NFG", "CIFG"])
def test_forget_bias_without_forget_gate_is_refused(variant):
    _raises(f"variant '{variant}' has no forget gate weights", variant=variant, forget_bias=1.0)
    _raises(f"variant '{variant}' has no forget gate weights", variant=variant, chrono_t_max=50)


def test_chrono_without_input_gate_is_refused():
    _raises(r"needs an input gate; variant 'NIG' has none", variant="NIG", chrono_t_max=50)


@pytest.mark.parametrize(
    "variant,gate", [("NIG", "input_gate"), ("NFG", "forget_gate"), ("CIFG", "forget_gate")]
)
def test_gate_options_for_a_removed_gate_are_refused(variant, gate):
    _raises(
        f"variant '{variant}' has no {gate}",
        variant=variant,
        gate_options={gate: {"bias_initializer": "ones"}},
    )
    _raises(
        "variant 'NOG' has no output_gate",
        variant="NOG",
        gate_options={"output_gate": {"activation": "sigmoid"}},
    )


def test_niaf_candidate_activation_is_refused():
    _raises(
        "NIAF' fixes the candidate activation",
        variant="NIAF",
        gate_options={"candidate": {"activation": "relu"}},
    )


@pytest.mark.parametrize("variant,peepholes", [("CIFG", False), ("vanilla", True), ("FGR", False)])
def test_cudnn_and_keras_layout_are_refused_for_variants(variant, peepholes):
    with pytest.raises(ValueError, match=rf"use_cudnn=True.*variant='{variant}'"):
        klg.LSTM(4, variant=variant, peepholes=peepholes, use_cudnn=True)
    layer = klg.LSTM(4, variant=variant, peepholes=peepholes)
    layer.build((None, 5, 3))
    with pytest.raises(ValueError, match=f"variant='{variant}'"):
        layer.to_keras()
    with pytest.raises(ValueError, match=f"no place for variant '{variant}'"):
        klg.get_fused_weights(layer)
    with pytest.raises(ValueError, match=f"no place for variant '{variant}'"):
        klg.set_gates_from_fused(layer, np.zeros((3, 16)), np.zeros((4, 16)), np.zeros(16))
    with pytest.raises(ValueError, match=f"variant='{variant}'"):
        klg.to_torch_state_dict(layer)


def test_fgr_initial_state_needs_the_gate_carry():
    layer = klg.LSTM(4, variant="FGR")
    x = np.zeros((2, 3, 3), "float32")
    zeros = np.zeros((2, 4), "float32")
    with pytest.raises(ValueError, match=r"list of 3 tensors.*gates.*received 2"):
        layer(x, initial_state=[zeros, zeros])
    out = layer(x, initial_state=[zeros, zeros, np.zeros((2, 12), "float32")])
    assert tuple(out.shape) == (2, 4)
