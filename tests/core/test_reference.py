"""klg.LSTM agrees with the independent numpy LSTM of tests/numpy_reference.py
(written from the equations, in float64) on shapes, masks and options chosen
by hypothesis."""

import os

import keras
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops
from numpy_reference import lstm_sequence, weights_from_keras_fused

import keras_lstm_gates as klg

ATOL = 1e-5
# 15 examples keep CI fast; raise it for a thorough local search.
EXAMPLES = int(os.environ.get("KLG_HYPOTHESIS_EXAMPLES", "15"))


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


@st.composite
def configurations(draw):
    batch = draw(st.integers(1, 3))
    steps = draw(st.integers(1, 6))
    mask_kind = draw(st.sampled_from(["none", "random", "right_padded", "left_padded"]))
    return {
        "batch": batch,
        "steps": steps,
        "input_dim": draw(st.integers(1, 4)),
        "units": draw(st.integers(1, 5)),
        "mask_kind": mask_kind,
        "go_backwards": draw(st.booleans()),
        "return_sequences": draw(st.booleans()),
        "use_bias": draw(st.booleans()),
        "zero_output_for_mask": draw(st.booleans()),
        "initial_state": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def make_mask(rng, kind, batch, steps):
    if kind == "none":
        return None
    if kind == "random":
        return rng.random((batch, steps)) < 0.7
    lengths = rng.integers(0, steps + 1, size=batch)
    mask = np.arange(steps)[None, :] < lengths[:, None]
    return mask[:, ::-1].copy() if kind == "left_padded" else mask


@settings(max_examples=EXAMPLES, deadline=None)
@given(configurations())
def test_agrees_with_numpy_reference(cfg):
    rng = np.random.default_rng(cfg["seed"])
    batch, steps, units = cfg["batch"], cfg["steps"], cfg["units"]
    layer = klg.LSTM(
        units,
        use_bias=cfg["use_bias"],
        go_backwards=cfg["go_backwards"],
        return_sequences=cfg["return_sequences"],
        zero_output_for_mask=cfg["zero_output_for_mask"],
        return_state=True,
    )
    layer.build((None, None, cfg["input_dim"]))
    fused = [
        rng.normal(scale=0.5, size=w.shape).astype("float32") for w in klg.get_fused_weights(layer)
    ]
    klg.set_gates_from_fused(layer, *fused)
    x = rng.normal(size=(batch, steps, cfg["input_dim"])).astype("float32")
    mask = make_mask(rng, cfg["mask_kind"], batch, steps)
    kwargs = {} if mask is None else {"mask": mask}
    h0 = c0 = None
    if cfg["initial_state"]:
        h0, c0 = rng.normal(size=(2, batch, units)).astype("float32")
        kwargs["initial_state"] = [h0, c0]

    out, h, c = layer(x, **kwargs)

    W, U, b = weights_from_keras_fused(*fused)
    outputs, h_ref, c_ref, _ = lstm_sequence(
        x,
        W,
        U,
        b if cfg["use_bias"] else None,
        h0=h0,
        c0=c0,
        mask=mask,
        go_backwards=cfg["go_backwards"],
        zero_output_for_mask=cfg["zero_output_for_mask"],
        # What keras.layers.LSTM outputs before a row's first unmasked step.
        first_output="carried" if keras.backend.backend() == "jax" else "zeros",
    )
    expected = outputs if cfg["return_sequences"] else outputs[:, -1]
    np.testing.assert_allclose(to_numpy(out), expected, atol=ATOL)
    np.testing.assert_allclose(to_numpy(h), h_ref, atol=ATOL)
    np.testing.assert_allclose(to_numpy(c), c_ref, atol=ATOL)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
