"""Initial biases: ``forget_bias`` (Jozefowicz et al. 2015, generalising
``unit_forget_bias``) and chrono initialisation (Tallec & Ollivier 2018):
``b_f = log u`` with ``u ~ U[1, T_max - 1]`` and ``b_i = -b_f``."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg

PARTS = ("input_gate", "forget_gate", "candidate", "output_gate")


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def biases(layer):
    return {n: to_numpy(g.bias) for n, g in layer.cell.present_gates.items()}


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# -- the initializer ---------------------------------------------------------


def test_chrono_draw_is_log_uniform_on_1_to_t_max_minus_1():
    t_max = 100
    b = to_numpy(klg.ChronoInitializer(t_max, seed=0)((4000,))).astype("float64")
    assert b.min() >= 0.0 and b.max() <= np.log(t_max - 1) + 1e-6
    u = np.sort(np.exp(b))
    assert u.min() >= 1.0 - 1e-4 and u.max() <= t_max - 1 + 1e-3
    # Kolmogorov-Smirnov distance of exp(b) from U[1, T_max - 1]
    # (critical value at the 1% level: 1.63 / sqrt(n)).
    n = u.size
    cdf = (u - 1.0) / (t_max - 2.0)
    distance = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert distance < 1.63 / np.sqrt(n), distance


def test_chrono_memory_times_spread_over_2_to_t_max():
    """The paper's point: the forget gate's characteristic forgetting time
    1 / (1 - sigma(b_f)) = 1 + u lies in [2, T_max]."""
    t_max = 40
    b = to_numpy(klg.ChronoInitializer(t_max, seed=1)((2000,))).astype("float64")
    times = 1.0 / (1.0 - sigmoid(b))
    assert times.min() >= 2.0 - 1e-3 and times.max() <= t_max + 1e-2
    assert times.max() > 0.9 * t_max and times.min() < 2.5  # the whole range is used


def test_negate_gives_exactly_minus_the_same_draw():
    forget = to_numpy(klg.ChronoInitializer(50, seed=7)((3, 5)))
    inputs = to_numpy(klg.ChronoInitializer(50, negate=True, seed=7)((3, 5)))
    assert forget.shape == (3, 5) and forget.dtype == np.float32
    np.testing.assert_array_equal(inputs, -forget)


def test_seed_makes_the_draw_reproducible():
    a = to_numpy(klg.ChronoInitializer(50, seed=3)((64,)))
    b = to_numpy(klg.ChronoInitializer(50, seed=3)((64,)))
    c = to_numpy(klg.ChronoInitializer(50, seed=4)((64,)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    unseeded = klg.ChronoInitializer(50)
    assert not np.array_equal(to_numpy(unseeded((64,))), to_numpy(unseeded((64,))))


def test_initializer_is_a_serializable_keras_initializer():
    init = klg.ChronoInitializer(120, negate=True, seed=11)
    assert isinstance(init, keras.initializers.Initializer)
    config = keras.initializers.serialize(init)
    restored = keras.initializers.deserialize(config)
    assert isinstance(restored, klg.ChronoInitializer)
    assert restored.get_config() == {"t_max": 120.0, "negate": True, "seed": 11}
    np.testing.assert_array_equal(to_numpy(restored((10,))), to_numpy(init((10,))))
    by_name = keras.initializers.get(
        {"class_name": "keras_lstm_gates>ChronoInitializer", "config": {"t_max": 10, "seed": 0}}
    )
    assert isinstance(by_name, klg.ChronoInitializer) and by_name.t_max == 10.0


@pytest.mark.parametrize("t_max", [2, 1.5, 0, -10, float("nan"), float("inf"), "100", True])
def test_bad_t_max_is_refused(t_max):
    with pytest.raises(ValueError, match=r"expected t_max .*received t_max="):
        klg.ChronoInitializer(t_max)
    with pytest.raises(ValueError, match=r"expected t_max .*received t_max="):
        klg.LSTM(4, chrono_t_max=t_max)
    with pytest.raises(ValueError, match=r"received t_max=None"):
        klg.ChronoInitializer(None)


# -- the layer option ----------------------------------------------------------


@pytest.mark.parametrize("variant", ["vanilla", "NOG", "NIAF", "NOAF", "FGR", "NP"])
def test_layer_chrono_sets_forget_and_input_biases(variant):
    t_max = 60
    layer = klg.LSTM(16, variant=variant, chrono_t_max=t_max, chrono_seed=5)
    layer.build((None, None, 3))
    b = biases(layer)
    b_f, b_i = b["forget_gate"].astype("float64"), b["input_gate"]
    assert b_f.min() >= 0.0 and b_f.max() <= np.log(t_max - 1) + 1e-6
    assert len(np.unique(b_f)) == 16  # drawn, not constant
    np.testing.assert_array_equal(b["input_gate"], -b["forget_gate"])
    assert b_i.max() <= 0.0
    for name in ("candidate", "output_gate"):
        if name in b:
            np.testing.assert_array_equal(b[name], np.zeros(16))  # bias_initializer="zeros"
    assert isinstance(layer.cell.forget_gate.bias_initializer, klg.ChronoInitializer)


def test_layer_chrono_is_reproducible_with_its_seed():
    def forget_bias(**kwargs):
        layer = klg.LSTM(8, chrono_t_max=30, **kwargs)
        layer.build((None, None, 2))
        return biases(layer)["forget_gate"], layer

    a, _ = forget_bias(chrono_seed=1)
    b, _ = forget_bias(chrono_seed=1)
    c, _ = forget_bias(chrono_seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Without a seed one is drawn and kept in the config, so a layer made
    # from the config starts from the same biases.
    d, layer = forget_bias()
    assert isinstance(layer.get_config()["chrono_seed"], int)
    twin = klg.LSTM.from_config(layer.get_config())
    twin.build((None, None, 2))
    np.testing.assert_array_equal(biases(twin)["forget_gate"], d)


def test_chrono_survives_a_keras_file(tmp_path, rng):
    model = keras.Sequential(
        [keras.Input((None, 3)), klg.LSTM(6, chrono_t_max=25, chrono_seed=9, name="lstm")]
    )
    before = biases(model.get_layer("lstm"))
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    path = tmp_path / "chrono.keras"
    model.save(path)
    loaded = keras.models.load_model(path).get_layer("lstm")
    after = biases(loaded)
    for name in PARTS:
        np.testing.assert_array_equal(after[name], before[name])
    np.testing.assert_array_equal(after["input_gate"], -after["forget_gate"])
    assert loaded.chrono_t_max == 25.0 and loaded.cell.chrono_seed == 9
    init = loaded.cell.forget_gate.bias_initializer
    assert isinstance(init, klg.ChronoInitializer) and init.t_max == 25.0
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model.get_layer("lstm")(x)))


def test_chrono_as_a_gate_option():
    """The initializer can also be given per gate, like any other."""
    layer = klg.LSTM(
        5,
        unit_forget_bias=False,
        gate_options={"forget_gate": {"bias_initializer": klg.ChronoInitializer(20, seed=0)}},
    )
    layer.build((None, None, 2))
    b = biases(layer)
    assert 0.0 <= b["forget_gate"].min() and b["forget_gate"].max() <= np.log(19) + 1e-6
    np.testing.assert_array_equal(b["input_gate"], np.zeros(5))


def test_chrono_refusals():
    with pytest.raises(ValueError, match="either forget_bias or chrono_t_max"):
        klg.LSTM(4, chrono_t_max=10, forget_bias=1.0)
    with pytest.raises(ValueError, match="needs use_bias=True"):
        klg.LSTM(4, chrono_t_max=10, use_bias=False)
    with pytest.raises(ValueError, match=r"chrono_t_max sets the initial forget_gate bias"):
        klg.LSTM(4, chrono_t_max=10, gate_options={"forget_gate": {"bias_initializer": "ones"}})
    with pytest.raises(ValueError, match=r"chrono_t_max sets the initial input_gate bias"):
        klg.LSTM(4, chrono_t_max=10, gate_options={"input_gate": {"bias_initializer": "ones"}})
    with pytest.raises(ValueError, match=r"pass chrono_t_max as well"):
        klg.LSTM(4, chrono_seed=3)
    with pytest.raises(ValueError, match=r"chrono_seed.*integer.*received chrono_seed='3'"):
        klg.LSTM(4, chrono_t_max=10, chrono_seed="3")
    for variant in ("NIG", "NFG", "CIFG"):
        with pytest.raises(ValueError, match=f"variant '{variant}' has no"):
            klg.LSTM(4, variant=variant, chrono_t_max=10)


# -- forget_bias ---------------------------------------------------------------


@pytest.mark.parametrize("value", [2.5, 0.0, -1.0, 3])
def test_forget_bias_sets_only_the_forget_gate(value):
    layer = klg.LSTM(4, forget_bias=value)  # unit_forget_bias=True by default
    layer.build((None, None, 3))
    b = biases(layer)
    np.testing.assert_array_equal(b["forget_gate"], np.full(4, value, "float32"))
    for name in ("input_gate", "candidate", "output_gate"):
        np.testing.assert_array_equal(b[name], np.zeros(4))
    assert layer.forget_bias == float(value)


def test_unit_forget_bias_is_forget_bias_one_like_keras():
    """Without forget_bias, unit_forget_bias behaves as in keras.layers.LSTM."""
    for unit in (True, False):
        ours = klg.LSTM(3, unit_forget_bias=unit, bias_initializer="zeros")
        ours.build((None, None, 2))
        ref = keras.layers.LSTM(3, unit_forget_bias=unit)
        ref.build((None, None, 2))
        keras_forget_block = to_numpy(ref.cell.bias)[3:6]
        np.testing.assert_array_equal(biases(ours)["forget_gate"], keras_forget_block)
    ones = klg.LSTM(3, unit_forget_bias=True)
    same = klg.LSTM(3, unit_forget_bias=False, forget_bias=1.0)
    for layer in (ones, same):
        layer.build((None, None, 2))
    np.testing.assert_array_equal(biases(ones)["forget_gate"], biases(same)["forget_gate"])


@pytest.mark.parametrize("variant", ["NIG", "NOG", "FGR"])
def test_forget_bias_in_variants_with_a_forget_gate(variant):
    layer = klg.LSTM(3, variant=variant, forget_bias=1.5)
    layer.build((None, None, 2))
    np.testing.assert_array_equal(biases(layer)["forget_gate"], np.full(3, 1.5, "float32"))


def test_forget_bias_survives_a_keras_file(tmp_path):
    model = keras.Sequential([keras.Input((None, 2)), klg.LSTM(3, forget_bias=2.0, name="lstm")])
    path = tmp_path / "fb.keras"
    model.save(path)
    loaded = keras.models.load_model(path).get_layer("lstm")
    assert loaded.forget_bias == 2.0
    np.testing.assert_array_equal(biases(loaded)["forget_gate"], np.full(3, 2.0, "float32"))


@pytest.mark.parametrize("value", ["1", True, float("nan"), float("inf"), [1.0]])
def test_bad_forget_bias_is_refused(value):
    with pytest.raises(ValueError, match="forget_bias"):
        klg.LSTM(4, forget_bias=value)


def test_forget_bias_refusals():
    with pytest.raises(ValueError, match="needs use_bias=True"):
        klg.LSTM(4, forget_bias=1.0, use_bias=False)
    with pytest.raises(ValueError, match=r"forget_bias sets the initial forget_gate bias"):
        klg.LSTM(4, forget_bias=1.0, gate_options={"forget_gate": {"bias_initializer": "ones"}})
    for variant in ("NFG", "CIFG"):
        with pytest.raises(ValueError, match=f"variant '{variant}' has no forget gate"):
            klg.LSTMCell(4, variant=variant, forget_bias=1.0)
