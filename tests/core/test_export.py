"""Export and deployment: TFLite, ONNX (TensorFlow and PyTorch backends),
SavedModel; and the empty batch.

Every exported klg model is run by its runtime (tf.lite.Interpreter,
onnxruntime, tf.saved_model.load, keras.layers.TFSMLayer) and compared with
keras.layers.LSTM carrying the same weights, run in this process; variants
and gate traces, which Keras has no layer for, are compared with the numpy
reference (tests/numpy_reference.py).  Where a runtime or an exporter is
missing the test is skipped with the reason.
"""

import functools
import importlib.util
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from numpy_reference import lstm_sequence  # noqa: E402

BACKEND = keras.backend.backend()
ATOL = 1e-5
FEATURES, UNITS, STEPS = 3, 4, 5
# The models of the issue: one per option that changes the exported graph.
CONFIGS = ("single", "sequences", "stacked", "bidirectional", "masked", "state")
# Models that combine them, as users build them (TFLite).
COMBINED = (
    "masked_bidirectional_sequences_stacked",
    "masked_go_backwards_sequences",
    "go_backwards_state",
)
ONNX_BACKENDS = ("tensorflow", "torch")


def has(module):
    return importlib.util.find_spec(module) is not None


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def data(rng, batch=2, steps=STEPS):
    x = rng.normal(size=(batch, steps, FEATURES)).astype("float32")
    x[0, :2] = 0.0  # masked (left padding) where the model has a Masking layer
    return x


def build(lstm, config, steps=None, batch_size=None):
    """A small functional model around ``lstm`` (a layer class)."""
    inputs = keras.Input((steps, FEATURES), batch_size=batch_size)
    if config == "single":
        outputs = lstm(UNITS)(inputs)
    elif config == "sequences":
        outputs = lstm(UNITS, return_sequences=True)(inputs)
    elif config == "stacked":
        outputs = lstm(UNITS)(lstm(UNITS, return_sequences=True)(inputs))
    elif config == "bidirectional":
        outputs = keras.layers.Bidirectional(lstm(UNITS))(inputs)
    elif config == "masked":
        outputs = lstm(UNITS)(keras.layers.Masking(0.0)(inputs))
    elif config == "state":
        outputs = keras.layers.Concatenate()(lstm(UNITS, return_state=True)(inputs))
    elif config == "masked_bidirectional_sequences_stacked":
        hidden = keras.layers.Masking(0.0)(inputs)
        hidden = keras.layers.Bidirectional(lstm(UNITS, return_sequences=True))(hidden)
        outputs = lstm(3)(hidden)
    elif config == "masked_go_backwards_sequences":
        hidden = keras.layers.Masking(0.0)(inputs)
        outputs = lstm(UNITS, return_sequences=True, go_backwards=True)(hidden)
    elif config == "go_backwards_state":
        outputs = keras.layers.Concatenate()(
            lstm(UNITS, go_backwards=True, return_state=True)(inputs)
        )
    return keras.Model(inputs, outputs)


def model_pair(rng, config, **shape):
    """``(keras_model, klg_model)`` with the same weights."""
    reference = build(keras.layers.LSTM, config, **shape)
    ours = build(klg.LSTM, config, **shape)
    for ref_layer, layer in zip(reference.layers, ours.layers):
        if isinstance(ref_layer, keras.layers.Bidirectional):
            pairs = [
                (ref_layer.forward_layer, layer.forward_layer),
                (ref_layer.backward_layer, layer.backward_layer),
            ]
        else:
            pairs = [(ref_layer, layer)]
        for ref_lstm, lstm in pairs:
            if isinstance(lstm, klg.LSTM):
                weights = [rng.normal(scale=0.5, size=w.shape) for w in ref_lstm.get_weights()]
                ref_lstm.set_weights([w.astype("float32") for w in weights])
                klg.set_gates_from_fused(lstm, *ref_lstm.get_weights())
    return reference, ours


def onnx_run(path, x):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session, session.run(None, {session.get_inputs()[0].name: x})


def tflite_convert(model, fused=False):
    """The flatbuffer of TensorFlow's converter alone, or (``fused``) of
    ``klg.to_tflite``."""
    import tensorflow as tf

    if fused:
        return klg.to_tflite(model)
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def tflite_run(model, x, fused=False):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=tflite_convert(model, fused))
    # A None sequence length in the model is a 1 in the flatbuffer's input.
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]


def reference_outputs(layer, x, **kwargs):
    """The numpy reference for a built klg layer (any variant)."""
    short = {"input_gate": "i", "forget_gate": "f", "candidate": "g", "output_gate": "o"}
    cell = layer.cell
    W = {k: np.zeros((cell.input_dim, cell.units)) for k in "ifgo"}
    U = {k: np.zeros((cell.units, cell.units)) for k in "ifgo"}
    b = {k: np.zeros(cell.units) for k in "ifgo"}
    p, R = {}, {}
    for name, gate in cell.present_gates.items():
        k = short[name]
        W[k], U[k] = to_numpy(gate.kernel), to_numpy(gate.recurrent_kernel)
        b[k] = to_numpy(gate.bias)
        if gate.peephole is not None:
            p[k] = to_numpy(gate.peephole)
        if gate.gate_recurrent_kernel is not None:
            R[k] = to_numpy(gate.gate_recurrent_kernel)
    norm = None
    if cell.spec.layer_norm:
        norm = {short[n]: to_numpy(g.norm_gain) for n, g in cell.present_gates.items()}
        norm["c_gain"] = to_numpy(cell.output_gate.state_norm_gain)
        norm["c_bias"] = to_numpy(cell.output_gate.state_norm_bias)
    return lstm_sequence(x, W, U, b, p=p, R=R or None, norm=norm, **kwargs)


def assert_close(actual, expected, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape}, expected {expected.shape}"
    )
    np.testing.assert_allclose(actual, expected, atol=ATOL, err_msg=what)


def gates_model(**kwargs):
    """klg.LSTM(return_gates=True): the output and the forget gate trace."""
    inputs = keras.Input((STEPS, FEATURES), batch_size=2)
    layer = klg.LSTM(UNITS, return_gates=True, **kwargs)
    y, gates = layer(inputs)
    return keras.Model(inputs, [y, gates["forget_gate"]]), layer


# -- TFLite --------------------------------------------------------------------

needs_tf = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="TFLite converts TensorFlow graphs only"
)


@needs_tf
@pytest.mark.parametrize("length", ["fixed", "dynamic"])
@pytest.mark.parametrize("config", CONFIGS + COMBINED)
def test_tflite_matches_keras(rng, config, length):
    # TFLite's builtin ops need the batch size fixed, for keras.layers.LSTM
    # as for klg.LSTM (test_tflite_unknown_batch_names_the_fix); the
    # sequence length may stay None.
    steps = STEPS if length == "fixed" else None
    reference, ours = model_pair(rng, config, steps=steps, batch_size=2)
    x = data(rng)
    (expected,) = tflite_run(reference, x)
    assert_close(expected, to_numpy(reference(x)), f"keras.layers.LSTM's TFLite {config}")
    (got,) = tflite_run(ours, x)
    assert_close(got, to_numpy(reference(x)), f"TFLite {config}")


def tflite_ops(model, fused=False):
    """The op names of ``model``'s TFLite flatbuffer, and the klg warnings
    the conversion gave."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flatbuffer = tflite_convert(model, fused)
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    names = {op["op_name"] for op in interpreter._get_ops_details()}
    return names, [str(w.message) for w in caught if "klg.LSTM" in str(w.message)]


FUSED = "UNIDIRECTIONAL_SEQUENCE_LSTM"


@needs_tf
@pytest.mark.parametrize("config", ["single", "sequences", "stacked", "bidirectional"])
def test_to_tflite_plain_lstm_is_the_fused_lstm_op(rng, config):
    # klg.to_tflite converts the plain LSTM to TFLite's own
    # UNIDIRECTIONAL_SEQUENCE_LSTM, as Keras 2's LSTM did (Keras 3's converts
    # to a WHILE loop), with Keras's numbers.  TensorFlow's converter alone
    # gives the exact loop, and a warning that names klg.to_tflite.
    reference, ours = model_pair(rng, config, steps=STEPS, batch_size=2)
    names, warned = tflite_ops(ours, fused=True)
    assert FUSED in names and "WHILE" not in names, sorted(names)
    assert not warned, warned
    x = data(rng)
    (got,) = tflite_run(ours, x, fused=True)
    assert_close(got, to_numpy(reference(x)), f"fused TFLite {config}")
    names, warned = tflite_ops(ours)
    assert "WHILE" in names and FUSED not in names, sorted(names)
    assert warned and all("klg.to_tflite(model)" in w for w in warned), warned


def variant_of(layer):
    layer = getattr(layer, "forward_layer", layer)
    return layer.cell.spec.name


def reference_model_outputs(model, x):
    """The numpy reference through ``build``'s single, sequences, stacked
    and bidirectional models (every klg layer of them)."""
    hidden = x
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Bidirectional):
            forward = reference_outputs(layer.forward_layer, hidden, variant=variant_of(layer))
            backward = reference_outputs(
                layer.backward_layer, hidden[:, ::-1], variant=variant_of(layer)
            )
            return np.concatenate([forward[1], backward[1]], axis=-1)
        outputs, h, _, _ = reference_outputs(layer, hidden, variant=variant_of(layer))
        hidden = outputs if layer.return_sequences else h
    return hidden


FUSED_VARIANTS = [{"variant": "CIFG"}, {"peepholes": True}, {"variant": "CIFG", "peepholes": True}]


@needs_tf
@pytest.mark.parametrize("config", ["single", "sequences", "stacked", "bidirectional"])
@pytest.mark.parametrize("options", FUSED_VARIANTS, ids=["CIFG", "peepholes", "CIFG-peepholes"])
def test_to_tflite_fused_variants_match_reference(rng, options, config):
    # The fused op computes CIFG (f = 1 - i = sigmoid(-z_i): the forget
    # weights are minus the input gate's) and peepholes (written into the
    # op's inputs after conversion); Keras has neither, so the numpy
    # reference checks them, with every weight random, peepholes included.
    model = build(functools.partial(klg.LSTM, **options), config, steps=STEPS, batch_size=2)
    for w in model.weights:
        w.assign(rng.normal(scale=0.7, size=w.shape).astype("float32"))
    names, warned = tflite_ops(model, fused=True)
    assert FUSED in names and "WHILE" not in names, sorted(names)
    assert not warned, warned
    x = data(rng)
    (got,) = tflite_run(model, x, fused=True)
    expected = reference_model_outputs(model, x)
    assert_close(got, expected, f"fused TFLite {options} {config}")
    assert_close(to_numpy(model(x)), expected, f"predict {options} {config}")


def saturating_model(**options):
    """A cell state that climbs past 10 for 40 steps, then falls: TFLite's
    converter clips the fused op's cell state at 10, and an op so clipped
    falls below zero where the layer stays far above.  (A CIFG cell state
    stays in [-1, 1]: each step mixes it with C~ in proportions f and 1 - f.)"""
    inputs = keras.Input((60, 1), batch_size=1)
    layer = klg.LSTM(2, return_sequences=True, **options)
    model = keras.Model(inputs, layer(inputs))
    for gate in layer.cell.present_gates.values():
        gate.kernel.assign(np.zeros(gate.kernel.shape, "float32"))
        gate.bias.assign(np.full(gate.bias.shape, 8.0, "float32"))
    layer.cell.candidate.kernel.assign(np.full((1, 2), 8.0, "float32"))
    layer.cell.candidate.bias.assign(np.zeros(2, "float32"))
    for gate in layer.cell.present_gates.values():
        if gate.peephole is not None:
            gate.peephole.assign(np.full(2, 0.05, "float32"))
    x = np.ones((1, 60, 1), "float32")
    x[:, 40:] = -1.0
    return model, layer, x


@needs_tf
@pytest.mark.parametrize("options", [{}, {"peepholes": True}], ids=["vanilla", "peepholes"])
def test_to_tflite_does_not_clip_the_cell_state(options, monkeypatch):
    from keras_lstm_gates import tflite

    model, layer, x = saturating_model(**options)
    h, _, _, trace = reference_outputs(layer, x)
    assert np.abs(trace["c"]).max() > 30  # the cell state passes the clip
    assert_close(to_numpy(model(x)), h, "predict")
    (got,) = tflite_run(model, x, fused=True)
    assert_close(got, h, "fused TFLite")
    # The op as the converter writes it clips c_t at 10: h ends near -1
    # where the layer's is near +1.
    with monkeypatch.context() as patch:
        patch.setattr(tflite, "_as_computed", lambda flatbuffer, layers: flatbuffer)
        (clipped,) = tflite_run(model, x, fused=True)
    assert np.all(clipped[0, -1] < -0.9) and np.all(h[0, -1] > 0.9), (clipped[0, -1], h[0, -1])
    with pytest.warns(UserWarning, match="cell clip of 10"):
        (loop,) = tflite_run(model, x)
    assert_close(loop, h, "TFLite loop")


@needs_tf
@pytest.mark.parametrize(
    "config, options, reason",
    [
        ("masked", {}, "take no mask"),
        ("state", {}, "no final cell state"),
        ("single", {"variant": "NIG"}, "variant='NIG'"),
        ("single", {"variant": "LN"}, "normalise otherwise"),
        ("single", {"recurrent_activation": "hard_sigmoid"}, "activation is sigmoid"),
        ("single", {"return_gates": True}, "return_gates"),
    ],
)
def test_tflite_unfused_configurations_say_why(rng, config, options, reason):
    lstm = functools.partial(klg.LSTM, **options)
    model = build(lstm, config, steps=STEPS, batch_size=2)
    if options.get("return_gates"):
        inputs = keras.Input((STEPS, FEATURES), batch_size=2)
        model = keras.Model(inputs, lstm(UNITS)(inputs)[0])
    names, warned = tflite_ops(model, fused=True)
    assert "WHILE" in names and FUSED not in names, sorted(names)
    assert warned and all(reason in w for w in warned), (reason, warned)


@needs_tf
def test_to_tflite_bad_input_and_quantized_peepholes(rng):
    import tensorflow as tf

    with pytest.raises(TypeError, match=r"keras.Model or a tf.lite.TFLiteConverter, got str"):
        klg.to_tflite("model.keras")
    # Dynamic-range quantization turns weights of 1024 values and more into
    # int8, where no peephole layer's op can be found by its weights.
    inputs = keras.Input((STEPS, 40), batch_size=1)
    model = keras.Model(inputs, klg.LSTM(40, peepholes=True)(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with pytest.raises(ValueError, match="quantization"):
        klg.to_tflite(converter)
    # Two peephole layers with the same weights and other peepholes.
    inputs = keras.Input((STEPS, FEATURES), batch_size=1)
    first, second = klg.LSTM(UNITS, peepholes=True), klg.LSTM(UNITS, peepholes=True)
    model = keras.Model(inputs, [first(inputs), second(inputs)])
    second.set_weights(first.get_weights())
    second.cell.input_gate.peephole.assign(np.ones(UNITS, "float32"))
    with pytest.raises(ValueError, match="same weights but different peepholes"):
        klg.to_tflite(model)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="the error of the other backends")
def test_to_tflite_needs_tensorflow():
    inputs = keras.Input((STEPS, FEATURES), batch_size=1)
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=tensorflow"):
        klg.to_tflite(keras.Model(inputs, klg.LSTM(UNITS)(inputs)))


@needs_tf
def test_tflite_unknown_batch_names_the_fix():
    # With an unknown batch size TFLite's builtin ops cannot reserve a loop's
    # tensor lists: keras.layers.LSTM fails to convert, and so does a klg
    # loop that collects every step (return_sequences); klg says which
    # options to change.  With TensorFlow ops allowed it converts, and klg
    # says nothing.
    import warnings

    import tensorflow as tf

    def converter(lstm, **kwargs):
        inputs = keras.Input((STEPS, FEATURES))
        return tf.lite.TFLiteConverter.from_keras_model(
            keras.Model(inputs, lstm(UNITS, **kwargs)(inputs))
        )

    with pytest.raises(Exception, match="TensorListReserve"):
        converter(keras.layers.LSTM).convert()
    with pytest.warns(UserWarning, match=r"batch_size=1.*SELECT_TF_OPS"):
        with pytest.raises(Exception, match="TensorListReserve"):
            converter(klg.LSTM, return_sequences=True).convert()
    ops_allowed = converter(klg.LSTM, return_sequences=True)
    ops_allowed.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="klg.LSTM: TensorFlow Lite.s builtin ops")
        assert ops_allowed.convert()


@needs_tf
@pytest.mark.parametrize("config", ["single", "bidirectional", "masked"])
def test_tflite_last_output_converts_with_any_batch(rng, config):
    # A klg loop that keeps only the last step reserves no tensor list, so
    # with builtin ops it converts with the batch left unknown (Keras's own
    # LSTM does not), and the interpreter, resized to each batch, gives the
    # Keras model's numbers.
    import warnings

    reference, ours = model_pair(rng, config)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="klg.LSTM: TensorFlow Lite.s builtin ops")
        for batch in (1, 3):
            x = data(rng, batch=batch)
            (result,) = tflite_run(ours, x)
            assert_close(result, to_numpy(reference(x)), f"{config}, batch {batch}")


# Every variant the loops run, against the numpy reference (Keras has none).
VARIANT_OPTIONS = [{"variant": v} for v in klg.VARIANTS if v not in ("vanilla", "NP")]
VARIANT_OPTIONS.append({"peepholes": True})


@needs_tf
@pytest.mark.parametrize(
    "options", VARIANT_OPTIONS, ids=[o.get("variant", "peepholes") for o in VARIANT_OPTIONS]
)
def test_tflite_variants_match_reference(rng, options):
    # TensorFlow's converter alone: the WHILE loop of every variant.
    inputs = keras.Input((STEPS, FEATURES), batch_size=2)
    layer = klg.LSTM(UNITS, **options)
    model = keras.Model(inputs, layer(inputs))
    for w in layer.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    x = data(rng)
    (got,) = tflite_run(model, x)
    _, h, _, _ = reference_outputs(layer, x, variant=options.get("variant", "vanilla"))
    assert_close(got, h, f"TFLite {options}")


@needs_tf
def test_tflite_return_gates(rng):
    model, layer = gates_model()
    x = data(rng)
    got = sorted(tflite_run(model, x), key=np.ndim)
    _, h, _, trace = reference_outputs(layer, x)
    assert_close(got[0], h, "output")
    assert_close(got[1], trace["f"], "forget gate")


# -- ONNX ----------------------------------------------------------------------


def needs_onnx():
    if BACKEND not in ONNX_BACKENDS:
        pytest.skip(
            f"ONNX export on {BACKEND} goes through jax2onnx: see test_onnx_jax_through_jax2onnx"
        )
    missing = [m for m in ("onnx", "onnxruntime") if not has(m)]
    if BACKEND == "tensorflow" and not has("tf2onnx"):
        missing.append("tf2onnx")

    if missing:
        pytest.skip(f"needs the [export] extra ({', '.join(missing)} missing)")


def export_onnx(model, tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    model.export(str(path), format="onnx", verbose=False)
    return path


def onnx_dims(session):
    """The input's and the outputs' dims, None where the graph keeps them
    dynamic."""
    dims = [d for io in (session.get_inputs(), session.get_outputs()) for d in io]
    return [[d if isinstance(d, int) else None for d in io.shape] for io in dims]


@pytest.mark.parametrize("length", ["dynamic", "fixed"])
@pytest.mark.parametrize("config", CONFIGS)
def test_onnx_matches_keras(rng, tmp_path, config, length):
    needs_onnx()
    if BACKEND == "torch" and length == "dynamic":
        # The exporter unrolls the loop over the traced length, for
        # keras.layers.LSTM as for klg.LSTM: the length is fixed there.
        pytest.skip("PyTorch's ONNX export fixes the sequence length")
    steps = None if length == "dynamic" else STEPS
    reference, ours = model_pair(rng, config, steps=steps)
    x = data(rng)
    expected = to_numpy(reference(x))
    ours(x)  # Keras exports a model that has been called
    ref_session, _ = onnx_run(export_onnx(reference, tmp_path, "keras"), x)
    path = export_onnx(ours, tmp_path, "klg")
    session, (got,) = onnx_run(path, x)
    assert_close(got, expected, f"ONNX {config}")
    # Batch size (and on TensorFlow the sequence length) stay dynamic where
    # keras.layers.LSTM's export keeps them so; another batch size runs.
    ours_dims, ref_dims = onnx_dims(session), onnx_dims(ref_session)
    assert ours_dims[0] == ref_dims[0], "input dims"
    for got_dims, ref in zip(ours_dims[1:], ref_dims[1:]):
        assert (got_dims[0] is None) == (ref[0] is None), ("output batch dim", got_dims, ref)
    x3 = data(rng, batch=3)
    _, (got3,) = onnx_run(path, x3)
    assert_close(got3, to_numpy(reference(x3)), f"ONNX {config}, batch 3")


@pytest.mark.parametrize("config", ["stacked", "bidirectional", "masked"])
def test_exports_multiplying_gate_by_gate(rng, tmp_path, monkeypatch, config):
    # From 256 units the loops multiply by each gate's weights apart rather
    # than joined; lower that threshold so that these small models export
    # that graph, and check it against keras.layers.LSTM in every runtime.
    from keras_lstm_gates.loops import common

    monkeypatch.setattr(common, "SEPARATE_BLOCKS_MIN_UNITS", 1)
    if BACKEND == "tensorflow":
        from keras_lstm_gates.loops import tensorflow as tf_loops

        monkeypatch.setattr(tf_loops, "_LOOPS", {})
    x = data(rng)
    if BACKEND == "jax":
        # ONNX export runs on the TensorFlow and PyTorch backends.  A JAX
        # SavedModel (jax2tf, with the loop's gradient) has symbolic batch
        # and length, which the layout rule must not compare.
        import tensorflow as tf

        reference, ours = model_pair(rng, config)
        expected = to_numpy(reference(x))
        ours(x)
        path = str(tmp_path / "saved")
        ours.export(path, format="tf_saved_model", verbose=False)
        loaded = tf.saved_model.load(path)
        assert_close(loaded.serve(tf.constant(x)).numpy(), expected, f"SavedModel {config}")
        return
    if BACKEND == "tensorflow":
        reference, ours = model_pair(rng, config, steps=STEPS, batch_size=2)
        (got,) = tflite_run(ours, x)
        assert_close(got, to_numpy(reference(x)), f"TFLite {config}, gate by gate")
    needs_onnx()
    reference, ours = model_pair(rng, config, steps=STEPS)
    expected = to_numpy(reference(x))
    ours(x)
    _, (got,) = onnx_run(export_onnx(ours, tmp_path, "klg"), x)
    assert_close(got, expected, f"ONNX {config}, gate by gate")


@pytest.mark.parametrize("config", ["single", "sequences", "stacked", "bidirectional", "state"])
def test_onnx_tensorflow_plain_lstm_is_lstm_nodes(rng, tmp_path, config):
    # tf2onnx makes ONNX's LSTM of the loop step it knows from Keras's LSTM
    # (BiasAdd, one Split, the gates in Keras's order): klg's exported loop
    # computes its step so, and keeps every h as Keras's does, so that each
    # layer becomes the node that Keras's becomes (a Bidirectional, one
    # bidirectional node), with the batch and the length dynamic.
    if BACKEND != "tensorflow":
        pytest.skip("tf2onnx converts TensorFlow graphs")
    needs_onnx()
    import onnx

    reference, ours = model_pair(rng, config)
    x = data(rng)
    reference(x), ours(x)  # Keras exports a model that has been called
    nodes = {}
    for name, model in (("keras", reference), ("klg", ours)):
        path = export_onnx(model, tmp_path, name)
        nodes[name] = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert nodes["klg"].count("LSTM") == nodes["keras"].count("LSTM") >= 1, nodes
    assert "Loop" not in nodes["klg"], sorted(set(nodes["klg"]))
    for batch, steps in ((2, STEPS), (3, 9)):
        x = data(rng, batch=batch, steps=steps)
        _, (got,) = onnx_run(path, x)
        assert_close(got, to_numpy(reference(x)), f"ONNX LSTM node {config}, {steps} steps")


@pytest.mark.parametrize("config", ["single", "sequences", "stacked", "bidirectional"])
def test_onnx_tensorflow_cifg_is_lstm_nodes(rng, tmp_path, config):
    # CIFG is the plain LSTM with the forget weights minus the input gate's:
    # exported for tf2onnx as the plain loop with those weights, it becomes
    # ONNX's LSTM node too.  Keras has no CIFG: the numpy reference checks it.
    if BACKEND != "tensorflow":
        pytest.skip("tf2onnx converts TensorFlow graphs")
    needs_onnx()
    import onnx

    model = build(functools.partial(klg.LSTM, variant="CIFG"), config)
    for w in model.weights:
        w.assign(rng.normal(scale=0.7, size=w.shape).astype("float32"))
    model(data(rng))
    path = export_onnx(model, tmp_path, "cifg")
    nodes = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert "LSTM" in nodes and "Loop" not in nodes, sorted(set(nodes))
    for batch, steps in ((2, STEPS), (3, 9)):
        x = data(rng, batch=batch, steps=steps)
        _, (got,) = onnx_run(path, x)
        assert_close(got, reference_model_outputs(model, x), f"ONNX CIFG {config}, {steps} steps")


def test_onnx_torch_warns_on_an_unknown_sequence_length(rng, tmp_path):
    # PyTorch's exporter unrolls klg's step loop over the traced length, and
    # Keras traces a None length as 1: the artifact would compute one step.
    if BACKEND != "torch":
        pytest.skip("the loop is unrolled by PyTorch's exporter only")
    needs_onnx()
    inputs = keras.Input((None, FEATURES))
    model = keras.Model(inputs, klg.LSTM(UNITS, variant="NIG")(inputs))
    model(data(rng))
    with pytest.warns(UserWarning, match="sequence length of 1"):
        export_onnx(model, tmp_path, "unknown_length")


def test_onnx_torch_plain_lstm_is_one_lstm_node(rng, tmp_path):
    # The plain LSTM runs PyTorch's own kernel, which the exporter writes as
    # ONNX's LSTM operator: no unrolled loop, and any sequence length.
    if BACKEND != "torch":
        pytest.skip("PyTorch's LSTM kernel is the torch backend's")
    needs_onnx()
    import onnx

    inputs = keras.Input((None, FEATURES))
    model = keras.Model(inputs, klg.LSTM(UNITS, return_sequences=True)(inputs))
    model(data(rng))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*sequence length of 1.*")
        path = export_onnx(model, tmp_path, "lstm_node")
    ops_used = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "LSTM" in ops_used and "Loop" not in ops_used, sorted(ops_used)
    for steps in (3, 7):
        x = data(rng, steps=steps)
        _, (got,) = onnx_run(path, x)
        assert_close(got, to_numpy(model(x)), f"ONNX LSTM node, {steps} steps")


@pytest.mark.parametrize("config", ["sequences", "stacked", "bidirectional"])
@pytest.mark.parametrize("options", FUSED_VARIANTS, ids=["CIFG", "peepholes", "CIFG-peepholes"])
def test_onnx_torch_fused_variants_are_lstm_nodes(rng, tmp_path, options, config):
    # CIFG (the forget weights minus the input gate's) and peepholes (ONNX's
    # input P) export as ONNX's LSTM node, one per layer, for any sequence
    # length; the numpy reference checks the numbers, every weight random.
    if BACKEND != "torch":
        pytest.skip("the LSTM node comes from PyTorch's ONNX exporter")
    needs_onnx()
    import onnx

    model = build(functools.partial(klg.LSTM, **options), config)
    for w in model.weights:
        w.assign(rng.normal(scale=0.7, size=w.shape).astype("float32"))
    model(data(rng))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*sequence length of 1.*")
        path = export_onnx(model, tmp_path, "variant")
    nodes = [node.op_type for node in onnx.load(str(path)).graph.node]
    layers = 2 if config in ("stacked", "bidirectional") else 1
    assert nodes.count("LSTM") == layers and "Loop" not in nodes, sorted(set(nodes))
    for steps, batch in ((STEPS, 2), (9, 3)):
        x = data(rng, batch=batch, steps=steps)
        _, (got,) = onnx_run(path, x)
        assert_close(
            got, reference_model_outputs(model, x), f"ONNX {options} {config}, {steps} steps"
        )


@pytest.mark.parametrize("config", ["single", "sequences", "stacked", "bidirectional", "masked"])
def test_onnx_jax_through_jax2onnx(rng, tmp_path, config):
    # On JAX, Keras writes ONNX with jax2onnx: klg's loop becomes an ONNX Loop,
    # as keras.layers.LSTM's does, with Keras's numbers.
    if BACKEND != "jax":
        pytest.skip("Keras's ONNX export through jax2onnx is the JAX backend's")
    missing = [m for m in ("onnx", "onnxruntime", "jax2onnx") if not has(m)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    import onnx

    reference, ours = model_pair(rng, config, steps=STEPS)
    x = data(rng)
    expected = to_numpy(reference(x))
    ours(x)
    # A known length whose every step is output: jax2onnx drops a transpose
    # of a scan's outputs, which klg writes as an einsum there.
    path = export_onnx(ours, tmp_path, f"jax_{config}")
    assert "Loop" in {node.op_type for node in onnx.load(str(path)).graph.node}
    _, (got,) = onnx_run(path, x)
    assert_close(got, expected, f"ONNX through jax2onnx, {config}")


@pytest.mark.parametrize("options", [{"peepholes": True}, {"return_gates": True}])
def test_onnx_jax_variant_sequences_match_reference(rng, tmp_path, options):
    # The step loop's outputs (every h, the gate traces) of a known length,
    # through jax2onnx, against the numpy reference.
    if BACKEND != "jax":
        pytest.skip("Keras's ONNX export through jax2onnx is the JAX backend's")
    missing = [m for m in ("onnx", "onnxruntime", "jax2onnx") if not has(m)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    inputs = keras.Input((STEPS, FEATURES))
    layer = klg.LSTM(UNITS, return_sequences=True, **options)
    out = layer(inputs)
    model = keras.Model(inputs, [out[0], out[1]["forget_gate"]] if layer.return_gates else out)
    for w in layer.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    x = data(rng)
    model(x)
    _, got = onnx_run(export_onnx(model, tmp_path, "jax_variant"), x)
    outputs, _, _, trace = reference_outputs(layer, x)
    assert_close(got[0], outputs, f"every h {options}")
    if layer.return_gates:
        assert_close(got[1], trace["f"], "forget gate trace")


def test_onnx_variant_and_gates_match_reference(rng, tmp_path):
    needs_onnx()
    model, layer = gates_model(peepholes=True)
    for w in layer.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    x = data(rng)
    model(x)
    _, got = onnx_run(export_onnx(model, tmp_path, "gates"), x)
    got = sorted(got, key=np.ndim)
    _, h, _, trace = reference_outputs(layer, x)
    assert_close(got[0], h, "output")
    assert_close(got[1], trace["f"], "forget gate")


# -- SavedModel ----------------------------------------------------------------


@pytest.mark.parametrize("config", ["single", "bidirectional", "masked"])
def test_saved_model_serve_and_tfsmlayer(rng, tmp_path, config):
    if BACKEND not in ("tensorflow", "jax"):
        pytest.skip(f"format='tf_saved_model' needs the TensorFlow or JAX backend, not {BACKEND}")
    import tensorflow as tf

    reference, ours = model_pair(rng, config)
    x = data(rng)
    expected = to_numpy(reference(x))
    ours(x)
    path = str(tmp_path / "saved")
    ours.export(path, format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(path)
    assert_close(loaded.serve(tf.constant(x)).numpy(), expected, "serve")
    signature = loaded.signatures["serving_default"]
    (got,) = signature(tf.constant(x)).values()
    assert_close(got.numpy(), expected, "serving_default")
    if BACKEND == "tensorflow":
        served = keras.Sequential([keras.layers.TFSMLayer(path, call_endpoint="serve")])
        assert_close(to_numpy(served(x)), expected, "TFSMLayer")


def uses_xla(graph_def):
    """Whether any call in ``graph_def`` or its functions must compile with XLA."""
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return any(n.attr["_XlaMustCompile"].b for n in nodes if "_XlaMustCompile" in n.attr)


@needs_tf
def test_exported_graph_runs_the_plain_loop(rng, tmp_path):
    # In a running program traced for a known length the loop is an
    # XLA-compiled function (for an unknown length the plain loop, which XLA
    # would compile again per length); a graph written out holds the plain
    # loop, which converters read and any TensorFlow runtime serves.
    import tensorflow as tf

    layer = klg.LSTM(UNITS)
    model = keras.Sequential([keras.Input((None, FEATURES)), layer])
    x = data(rng)
    function = tf.function(lambda a: model(a))
    known = function.get_concrete_function(tf.TensorSpec((None, STEPS, FEATURES)))
    assert uses_xla(known.graph.as_graph_def())
    unknown = function.get_concrete_function(tf.TensorSpec((None, None, FEATURES)))
    assert not uses_xla(unknown.graph.as_graph_def())
    path = str(tmp_path / "saved")
    model.export(path, format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(path)
    assert not uses_xla(loaded.signatures["serving_default"].graph.as_graph_def())
    assert_close(loaded.serve(tf.constant(x)).numpy(), to_numpy(model(x)), "serve")


# -- the empty batch -------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{}, {"return_sequences": True, "return_state": True}, {"variant": "CIFG"}],
    ids=["plain", "sequences_and_state", "CIFG"],
)
def test_empty_batch(options):
    x = np.zeros((0, STEPS, FEATURES), "float32")
    layer = klg.LSTM(UNITS, **options)
    got = [to_numpy(v) for v in keras.tree.flatten(layer(x))]
    keras_options = {k: v for k, v in options.items() if k != "variant"}
    reference = keras.layers.LSTM(UNITS, **keras_options)
    if BACKEND == "tensorflow":
        # keras.layers.LSTM itself fails on an empty batch there (BiasAdd);
        # its computed output shapes are the reference.
        shapes = reference.compute_output_shape(x.shape)
        if not options.get("return_state"):
            shapes = [shapes]
        expected = [np.zeros(s, "float32") for s in shapes]
    else:
        expected = [to_numpy(v) for v in keras.tree.flatten(reference(x))]
    assert len(got) == len(expected)
    for a, e in zip(got, expected):
        assert_close(a, e, f"empty batch {options}")


def test_empty_batch_trains():
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.zeros((0, STEPS, FEATURES))
        layer = klg.LSTM(UNITS)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        grads = tape.gradient(loss, layer.trainable_variables)
    elif BACKEND == "jax":
        import jax

        layer = klg.LSTM(UNITS)
        layer.build((None, STEPS, FEATURES))
        values = [v.value for v in layer.trainable_variables]
        fixed = [v.value for v in layer.non_trainable_variables]
        x = np.zeros((0, STEPS, FEATURES), "float32")

        def loss(vals):
            return keras.ops.sum(layer.stateless_call(vals, fixed, x)[0])

        grads = jax.grad(loss)(values)
    else:
        import torch

        layer = klg.LSTM(UNITS)
        y = layer(torch.zeros((0, STEPS, FEATURES)))
        grads = torch.autograd.grad(y.sum(), [v.value for v in layer.trainable_variables])
    for g, v in zip(grads, layer.trainable_variables):
        assert_close(to_numpy(g), np.zeros(v.shape, "float32"), f"d{v.path}")


# -- the docs page's PyTorch block -------------------------------------------------

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "export.md"


def test_docs_pytorch_onnx_block_runs():
    # docs/export.md's ```python blocks run on TensorFlow in tests/site; its
    # ```py block is the PyTorch backend's ONNX export, run here.
    if BACKEND != "torch":
        pytest.skip("the block exports on the PyTorch backend")
    needs_onnx()
    import re

    blocks = re.findall(r"^```py\n(.*?)^```$", DOCS_PAGE.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) == 1, "docs/export.md should hold one ```py block"
    exec(compile(blocks[0], str(DOCS_PAGE), "exec"), {})
