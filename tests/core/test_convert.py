"""klg.convert: whole Keras models with keras.layers.LSTM become models with
klg.LSTM (and back), and klg.trace reads models built with keras.layers.LSTM.

Every case compares against the keras.layers.LSTM model itself on the same
backend (its outputs, its weights), or against the independent numpy LSTM
of tests/numpy_reference.py.
"""

import warnings

import keras
import numpy as np
import pytest
from keras import ops
from numpy_reference import lstm_sequence, weights_from_keras_fused

import keras_lstm_gates as klg

B, T, D = 2, 5, 3


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def walk(layer, path=""):
    """``{path: layer}`` for every layer under ``layer``, through nested
    models, Bidirectional and TimeDistributed (public attributes only)."""
    found = {}
    if isinstance(layer, keras.Model):
        children = [
            child for child in layer.layers if not isinstance(child, keras.layers.InputLayer)
        ]
    elif isinstance(layer, keras.layers.Bidirectional):
        children = [layer.forward_layer, layer.backward_layer]
    elif isinstance(layer, keras.layers.TimeDistributed):
        children = [layer.layer]
    else:
        children = []
    for child in children:
        child_path = f"{path}/{child.name}" if path else child.name
        found[child_path] = child
        found.update(walk(child, child_path))
    return found


def keras_lstms(model):
    return {p: layer for p, layer in walk(model).items() if type(layer) is keras.layers.LSTM}


def klg_lstms(model):
    return {p: layer for p, layer in walk(model).items() if isinstance(layer, klg.LSTM)}


def strip(config):
    """A config without the build shapes (from_keras builds with time=None)."""
    if isinstance(config, dict):
        return {k: strip(v) for k, v in config.items() if k != "build_config"}
    if isinstance(config, (list, tuple)):
        return type(config)(strip(v) for v in config)
    return config


def randomize(model, rng):
    """Random weights everywhere (positive where a variance is stored)."""
    for v in model.weights:
        if "variance" in v.path:
            value = rng.uniform(0.5, 1.5, size=v.shape)
        else:
            value = rng.normal(scale=0.5, size=v.shape)
        v.assign(value.astype(keras.backend.standardize_dtype(v.dtype)))
    return model


def outputs(model, x):
    return [to_numpy(y) for y in keras.tree.flatten(model(x))]


def check_round_trip(model, x, atol=1e-5):
    """convert(model) and convert(.., to="keras") against the Keras model."""
    before = [w.copy() for w in model.get_weights()]
    before_layers = walk(model)
    originals = keras_lstms(model)
    assert originals, "the case must hold keras.layers.LSTM layers"

    ours = klg.convert(model)
    converted = klg_lstms(ours)
    # Every keras.layers.LSTM became a klg.LSTM at the same path ...
    assert sorted(converted) == sorted(originals)
    assert not keras_lstms(ours)
    assert set(walk(ours)) == set(before_layers)
    for path, ref in originals.items():
        layer = converted[path]
        # ... with Keras's weights in its gates and Keras's configuration.
        for ours_w, ref_w in zip(klg.get_fused_weights(layer), ref.get_weights()):
            np.testing.assert_array_equal(ours_w, ref_w)
        for key, value in ref.get_config().items():
            if key not in ("name", "dtype"):
                assert layer.get_config()[key] == value, (path, key)
        assert layer.dtype_policy.name == ref.dtype_policy.name
        assert layer.trainable == ref.trainable
    # The other layers keep their weights, names and flags.
    ours_layers = walk(ours)
    for path, ref in before_layers.items():
        assert ours_layers[path].name == ref.name
        assert ours_layers[path].trainable == ref.trainable, path
        assert ours_layers[path].dtype_policy.name == ref.dtype_policy.name, path
    assert sum(int(np.prod(w.shape)) for w in ours.trainable_weights) == sum(
        int(np.prod(w.shape)) for w in model.trainable_weights
    )
    expected = outputs(model, x)
    got = outputs(ours, x)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=atol)

    back = klg.convert(ours, to="keras")
    assert not klg_lstms(back)
    assert sorted(keras_lstms(back)) == sorted(originals)
    # Same structure, so the same weight list, in the same order, exactly,
    # and the same configurations: the Keras model again.
    for a, b in zip(back.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    back_layers = walk(back)
    for path, ref in before_layers.items():
        assert type(back_layers[path]) is type(ref), path
        if not isinstance(ref, keras.layers.Lambda):  # its bytecode is re-marshalled
            assert strip(back_layers[path].get_config()) == strip(ref.get_config()), path

    # The original: same weights, same layer objects, nothing shared.
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    after_layers = walk(model)
    assert after_layers.keys() == before_layers.keys()
    assert all(after_layers[p] is before_layers[p] for p in before_layers)
    for new in (ours, back):
        assert not {id(v) for v in new.weights} & {id(v) for v in model.weights}
        assert not {id(layer) for layer in walk(new).values()} & {
            id(layer) for layer in before_layers.values()
        }
    return ours, back


# -- the structures --------------------------------------------------------------


def test_sequential_stacked(rng):
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.LSTM(4, return_sequences=True, name="first"),
            keras.layers.LSTM(3, return_sequences=True, go_backwards=True, use_bias=False),
            keras.layers.LSTM(2, recurrent_activation="hard_sigmoid", unit_forget_bias=False),
            keras.layers.Dense(1),
        ],
        name="stacked",
    )
    randomize(model, rng)
    ours, _ = check_round_trip(model, rng.normal(size=(B, T, D)).astype("float32"))
    assert ours.name == "stacked" and isinstance(ours, keras.Sequential)
    assert isinstance(ours.get_layer("first"), klg.LSTM)


def test_lambda_and_other_weightless_layers(rng):
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.Lambda(lambda t: 2.0 * t),
            keras.layers.LSTM(4, return_sequences=True),
            keras.layers.Dropout(0.5),
            keras.layers.GlobalAveragePooling1D(),
        ]
    )
    check_round_trip(randomize(model, rng), rng.normal(size=(B, T, D)).astype("float32"))


def test_sequential_called_on_data_without_input(rng):
    model = keras.Sequential([keras.layers.LSTM(4), keras.layers.Dense(1)])
    x = rng.normal(size=(B, T, D)).astype("float32")
    model(x)
    check_round_trip(randomize(model, rng), x)


def test_bidirectional_merge_modes(rng):
    inputs = keras.Input((T, D))
    merged = []
    for mode in ("concat", "sum", "mul", "ave", None):
        y = keras.layers.Bidirectional(
            keras.layers.LSTM(4, return_sequences=True), merge_mode=mode, name=f"bi_{mode}"
        )(inputs)
        merged.append(keras.layers.Concatenate()(y) if mode is None else y)
    model = keras.Model(inputs, merged)
    ours, _ = check_round_trip(randomize(model, rng), rng.normal(size=(B, T, D)).astype("float32"))
    for mode in ("concat", "sum", "mul", "ave", None):
        bi = ours.get_layer(f"bi_{mode}")
        assert bi.merge_mode == mode
        assert not bi.forward_layer.go_backwards and bi.backward_layer.go_backwards


def test_bidirectional_custom_backward_layer_and_return_state(rng):
    forward = keras.layers.LSTM(4, return_sequences=True, return_state=True, name="fw")
    backward = keras.layers.LSTM(
        4,
        return_sequences=True,
        return_state=True,
        go_backwards=True,
        recurrent_activation="hard_sigmoid",
        use_bias=False,
        name="bw",
    )
    inputs = keras.Input((T, D))
    seq, h_f, c_f, h_b, c_b = keras.layers.Bidirectional(
        forward, backward_layer=backward, name="bi"
    )(inputs)
    model = keras.Model(inputs, [seq, h_f, c_b])
    ours, _ = check_round_trip(randomize(model, rng), rng.normal(size=(B, T, D)).astype("float32"))
    bi = ours.get_layer("bi")
    assert bi.backward_layer.name == "bw" and not bi.backward_layer.use_bias
    assert bi.backward_layer.recurrent_activation is keras.activations.hard_sigmoid


def test_masking_before_bidirectional_and_stacked(rng):
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.Masking(0.0),
            keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
            keras.layers.LSTM(3, return_sequences=True),
            keras.layers.LSTM(2),
        ]
    )
    x = rng.normal(size=(B, T, D)).astype("float32")
    x[0, 3:] = 0.0  # padding at the end of the first sequence
    x[1, 1] = 0.0  # and a masked step in the middle of the second
    check_round_trip(randomize(model, rng), x)


def test_embedding_mask_zero(rng):
    model = keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            keras.layers.Embedding(7, D, mask_zero=True),
            keras.layers.LSTM(4, return_sequences=True),
        ]
    )
    tokens = np.array([[3, 1, 4, 0, 0], [5, 2, 6, 1, 2]], dtype="int32")
    ours, _ = check_round_trip(randomize(model, rng), tokens)
    y = to_numpy(ours(tokens))
    # Masked steps repeat the last unmasked output (zero_output_for_mask=False).
    np.testing.assert_array_equal(y[0, 3:], np.stack([y[0, 2]] * 2))


def test_functional_multi_input_output_with_nested_models(rng):
    encoder = keras.Sequential(
        [keras.Input((T, D)), keras.layers.LSTM(4, return_sequences=True)], name="encoder"
    )
    inner_in = keras.Input((T, 4))
    inner_seq, inner_h, inner_c = keras.layers.LSTM(3, return_sequences=True, return_state=True)(
        inner_in
    )
    inner = keras.Model(inner_in, [inner_seq, inner_h, inner_c], name="inner")
    a, b = keras.Input((T, D), name="a"), keras.Input((T, D), name="b")
    seq, h, c = inner(encoder(a))
    last = keras.layers.LSTM(3, name="decoder")(keras.layers.Dense(4)(b), initial_state=[h, c])
    head = keras.layers.Dense(2, name="head")(keras.layers.Concatenate()([last, h]))
    model = keras.Model([a, b], [head, seq], name="outer")
    x = [rng.normal(size=(B, T, D)).astype("float32") for _ in range(2)]
    ours, _ = check_round_trip(randomize(model, rng), x)
    assert isinstance(ours.get_layer("encoder"), keras.Sequential)
    assert isinstance(ours.get_layer("inner").layers[1], klg.LSTM)


def test_model_used_twice_stays_shared(rng):
    shared = keras.Sequential([keras.Input((T, D)), keras.layers.LSTM(3)], name="shared")
    a, b = keras.Input((T, D)), keras.Input((T, D))
    model = keras.Model([a, b], keras.layers.Add()([shared(a), shared(b)]))
    x = [rng.normal(size=(B, T, D)).astype("float32") for _ in range(2)]
    ours, _ = check_round_trip(randomize(model, rng), x)
    assert len([layer for layer in ours.layers if layer.name == "shared"]) == 1


def test_time_distributed(rng):
    inputs = keras.Input((2, T, D))
    y = keras.layers.TimeDistributed(keras.layers.LSTM(3), name="td")(inputs)
    y = keras.layers.TimeDistributed(
        keras.layers.Bidirectional(keras.layers.LSTM(2, return_sequences=True)), name="td_bi"
    )(keras.layers.Reshape((2, 3, 1))(y))
    model = keras.Model(inputs, y)
    check_round_trip(randomize(model, rng), rng.normal(size=(B, 2, T, D)).astype("float32"))


def test_stateful_states_carry_over(rng):
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(B, T, D)),
            keras.layers.LSTM(4, stateful=True, return_sequences=True, name="a"),
            keras.layers.LSTM(3, stateful=True, name="b"),
        ]
    )
    randomize(model, rng)
    x1, x2 = rng.normal(size=(2, B, T, D)).astype("float32")
    model(x1)  # the states are now the end of x1
    states = {p: [to_numpy(s) for s in layer.states] for p, layer in keras_lstms(model).items()}
    assert all(np.abs(s).max() > 0 for v in states.values() for s in v)
    ours = klg.convert(model)
    for path, layer in klg_lstms(ours).items():
        assert layer.stateful
        for got, expected in zip(layer.states, states[path]):
            np.testing.assert_array_equal(to_numpy(got), expected)
    # The next batch continues from the same states in both models.
    np.testing.assert_allclose(to_numpy(ours(x2)), to_numpy(model(x2)), atol=1e-5)


def test_trainable_flags_are_kept(rng):
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.LSTM(4, return_sequences=True, name="frozen"),
            keras.layers.Bidirectional(keras.layers.LSTM(3), name="bi"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(2, name="head"),
        ]
    )
    model.get_layer("frozen").trainable = False
    model.get_layer("bi").backward_layer.trainable = False
    ours, _ = check_round_trip(randomize(model, rng), rng.normal(size=(B, T, D)).astype("float32"))
    assert not ours.get_layer("frozen").trainable
    assert not ours.get_layer("frozen").cell.forget_gate.trainable
    assert ours.get_layer("bi").forward_layer.trainable
    assert not ours.get_layer("bi").backward_layer.trainable
    assert ours.get_layer("head").trainable


def test_frozen_functional_model(rng):
    inputs = keras.Input((T, D))
    model = keras.Model(inputs, keras.layers.LSTM(3)(inputs))
    model.trainable = False
    ours, back = check_round_trip(
        randomize(model, rng), rng.normal(size=(B, T, D)).astype("float32")
    )
    assert not ours.trainable and not back.trainable and not ours.trainable_weights


def test_mixed_precision(rng):
    # One policy here; tests/core/test_parity.py covers mixed_bfloat16 per layer.
    policy, atol = "mixed_float16", 1e-2
    keras.config.set_dtype_policy(policy)
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
            keras.layers.LSTM(3),
            keras.layers.Dense(2, dtype="float32"),
        ]
    )
    keras.config.set_dtype_policy("float32")
    randomize(model, rng)
    ours, _ = check_round_trip(model, rng.normal(size=(B, T, D)).astype("float32"), atol=atol)
    for layer in klg_lstms(ours).values():
        assert layer.dtype_policy.name == policy
        assert layer.cell.forget_gate.kernel.dtype == "float32"


def test_single_layers(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    ref = keras.layers.LSTM(4, return_sequences=True, name="solo")
    ref(x)
    randomize(ref, rng)
    ours = klg.convert(ref)
    assert isinstance(ours, klg.LSTM) and ours.name == "solo"
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(ref(x)), atol=1e-5)
    back = klg.convert(ours, to="keras")
    assert type(back) is keras.layers.LSTM
    np.testing.assert_array_equal(to_numpy(back(x)), to_numpy(ref(x)))

    bi = keras.layers.Bidirectional(keras.layers.LSTM(3), merge_mode="sum")
    bi(x)
    randomize(bi, rng)
    ours = klg.convert(bi)
    assert isinstance(ours.forward_layer, klg.LSTM) and ours.merge_mode == "sum"
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(bi(x)), atol=1e-5)


def test_klg_layers_already_in_the_model_are_copied(rng):
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            klg.LSTM(4, return_sequences=True, name="ours"),
            keras.layers.LSTM(3, name="theirs"),
        ]
    )
    randomize(model, rng)
    new = klg.convert(model)
    assert new.get_layer("ours") is not model.get_layer("ours")
    assert isinstance(new.get_layer("theirs"), klg.LSTM)
    x = rng.normal(size=(B, T, D)).astype("float32")
    np.testing.assert_allclose(to_numpy(new(x)), to_numpy(model(x)), atol=1e-5)


def test_converted_model_saves_and_trains(rng, tmp_path):
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.Bidirectional(keras.layers.LSTM(3)),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    randomize(model, rng)
    x = rng.normal(size=(B, T, D)).astype("float32")
    ours = klg.convert(model)
    path = tmp_path / "ours.keras"
    ours.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[0].forward_layer, klg.LSTM)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), atol=1e-5)
    ours.compile(optimizer="sgd", loss="mse")
    before = klg.get_fused_weights(ours.layers[0].forward_layer)[0]
    ours.train_on_batch(x, np.ones((B, 1), "float32"))
    assert np.abs(klg.get_fused_weights(ours.layers[0].forward_layer)[0] - before).max() > 0


def test_frozen_converted_model_stays_frozen_after_saving(rng, tmp_path):
    model = keras.Sequential([keras.Input((T, D)), keras.layers.LSTM(3, trainable=False)])
    ours = klg.convert(model)
    assert not ours.trainable_weights  # convert itself sets every flag
    ours.save(tmp_path / "frozen.keras")
    loaded = keras.saving.load_model(tmp_path / "frozen.keras")
    assert not loaded.trainable_weights


# -- errors ------------------------------------------------------------------------


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lstm = keras.layers.LSTM(3)

    def call(self, x):
        return self.lstm(x)


def test_subclassed_model_is_refused_with_what_to_do(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    model = Subclassed(name="mine")
    model(x)
    with pytest.raises(TypeError, match=r"'mine'.*subclassed model.*klg.LSTM.from_keras"):
        klg.convert(model)
    inputs = keras.Input((T, D))
    inner = Subclassed(name="inner")
    outer = keras.Model(inputs, inner(inputs))
    with pytest.raises(TypeError, match=r"'inner'.*subclassed.*inner/lstm"):
        klg.convert(outer)


def test_errors(rng):
    with pytest.raises(TypeError, match="keras.Model.*received str"):
        klg.convert("model")
    with pytest.raises(ValueError, match="to='klg' or to='keras', received to='torch'"):
        klg.convert(keras.Sequential([keras.layers.LSTM(3)]), to="torch")
    with pytest.raises(ValueError, match="'unbuilt' is not built"):
        klg.convert(keras.Sequential([keras.layers.LSTM(3)], name="unbuilt"))
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    with pytest.raises(TypeError, match="received Dense"):
        klg.convert(dense)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "CIFG"}, "variant='CIFG'"),
        ({"peepholes": True}, "peepholes=True"),
        ({"gate_options": {"forget_gate": {"activation": "hard_sigmoid"}}}, "forget_gate"),
        ({"return_gates": True}, "return_gates"),
    ],
    ids=["variant", "peepholes", "gate_options", "return_gates"],
)
def test_to_keras_refuses_what_keras_cannot_express(kwargs, message):
    inputs = keras.Input((T, D))
    layer = klg.LSTM(3, name="special", **kwargs)
    if kwargs.get("return_gates"):  # Bidirectional cannot pass the gates on
        y, name = layer(inputs)[0], "special"
    else:
        y, name = keras.layers.Bidirectional(layer, name="bi")(inputs), "forward_special"
    model = keras.Model(inputs, y)
    with pytest.raises(ValueError, match=rf"'{name}' cannot become a keras.layers.LSTM.*{message}"):
        klg.convert(model, to="keras")


def test_lstm_subclass_is_left_alone_with_a_warning(rng):
    class MyLSTM(keras.layers.LSTM):
        pass

    model = keras.Sequential([keras.Input((T, D)), MyLSTM(3, name="mine")])
    with pytest.warns(UserWarning, match="mine"):
        new = klg.convert(model)
    assert type(new.get_layer("mine")) is MyLSTM
    x = rng.normal(size=(B, T, D)).astype("float32")
    np.testing.assert_array_equal(to_numpy(new(x)), to_numpy(model(x)))


# -- klg.trace on keras.layers.LSTM models ------------------------------------------


def reference_trace(layer, x, h0=None, c0=None, mask=None):
    """The numpy LSTM on a keras.layers.LSTM's own weights; trace in input order."""
    W, U, b = weights_from_keras_fused(*layer.get_weights())
    _, _, _, values = lstm_sequence(
        x, W, U, b, h0=h0, c0=c0, mask=mask, go_backwards=layer.go_backwards
    )
    if layer.go_backwards:
        values = {k: v[:, ::-1] for k, v in values.items()}
    return values


def test_trace_keras_model_through_a_twin(rng):
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.Masking(0.0),
            keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), name="bi"),
            keras.layers.LSTM(3, name="top"),
        ]
    )
    randomize(model, rng)
    x = rng.normal(size=(B, T, D)).astype("float32")
    x[0, 4:] = 0.0
    mask = np.any(x != 0.0, axis=-1)
    before = [w.copy() for w in model.get_weights()]
    traces = klg.trace(model, x)
    assert list(traces) == ["bi/forward_lstm", "bi/backward_lstm", "top"]
    bi = model.get_layer("bi")
    for name, layer in (("forward_lstm", bi.forward_layer), ("backward_lstm", bi.backward_layer)):
        t = traces[f"bi/{name}"]
        expected = reference_trace(layer, x, mask=mask)
        np.testing.assert_array_equal(t.mask, mask)
        np.testing.assert_allclose(t.forget_gate, expected["f"], atol=1e-5)
        np.testing.assert_allclose(t.cell_state, expected["c"], atol=1e-5)
    # The model is as it was: Keras's layers, Keras's weights.
    assert type(bi.forward_layer) is keras.layers.LSTM
    assert type(model.get_layer("top")) is keras.layers.LSTM
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_trace_stateful_keras_model_reads_its_states_and_keeps_them(rng):
    model = keras.Sequential(
        [keras.Input(batch_shape=(B, T, D)), keras.layers.LSTM(4, stateful=True, name="lstm")]
    )
    randomize(model, rng)
    x1, x2 = rng.normal(size=(2, B, T, D)).astype("float32")
    model(x1)
    layer = model.get_layer("lstm")
    h0, c0 = (to_numpy(s) for s in layer.states)
    t = klg.trace(model, x2)["lstm"]
    expected = reference_trace(layer, x2, h0=h0, c0=c0)
    np.testing.assert_allclose(t.input_gate, expected["i"], atol=1e-5)
    np.testing.assert_allclose(t.output_gate, expected["o"], atol=1e-5)
    for state, value in zip(layer.states, (h0, c0)):
        np.testing.assert_array_equal(to_numpy(state), value)


def test_trace_a_keras_layer_and_an_unbuilt_keras_model(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    ref = keras.layers.LSTM(3, name="solo")
    ref(x)
    t = klg.trace(ref, x)["solo"]
    np.testing.assert_allclose(t.forget_gate, reference_trace(ref, x)["f"], atol=1e-5)
    assert type(ref) is keras.layers.LSTM
    model = keras.Sequential([keras.layers.LSTM(3, name="lstm")])
    t = klg.trace(model, x)["lstm"]
    assert model.built and type(model.layers[0]) is keras.layers.LSTM
    np.testing.assert_allclose(t.forget_gate, reference_trace(model.layers[0], x)["f"], atol=1e-5)


def test_trace_refuses_a_subclassed_keras_model(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    model = Subclassed(name="mine")
    model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="subclassed model"):
            klg.trace(model, x)
