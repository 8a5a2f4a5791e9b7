"""klg.explore on every backend: the tracks against klg.trace, selection,
match and correlation against numpy written here (loops over the traced
values, not the code under test), connectivity against finite differences,
the page's encoding, and clear errors for bad input."""

import json
import re
import warnings

import keras
import numpy as np
import pytest

import keras_lstm_gates as klg
from keras_lstm_gates.explore import page

VOCAB = 7


def _token_model(units=6, bidirectional=False, keras_lstm=False):
    keras.utils.set_random_seed(3)
    lstm_class = keras.layers.LSTM if keras_lstm else klg.LSTM
    lstm = lstm_class(units, return_sequences=True, name="lstm")
    if bidirectional:
        lstm = keras.layers.Bidirectional(lstm, name="bi")
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(VOCAB, 3, mask_zero=True, name="embed"),
            lstm,
            keras.layers.Dense(VOCAB, name="head"),
        ]
    )


def _padded_ids():
    rng = np.random.default_rng(5)
    x = rng.integers(1, VOCAB, size=(3, 10)).astype("int32")
    x[1, 7:] = 0  # padding: Embedding(mask_zero=True) masks it
    return x


def _tokens(x):
    return [["abcdefg"[v] for v in row] for row in x]


@pytest.fixture(scope="module")
def token_case():
    x = _padded_ids()
    model = _token_model()
    labels = {
        "is_b": (x == 2).astype(float),
        "kind": [["x" if v < 4 else "y" for v in r] for r in x],
    }
    explorer = klg.explore(model, x, _tokens(x), labels, connectivity=False)
    return model, x, explorer


# -- the stream and the tracks ---------------------------------------------------------


def test_tracks_are_the_traced_values_at_unmasked_steps(token_case):
    model, x, explorer = token_case
    t = klg.trace(model, x)["lstm"]
    keep = x != 0
    assert len(explorer.tokens) == keep.sum()
    assert explorer.tokens == ["abcdefg"[v] for v in x[keep]]
    for track, attr in (
        ("h", "hidden"),
        ("c", "cell_state"),
        ("f", "forget_gate"),
        ("i", "input_gate"),
        ("g", "candidate"),
        ("o", "output_gate"),
    ):
        np.testing.assert_allclose(explorer.values(track), getattr(t, attr)[keep], atol=1e-6)
    # Positions map back to (sample, step).
    n = explorer.position(2, 4)
    assert (explorer.sample[n], explorer.step[n]) == (2, 4)


def test_h_of_a_layer_that_returns_one_step_is_its_output():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8, 2)), klg.LSTM(4, name="lstm")])
    x = np.random.default_rng(0).normal(size=(2, 8, 2)).astype("float32")
    explorer = klg.explore(model, x, connectivity=False)
    h = explorer.values("h").reshape(2, 8, 4)
    np.testing.assert_allclose(h[:, -1], keras.ops.convert_to_numpy(model(x)), atol=1e-5)


def test_keras_lstm_and_bidirectional_models():
    x = _padded_ids()
    explorer = klg.explore(_token_model(keras_lstm=True), x, _tokens(x), connectivity=False)
    assert list(explorer.layers) == ["lstm"]
    model = _token_model(units=3, bidirectional=True)
    explorer = klg.explore(model, x, _tokens(x), connectivity=False)
    assert list(explorer.layers) == ["bi/forward_lstm", "bi/backward_lstm"]
    backward = klg.trace(model, x)["bi/backward_lstm"]
    np.testing.assert_allclose(
        explorer.values("c", "bi/backward_lstm"), backward.cell_state[x != 0], atol=1e-6
    )


# -- selection and match against numpy ---------------------------------------------------


def reference_select(v, seg, start, end, theta, context, signs):
    """LSTMVis's rule, unit by unit."""
    around = [n for n in range(start - context, start) if n >= seg[0]]
    around += [n for n in range(end + 1, end + 1 + context) if n < seg[1]]
    out = []
    for s in signs:
        for u in range(v.shape[1]):
            inside = [s * v[n, u] for n in range(start, end + 1)]
            outside = [s * v[n, u] for n in around]
            if min(inside) >= theta and all(o < theta for o in outside):
                base = sum(outside) / len(outside) if outside else theta
                out.append((u, s, sum(inside) / len(inside) - base))
    out.sort(key=lambda r: (-r[2], r[0], -r[1]))
    return out


def segments(sample):
    bounds, first = [], 0
    for n in range(1, len(sample) + 1):
        if n == len(sample) or sample[n] != sample[first]:
            bounds.append((first, n))
            first = n
    return bounds


def reference_match(v, sample, units, theta, min_length):
    spans = []
    for first, stop in segments(sample):
        n = first
        while n < stop:
            if all(s * v[n, u] >= theta for u, s in units):
                start = n
                while n < stop and all(s * v[n, u] >= theta for u, s in units):
                    n += 1
                if n - start >= min_length:
                    signs = {s for _, s in units}
                    active = sum(
                        1
                        for s in signs
                        for u in range(v.shape[1])
                        if all(s * v[k, u] >= theta for k in range(start, n))
                    )
                    spans.append((start, n - 1, len(units) / active))
            else:
                n += 1
    spans.sort(key=lambda r: (-r[2], -(r[1] - r[0]), r[0]))
    return spans


def _cases(explorer, count=6):
    """(start, end, theta) where at least one unit is selected: theta halfway
    between a unit's lowest value inside and highest around."""
    v, sample = explorer.values("h"), explorer.sample
    cases = []
    for start in range(len(v) - 3):
        for length in (1, 2, 3):
            end = start + length - 1
            if sample[end] != sample[start] or start == 0 or sample[start - 1] != sample[start]:
                continue
            if end + 1 >= len(v) or sample[end + 1] != sample[start]:
                continue
            low = v[start : end + 1].min(axis=0)
            high = np.maximum(v[start - 1], v[end + 1])
            gap = low - high
            u = int(np.argmax(gap))
            if gap[u] > 1e-3:
                cases.append((start, end, float((low[u] + high[u]) / 2)))
            if len(cases) == count:
                return cases
    return cases


def test_select_ranks_as_a_numpy_reference(token_case):
    _, _, explorer = token_case
    v = explorer.values("h")
    cases = _cases(explorer)
    assert len(cases) >= 3, cases
    for start, end, theta in cases:
        seg = next(s for s in segments(explorer.sample) if s[0] <= start < s[1])
        for sign, signs in (("+", (1,)), ("both", (1, -1))):
            for context in (1, 2):
                got = explorer.select(start, end, theta, context=context, sign=sign)
                want = reference_select(v, seg, start, end, theta, context, signs)
                assert [(r["unit"], r["sign"]) for r in got] == [(u, s) for u, s, _ in want]
                np.testing.assert_allclose([r["score"] for r in got], [w[2] for w in want])
        assert explorer.select(start, end, theta), (start, end, theta)


def test_match_finds_the_spans_of_a_numpy_reference(token_case):
    _, _, explorer = token_case
    v = explorer.values("h")
    for start, end, theta in _cases(explorer):
        chosen = explorer.select(start, end, theta, sign="both")
        units = [(r["unit"], r["sign"]) for r in chosen]
        for min_length in (1, 2):
            spans, total = explorer.match(chosen, theta, min_length=min_length)
            want = reference_match(v, explorer.sample, units, theta, min_length)
            assert total == len(want)
            assert [(s["start"], s["end"]) for s in spans] == [(a, b) for a, b, _ in want]
            np.testing.assert_allclose([s["jaccard"] for s in spans], [w[2] for w in want])
            if min_length == 1:  # the selected range is one of the spans (or inside one)
                assert any(s["start"] <= start and end <= s["end"] for s in spans)


def test_correlations_are_pearsons_r(token_case):
    _, x, explorer = token_case
    ranked = explorer.correlations("is_b", track="c")
    v = explorer.values("c")
    label = (x[x != 0] == 2).astype(float)
    want = [np.corrcoef(v[:, u], label)[0, 1] for u in range(v.shape[1])]
    assert [r["unit"] for r in ranked] == sorted(range(len(want)), key=lambda u: -abs(want[u]))
    np.testing.assert_allclose([r["r"] for r in ranked], sorted(want, key=lambda r: -abs(r)))
    columns = {r["label"] for r in explorer.correlations("kind")}
    assert columns == {"kind=x", "kind=y"}


# -- connectivity ---------------------------------------------------------------------------


def test_connectivity_is_the_gradient_norm_by_finite_differences():
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((6, 2)),
            klg.LSTM(3, return_sequences=True, name="lstm"),
            keras.layers.Dense(2),
        ]
    )
    x = np.random.default_rng(1).normal(size=(1, 6, 2)).astype("float32")
    explorer = klg.explore(model, x, connectivity=True, connectivity_window=6)
    y = keras.ops.convert_to_numpy(model(x))[0]
    eps = 1e-2
    # Every +-eps nudge of every input value, as one batch: (step, feature, sign).
    nudged = np.repeat(x, 6 * 2 * 2, axis=0).reshape(6, 2, 2, 6, 2)
    for s in range(6):
        for f in range(2):
            nudged[s, f, 0, s, f] += eps
            nudged[s, f, 1, s, f] -= eps
    outputs = keras.ops.convert_to_numpy(model(nudged.reshape(-1, 6, 2))).reshape(6, 2, 2, 6, 2)
    for t in (2, 5):
        k = int(np.argmax(y[t]))
        grad = (outputs[:, :, 0, t, k] - outputs[:, :, 1, t, k]) / (2 * eps)  # (step, feature)
        want = np.linalg.norm(grad, axis=1)
        got = explorer.connectivity(t)
        np.testing.assert_allclose(got[: t + 1], want[: t + 1], rtol=2e-2, atol=2e-4)
        assert np.isnan(got[t + 1 :]).all()  # a forward LSTM reads no later step
    assert explorer.connectivity_rows["after"] == 0


def test_connectivity_through_an_embedding_and_a_bidirectional_layer():
    x = _padded_ids()
    model = _token_model(units=3, bidirectional=True)
    explorer = klg.explore(model, x, _tokens(x), connectivity=4, connectivity_window=3)
    rows = explorer.connectivity_rows
    assert len(rows["positions"]) == 4 and rows["after"] == 3  # it reads ahead
    n = int(rows["positions"][1])
    got = explorer.connectivity(n)
    same = explorer.sample == explorer.sample[n]
    assert np.isnan(got[~same]).all()
    assert (got[np.isfinite(got)] > 0).all()


# -- the page -----------------------------------------------------------------------------------


def _payload(html):
    found = re.search(r"id='klg-explore-data'>(.*?)</script>", html, re.S)
    return json.loads(found.group(1))


def test_page_is_self_contained_and_holds_the_values(token_case):
    _, _, explorer = token_case
    html = explorer.to_html()
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=['\"](?!data:)", html)
    assert "http://" not in html and "https://" not in html
    data = _payload(html)
    assert data["tokens"] == explorer.tokens
    assert "8-bit values for all" in data["note"]
    import base64
    import zlib

    spec = data["layers"][0]["tracks"]["c"]
    codes = zlib.decompress(base64.b64decode(data["blobs"][spec["blob"]]["b64"]))
    values = page.dequantise(codes, spec["lo"], spec["hi"], 8, spec["tokens"], 6)
    step = (spec["hi"] - spec["lo"]) / 255
    np.testing.assert_allclose(values, explorer.values("c"), atol=step / 2 + 1e-6)
    assert "srcdoc=" in explorer._repr_html_()


def test_a_small_max_bytes_quantises_and_keeps_fewer_tokens():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((400, 3)), klg.LSTM(16, return_sequences=True)])
    x = np.random.default_rng(0).normal(size=(1, 400, 3)).astype("float32")
    big = klg.explore(model, x, connectivity=False)
    fixed = big._fixed_bytes()
    for budget, expected in ((fixed + 12_000, "4-bit values"), (fixed + 3_000, "first")):
        explorer = klg.explore(model, x, connectivity=False, max_bytes=budget)
        html = explorer.to_html()
        note = _payload(html)["note"]
        assert expected in note, note
        assert len(html.encode()) <= budget + 30_000


def test_quantise_round_trips_at_4_bits():
    values = np.random.default_rng(0).uniform(-1, 1, size=(7, 3))
    codes = page.quantise(values, -1.0, 1.0, 4)
    back = page.dequantise(codes, -1.0, 1.0, 4, 7, 3)
    np.testing.assert_allclose(back, values, atol=1 / 15 + 1e-9)


# -- errors ----------------------------------------------------------------------------------------


def test_tokens_that_do_not_match_the_input(token_case):
    model, x, _ = token_case
    with pytest.raises(ValueError, match=r"one entry per input step.*\(3, 10\).*shape \(3, 9\)"):
        klg.explore(model, x, [row[:9] for row in _tokens(x)], connectivity=False)
    with pytest.raises(ValueError, match="ragged"):
        klg.explore(model, x, [["a"] * 10, ["a"] * 9, ["a"] * 10], connectivity=False)
    single = keras.Sequential([keras.Input((5, 1)), klg.LSTM(2, name="lstm")])
    with pytest.raises(ValueError, match=r"or a flat sequence of 5; received 4 values"):
        klg.explore(single, np.zeros((1, 5, 1), "float32"), "abcd", connectivity=False)


def test_labels_of_the_wrong_length(token_case):
    model, x, _ = token_case
    with pytest.raises(ValueError, match=r"labels\['is_b'\].*\(3, 10\).*shape \(3, 8\)"):
        klg.explore(model, x, labels={"is_b": np.zeros((3, 8))}, connectivity=False)


def test_a_model_with_no_lstm():
    model = keras.Sequential([keras.Input((4, 2)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="found no LSTM layer"):
        klg.explore(model, np.zeros((1, 4, 2), "float32"))
    with pytest.raises(ValueError, match="Keras model or layer"):
        klg.explore("not a model", np.zeros((1, 4, 2), "float32"))


def test_bad_ranges_units_layers_and_options(token_case):
    model, x, explorer = token_case
    with pytest.raises(ValueError, match="inside one sequence"):
        explorer.select(5, 12, 0.1)
    with pytest.raises(ValueError, match=r"start <= end"):
        explorer.select(4, 2, 0.1)
    with pytest.raises(ValueError, match=r"`end` in \[0, 27\)"):
        explorer.select(0, 27, 0.1)
    with pytest.raises(ValueError, match="`sign`"):
        explorer.select(1, 2, 0.1, sign="up")
    with pytest.raises(ValueError, match=r"units in \[0, 6\)"):
        explorer.match([9], 0.1)
    with pytest.raises(ValueError, match="a track among"):
        explorer.values("z")
    with pytest.raises(ValueError, match="layer names among"):
        klg.explore(model, x, layers=["nope"], connectivity=False)
    with pytest.raises(ValueError, match="`connectivity`"):
        klg.explore(model, x, connectivity=0)
    with pytest.raises(ValueError, match="label track among"):
        explorer.correlations("nope")
    with pytest.raises(ValueError, match="No connectivity row"):
        klg.explore(model, x, connectivity=[3], connectivity_window=2).connectivity(4)


def test_a_layer_on_another_sequence_is_left_out_with_a_warning():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 2))
    a = klg.LSTM(3, return_sequences=True, name="a")(inp)
    b = klg.LSTM(3, return_sequences=True, name="b")(keras.layers.Cropping1D((0, 2))(a))
    model = keras.Model(inp, b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explorer = klg.explore(model, np.zeros((1, 6, 2), "float32"), connectivity=False)
    assert list(explorer.layers) == ["a"]
    assert any("b (1, 4)" in str(w.message) for w in caught)
