"""klg.LSTM computes what keras.layers.LSTM computes: outputs, final states and
gradients (inputs and every weight), for every configuration of the layer.

Random weights (scale 0.5, so the gates are not saturated) are drawn for a
built ``keras.layers.LSTM`` and copied into klg with ``LSTM.from_keras`` or
``set_gates_from_fused``.  Gradients come from each backend's own autodiff
(``grads`` below); klg's per-gate gradients are concatenated in Keras's block
order i, f, c, o and compared with the gradient of Keras's fused weights.
"""

import inspect
import json
import os

import keras
import numpy as np
import pytest
from keras import ops
from numpy_reference import lstm_sequence, weights_from_keras_fused

import keras_lstm_gates as klg

ATOL = 1e-5
KERAS_ORDER = ("input_gate", "forget_gate", "candidate", "output_gate")
BACKEND = keras.backend.backend()

# Set KLG_PARITY_LOG=<file> to append the largest differences seen per test
# (one JSON line each); the report script reads it.
_LOG = os.environ.get("KLG_PARITY_LOG")


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def _record(what, diff):
    if _LOG:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(_LOG, "a") as f:
            f.write(
                json.dumps({"backend": BACKEND, "test": test, "what": what, "diff": diff}) + "\n"
            )


def assert_close(what, actual, expected, atol=ATOL):
    actual = to_numpy(actual).astype("float64")
    expected = to_numpy(expected).astype("float64")
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    _record(what, diff)
    assert diff <= atol, f"{what}: max abs difference {diff:.3g} > atol {atol:g}"


# -- building layers ---------------------------------------------------------


def random_keras_lstm(rng, units, input_dim, batch=None, scale=0.5, **kwargs):
    """A built keras.layers.LSTM with N(0, scale) weights."""
    ref = keras.layers.LSTM(units, **kwargs)
    ref.build((batch, None, input_dim))
    ref.set_weights([rng.normal(scale=scale, size=w.shape).astype("float32") for w in ref.weights])
    return ref


def copy_fused(ours, ref):
    """Copy a built Keras LSTM's fused weights into a built klg.LSTM."""
    klg.set_gates_from_fused(ours, *[to_numpy(w) for w in ref.cell.weights])


# -- gradients with each backend's autodiff ----------------------------------


def _loss(outputs):
    """A scalar whose gradient differs from entry to entry of every output."""
    total = 0.0
    for k, out in enumerate(keras.tree.flatten(outputs)):
        total = total + ops.sum(ops.sin(3.0 * ops.cast(out, "float32") + (k + 1.0)))
    return total


def grads(layer, x, initial_state=None, **kwargs):
    """Outputs and gradients of a fixed random projection of ``layer(x)``.

    Returns ``(outputs, {"x": dx, "initial_state": [dh0, dc0], id(var): dvar})``
    with numpy arrays; ``x`` is only differentiated when it is a float array.
    """
    variables = list(layer.trainable_variables)
    diff_x = np.issubdtype(np.asarray(x).dtype, np.floating)
    states = [] if initial_state is None else [np.asarray(s, "float32") for s in initial_state]

    def call(x_in, state_in):
        if states:
            kwargs["initial_state"] = list(state_in)
        return layer(x_in, **kwargs)

    if BACKEND == "tensorflow":
        import tensorflow as tf

        def run(x_t, s_t):
            with tf.GradientTape() as tape:
                tape.watch([x_t] + s_t)
                outputs = call(x_t, s_t)
                loss = _loss(outputs)
            sources = ([x_t] if diff_x else []) + s_t + [v.value for v in variables]
            return outputs, tape.gradient(loss, sources)

        if np.shape(x)[1] > 50:
            # Eager tf.while_loop steps are slow; tracing pays off only for
            # long sequences.
            run = tf.function(run)
        outputs, found = run(tf.constant(x), [tf.constant(s) for s in states])
    elif BACKEND == "jax":
        import jax

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def f(diff_in, fixed_x):
            x_in = diff_in[0][0] if diff_x else fixed_x
            state_in = diff_in[1]
            out, _ = layer.stateless_call(
                diff_in[2],
                non_trainable,
                x_in,
                **({**kwargs, "initial_state": list(state_in)} if states else kwargs),
            )
            return _loss(out), out

        diff_in = ([x] if diff_x else [], states, [v.value for v in variables])
        # One compiled program: op-by-op dispatch compiles every primitive.
        # (XLA's optimisation passes are skipped: they cost more than they save here.)
        options = {}
        if "compiler_options" in inspect.signature(jax.jit).parameters:  # jax 0.4.36 on
            options["compiler_options"] = {"xla_backend_optimization_level": 0}
        fn = jax.jit(jax.value_and_grad(f, has_aux=True), **options)
        (_, outputs), g = fn(diff_in, x)
        found = list(g[0]) + list(g[1]) + list(g[2])
    else:
        import torch

        x_t = torch.tensor(x, requires_grad=diff_x)
        s_t = [torch.tensor(s, requires_grad=True) for s in states]
        outputs = call(x_t, s_t)
        loss = _loss(outputs)
        sources = ([x_t] if diff_x else []) + s_t + [v.value for v in variables]
        found = torch.autograd.grad(loss, sources, allow_unused=True)
    found = [None if g is None else to_numpy(g) for g in found]
    result = {}
    if diff_x:
        result["x"] = found.pop(0)
    if states:
        result["initial_state"] = [found.pop(0) for _ in states]
    for v, g in zip(variables, found):
        result[id(v)] = np.zeros(v.shape, "float32") if g is None else g
    return keras.tree.map_structure(to_numpy, outputs), result


def lstm_pairs(ref, ours):
    """The (keras.layers.LSTM, klg.LSTM) pairs inside two matching layers."""
    if isinstance(ref, keras.layers.Bidirectional):
        return [(ref.forward_layer, ours.forward_layer), (ref.backward_layer, ours.backward_layer)]
    if isinstance(ref, keras.Model):
        refs = [layer for layer in ref.layers if isinstance(layer, keras.layers.LSTM)]
        found = [layer for layer in ours.layers if isinstance(layer, klg.LSTM)]
        return list(zip(refs, found))
    return [(ref, ours)]


def fused_weight_grads(layer, g):
    """klg per-gate gradients concatenated in Keras's fused layout."""
    gates = [layer.cell.gates[n] for n in KERAS_ORDER]
    out = [
        np.concatenate([g[id(gate.kernel)] for gate in gates], -1),
        np.concatenate([g[id(gate.recurrent_kernel)] for gate in gates], -1),
    ]
    if layer.cell.use_bias:
        out.append(np.concatenate([g[id(gate.bias)] for gate in gates], -1))
    return out


def check_parity(ref, ours, x, atol=ATOL, grad_atol=None, ref_kwargs=None, **kwargs):
    """Outputs, states and gradients of ``ours`` equal those of ``ref``.

    ``grad_atol`` is relative to the largest gradient entry when that exceeds 1
    (gradients sum over batch and time; float32 rounding grows with them).
    """
    grad_atol = atol if grad_atol is None else grad_atol
    out_ref, g_ref = grads(ref, x, **(kwargs if ref_kwargs is None else ref_kwargs))
    out_ours, g_ours = grads(ours, x, **kwargs)
    flat_ref, flat_ours = keras.tree.flatten(out_ref), keras.tree.flatten(out_ours)
    assert len(flat_ref) == len(flat_ours)
    for k, (a, b) in enumerate(zip(flat_ours, flat_ref)):
        assert_close(f"output[{k}]", a, b, atol)

    def grad_close(what, a, b):
        assert_close(what, a, b, grad_atol * max(1.0, float(np.max(np.abs(b)))))

    if "x" in g_ref:
        grad_close("grad x", g_ours["x"], g_ref["x"])
    for k, (a, b) in enumerate(
        zip(g_ours.get("initial_state", []), g_ref.get("initial_state", []))
    ):
        grad_close(f"grad initial_state[{k}]", a, b)
    for r, o in lstm_pairs(ref, ours):
        expected = [g_ref[id(w)] for w in r.cell.trainable_variables]
        for name, a, b in zip(
            ("kernel", "recurrent_kernel", "bias"), fused_weight_grads(o, g_ours), expected
        ):
            grad_close(f"grad {name}", a, b)
    # Any other weight (an Embedding below the LSTM) must agree too.
    lstm_vars = {id(w) for pair in lstm_pairs(ref, ours) for p in pair for w in p.weights}
    others_ref = [w for w in ref.trainable_variables if id(w) not in lstm_vars]
    others_ours = [w for w in ours.trainable_variables if id(w) not in lstm_vars]
    assert len(others_ref) == len(others_ours)
    for a, b in zip(others_ours, others_ref):
        grad_close(f"grad {b.path}", g_ours[id(a)], g_ref[id(b)])
    return out_ours


def make_pair(rng, units=5, input_dim=3, batch=None, **kwargs):
    ref = random_keras_lstm(rng, units, input_dim, batch=batch, **kwargs)
    return ref, klg.LSTM.from_keras(ref)


# -- the configurations --------------------------------------------------------


@pytest.mark.parametrize(
    "return_sequences, return_state",
    [(False, False), (True, False), (False, True)],
    ids=["last_output", "sequences", "last_output_and_state"],
)
def test_outputs_states_and_gradients(rng, return_sequences, return_state):
    ref, ours = make_pair(rng, return_sequences=return_sequences, return_state=return_state)
    x = rng.normal(size=(3, 6, 3)).astype("float32")
    out = check_parity(ref, ours, x)
    if return_state:
        last = out[0][:, -1] if return_sequences else out[0]
        np.testing.assert_array_equal(out[1], last)  # h is the last output


def test_set_gates_from_fused_gives_the_same_layer(rng):
    ref = random_keras_lstm(rng, 4, 3, return_sequences=True)
    ours = klg.LSTM(4, return_sequences=True)
    ours.build((None, None, 3))
    copy_fused(ours, ref)
    check_parity(ref, ours, rng.normal(size=(2, 5, 3)).astype("float32"))


def test_go_backwards(rng):
    # Outputs in processing order (reversed), as keras.layers.LSTM returns them.
    ref, ours = make_pair(rng, go_backwards=True, return_sequences=True, return_state=True)
    check_parity(ref, ours, rng.normal(size=(2, 6, 3)).astype("float32"))


def _padded_mask(lengths, steps, left):
    mask = np.zeros((len(lengths), steps), bool)
    for b, n in enumerate(lengths):
        if left:
            mask[b, steps - n :] = True
        else:
            mask[b, :n] = True
    return mask


@pytest.mark.parametrize("left", [False, True], ids=["right_padded", "left_padded"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_mask_argument(rng, left, go_backwards):
    ref, ours = make_pair(rng, return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = rng.normal(size=(3, 7, 3)).astype("float32")
    mask = _padded_mask([7, 4, 1], 7, left)
    check_parity(ref, ours, x, mask=mask)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_zero_output_for_mask(rng, return_sequences):
    ref, ours = make_pair(
        rng, return_sequences=return_sequences, return_state=True, zero_output_for_mask=True
    )
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    mask = _padded_mask([5, 2], 5, left=False)
    out, h, _ = check_parity(ref, ours, x, mask=mask)
    # Masked steps output zeros (the last output too, as in Keras); the state
    # is carried.
    assert np.all((out[1, 2:] if return_sequences else out[1]) == 0.0)
    assert np.all(h[1] != 0.0)


def _embedding_model(lstm, vocab=9, dim=3):
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(vocab, dim, mask_zero=True),
            lstm,
        ]
    )


@pytest.mark.parametrize("left", [False, True], ids=["right_padded", "left_padded"])
def test_mask_from_embedding_in_a_model(rng, left):
    tokens = rng.integers(1, 9, size=(3, 6)).astype("int32")
    tokens[~_padded_mask([6, 3, 2], 6, left)] = 0
    ref_model = _embedding_model(keras.layers.LSTM(4, return_sequences=True))
    ours_model = _embedding_model(klg.LSTM(4, return_sequences=True))
    ref_model.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref_model.weights]
    )
    ours_model.layers[0].set_weights(ref_model.layers[0].get_weights())
    copy_fused(ours_model.layers[1], ref_model.layers[1])
    check_parity(ref_model, ours_model, tokens)


def test_initial_state(rng):
    ref, ours = make_pair(rng, return_sequences=True, return_state=True)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    h0, c0 = rng.normal(size=(2, 2, 5)).astype("float32")
    check_parity(ref, ours, x, initial_state=[h0, c0])


def test_initial_state_with_right_padded_mask(rng):
    # Right padding with an initial state agrees on every backend.  (Left
    # padding with an initial state, where Keras's backends differ, is
    # compared with Keras in tests/core/test_dropin.py.)
    ref, ours = make_pair(rng, return_sequences=True, return_state=True)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    h0, c0 = rng.normal(size=(2, 2, 5)).astype("float32")
    check_parity(ref, ours, x, initial_state=[h0, c0], mask=_padded_mask([5, 3], 5, left=False))


def test_left_padding_with_initial_state_carries_h0(rng):
    # Checked against the numpy reference: the leading masked steps leave
    # (h, c) untouched and output the carried h0 on JAX's scan, zeros on the
    # other backends, as keras.layers.LSTM does on each.
    ref = random_keras_lstm(rng, 4, 3)
    ours = klg.LSTM.from_keras(ref, return_sequences=True, return_state=True)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    h0, c0 = rng.normal(size=(2, 2, 4)).astype("float32")
    mask = _padded_mask([5, 2], 5, left=True)
    out, h, c = ours(x, initial_state=[h0, c0], mask=mask)
    W, U, b = weights_from_keras_fused(*[to_numpy(w) for w in ref.weights])
    expected, h_ref, c_ref, _ = lstm_sequence(x, W, U, b, h0=h0, c0=c0, mask=mask)
    np.testing.assert_allclose(expected[1, :3], np.repeat(h0[1:2], 3, axis=0))
    if BACKEND != "jax":
        expected[1, :3] = 0.0
    assert_close("left padding + initial_state: outputs", out, expected)
    assert_close("left padding + initial_state: h", h, h_ref)
    assert_close("left padding + initial_state: c", c, c_ref)


def test_stateful_over_two_calls_then_reset(rng):
    batch = 2
    ref, ours = make_pair(rng, batch=batch, stateful=True, return_sequences=True)
    assert ours.stateful
    x1, x2 = rng.normal(size=(2, batch, 4, 3)).astype("float32")
    assert_close("stateful call 1", ours(x1), ref(x1))
    assert_close("state h after call 1", ours.states[0], ref.states[0])
    assert_close("state c after call 1", ours.states[1], ref.states[1])
    # The second call starts from the first call's state.  Its gradients are
    # compared with a plain Keras LSTM given that state as initial_state
    # (Keras's own stateful LSTM cannot be differentiated on torch: it
    # overwrites in place the state tensor autograd saved).
    plain = keras.layers.LSTM(5, return_sequences=True)
    plain.build((None, None, 3))
    plain.set_weights(ref.get_weights())
    state = [to_numpy(s) for s in ref.states]
    check_parity(plain, ours, x2, ref_kwargs={"initial_state": state})
    if BACKEND != "jax":  # on JAX grads() used stateless_call: states not advanced
        assert_close("state h after call 2", ours.states[0], plain(x2, initial_state=state)[:, -1])
    # The carried state equals running the concatenated sequence at once.
    whole = klg.LSTM.from_keras(ref, stateful=False, return_sequences=True)
    both = to_numpy(whole(np.concatenate([x1, x2], axis=1)))
    ours.reset_state()
    ours(x1)
    assert_close("stateful vs concatenated", ours(x2), both[:, 4:])
    ref.reset_state()
    ours.reset_state()
    assert np.all(to_numpy(ours.states[0]) == 0.0) and np.all(to_numpy(ours.states[1]) == 0.0)
    assert_close("after reset", ours(x2), ref(x2))
    assert_close("after reset vs fresh", ours.states[0], to_numpy(whole(x2))[:, -1])


def test_bidirectional(rng):
    ref = keras.layers.Bidirectional(
        keras.layers.LSTM(4, return_sequences=True), merge_mode="concat"
    )
    ours = keras.layers.Bidirectional(klg.LSTM(4, return_sequences=True), merge_mode="concat")
    ref.build((None, None, 3))
    ours.build((None, None, 3))
    for layer in (ref.forward_layer, ref.backward_layer):
        layer.set_weights(
            [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.weights]
        )
    copy_fused(ours.forward_layer, ref.forward_layer)
    copy_fused(ours.backward_layer, ref.backward_layer)
    assert ours.backward_layer.go_backwards and not ours.forward_layer.go_backwards
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    check_parity(ref, ours, x, mask=_padded_mask([5, 3], 5, left=False))


def test_unroll(rng):
    ref, ours = make_pair(rng, unroll=True, return_sequences=True, return_state=True)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    check_parity(ref, ours, x, mask=_padded_mask([5, 2], 5, left=False))


def test_use_bias_false(rng):
    ref, ours = make_pair(rng, use_bias=False, return_state=True)
    assert all(g.bias is None for g in ours.cell.gates.values())
    assert len(ours.weights) == 8
    check_parity(ref, ours, rng.normal(size=(2, 5, 3)).astype("float32"))


@pytest.mark.parametrize("unit_forget_bias", [True, False])
def test_unit_forget_bias(rng, unit_forget_bias):
    ours = klg.LSTM(3, unit_forget_bias=unit_forget_bias)
    ours.build((None, None, 2))
    expected_forget = np.ones(3) if unit_forget_bias else np.zeros(3)
    np.testing.assert_array_equal(to_numpy(ours.cell.forget_gate.bias), expected_forget)
    for name in ("input_gate", "candidate", "output_gate"):
        np.testing.assert_array_equal(to_numpy(ours.cell.gates[name].bias), np.zeros(3))
    # Keras's fused bias starts the same way.
    ref = keras.layers.LSTM(3, unit_forget_bias=unit_forget_bias)
    ref.build((None, None, 2))
    np.testing.assert_array_equal(klg.get_fused_weights(ours)[2], to_numpy(ref.cell.bias))
    # And the configuration carries over with from_keras.
    ref, ours = make_pair(rng, unit_forget_bias=unit_forget_bias)
    assert ours.unit_forget_bias is unit_forget_bias
    check_parity(ref, ours, rng.normal(size=(2, 4, 3)).astype("float32"))


@pytest.mark.parametrize("shape", [(1, 5, 3), (3, 1, 3)], ids=["batch_1", "sequence_length_1"])
def test_small_shapes(rng, shape):
    ref, ours = make_pair(rng, return_sequences=True, return_state=True)
    check_parity(ref, ours, rng.normal(size=shape).astype("float32"))


def test_long_sequence_t1000(rng):
    # One long sequence with tiny units: errors must not build up over time.
    ref, ours = make_pair(rng, units=2, input_dim=1, return_state=True)
    x = rng.normal(size=(1, 1000, 1)).astype("float32")
    check_parity(ref, ours, x)


@pytest.mark.parametrize(
    "policy, atol",
    # float16 keeps ~3 decimal digits, bfloat16 ~2: 1e-2 and 5e-2 absolute on
    # values in (-1, 1) and on the gradients of this small problem.
    [("mixed_float16", 1e-2), ("mixed_bfloat16", 5e-2)],
)
def test_mixed_precision(rng, policy, atol):
    ref = random_keras_lstm(rng, 4, 3, return_sequences=True, return_state=True, dtype=policy)
    ours = klg.LSTM.from_keras(ref)
    assert ours.dtype_policy.name == policy
    assert ours.cell.forget_gate.kernel.dtype == "float32"
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    out_ref = ref(x)
    out_ours = ours(x)
    for a, b in zip(out_ours, out_ref):
        assert keras.backend.standardize_dtype(a.dtype) == keras.backend.standardize_dtype(b.dtype)
    check_parity(ref, ours, x, atol=atol)
