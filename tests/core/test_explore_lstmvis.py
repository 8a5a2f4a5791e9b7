"""klg.export_lstmvis: the files LSTMVis's README asks for, read back the
way LSTMVis reads them (h5py tables, ``word id`` dictionary lines split on
white space, lstm.yml) and compared with klg.trace."""

import h5py
import keras
import numpy as np
import pytest
import yaml

import keras_lstm_gates as klg


def _model():
    keras.utils.set_random_seed(7)
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(6, 3, mask_zero=True),
            keras.layers.Bidirectional(klg.LSTM(4, return_sequences=True, name="lstm"), name="bi"),
            klg.LSTM(3, name="top"),
        ]
    )


def _read_dict(path):
    """As LSTMVis's data handler does: ``k, v = line.split()``."""
    id_to_word = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            word, ident = line.split()
            id_to_word[int(ident)] = word
    return id_to_word


def test_round_trip_against_klg_trace(tmp_path):
    model = _model()
    x = np.array([[1, 2, 3, 4, 5, 1], [2, 2, 5, 0, 0, 0]], "int32")
    text = {1: "a", 2: " ", 3: "\n", 4: "b", 5: "c"}
    tokens = [[text.get(v, "") for v in row] for row in x]
    labels = {
        "space": (x == 2).astype(float),
        "kind": [["w" if v in (2, 3) else "l" for v in r] for r in x],
    }
    out = klg.export_lstmvis(model, x, tokens, tmp_path / "project", labels=labels)

    keep = x != 0
    traces = klg.trace(model, x)
    config = yaml.safe_load(out["config"].read_text(encoding="utf-8"))
    assert set(config["files"].values()) >= {"states.h5", "words.h5", "words.dict"}
    ws = config["word_sequence"]
    with h5py.File(tmp_path / "project" / config["files"][ws["file"]]) as f:
        ids = f[ws["path"]][()]
        assert (f["sample"][()] == np.nonzero(keep)[0]).all()
    words = _read_dict(tmp_path / "project" / config["files"][ws["dict_file"]])
    assert [words[i] for i in ids] == [
        "a",
        "\u2423",
        "\u23ce",
        "b",
        "c",
        "a",
        "\u2423",
        "\u2423",
        "c",
    ]

    states = tmp_path / "project" / config["files"][config["states"]["file"]]
    types = config["states"]["types"]
    # Two directions of "bi" and "top": three layers, six state sets each.
    assert sorted({t["layer"] for t in types}) == [1, 2, 3]
    by_layer = {1: "bi/forward_lstm", 2: "bi/backward_lstm", 3: "top"}
    attrs = {"states": "cell_state", "forget_gate": "forget_gate", "input_gate": "input_gate"}
    attrs |= {"candidate": "candidate", "output_gate": "output_gate"}
    with h5py.File(states) as f:
        for t in types:
            table = f[t["path"]][()]
            trace = traces[by_layer[t["layer"]]]
            assert f[t["path"]].attrs["layer"] == by_layer[t["layer"]]
            prefix = t["path"][:-1]
            if prefix == "output":
                assert t["type"] == "output"
                if trace.hidden is not None:
                    np.testing.assert_allclose(table, trace.hidden[keep], atol=1e-6)
                else:  # "top" returns its last step only: h = o * tanh(c)
                    want = trace.output_gate * np.tanh(trace.cell_state)
                    np.testing.assert_allclose(table, want[keep], atol=1e-6)
            else:
                np.testing.assert_allclose(table, getattr(trace, attrs[prefix])[keep], atol=1e-6)
            if prefix in ("forget_gate", "input_gate", "output_gate"):
                assert t["unsigned"] is True and t["transform"] == "none"
    # The top layer's h at the last step is the model's output.
    with h5py.File(states) as f:
        h_top = f["output3"][()]
    np.testing.assert_allclose(h_top[5], keras.ops.convert_to_numpy(model(x))[0], atol=1e-5)

    meta = config["meta"]
    assert meta["space"]["vis"]["type"] == "scalar"
    assert meta["kind"]["vis"] == {"type": "discrete", "range": "dict"}
    with h5py.File(tmp_path / "project" / config["files"][meta["kind"]["file"]]) as f:
        kinds = f[meta["kind"]["path"]][()]
    names = _read_dict(tmp_path / "project" / config["files"][meta["kind"]["dict"]])
    assert [names[k] for k in kinds] == ["l", "w", "w", "l", "l", "l", "w", "w", "l"]


def test_tokens_are_required(tmp_path):
    model = _model()
    with pytest.raises(ValueError, match="needs the tokens"):
        klg.export_lstmvis(model, np.ones((1, 3), "int32"), None, tmp_path)
    with pytest.raises(ValueError, match=r"one entry per input step.*\(1, 3\)"):
        klg.export_lstmvis(model, np.ones((1, 3), "int32"), "ab", tmp_path)
