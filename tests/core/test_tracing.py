"""Gate tracing: the in-graph ``return_gates`` output and ``klg.trace``.

Every numeric check reads the traced values against the LSTM equations or
against tests/numpy_reference.py (an independent numpy LSTM), never against
the library itself.
"""

import os

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numpy_reference import lstm_sequence  # noqa: E402

import keras_lstm_gates as klg  # noqa: E402
from conftest import to_numpy  # noqa: E402
from keras_lstm_gates import plots  # noqa: E402
from keras_lstm_gates.demo_report import gate_report  # noqa: E402
from keras_lstm_gates.traces import GateTraces  # noqa: E402

B, T, D, H = 3, 7, 2, 4
KEYS = ("input_gate", "forget_gate", "candidate", "output_gate", "cell_state")
REF = {
    "input_gate": "i",
    "forget_gate": "f",
    "candidate": "g",
    "output_gate": "o",
    "cell_state": "c",
}


def ref_weights(layer):
    cell = layer.cell
    parts = {
        "i": cell.input_gate,
        "f": cell.forget_gate,
        "g": cell.candidate,
        "o": cell.output_gate,
    }
    W = {k: to_numpy(p.kernel).astype(np.float64) for k, p in parts.items()}
    U = {k: to_numpy(p.recurrent_kernel).astype(np.float64) for k, p in parts.items()}
    b = {k: to_numpy(p.bias).astype(np.float64) for k, p in parts.items()}
    return W, U, b


def reference(layer, x, mask=None, h0=None, c0=None):
    """The numpy reference's trace, turned into input order."""
    W, U, b = ref_weights(layer)
    out, h, c, tr = lstm_sequence(
        x, W, U, b, h0=h0, c0=c0, mask=mask, go_backwards=layer.go_backwards
    )
    if layer.go_backwards:
        tr = {k: v[:, ::-1] for k, v in tr.items()}
        out = out[:, ::-1]
    return out, h, c, tr


def padded_batch(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[1, 5:] = False  # right padding
    mask[2, 3:] = False
    x[~mask] = 0.0
    return x, mask


def assert_equations(t, atol=1e-5):
    """c_t = f_t c_{t-1} + i_t g_t and h_t = o_t tanh(c_t) at every unmasked
    step, walking in processing order and skipping masked steps."""
    i, f, g, o, c = (t.input_gate, t.forget_gate, t.candidate, t.output_gate, t.cell_state)
    steps = range(t.timesteps - 1, -1, -1) if t.go_backwards else range(t.timesteps)
    for b in range(t.batch_size):
        c_prev = np.zeros(t.units)
        checked = 0
        for s in steps:
            if not t.mask[b, s]:
                assert np.all(c[b, s] == 0) and np.all(f[b, s] == 0)
                continue
            np.testing.assert_allclose(
                c[b, s], f[b, s] * c_prev + i[b, s] * g[b, s], atol=atol, rtol=1e-5
            )
            if t.hidden is not None:
                np.testing.assert_allclose(
                    t.hidden[b, s], o[b, s] * np.tanh(c[b, s]), atol=atol, rtol=1e-5
                )
            c_prev = c[b, s]
            checked += 1
        assert checked == t.mask[b].sum()


def assert_ranges(t):
    for gate in ("input_gate", "forget_gate", "output_gate"):
        values = getattr(t, gate)
        assert values.min() >= 0.0 and values.max() <= 1.0, gate
    assert np.abs(t.candidate).max() <= 1.0


# -- the in-graph output -----------------------------------------------------


@pytest.mark.parametrize("go_backwards", [False, True])
def test_return_gates_matches_reference_with_mask(rng, go_backwards):
    x, mask = padded_batch(rng)
    layer = klg.LSTM(H, return_sequences=True, go_backwards=go_backwards, return_gates=True)
    out, gates = layer(x, mask=mask)
    ref_out, _, _, ref = reference(layer, x, mask)
    for key in KEYS:
        got = to_numpy(gates[key])
        if go_backwards:  # return_gates is in processing order
            got = got[:, ::-1]
        np.testing.assert_allclose(got, ref[REF[key]], atol=1e-5, err_msg=key)
    got_out = to_numpy(out)[:, ::-1] if go_backwards else to_numpy(out)
    np.testing.assert_allclose(got_out[mask], ref_out[mask], atol=1e-5)


def test_return_gates_stateful_carries_state(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    layer = klg.LSTM(H, stateful=True, return_state=True, return_gates=True)
    _, h1, c1, _ = layer(x)
    _, _, _, gates = layer(x)  # second call starts from (h1, c1)
    _, _, _, ref = reference(layer, x, h0=to_numpy(h1), c0=to_numpy(c1))
    np.testing.assert_allclose(to_numpy(gates["cell_state"]), ref["c"], atol=1e-5)


def gates_model():
    inp = keras.Input((None, D))
    masked = keras.layers.Masking()(inp)
    y, gates = klg.LSTM(H, return_sequences=True, return_gates=True, name="lstm")(masked)
    # One flat dict: Keras 3.3, the declared floor, takes no nested outputs.
    return keras.Model(inp, {"y": y, **gates})


def test_return_gates_under_jit_equals_eager(rng, backend_name):
    x, mask = padded_batch(rng)
    model = gates_model()
    eager = keras.tree.map_structure(to_numpy, model(x))
    if backend_name != "torch":  # jax.jit / XLA; torch.compile: the slow test below
        model.compile(jit_compile=True)
    jitted = model.predict(x, verbose=0)
    for key in KEYS:
        np.testing.assert_allclose(jitted[key], eager[key], atol=1e-6)
    np.testing.assert_allclose(jitted["y"], eager["y"], atol=1e-6)
    if backend_name == "tensorflow":
        import tensorflow as tf

        graph = tf.function(lambda a: model(a))(x)
        for key in KEYS:
            np.testing.assert_allclose(graph[key].numpy(), eager[key], atol=1e-6)
    # And klg.trace, which runs eagerly, reads the same values.
    traced = klg.trace(model, x)["lstm"]
    for key in KEYS:
        np.testing.assert_allclose(getattr(traced, key), eager[key], atol=1e-6)
    _, _, _, ref = reference(model.get_layer("lstm"), x, mask)
    np.testing.assert_allclose(traced.forget_gate, ref["f"], atol=1e-5)
    np.testing.assert_array_equal(traced.mask, mask)


@pytest.mark.skipif(
    os.environ.get("KLG_FAST") == "1", reason="torch.compile takes a minute on a CPU"
)
def test_return_gates_under_torch_compile(rng, backend_name):
    if backend_name != "torch":
        pytest.skip("torch.compile is the torch backend's jit")
    import torch

    x, _ = padded_batch(rng)
    x = x[:, :4]
    model = gates_model()
    eager = keras.tree.map_structure(to_numpy, model(x))
    compiled = torch.compile(lambda a: model(a), backend="eager")
    jitted = keras.tree.map_structure(to_numpy, compiled(torch.tensor(x)))
    for key in KEYS:
        np.testing.assert_allclose(jitted[key], eager[key], atol=1e-6)


def test_return_gates_model_saved_and_reloaded(rng, tmp_path):
    x, mask = padded_batch(rng)
    model = gates_model()
    path = os.path.join(tmp_path, "gates.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("lstm").return_gates
    before, after = model(x), loaded(x)
    for key in KEYS:
        np.testing.assert_allclose(to_numpy(after[key]), to_numpy(before[key]), atol=1e-6)
    traced = klg.trace(loaded, x)["lstm"]
    _, _, _, ref = reference(loaded.get_layer("lstm"), x, mask)
    np.testing.assert_allclose(traced.cell_state, ref["c"], atol=1e-5)


# -- klg.trace ----------------------------------------------------------------


@pytest.mark.parametrize("go_backwards", [False, True])
def test_trace_layer_agrees_with_reference_and_equations(rng, go_backwards):
    x, mask = padded_batch(rng)
    layer = klg.LSTM(H, return_sequences=True, go_backwards=go_backwards, name="lstm")
    traces = klg.trace(layer, x, mask=mask)
    assert isinstance(traces, GateTraces) and list(traces) == ["lstm"]
    t = traces["lstm"]
    assert t.go_backwards is go_backwards
    np.testing.assert_array_equal(t.mask, mask)
    _, _, _, ref = reference(layer, x, mask)
    for key in KEYS:
        np.testing.assert_allclose(getattr(t, key), ref[REF[key]], atol=1e-5, err_msg=key)
    assert_equations(t)
    assert_ranges(t)


def test_trace_sequential_with_embedding_mask(rng):
    tokens = rng.integers(1, 9, size=(B, T))
    tokens[0, 4:] = 0
    tokens[2, 2:] = 0
    model = keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            keras.layers.Embedding(10, D, mask_zero=True),
            klg.LSTM(H, return_sequences=True, name="l1"),
            klg.LSTM(H, return_sequences=True, name="l2"),
        ]
    )
    traces = klg.trace(model, tokens)
    assert list(traces) == ["l1", "l2"]
    for t in traces.values():
        np.testing.assert_array_equal(t.mask, tokens != 0)
        assert_equations(t)
        assert_ranges(t)
    # The second layer's trace follows from the first layer's output.
    l2 = model.get_layer("l2")
    _, _, _, ref = reference(l2, traces["l1"].hidden, tokens != 0)
    np.testing.assert_allclose(traces["l2"].input_gate, ref["i"], atol=1e-5)


def test_trace_bidirectional_runs_both_directions_with_shared_weights(rng):
    x, mask = padded_batch(rng)
    inp = keras.Input((T, D))
    bi = keras.layers.Bidirectional(klg.LSTM(H, return_sequences=True, name="lstm"), name="bi")
    model = keras.Model(inp, bi(keras.layers.Masking()(inp)))
    n_weights = len(model.weights)
    traces = klg.trace(model, x)
    assert list(traces) == ["bi/forward_lstm", "bi/backward_lstm"]
    fwd, bwd = traces["bi/forward_lstm"], traces["bi/backward_lstm"]
    assert (fwd.go_backwards, bwd.go_backwards) == (False, True)
    for t, layer in ((fwd, bi.forward_layer), (bwd, bi.backward_layer)):
        np.testing.assert_array_equal(t.mask, mask)
        _, _, _, ref = reference(layer, x, mask)
        np.testing.assert_allclose(t.output_gate, ref["o"], atol=1e-5)
        assert_equations(t)
    # The traced h of both directions is the model's output, in input order.
    y = to_numpy(model(x))
    np.testing.assert_allclose(fwd.hidden[mask], y[..., :H][mask], atol=1e-6)
    np.testing.assert_allclose(bwd.hidden[mask], y[..., H:][mask], atol=1e-6)
    assert len(model.weights) == n_weights  # no copy of the weights was made


def test_trace_nested_functional_and_shared_layer(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    inner_in = keras.Input((T, D))
    encoder = keras.Model(
        inner_in, klg.LSTM(H, return_sequences=True, name="lstm")(inner_in), name="encoder"
    )
    shared = klg.LSTM(H, name="head")
    inp = keras.Input((T, D))
    seq = encoder(inp)
    out = keras.layers.Concatenate()([shared(seq), shared(keras.ops.flip(seq, axis=1))])
    model = keras.Model(inp, out)
    traces = klg.trace(model, x)
    assert list(traces) == ["encoder/lstm", "head", "head[1]"]
    assert traces["head[1]"].hidden is None  # return_sequences=False
    _, _, _, ref = reference(shared, traces["encoder/lstm"].hidden[:, ::-1])
    np.testing.assert_allclose(traces["head[1]"].cell_state, ref["c"], atol=1e-5)


def test_trace_subclassed_model(rng):
    class Tagger(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn = klg.LSTM(H, return_sequences=True, name="rnn")
            self.out = keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.rnn(x))

    x = rng.normal(size=(B, T, D)).astype("float32")
    model = Tagger()
    traces = klg.trace(model, x)
    assert list(traces) == ["rnn"]
    assert_equations(traces["rnn"])


def test_trace_stateful_restores_states_and_weights(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    layer = klg.LSTM(H, stateful=True, return_sequences=True, name="lstm")
    model = keras.Sequential([keras.Input((T, D), batch_size=B), layer])
    model(x)  # the states now hold the end of the first batch
    states = [to_numpy(s).copy() for s in layer.states]
    weights = [w.copy() for w in model.get_weights()]
    t = klg.trace(model, x)["lstm"]
    for before, after in zip(states, layer.states):
        np.testing.assert_array_equal(to_numpy(after), before)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(after, before)
    # The trace started from the stored states.
    _, _, _, ref = reference(layer, x, h0=states[0], c0=states[1])
    np.testing.assert_allclose(t.cell_state, ref["c"], atol=1e-5)
    # The layer is untouched: no instance-level call left, return_gates off.
    assert "call" not in layer.__dict__ and layer.return_gates is False
    assert to_numpy(model(x)).shape == (B, T, H)


def test_trace_layer_with_return_gates_already_on(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    layer = klg.LSTM(H, return_gates=True, name="lstm")
    t = klg.trace(layer, x)["lstm"]
    _, gates = layer(x)
    np.testing.assert_allclose(t.input_gate, to_numpy(gates["input_gate"]), atol=1e-6)
    assert t.hidden is None


def test_trace_variants_mark_constant_gates(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    cifg = klg.trace(klg.LSTM(H, variant="CIFG", name="c"), x)["c"]
    np.testing.assert_allclose(cifg.forget_gate, 1.0 - cifg.input_gate, atol=1e-6)
    assert cifg.constant_gates == () and "forget_gate" in cifg.saturation()
    nfg = klg.trace(klg.LSTM(H, variant="NFG", name="n"), x)["n"]
    assert nfg.constant_gates == ("forget_gate",)
    np.testing.assert_array_equal(nfg.forget_gate, 1.0)
    assert sorted(nfg.saturation()) == ["input_gate", "output_gate"]


# -- saturation ---------------------------------------------------------------


def handmade_trace():
    """One unit at known values over 4 steps (step 3 masked) of 1 sample."""
    f = np.array([0.05, 0.95, 0.5, 0.99], np.float32).reshape(1, 4, 1)
    half = np.full((1, 4, 1), 0.5, np.float32)
    values = dict.fromkeys(KEYS, half)
    values["forget_gate"] = f
    mask = np.array([[True, True, True, False]])
    return klg.GateTrace("hand", values, mask=mask)


def test_saturation_fractions_count_unmasked_steps():
    t = handmade_trace()
    sat = t.saturation()
    np.testing.assert_allclose(sat["forget_gate"]["left"], [1 / 3])
    np.testing.assert_allclose(sat["forget_gate"]["right"], [1 / 3])  # 0.99 is masked
    np.testing.assert_allclose(sat["input_gate"]["left"], [0.0])
    wide = t.saturation(left=0.6, right=0.97)
    np.testing.assert_allclose(wide["forget_gate"]["left"], [2 / 3])
    np.testing.assert_allclose(wide["forget_gate"]["right"], [0.0])
    summary = t.summary()["forget_gate"]
    assert summary["mean"] == pytest.approx((0.05 + 0.95 + 0.5) / 3)
    assert (summary["units"], summary["units_left"], summary["units_right"]) == (1, 0, 0)
    assert t.summary(left=0.6, majority=0.5)["forget_gate"]["units_left"] == 1
    table = t.summary_table()
    assert table.splitlines()[0].split()[:5] == ["layer", "gate", "mean", "left<0.1", "right>0.9"]
    assert "hand" in table and len(table.splitlines()) == 4


def test_saturated_forget_gates_from_the_bias(rng):
    x = 0.01 * rng.normal(size=(B, T, D)).astype("float32")
    keep = klg.trace(klg.LSTM(H, forget_bias=8.0, name="k"), x)["k"].saturation()
    drop = klg.trace(klg.LSTM(H, forget_bias=-8.0, name="d"), x)["d"].saturation()
    np.testing.assert_array_equal(keep["forget_gate"]["right"], 1.0)
    np.testing.assert_array_equal(drop["forget_gate"]["left"], 1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"left": 0.9, "right": 0.1}, "0 <= left < right <= 1"),
        ({"left": -0.1}, "0 <= left < right <= 1"),
        ({"right": "high"}, "`right` to be a number"),
        ({"gates": ["forgetgate"]}, "gate names among"),
    ],
)
def test_saturation_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        handmade_trace().saturation(**kwargs)


def test_summary_rejects_bad_majority():
    with pytest.raises(ValueError, match="majority"):
        handmade_trace().summary(majority=1.5)


def test_gate_trace_rejects_bad_arrays():
    values = dict.fromkeys(KEYS, np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="missing"):
        klg.GateTrace("x", {"input_gate": np.zeros((1, 3, 2))})
    with pytest.raises(ValueError, match="shape"):
        klg.GateTrace("x", {**values, "cell_state": np.zeros((1, 3, 5))})
    with pytest.raises(ValueError, match="mask of shape"):
        klg.GateTrace("x", values, mask=np.ones((1, 4), bool))


def test_return_gates_must_be_a_bool():
    with pytest.raises(ValueError, match="`return_gates` to be True or False"):
        klg.LSTM(H, return_gates="yes")


def test_trace_rejects_bad_inputs(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    with pytest.raises(ValueError, match="keras Model or Layer"):
        klg.trace("model", x)
    with pytest.raises(ValueError, match="no klg.LSTM"):
        klg.trace(keras.Sequential([keras.layers.GRU(3)]), x)
    with pytest.raises(ValueError, match=r"mask` of shape \(batch, time\)"):
        klg.trace(klg.LSTM(H), x, mask=np.ones((B, T - 1), bool))
    with pytest.raises(ValueError, match="boolean"):
        klg.trace(klg.LSTM(H), x, mask=np.ones((B, T)))


# -- plots ----------------------------------------------------------------------


def synthetic_trace(rng, name, units=H, mask=None, go_backwards=False):
    """A GateTrace of random values in the right ranges (no layer run)."""
    shape = (B, T, units)
    values = {k: rng.uniform(0, 1, size=shape) for k in KEYS}
    values["candidate"] = rng.uniform(-1, 1, size=shape)
    values["cell_state"] = rng.normal(size=shape)
    return klg.GateTrace(name, values, mask=mask, go_backwards=go_backwards)


def test_heatmap_has_titles_labels_and_colour_bars(rng, tmp_path):
    _, mask = padded_batch(rng)
    t = synthetic_trace(rng, "lstm", mask=mask, go_backwards=True)
    fig = t.plot_heatmap(sample=2)
    panels, bars = fig.axes[:5], fig.axes[5:]
    assert len(bars) == 5
    assert [a.get_title() for a in panels][1] == "lstm: forget gate $f_t$, sample 2"
    assert all(a.get_ylabel() == "unit" for a in panels)
    assert "read backwards" in panels[-1].get_xlabel() and "masked" in panels[-1].get_xlabel()
    assert bars[1].get_ylabel() == "$f_t$"
    fig.savefig(tmp_path / "heat.png")
    assert (tmp_path / "heat.png").stat().st_size > 0
    one = plots.plot_heatmap(t, gates=["cell_state"], units=[0, 2])
    assert one.axes[0].get_images()[0].get_array().shape == (2, T)


def test_saturation_scatter_has_one_dot_per_unit(rng):
    traces = GateTraces(a=synthetic_trace(rng, "a"), b=synthetic_trace(rng, "b", units=3))
    fig = traces.plot_saturation(left=0.2, right=0.8)
    assert [a.get_title() for a in fig.axes] == [
        "input gate $i_t$",
        "forget gate $f_t$",
        "output gate $o_t$",
    ]
    forget = fig.axes[1]
    assert forget.get_xlabel() == "fraction left-saturated (< 0.2)"
    assert forget.get_ylabel() == "fraction right-saturated (> 0.8)"
    dots = [c.get_offsets() for c in forget.collections]
    assert [len(d) for d in dots] == [H, 3]
    sat = traces["a"].saturation(0.2, 0.8)["forget_gate"]
    np.testing.assert_allclose(dots[0][:, 0], sat["left"])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda t: plots.plot_heatmap(t, sample=5), r"sample` in \[0, 3\)"),
        (lambda t: plots.plot_heatmap(t, sample=1.0), "integer index"),
        (lambda t: plots.plot_heatmap(t, gates=["hidden"]), "gate names among"),
        (lambda t: plots.plot_heatmap(t, units=[0, 9]), r"unit indices in \[0, 4\)"),
        (lambda t: plots.plot_heatmap({"a": t}), "Expected a GateTrace"),
        (lambda t: plots.plot_saturation([]), "non-empty list"),
        (lambda t: plots.plot_saturation(t, left=1.0), "0 <= left < right <= 1"),
        (lambda t: plots.plot_gate(t, gate="forget"), "gate names among"),
    ],
)
def test_plots_reject_bad_arguments(rng, call, match):
    t = synthetic_trace(rng, "lstm")
    with pytest.raises(ValueError, match=match):
        call(t)


def test_gate_report_writes_forget_gate_picture(rng, tmp_path, capsys):
    model = keras.Sequential([keras.Input((T, D)), klg.LSTM(H, name="lstm"), keras.layers.Dense(1)])
    report = gate_report(model, rng.normal(size=(B, T, D)).astype("float32"), tmp_path / "out")
    assert os.path.isfile(report["figure"]) and report["figure"].endswith("forget_gate.png")
    assert set(report["summary"]["lstm"]) == {"input_gate", "forget_gate", "output_gate"}
    printed = capsys.readouterr().out
    assert "forget_gate" in printed and report["figure"] in printed
