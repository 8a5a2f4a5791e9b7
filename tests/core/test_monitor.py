"""klg.GateMonitor: the gates watched during ``model.fit``.

The statistics the monitor logs (in its history and in TensorBoard event
files, read back with TensorBoard's own reader) are checked against gate
values computed from the same weights by the independent numpy LSTM in
tests/numpy_reference.py, and against klg.trace, never against the monitor.
"""

import csv
import importlib.util
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numpy_reference import lstm_sequence  # noqa: E402

import keras_lstm_gates as klg  # noqa: E402
from conftest import to_numpy  # noqa: E402
from keras_lstm_gates.monitor import STATISTICS, GateSaturationWarning  # noqa: E402

B, T, D, H = 8, 6, 3, 4
LEFT, RIGHT = 0.1, 0.9
GATES = {"input_gate": "i", "forget_gate": "f", "output_gate": "o"}
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
needs_tensorboard = pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard not installed")


def data(seed=0, n=32):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, D)).astype("float32") * 2.0
    y = rng.normal(size=(n, 1)).astype("float32")
    return x, y


def small_model(seed=0, lr=0.05, **lstm_kwargs):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            klg.LSTM(H, name="memory", **lstm_kwargs),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


class WeightLog(keras.callbacks.Callback):
    """The LSTM's weights at every epoch end (placed after the monitor)."""

    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        cell = self.model.get_layer("memory").cell
        parts = {
            "i": cell.input_gate,
            "f": cell.forget_gate,
            "g": cell.candidate,
            "o": cell.output_gate,
        }
        self.weights[epoch] = {
            key: {p: to_numpy(getattr(part, attr)).astype(np.float64) for p, part in parts.items()}
            for key, attr in (("W", "kernel"), ("U", "recurrent_kernel"), ("b", "bias"))
        }


def reference_statistics(weights, x, majority=0.5):
    """The statistics from the numpy LSTM's gate values, computed here."""
    _, _, _, gates = lstm_sequence(x, weights["W"], weights["U"], weights["b"])
    out = {}
    for gate, key in GATES.items():
        v = gates[key]  # (batch, time, units), float64
        per_left = (v < LEFT).mean(axis=(0, 1))
        per_right = (v > RIGHT).mean(axis=(0, 1))
        out[f"memory/{gate}/mean"] = v.mean()
        out[f"memory/{gate}/left_saturated"] = (v < LEFT).mean()
        out[f"memory/{gate}/right_saturated"] = (v > RIGHT).mean()
        out[f"memory/{gate}/mostly_left"] = (per_left > majority).mean()
        out[f"memory/{gate}/mostly_right"] = (per_right > majority).mean()
        out[f"memory/{gate}/mostly_saturated"] = (per_left + per_right > majority).mean()
    return out, gates


def assert_statistics_close(got, want, values):
    # A float32 value within rounding of a threshold may fall on the other
    # side of it than in float64: allow one value's worth per fraction.
    one = 1.5 / values
    for tag, expected in want.items():
        tolerance = {"mean": 1e-5, "left_saturated": one, "right_saturated": one}
        tolerance = tolerance.get(tag.rsplit("/", 1)[1], 1e-9)  # mostly_*: whole units
        assert abs(got[tag] - expected) <= tolerance, (tag, got[tag], expected)


@needs_tensorboard
def test_fit_writes_tensorboard_events_that_match_the_gates(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    x, y = data()
    probe = x[:B]
    model = small_model()
    monitor = klg.GateMonitor(probe, log_dir=tmp_path, images_every=1)
    weights = WeightLog()
    callbacks = [monitor, weights]
    beside = HAS_TENSORFLOW and keras.backend.backend() in ("tensorflow", "jax")
    if beside:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tmp_path), write_graph=False))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=callbacks)

    run = event_accumulator.EventAccumulator(
        str(tmp_path / "gates"),
        size_guidance={event_accumulator.IMAGES: 0, event_accumulator.HISTOGRAMS: 0},
    )
    run.Reload()
    tags = run.Tags()
    expected = {f"memory/{g}/{s}" for g in GATES for s in STATISTICS}
    assert set(tags["scalars"]) == expected
    assert set(tags["histograms"]) == {f"memory/{g}/values" for g in GATES}
    assert set(tags["images"]) == {"memory/forget_gate/heatmap", "memory/gates/saturation"}

    for epoch in (0, 1):
        want, gates = reference_statistics(weights.weights[epoch], probe)
        got = {tag: run.Scalars(tag)[epoch].value for tag in expected}
        assert {tag: run.Scalars(tag)[epoch].step for tag in expected} == dict.fromkeys(
            expected, epoch
        )
        assert_statistics_close(got, want, B * T * H)
        history = monitor.history[epoch]
        assert history["epoch"] == epoch
        np.testing.assert_allclose([history[t] for t in expected], [got[t] for t in expected], 1e-6)
        for gate, key in GATES.items():
            histogram = run.Histograms(f"memory/{gate}/values")[epoch].histogram_value
            assert histogram.num == B * T * H
            np.testing.assert_allclose(histogram.sum, gates[key].sum(), rtol=1e-4)
            assert sum(histogram.bucket) == B * T * H
    for tag in tags["images"]:
        images = run.Images(tag)
        assert [im.step for im in images] == [0, 1]
        assert images[0].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
        assert images[0].width > 100 and images[0].height > 100

    # The last epoch's statistics are klg.trace's on the final weights.
    traces = klg.trace(model, probe)
    f = traces["memory"].forget_gate
    last = monitor.history[-1]
    np.testing.assert_allclose(last["memory/forget_gate/mean"], f.mean(), rtol=1e-6)
    assert last["memory/forget_gate/right_saturated"] == pytest.approx((f > RIGHT).mean())

    if beside:  # keras.callbacks.TensorBoard's own runs are untouched beside ours
        train = event_accumulator.EventAccumulator(str(tmp_path / "train"))
        train.Reload()
        assert "epoch_loss" in train.Tags()["tensors"] + train.Tags()["scalars"]


def test_history_every_and_logs_for_later_callbacks(tmp_path):
    x, y = data(1)
    model = small_model(1)
    monitor = klg.GateMonitor(x[:B], every=2, add_to_logs=True)
    weights = WeightLog()
    path = tmp_path / "log.csv"
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        verbose=0,
        callbacks=[monitor, weights, keras.callbacks.CSVLogger(str(path))],
    )
    assert [h["epoch"] for h in monitor.history] == [0, 2]
    for entry in monitor.history:
        want, _ = reference_statistics(weights.weights[entry["epoch"]], x[:B])
        assert_statistics_close(entry, want, B * T * H)
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    tag = "memory/forget_gate/right_saturated"
    assert float(rows[0][tag]) == pytest.approx(monitor.history[0][tag])
    assert rows[1][tag] == "NA"  # not traced at epoch 1
    assert float(rows[2][tag]) == pytest.approx(monitor.history[1][tag])
    assert monitor.traces is not None and list(monitor.traces) == ["memory"]


def test_monitor_does_not_change_the_training_result():
    x, y = data(2)
    results = []
    for with_monitor in (False, True):
        model = small_model(3, dropout=0.25, recurrent_dropout=0.25)
        callbacks = [klg.GateMonitor(x[:B])] if with_monitor else []
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=callbacks)
        results.append([to_numpy(w) for w in model.weights])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_warns_once_when_forget_gates_stay_saturated():
    x, y = data(3)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            klg.LSTM(H, forget_bias=12.0, return_sequences=True, name="keeper"),
            klg.LSTM(H, forget_bias=-12.0, name="wiper"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    monitor = klg.GateMonitor(x[:B], warn_epochs=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=4, verbose=0, callbacks=[monitor])
    messages = [str(w.message) for w in caught if issubclass(w.category, GateSaturationWarning)]
    assert len(messages) == 2, messages
    keeper = next(m for m in messages if "'keeper'" in m)
    wiper = next(m for m in messages if "'wiper'" in m)
    assert f"{H} of {H} forget gate units (100%) were right-saturated (f > 0.9)" in keeper
    assert "epochs 0 to 1" in keeper and "memory always kept" in keeper.lower()
    assert "left-saturated (f < 0.1)" in wiper and "memory always wiped" in wiper.lower()
    assert monitor.alerts == messages


def test_no_warning_below_the_thresholds():
    x, y = data(4)
    model = small_model(4)
    monitor = klg.GateMonitor(x[:B], warn_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GateSaturationWarning)
        model.fit(x, y, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.alerts == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"every": 0}, "`every` to be a positive integer"),
        ({"every": -2}, "`every` to be a positive integer"),
        ({"every": 1.5}, "`every` to be a positive integer"),
        ({"every": True}, "`every` to be a positive integer"),
        ({"left": 0.9, "right": 0.1}, "0 <= left < right <= 1"),
        ({"left": 0.5, "right": 0.5}, "0 <= left < right <= 1"),
        ({"right": 1.5}, "0 <= left < right <= 1"),
        ({"majority": 1.0}, "`majority` in \\[0, 1\\)"),
        ({"images_every": 0}, "`images_every` to be a positive integer"),
        ({"add_to_logs": "yes"}, "`add_to_logs` to be True or False"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        klg.GateMonitor(np.zeros((2, T, D), "float32"), **kwargs)


def test_inputs_that_do_not_fit_the_model(tmp_path):
    x, y = data(5)
    model = small_model(5)
    monitor = klg.GateMonitor(np.zeros((2, T, D + 1), "float32"))
    with pytest.raises(
        ValueError, match=r"expected shape \(None, 6, 3\).*received shape \(2, 6, 4\)"
    ):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[monitor])
    with pytest.raises(ValueError, match="takes 1 input"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[klg.GateMonitor([x[:2], x[:2]])])
    if HAS_TENSORBOARD:
        with pytest.raises(ValueError, match=r"`sample` in \[0, 2\).*received sample=5"):
            monitor = klg.GateMonitor(x[:2], log_dir=tmp_path, sample=5)
            model.fit(x, y, epochs=1, verbose=0, callbacks=[monitor])


def test_subclassed_model_with_inputs_it_cannot_take():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.lstm = klg.LSTM(H, name="memory")
            self.head = keras.layers.Dense(1)

        def call(self, x, training=False):
            return self.head(self.lstm(x))

    x, y = data(6)
    model = Net()
    model.compile(optimizer="sgd", loss="mse")
    bad = klg.GateMonitor(np.zeros((2, T), "float32"))
    with pytest.raises(
        ValueError, match=r"could not run model 'net' on its `inputs` \(shape \(2, 6\)\)"
    ):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[bad])
    good = klg.GateMonitor(x[:B])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[good])
    assert "memory/forget_gate/mean" in good.history[0]


def test_model_without_klg_lstm():
    x, y = data(7)
    model = keras.Sequential([keras.Input((T, D)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="found no klg.LSTM") as info:
        model.fit(x, y, epochs=1, verbose=0, callbacks=[klg.GateMonitor(x[:2])])
    assert "klg.convert" not in str(info.value)

    model = keras.Sequential([keras.Input((T, D)), keras.layers.LSTM(H, name="plain")])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(
        ValueError, match=r"keras.layers.LSTM layers \(plain\).*klg.convert\(model\)"
    ):
        model.fit(x, y[:, :1].repeat(H, 1), epochs=1, verbose=0, callbacks=[klg.GateMonitor(x[:2])])


def test_log_dir_without_tensorboard(monkeypatch, tmp_path):
    for name in ("tensorboard", "tensorboard.compat.proto", "tensorboard.summary.writer"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install 'keras-lstm-gates\[tensorboard\]'"):
        klg.GateMonitor(np.zeros((2, T, D), "float32"), log_dir=tmp_path)
    # Without log_dir it needs no tensorboard.
    klg.GateMonitor(np.zeros((2, T, D), "float32"))


def test_masked_bidirectional_and_stacked_layers_match_klg_trace():
    # The monitor's compiled route (jax.jit / tf.function) against klg.trace's
    # eager pass on the same weights, with a mask and a backward layer.
    x, _ = data(8, n=B)
    x[1, 4:] = 0.0
    x[5, 2:] = 0.0
    keras.utils.set_random_seed(8)
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.Masking(),
            keras.layers.Bidirectional(klg.LSTM(H, return_sequences=True, name="lstm"), name="bi"),
            klg.LSTM(H, name="top"),
            keras.layers.Dense(1),
        ]
    )
    monitor = klg.GateMonitor(x)
    monitor.set_model(model)
    got = monitor.trace()
    want = klg.trace(model, x)
    assert list(got) == list(want) == ["bi/forward_lstm", "bi/backward_lstm", "top"]
    for name in want:
        np.testing.assert_array_equal(got[name].mask, want[name].mask)
        assert not got[name].mask[1, 4:].any()
        for key in ("input_gate", "forget_gate", "candidate", "output_gate", "cell_state"):
            np.testing.assert_allclose(
                getattr(got[name], key), getattr(want[name], key), atol=1e-6, err_msg=key
            )


def test_stateful_layer_states_are_left_as_they_were():
    x, _ = data(9, n=B)
    keras.utils.set_random_seed(9)
    model = keras.Sequential(
        [keras.Input((T, D), batch_size=B), klg.LSTM(H, stateful=True, name="memory")]
    )
    model(x)  # states now hold the end of this batch
    before = [to_numpy(s).copy() for s in model.get_layer("memory").states]
    monitor = klg.GateMonitor(x)
    monitor.set_model(model)
    monitor.trace()
    monitor.trace()
    after = [to_numpy(s) for s in model.get_layer("memory").states]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert np.abs(before[0]).max() > 0


def test_mixed_model_warns_that_keras_lstms_are_not_traced():
    x, _ = data(10, n=B)
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.LSTM(H, return_sequences=True, name="plain"),
            klg.LSTM(H, name="memory"),
        ]
    )
    monitor = klg.GateMonitor(x)
    monitor.set_model(model)
    with pytest.warns(UserWarning, match=r"klg.LSTM layers .* only, not its keras.layers.LSTM"):
        traces = monitor.trace()
    assert list(traces) == ["memory"]


def test_demo_runs_with_the_monitor(tmp_path, capsys):
    from keras_lstm_gates import demo

    args = ["--train", "128", "--epochs", "2", "--length", "8", "--units", "4"]
    demo.main(args + ["--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Forget gate during training (klg.GateMonitor on 64 test sequences" in out
    assert out.count("klg_lstm ") >= 2
    if HAS_TENSORBOARD:
        assert (tmp_path / "tensorboard" / "gates").is_dir()
        assert f"tensorboard --logdir {tmp_path / 'tensorboard'}" in out
