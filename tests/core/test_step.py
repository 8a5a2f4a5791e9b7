"""The cell's one step and its hand-written derivative.

``LSTMCell.step_derivatives`` and ``LSTMCell.step_backward`` are the
derivative of ``LSTMCell.step`` written by hand (the fused loops of every
backend run them); here they are checked against the backend's own autodiff
of ``LSTMCell.step``, at one step and at many steps at once (the PyTorch loop
takes the factors of every step in one go).
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg
from keras_lstm_gates import parts

BACKEND = keras.backend.backend()


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def vjp_of_step(cell, z, c_prev, dh, dc):
    """The cotangents of ``z`` and ``c_prev`` for cotangents ``dh``, ``dc``
    of ``(h, c) = cell.step(z, c_prev)``, by the backend's autodiff."""

    dh, dc = ops.convert_to_tensor(dh), ops.convert_to_tensor(dc)

    def scalar(z, c_prev):
        h, c, _ = cell.step(z, c_prev)
        return ops.sum(h * dh) + ops.sum(c * dc)

    if BACKEND == "jax":
        import jax

        return jax.grad(scalar, argnums=(0, 1))(z, c_prev)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        z, c_prev = tf.constant(z), tf.constant(c_prev)
        with tf.GradientTape() as tape:
            tape.watch([z, c_prev])
            total = scalar(z, c_prev)
        return tape.gradient(total, [z, c_prev])
    import torch

    z = torch.tensor(z, requires_grad=True)
    c_prev = torch.tensor(c_prev, requires_grad=True)
    return torch.autograd.grad(scalar(z, c_prev), [z, c_prev])


@pytest.mark.parametrize("leading", [(3,), (5, 3)], ids=["one_step", "every_step_at_once"])
def test_hand_written_backward_is_the_autodiff_of_step(rng, leading):
    units = 4
    cell = klg.LSTMCell(units)
    cell.build((None, 2))
    z = rng.normal(scale=2.0, size=(*leading, 4 * units)).astype("float32")
    c_prev, dh, dc = (rng.normal(size=(*leading, units)).astype("float32") for _ in range(3))
    expected_dz, expected_dc = vjp_of_step(cell, z, c_prev, dh, dc)

    tensors = [ops.convert_to_tensor(a) for a in (z, c_prev, dh, dc)]
    h, c, values = cell.step(tensors[0], tensors[1])
    factors = cell.step_derivatives(values, c, tensors[1])
    dz, dc_prev = cell.step_backward(tensors[2], tensors[3], factors)
    assert list(dz) == list(parts.PARTS)
    np.testing.assert_allclose(
        to_numpy(parts.join([dz[n] for n in parts.PARTS])), to_numpy(expected_dz), atol=1e-6
    )
    np.testing.assert_allclose(to_numpy(dc_prev), to_numpy(expected_dc), atol=1e-6)


def test_step_is_the_equations(rng):
    """``step`` on joined pre-activations, against the equations in numpy."""
    units = 3
    cell = klg.LSTMCell(units)
    cell.build((None, 2))
    z = rng.normal(size=(2, 4 * units)).astype("float32")
    c_prev = rng.normal(size=(2, units)).astype("float32")
    h, c, values = cell.step(ops.convert_to_tensor(z), ops.convert_to_tensor(c_prev))

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    zi, zf, zc, zo = np.split(z.astype("float64"), 4, axis=-1)
    i, f, g, o = sigmoid(zi), sigmoid(zf), np.tanh(zc), sigmoid(zo)
    c_ref = f * c_prev + i * g
    np.testing.assert_allclose(to_numpy(c), c_ref, atol=1e-6)
    np.testing.assert_allclose(to_numpy(h), o * np.tanh(c_ref), atol=1e-6)
    for name, ref in zip(parts.PARTS, (i, f, g, o)):
        np.testing.assert_allclose(to_numpy(values[name]), ref, atol=1e-6, err_msg=name)


def test_derivatives_are_refused_where_no_hand_written_one_exists():
    cell = klg.LSTMCell(3, recurrent_activation="hard_sigmoid")
    assert cell.plain_lstm_reason() is not None
    cell.build((None, 2))
    for name in ("input_gate", "forget_gate", "output_gate"):
        assert cell.gates[name].derivative(ops.zeros((1, 3))) is None, name
    peepholes = klg.LSTMCell(3, peepholes=True)
    peepholes.build((None, 2))
    assert peepholes.forget_gate.derivative(ops.zeros((1, 3))) is None
