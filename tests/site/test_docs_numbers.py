"""Every number the documentation states is recomputed from klg and compared
with the page.

Pages mark a checked number as ``[[key=value]]`` in their Markdown (the build
hook prints just the value). ``computed()`` below computes each key with klg
and Keras; a key ending in ``.again`` repeats the key before it. A shown value
with decimals must match to half a unit in its last place; a whole number
must match exactly. The notation concordance's slice table is checked by
applying its slices to ``keras.layers.LSTM`` and ``torch.nn.LSTM`` weights,
and the error messages quoted on the sigmoid-versus-softmax page are compared
with the ones klg raises.
"""

from __future__ import annotations

import re
from functools import lru_cache

import keras
import numpy as np
import pytest
import sitebuild

import keras_lstm_gates as klg

EXPLANATIONS = sitebuild.DOCS / "explanations"


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


def _sigmoid64(z):
    return float(_np(keras.activations.sigmoid(keras.ops.convert_to_tensor([z], "float64")))[0])


def _key(z):
    return f"m{-z:g}" if z < 0 else f"{z:g}"


def _sigmoid_table():
    values = {}
    for z in (-10, -5, -2, -1, 0, 1, 2, 5, 10):
        s = _sigmoid64(float(z))
        hard = float(_np(keras.activations.hard_sigmoid(np.array([z], "float32")))[0])
        values[f"sigmoid.{_key(z)}"] = s
        values[f"sigmoid.{_key(z)}.slope"] = s * (1.0 - s)
        values[f"sigmoid.{_key(z)}.hard"] = hard
    values["sigmoid.m10.pct"] = 100.0 * values["sigmoid.m10"]
    return values


WORKED_WEIGHTS = {  # (kernel, recurrent_kernel, bias), as on the worked-example page
    "forget_gate": (1.63, 2.70, 1.62),  # source 003's forget gate
    "input_gate": (1.65, 2.00, 0.62),
    "candidate": (0.94, 1.41, -0.32),
    "output_gate": (-0.19, 4.38, 0.59),
}
WORKED_H, WORKED_C = 1.0, 2.0


def _set(gate, weights):
    kernel, recurrent, bias = weights
    gate.kernel.assign([[kernel]])
    gate.recurrent_kernel.assign([[recurrent]])
    gate.bias.assign([bias])


def _worked_example():
    values = {}
    gate = klg.ForgetGate(1)
    gate.build((None, 1))
    _set(gate, WORKED_WEIGHTS["forget_gate"])
    h_prev = np.array([[WORKED_H]], "float32")
    for x in (1.0, 0.0, -1.0, -5.0, -10.0):
        x_t = np.array([[x]], "float32")
        f = float(_np(gate(x_t, h_prev))[0, 0])
        key = f"worked.x{_key(x)}"
        values[f"{key}.z"] = float(_np(gate.preactivation(x_t, h_prev))[0, 0])
        values[f"{key}.f"] = f
        values[f"{key}.pct"] = 100.0 * f
        values[f"{key}.kept"] = f * WORKED_C

    cell = klg.LSTMCell(1)
    cell.build((None, 1))
    for name, weights in WORKED_WEIGHTS.items():
        _set(cell.gates[name], weights)
    states = [np.array([[WORKED_H]], "float32"), np.array([[WORKED_C]], "float32")]
    for x in (1.0, -10.0):
        x_t = np.array([[x]], "float32")
        h, (_, c) = cell(x_t, states)  # the fused step
        h_parts, (_, c_parts), parts = cell.call_per_gate(x_t, states)
        np.testing.assert_allclose(_np(c), _np(c_parts), rtol=1e-6)
        key = f"worked.cell.x{_key(x)}"
        for name, short in (("forget_gate", "f"), ("input_gate", "i"), ("candidate", "g")):
            values[f"{key}.{short}"] = float(_np(parts[name])[0, 0])
        values[f"{key}.o"] = float(_np(parts["output_gate"])[0, 0])
        values[f"{key}.c"] = float(_np(c)[0, 0])
        values[f"{key}.h"] = float(_np(h)[0, 0])
    # The pre-activations the source series computes for its next stage, at x = 1.
    x_1 = np.array([[1.0]], "float32")
    for name, short in (("input_gate", "zi"), ("candidate", "zc")):
        z = cell.gates[name].preactivation(x_1, states[0])
        values[f"worked.cell.x1.{short}"] = float(_np(z)[0, 0])
    return values


def _memory_gradient(forget_bias, steps=10):
    """f and dC_T/dC_0 of a one-unit klg.LSTM whose gates read nothing."""
    import tensorflow as tf

    layer = klg.LSTM(
        1,
        return_state=True,
        return_gates=True,
        forget_bias=forget_bias,
        kernel_initializer="zeros",
        recurrent_initializer="zeros",
    )
    x = np.ones((1, steps, 1), "float32")
    c0 = tf.ones((1, 1))
    with tf.GradientTape() as tape:
        tape.watch(c0)
        _, _, c_last, gates = layer(x, initial_state=[tf.zeros((1, 1)), c0])
    grad = float(tape.gradient(c_last, c0)[0, 0])
    f = _np(gates["forget_gate"])[0, :, 0]
    return float(f[0]), grad, float(np.prod(f.astype("float64")))


def _gradient_table():
    values = {}
    for b in (5, 2, 0, -2, -5):
        f, grad, product = _memory_gradient(float(b))
        values[f"grad.b{_key(b)}.f"] = f
        values[f"grad.b{_key(b)}.grad"] = grad
        values[f"grad.b{_key(b)}.pow"] = product
    values["grad.b5.pct"] = 100.0 * values["grad.b5.grad"]
    return values


def _activations_table():
    values = {}
    for name, z in (("same", [3.0, 3.0, 3.0]), ("mixed", [3.0, -3.0, 0.0])):
        z = np.array([z], "float32")
        sig = _np(keras.activations.sigmoid(z))[0]
        soft = _np(keras.activations.softmax(z))[0]
        for k in range(3):
            suffix = "" if k == 0 else str(k)
            values[f"act.{name}.sig{suffix}"] = float(sig[k])
            values[f"act.{name}.soft{suffix}"] = float(soft[k])
    return values


def _why_gates():
    """The home page's opening: how much of the gradient reaches 50 steps back
    in a plain RNN (recurrent weight 0.9) and along an LSTM's memory (forget
    bias 5)."""
    import tensorflow as tf

    rnn = keras.layers.SimpleRNN(1, use_bias=False)
    rnn.build((None, 50, 1))
    rnn.cell.kernel.assign([[0.0]])
    rnn.cell.recurrent_kernel.assign([[0.9]])
    h0 = tf.fill((1, 1), 1e-6)
    with tf.GradientTape() as tape:
        tape.watch(h0)
        h_last = rnn(tf.zeros((1, 50, 1)), initial_state=[h0])
    return {
        "why.rnn50": float(tape.gradient(h_last, h0)[0, 0]),
        "why.lstm50": _memory_gradient(5.0, steps=50)[1],
    }


@lru_cache(maxsize=1)
def computed() -> dict[str, float]:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the documentation's numbers are checked with KERAS_BACKEND=tensorflow")
    values = {}
    for table in (_sigmoid_table, _worked_example, _gradient_table, _activations_table, _why_gates):
        values.update(table())
    return values


def _matches(shown: str, value: float) -> bool:
    text = shown.rstrip("%")
    number = float(text)
    mantissa = text.lower().split("e")[0]
    if "." not in mantissa:  # a whole number claims exactness
        return abs(value - number) <= 1e-6 * max(1.0, abs(number))
    decimals = len(mantissa.split(".")[1])
    exponent = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    unit = 10.0 ** (exponent - decimals)
    return abs(value - number) <= 0.5 * unit * (1 + 1e-9) + 1e-15


def test_matching_rule_can_fail():
    assert _matches("0.9959", 0.99593)
    assert not _matches("0.9960", 0.99593)
    assert _matches("5.79e-10", 5.7925e-10) and not _matches("5.80e-10", 5.7925e-10)
    assert _matches("0.00167%", 0.00167014) and not _matches("0.0017%", 0.00162)
    assert _matches("-11", -11.0) and not _matches("0", 0.4)


STATED = [
    (sitebuild.page_id(page), key, shown)
    for page in sitebuild.pages()
    for key, shown in sitebuild.numbers(page)
]
PAGES_WITH_NUMBERS = sorted({page for page, _, _ in STATED})


def test_pages_state_numbers():
    assert {
        "equations/sigmoid.md",
        "explanations/forgetting-a-worked-example.md",
        "explanations/what-the-forget-gate-forgets.md",
        "explanations/why-sigmoid-not-softmax.md",
    } <= set(PAGES_WITH_NUMBERS), PAGES_WITH_NUMBERS


@pytest.mark.parametrize("page", PAGES_WITH_NUMBERS)
def test_stated_numbers(page):
    values = computed()
    wrong = []
    for name, key, shown in STATED:
        if name != page:
            continue
        base = key.removesuffix(".again")
        if base not in values:
            wrong.append(f"[[{key}={shown}]]: no computation; add one to {__file__}")
        elif not _matches(shown, values[base]):
            wrong.append(f"[[{key}={shown}]] but klg computes {values[base]!r}")
    assert not wrong, f"{page}:\n  " + "\n  ".join(wrong)


def test_every_computed_number_is_on_a_page():
    stated = {key.removesuffix(".again") for _, key, _ in STATED}
    unused = sorted(set(computed()) - stated)
    assert not unused, f"computed but stated on no page (stale?): {unused}"


def test_the_minus_ten_example_forgets():
    """The claim of the worked example, not just its digits."""
    values = computed()
    assert values["worked.xm10.f"] < 1e-4 < 0.99 < values["worked.x1.f"]
    assert (
        abs(
            values["worked.cell.xm10.c"]
            - values["worked.cell.xm10.i"] * values["worked.cell.xm10.g"]
        )
        < 1e-4
    )


# -- the error messages quoted on the sigmoid-versus-softmax page ----------


@pytest.mark.parametrize("activation", ["softmax", "tanh", "relu"])
def test_quoted_error_is_klgs(activation):
    with pytest.raises(ValueError) as raised:
        klg.check_gate_activation(activation, "forget_gate")
    text = (EXPLANATIONS / "why-sigmoid-not-softmax.md").read_text(encoding="utf-8")
    assert f"ValueError: {raised.value}" in text, (
        f"the page must quote klg's current message for {activation!r}:\n{raised.value}"
    )


# -- the slices of the notation concordance ------------------------------------


_KLG = re.compile(r"`layer\.cell\.(\w+?)\.(kernel|recurrent_kernel|bias)`")
_KERAS = re.compile(r"`(kernel|recurrent_kernel)\[:, (\w*):(\w*)\]`|`bias\[(\w*):(\w*)\]`")
_TORCH = re.compile(
    r"`(weight_ih_l0|weight_hh_l0)\[(\w*):(\w*)\]`"
    r"|`bias_ih_l0\[(\w*):(\w*)\] \+ bias_hh_l0\[(\w*):(\w*)\]`"
)


def _concordance_rows():
    """{(part, weight): (keras (lo, hi), torch (lo, hi))} from the table."""
    text = (sitebuild.DOCS / "notation.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        klg_ref, keras_ref, torch_ref = _KLG.search(line), _KERAS.search(line), _TORCH.search(line)
        if not (klg_ref and keras_ref and torch_ref):
            continue
        part, weight = klg_ref.groups()
        if weight == "bias":
            assert keras_ref.group(4) is not None, line
            keras_slice = keras_ref.group(4, 5)
            assert torch_ref.group(4, 5) == torch_ref.group(6, 7), line
            torch_slice = torch_ref.group(4, 5)
        else:
            assert keras_ref.group(1) == weight, line
            keras_slice = keras_ref.group(2, 3)
            expected = {"kernel": "weight_ih_l0", "recurrent_kernel": "weight_hh_l0"}[weight]
            assert torch_ref.group(1) == expected, line
            torch_slice = torch_ref.group(2, 3)
        rows[(part, weight)] = (keras_slice, torch_slice)
    return rows


def _bound(text: str, units: int) -> int:
    if text == "H":
        return units
    if text.endswith("H"):
        return int(text[:-1]) * units
    return int(text)


def _span(bounds, units):
    return slice(_bound(bounds[0], units), _bound(bounds[1], units))


PARTS = ("input_gate", "forget_gate", "candidate", "output_gate")
WEIGHTS = ("kernel", "recurrent_kernel", "bias")


def test_concordance_lists_every_weight_of_every_part():
    assert set(_concordance_rows()) == {(p, w) for p in PARTS for w in WEIGHTS}


def test_concordance_keras_slices(rng):
    units, features = 3, 2
    rows = _concordance_rows()
    reference = keras.layers.LSTM(units, return_sequences=True)
    x = rng.normal(size=(2, 5, features)).astype("float32")
    reference(x)
    fused = [rng.normal(size=w.shape).astype("float32") for w in reference.weights]
    reference.set_weights(fused)
    fused = dict(zip(WEIGHTS, fused))
    layer = klg.LSTM(units, return_sequences=True)
    layer.build((None, None, features))
    split = klg.split_fused_weights(fused["kernel"], fused["recurrent_kernel"], fused["bias"])
    for (part, weight), (keras_slice, _) in rows.items():
        block = fused[weight][..., _span(keras_slice, units)]
        getattr(layer.cell.gates[part], weight).assign(block)
        np.testing.assert_array_equal(split[part][WEIGHTS.index(weight)], block)
    np.testing.assert_allclose(_np(layer(x)), _np(reference(x)), rtol=1e-5, atol=1e-6)


def test_concordance_torch_rows(rng):
    torch = pytest.importorskip("torch")
    units, features = 3, 2
    rows = _concordance_rows()
    torch.manual_seed(0)
    reference = torch.nn.LSTM(features, units, batch_first=True)
    x = rng.normal(size=(2, 5, features)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x))[0].numpy()
    p = {k: v.detach().numpy() for k, v in reference.named_parameters()}
    layer = klg.LSTM(units, return_sequences=True)
    layer.build((None, None, features))
    for (part, weight), (_, torch_slice) in rows.items():
        r = _span(torch_slice, units)
        if weight == "kernel":
            value = p["weight_ih_l0"][r].T
        elif weight == "recurrent_kernel":
            value = p["weight_hh_l0"][r].T
        else:
            value = p["bias_ih_l0"][r] + p["bias_hh_l0"][r]
        getattr(layer.cell.gates[part], weight).assign(value)
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-5, atol=1e-6)
