"""The fused loops (loops.fused_sequence) and their hand-written backward
pass, against a step-by-step reference written from the LSTM equations with
keras.ops and differentiated by the backend's own autodiff; and the layer's
training step against keras.layers.LSTM's, compiled the way Keras compiles
``fit``.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg
from keras_lstm_gates import loops
from keras_lstm_gates.parts import PARTS

BACKEND = keras.backend.backend()
# Absolute on activations; gradients of this loss reach ~10, where float32
# rounding alone is ~1e-6 relative, so they also get a relative tolerance.
ATOL = 1e-5
RTOL = 1e-5


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def reference(x, w, b, u, h0, c0, mask=None):
    """The vanilla LSTM one step at a time (part blocks i, f, c, o); the
    part values are those each step computes, masked steps included."""
    units = u.shape[0]
    h, c = h0, c0
    hs, cs, acts = [], [], []
    for t in range(x.shape[0]):
        z = ops.matmul(x[t], w) + ops.matmul(h, u) + b
        i = ops.sigmoid(z[:, :units])
        f = ops.sigmoid(z[:, units : 2 * units])
        g = ops.tanh(z[:, 2 * units : 3 * units])
        o = ops.sigmoid(z[:, 3 * units :])
        c_new = f * c + i * g
        h_new = o * ops.tanh(c_new)
        act = ops.concatenate([i, f, g, o], axis=-1)
        if mask is None:
            h, c = h_new, c_new
        else:
            m = mask[t]
            h = ops.where(m, h_new, h)
            c = ops.where(m, c_new, c)
        hs.append(h)
        cs.append(c)
        acts.append(act)
    return ops.stack(hs), c, ops.stack(cs), ops.stack(acts)


def loss_of(outputs):
    """A scalar whose gradient differs from entry to entry of every output."""
    total = 0.0
    for k, out in enumerate(outputs):
        total = total + ops.sum(ops.sin(3.0 * out + (k + 1.0)))
    return total


def value_and_grads(fn, args):
    """``(outputs, gradients of loss_of(outputs) w.r.t. every arg)`` with
    the backend's autodiff."""
    if BACKEND == "jax":
        import jax

        def scalar(*a):
            out = fn(*a)
            return loss_of(out), out

        (_, out), grads = jax.value_and_grad(scalar, argnums=tuple(range(len(args))), has_aux=True)(
            *args
        )
        return out, grads
    if BACKEND == "tensorflow":
        import tensorflow as tf

        args = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = fn(*args)
            loss = loss_of(out)
        return out, tape.gradient(loss, args)
    import torch

    args = [torch.tensor(np.asarray(a), requires_grad=True) for a in args]
    out = fn(*args)
    grads = torch.autograd.grad(loss_of(out), args)
    return out, grads


def random_problem(rng, steps=6, batch=3, features=2, units=4):
    return [
        rng.normal(size=(steps, batch, features)).astype("float32"),
        rng.normal(scale=0.5, size=(features, 4 * units)).astype("float32"),
        rng.normal(scale=0.5, size=(4 * units,)).astype("float32"),
        rng.normal(scale=0.5, size=(units, 4 * units)).astype("float32"),
        rng.normal(scale=0.5, size=(batch, units)).astype("float32"),
        rng.normal(scale=0.5, size=(batch, units)).astype("float32"),
    ]


def by_gate(kernel, bias, recurrent_kernel):
    """Joined (..., 4 * units) arrays as the per-gate lists the loops take."""
    units = recurrent_kernel.shape[0]

    def parts(a):
        return [a[..., k * units : (k + 1) * units] for k in range(4)]

    return parts(kernel), parts(bias), parts(recurrent_kernel)


# The cell whose step the loops run: a plain cell's step reads no weight.
CELL = klg.LSTMCell(4)


def zero_where_masked(values, mask):
    """Part values at masked steps are those of a step not taken: the loops
    leave them to their caller, which zeroes them (keras_lstm_gates.sequence),
    and ignore their cotangents."""
    return values if mask is None else ops.where(mask, values, ops.zeros_like(values))


def kernel_on_joined(x, w, b, u, h0, c0, **kwargs):
    """``loops.fused_sequence`` with joined weights in, and time-major states
    and joined part values out, as the step-by-step reference has them
    (autodiff of the slicing joins the per-part gradients)."""
    out = loops.fused_sequence(CELL, x, *by_gate(w, b, u), h0, c0, **kwargs)
    if kwargs.get("return_sequences", True):
        out = (ops.transpose(out[0], (1, 0, 2)), *out[1:])
    if len(out) == 4:
        values = ops.concatenate(out[3], axis=-1)
        out = (*out[:3], zero_where_masked(values, kwargs.get("mask")))
    return out


@pytest.fixture(params=["joined", "per_gate"])
def weight_blocks(request, monkeypatch):
    """Both ways the loops multiply by the gates' weights: joined into one
    matmul (small layers) and one matmul per gate (large layers), on this
    test's small problem.  On JAX the first accumulates the weight gradients
    inside the backward loop, the second after it."""
    from keras_lstm_gates.loops import common

    blocks = 1 if request.param == "joined" else len(PARTS)
    monkeypatch.setattr(common, "block_count", lambda *args, **kwargs: blocks)
    if BACKEND == "tensorflow":
        from keras_lstm_gates.loops import tensorflow as tf_loops

        monkeypatch.setattr(tf_loops, "_LOOPS", {})
    return request.param


def assert_weight_gradients_match(ours, ours_grads, keras_grads):
    """``ours_grads`` (in the order of ``ours.trainable_variables``) against
    keras.layers.LSTM's (kernel, recurrent kernel, bias, gates joined)."""
    gates = [ours.cell.gates[n] for n in ("input_gate", "forget_gate", "candidate", "output_gate")]
    by_variable = dict(zip(map(id, ours.trainable_variables), ours_grads))
    for name, expected in zip(("kernel", "recurrent_kernel", "bias"), keras_grads):
        joined = np.concatenate([to_numpy(by_variable[id(getattr(g, name))]) for g in gates], -1)
        np.testing.assert_allclose(joined, to_numpy(expected), rtol=RTOL, atol=ATOL, err_msg=name)


def random_mask(rng, steps, batch):
    mask = rng.random((steps, batch, 1)) > 0.35
    mask[:2, 0] = False  # a left-padded sequence
    mask[-2:, 1] = False  # a right-padded one
    return mask


def last_only(outputs, sequences):
    """The reference's outputs as the kernel gives them: every step's ``h``
    with ``return_sequences``, else the last one."""
    return outputs if sequences else (outputs[0][-1], *outputs[1:])


@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("trace", [False, True], ids=["plain", "trace"])
@pytest.mark.parametrize("sequences", [True, False], ids=["sequences", "last"])
def test_kernel_matches_reference(rng, weight_blocks, masked, trace, sequences):
    args = random_problem(rng)
    mask = random_mask(rng, 6, 3) if masked else None
    mask_t = None if mask is None else ops.convert_to_tensor(mask)
    keep = 4 if trace else 2

    def ours(*a):
        out = kernel_on_joined(*a, mask=mask_t, return_gates=trace, return_sequences=sequences)
        return out[:keep]

    def ref(*a):
        out = reference(*a, mask=mask_t)
        out = (*out[:3], zero_where_masked(out[3], mask_t))
        return last_only(out[:keep], sequences)

    out, grads = value_and_grads(ours, args)
    out_ref, grads_ref = value_and_grads(ref, args)
    assert len(out) == keep
    for name, a, e in zip(("hs", "c_last", "cs", "acts"), out, out_ref):
        np.testing.assert_allclose(to_numpy(a), to_numpy(e), atol=ATOL, err_msg=name)
    names = ("x", "kernel", "bias", "recurrent_kernel", "h0", "c0")
    for name, a, e in zip(names, grads, grads_ref):
        np.testing.assert_allclose(
            to_numpy(a), to_numpy(e), rtol=RTOL, atol=ATOL, err_msg=f"d{name}"
        )


@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("sequences", [True, False], ids=["sequences", "last"])
def test_kernel_for_inference_matches_reference(rng, masked, sequences):
    # With no gradient to come (torch.no_grad, no tape) the loops keep only
    # what they return, in buffers they reuse step after step.
    import contextlib

    args = random_problem(rng, steps=7)
    mask = random_mask(rng, 7, 3) if masked else None
    mask_t = None if mask is None else ops.convert_to_tensor(mask)
    context = contextlib.nullcontext()
    if BACKEND == "torch":
        import torch

        context = torch.no_grad()
    with context:
        tensors = [ops.convert_to_tensor(a) for a in args]
        out = kernel_on_joined(*tensors, mask=mask_t, return_sequences=sequences)
    expected = last_only(reference(*args, mask=mask_t)[:2], sequences)
    assert len(out) == 2
    for name, a, e in zip(("h", "c_last"), out, expected):
        np.testing.assert_allclose(to_numpy(a), to_numpy(e), atol=ATOL, err_msg=name)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function and XLA are TensorFlow's")
@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("xla_forward", [True, False], ids=["xla_forward", "plain_forward"])
@pytest.mark.parametrize("masked", [True, False], ids=["mask", "no_mask"])
@pytest.mark.parametrize("sequences", [True, False], ids=["sequences", "last"])
def test_kernel_inside_tf_function(
    rng, monkeypatch, weight_blocks, jit_compile, xla_forward, masked, sequences
):
    import tensorflow as tf

    if not xla_forward:
        # Large layers run the forward loop without XLA; shrink the threshold
        # so that this small problem takes that branch too.
        from keras_lstm_gates.loops import tensorflow as tf_loops

        monkeypatch.setattr(tf_loops, "XLA_FORWARD_MAX_UNITS", 2)
        monkeypatch.setattr(tf_loops, "_LOOPS", {})
    args = [tf.constant(a) for a in random_problem(rng)]
    mask = tf.constant(random_mask(rng, 6, 3)) if masked else None

    # The loops are graph code: AutoGraph, which would rewrite their Python
    # control flow, is off, as in the tf.functions Keras and the loops make.
    @tf.function(jit_compile=jit_compile, autograph=False)
    def compiled(*a):
        with tf.GradientTape() as tape:
            tape.watch(a)
            out = kernel_on_joined(*a, mask=mask, return_sequences=sequences)
            loss = loss_of(out)
        return out, tape.gradient(loss, a)

    out, grads = compiled(*args)
    out_ref, grads_ref = value_and_grads(
        lambda *a: last_only(reference(*a, mask=mask)[:2], sequences), args
    )
    for a, e in zip(list(out) + list(grads), list(out_ref) + list(grads_ref)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(e), rtol=RTOL, atol=ATOL)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="GradientTape is TensorFlow's")
@pytest.mark.parametrize("sequences", [True, False], ids=["sequences", "last"])
def test_a_function_traced_with_no_tape_still_differentiates(rng, sequences):
    # Traced with no tape watching, the loop keeps nothing for a backward
    # pass; the same concrete function, called later under a tape, must
    # still give Keras's gradients (TensorFlow differentiates the loop).
    import tensorflow as tf

    x = tf.constant(rng.normal(size=(3, 6, 2)).astype("float32"))
    ref = keras.layers.LSTM(4, return_sequences=sequences)
    ref.build(x.shape)
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    ours = klg.LSTM.from_keras(ref)
    grads = []
    for layer in (ref, ours):
        call = tf.function(lambda xs, layer=layer: layer(xs))
        before = call(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = call(x)
            loss = loss_of([out])
        np.testing.assert_array_equal(to_numpy(out), to_numpy(before))
        grads.append(
            dict(
                zip(
                    ["x", *map(id, layer.trainable_variables)],
                    tape.gradient(loss, [x, *layer.trainable_variables]),
                )
            )
        )
    assert call.experimental_get_tracing_count() == 1, "the call under the tape traced anew"
    np.testing.assert_allclose(
        to_numpy(grads[1]["x"]), to_numpy(grads[0]["x"]), rtol=RTOL, atol=ATOL
    )
    gates = [ours.cell.gates[n] for n in ("input_gate", "forget_gate", "candidate", "output_gate")]
    for name, ref_var in zip(("kernel", "recurrent_kernel", "bias"), ref.trainable_variables):
        joined = np.concatenate([to_numpy(grads[1][id(getattr(g, name))]) for g in gates], -1)
        np.testing.assert_allclose(
            joined, to_numpy(grads[0][id(ref_var)]), rtol=RTOL, atol=ATOL, err_msg=name
        )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="GradientTape is TensorFlow's")
@pytest.mark.parametrize("persistent", [False, True], ids=["tape", "persistent-tape"])
@pytest.mark.parametrize("watch_x", [True, False], ids=["x-watched", "x-not-watched"])
@pytest.mark.parametrize(
    "where", ["eager", "traced-under-the-tape", "traced-before-the-tape", "tape-in-the-function"]
)
def test_gradients_under_any_tape(rng, watch_x, where, persistent):
    # However the call is traced, under whichever tape: the sequence's
    # gradient where the tape watches it (a tf.function traced under a tape
    # sees its input as an unwatched placeholder, so no choice may rest on
    # that), and the weights' gradients, both Keras's.  A persistent tape
    # asks a function traced under it for the loop's intermediates.
    import tensorflow as tf

    x = tf.constant(rng.normal(size=(3, 6, 2)).astype("float32"))
    ref = keras.layers.LSTM(4, return_sequences=True)
    ref.build(x.shape)
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    ours = klg.LSTM.from_keras(ref)

    def gradients(call, variables, xs):
        with tf.GradientTape(persistent=persistent) as tape:
            if watch_x:
                tape.watch(xs)
            loss = loss_of([call(xs)])
        return tape.gradient(loss, [xs, *variables])

    def training_step(layer, variables):
        return lambda xs: gradients(layer, variables, xs)

    grads = []
    for layer in (ref, ours):
        variables = layer.trainable_variables
        if where == "tape-in-the-function":  # a custom training step (a GAN's)
            grads.append(tf.function(training_step(layer, variables))(x))
            continue
        call = layer if where == "eager" else tf.function(lambda xs, layer=layer: layer(xs))
        if where == "traced-before-the-tape":
            call(x)
        grads.append(gradients(call, variables, x))
    if watch_x:
        np.testing.assert_allclose(
            to_numpy(grads[1][0]), to_numpy(grads[0][0]), rtol=RTOL, atol=ATOL
        )
    else:
        assert grads[0][0] is None and grads[1][0] is None
    assert_weight_gradients_match(ours, grads[1][1:], grads[0][1:])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="GradientTape is TensorFlow's")
@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf.function"])
def test_gradient_penalty_matches_keras(rng, traced):
    # A gradient of a gradient (a WGAN-GP penalty): tapes inside tapes, which
    # the plain loops serve; every weight's gradient against Keras's.
    import tensorflow as tf

    x = tf.constant(rng.normal(size=(3, 6, 2)).astype("float32"))
    ref = keras.layers.LSTM(4)
    ref.build(x.shape)
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    ours = klg.LSTM.from_keras(ref)

    def penalty_and_gradients(layer):
        def run(xs):
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    inner.watch(xs)
                    y = tf.reduce_sum(tf.square(layer(xs)))
                penalty = tf.reduce_sum(tf.square(inner.gradient(y, xs)))
            return penalty, outer.gradient(penalty, layer.trainable_variables)

        return tf.function(run)(x) if traced else run(x)

    (p_ref, g_ref), (p_ours, g_ours) = map(penalty_and_gradients, (ref, ours))
    np.testing.assert_allclose(to_numpy(p_ours), to_numpy(p_ref), rtol=RTOL, atol=ATOL)
    assert_weight_gradients_match(ours, g_ours, g_ref)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="the TensorFlow test is above")
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_gradient_penalty_matches_keras_on_jax_and_torch(rng, masked):
    # A gradient of a gradient through the hand-written backward pass: JAX
    # differentiates the custom VJP's backward loop, PyTorch's autograd
    # Function differentiates a plain forward loop; both against Keras's.
    x = rng.normal(size=(3, 6, 2)).astype("float32")
    mask = np.ones((3, 6), bool)
    mask[0, 4:] = False
    mask[2, 2:] = False
    ref = keras.layers.LSTM(4)
    ref.build(x.shape)
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ref.weights])
    ours = klg.LSTM.from_keras(ref)
    kwargs = {"mask": mask} if masked else {}

    def penalty_and_gradients(layer):
        if BACKEND == "jax":
            import jax
            import jax.numpy as jnp

            trainable = [v.value for v in layer.trainable_variables]
            other = [v.value for v in layer.non_trainable_variables]

            def output(tv, xs):
                out = layer.stateless_call(tv, other, xs, **kwargs)[0]
                return jnp.sum(jnp.square(out))

            def penalty(tv):
                return jnp.sum(jnp.square(jax.grad(output, argnums=1)(tv, jnp.asarray(x))))

            return penalty(trainable), jax.grad(penalty)(trainable)
        import torch

        xs = torch.tensor(x, requires_grad=True)
        y = torch.sum(torch.square(layer(xs, **kwargs)))
        (dx,) = torch.autograd.grad(y, xs, create_graph=True)
        penalty = torch.sum(torch.square(dx))
        weights = [v.value for v in layer.trainable_variables]
        return penalty, torch.autograd.grad(penalty, weights)

    (p_ref, g_ref), (p_ours, g_ours) = map(penalty_and_gradients, (ref, ours))
    np.testing.assert_allclose(to_numpy(p_ours), to_numpy(p_ref), rtol=RTOL, atol=ATOL)
    assert_weight_gradients_match(ours, g_ours, g_ref)


def test_plain_configuration_takes_the_fused_loop(monkeypatch, rng):
    calls = []
    original = loops.fused_sequence

    def counting(*args, **kwargs):
        calls.append(args[8])  # return_gates
        return original(*args, **kwargs)

    monkeypatch.setattr(loops, "fused_sequence", counting)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    klg.LSTM(4)(x)
    klg.LSTM(4, return_gates=True)(x)
    klg.LSTM(4, use_bias=False)(x)
    # On PyTorch the plain LSTM runs PyTorch's own kernel unless the call
    # records the gates.
    expected = [True] if BACKEND == "torch" else [False, True, False]
    assert calls == expected
    for config in (
        {"recurrent_activation": "hard_sigmoid"},
        {"variant": "CIFG"},
        {"peepholes": True},
        {"unroll": True},
        {"gate_options": {"candidate": {"activation": "relu"}}},
    ):
        klg.LSTM(4, **config)(x)
    klg.LSTM(4, recurrent_dropout=0.5)(x, training=True)
    assert calls == expected, "a non-plain configuration took the fused loop"


def test_plain_lstm_reason():
    assert klg.LSTMCell(3).plain_lstm_reason() is None
    assert klg.LSTMCell(3, variant="NP").plain_lstm_reason() is None
    for kwargs in (
        {"activation": "relu"},
        {"variant": "NOG"},
        {"variant": "FGR"},
        {"peepholes": True},
        {"gate_options": {"forget_gate": {"activation": "hard_sigmoid"}}},
    ):
        assert klg.LSTMCell(3, **kwargs).plain_lstm_reason() is not None, kwargs


def _one_sgd_step(model, x, y, jit_compile):
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse", jit_compile=jit_compile)
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    return model


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "jit"])
def test_training_step_matches_keras(rng, jit_compile):
    if jit_compile and BACKEND == "torch":
        pytest.skip("jit_compile on torch means torch.compile; see test_paths")
    x = rng.normal(size=(4, 7, 3)).astype("float32")
    y = rng.normal(size=(4, 2)).astype("float32")
    ref_layer = keras.layers.LSTM(5)
    ref = keras.Sequential([keras.Input((None, 3)), ref_layer, keras.layers.Dense(2)])
    ours_layer = klg.LSTM(5)
    ours = keras.Sequential([keras.Input((None, 3)), ours_layer, keras.layers.Dense(2)])
    ours.layers[-1].set_weights(ref.layers[-1].get_weights())
    klg.set_gates_from_fused(ours_layer, *ref_layer.get_weights())
    _one_sgd_step(ref, x, y, jit_compile)
    _one_sgd_step(ours, x, y, jit_compile)
    np.testing.assert_allclose(
        np.concatenate([w.ravel() for w in klg.get_fused_weights(ours_layer)]),
        np.concatenate([w.ravel() for w in ref_layer.get_weights()]),
        atol=ATOL,
    )
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(ref(x)), atol=ATOL)


def test_scan_collects_every_output():
    def body(carry, x):
        total = carry[0] + x
        return [total], [total, 2.0 * total]

    final, (sums, doubled) = loops.scan(body, [ops.zeros((2,))], ops.ones((4, 2)), num_ys=2)
    np.testing.assert_allclose(to_numpy(sums)[:, 0], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(to_numpy(doubled)[:, 1], [2.0, 4.0, 6.0, 8.0])
    np.testing.assert_allclose(to_numpy(final[0]), [4.0, 4.0])


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's own LSTM kernel")
def test_torch_kernel_takes_unmasked_and_right_padded_calls(monkeypatch, rng):
    from keras_lstm_gates.loops import torch as torch_loops

    calls = []
    original = torch_loops.native_sequence

    def counting(*args, **kwargs):
        calls.append(args[6] is not None)  # packed: a right-padded mask
        return original(*args, **kwargs)

    monkeypatch.setattr(torch_loops, "native_sequence", counting)
    x = rng.normal(size=(3, 6, 2)).astype("float32")
    right = np.ones((3, 6), bool)
    right[0, 4:] = False
    holes = right.copy()
    holes[1, 2] = False
    layer = klg.LSTM(4, return_sequences=True)
    layer(x)
    layer(x, mask=right)
    assert calls == [False, True]
    layer(x, mask=holes)  # a hole: the fused loop
    klg.LSTM(4, go_backwards=True)(x, mask=right)  # left-padded as read: the fused loop
    klg.LSTM(4, recurrent_dropout=0.3)(x, training=True)  # a mask per step: the fused loop
    assert calls == [False, True]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="Keras retraces for new lengths on TensorFlow")
def test_a_stream_of_lengths_trains_as_keras(rng, monkeypatch):
    # Keras traces its train and predict functions with an unknown length
    # once lengths vary; klg's loop is then the plain one, whose graph
    # serves every length (XLA would compile once per length).  Losses and
    # predictions stay Keras's.
    from keras_lstm_gates.loops import tensorflow as tf_loops

    traced = []
    build = tf_loops._loops

    def recording(cell, units, masked, return_gates, return_sequences, jit):
        traced.append(jit)
        return build(cell, units, masked, return_gates, return_sequences, jit)

    monkeypatch.setattr(tf_loops, "_loops", recording)
    inputs = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(50, 6, mask_zero=True)(inputs)
    hidden = keras.layers.Bidirectional(keras.layers.LSTM(5, return_sequences=True))(hidden)
    reference = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.LSTM(3)(hidden)))
    ours = klg.convert(reference)
    for model in (reference, ours):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    for steps in (5, 9, 23, 17, 40, 3):
        x = rng.integers(1, 50, size=(4, steps))
        x[0, -2:] = 0  # right padding, masked
        y = rng.normal(size=(4, 1)).astype("float32")
        losses = [float(m.train_on_batch(x, y)) for m in (reference, ours)]
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5, err_msg=f"loss, {steps} steps")
        np.testing.assert_allclose(
            ours.predict(x, verbose=0), reference.predict(x, verbose=0), atol=ATOL
        )
    # Traced for known lengths first (XLA), then for an unknown one (plain).
    assert traced[0] is True and traced[-1] is False, traced
