"""Which kernel each configuration takes: cuDNN (Keras's fused backend LSTM,
on a GPU), klg's fused loop (the plain LSTM, hand-written backward pass) or
its stepwise loop (every other configuration).

The machine running the tests has no GPU, so ``gpu_available`` is
monkeypatched to say it has one, and Keras's backend ``lstm`` is replaced by
a stand-in that computes with ``keras.layers.LSTM`` from the weights it is
given: the layer's output then matches Keras's only if the weights reached
the kernel in Keras's block order.
"""

import keras
import keras.src.backend as keras_backend
import numpy as np
import pytest

import keras_lstm_gates as klg
import keras_lstm_gates.sequence as sequence_module

UNSUPPORTED = {
    "hard_sigmoid gates": {"recurrent_activation": "hard_sigmoid"},
    "gate_options activation": {"gate_options": {"forget_gate": {"activation": "hard_sigmoid"}}},
    "candidate activation": {"gate_options": {"candidate": {"activation": "relu"}}},
    "relu activation": {"activation": "relu"},
    "variant CIFG": {"variant": "CIFG"},
    "variant NOG": {"variant": "NOG"},
    "variant FGR": {"variant": "FGR"},
    "peepholes": {"peepholes": True},
    "recurrent_dropout": {"recurrent_dropout": 0.2},
    "use_bias=False": {"use_bias": False},
    "unroll": {"unroll": True},
    "return_gates": {"return_gates": True},
}


# Without cuDNN, the plain LSTM runs PyTorch's own kernel on the torch backend
# and the fused loop elsewhere.
PLAIN = "onednn" if keras.backend.backend() == "torch" else "fused"


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.fixture
def with_gpu(monkeypatch):
    monkeypatch.setattr(sequence_module, "gpu_available", lambda: True)


@pytest.fixture
def fake_cudnn(monkeypatch):
    """Replace Keras's backend lstm with a stand-in; returns its call log."""
    calls = []

    def lstm(
        inputs,
        initial_state_h,
        initial_state_c,
        mask,
        kernel,
        recurrent_kernel,
        bias,
        activation,
        recurrent_activation,
        return_sequences=False,
        go_backwards=False,
        unroll=False,
        time_major=False,
    ):
        calls.append({"kernel": to_numpy(kernel), "mask": mask})
        units = recurrent_kernel.shape[0]
        ref = keras.layers.LSTM(
            units,
            return_sequences=True,
            return_state=True,
            go_backwards=go_backwards,
            use_cudnn=False,
        )
        ref.build(inputs.shape)
        ref.set_weights([to_numpy(kernel), to_numpy(recurrent_kernel), to_numpy(bias)])
        out, h, c = ref(inputs, initial_state=[initial_state_h, initial_state_c], mask=mask)
        return out[:, -1], out, [h, c]

    monkeypatch.setattr(keras_backend, "lstm", lstm)
    return calls


def test_default_takes_cudnn_on_a_gpu(with_gpu):
    layer = klg.LSTM(4)
    assert layer.cudnn_unsupported_reason() is None
    assert layer.execution_path() == "cudnn"
    assert klg.LSTM(4, use_cudnn=True).execution_path() == "cudnn"


def test_no_gpu_means_fused():
    layer = klg.LSTM(4)
    expected = "cudnn" if sequence_module.gpu_available() else PLAIN
    assert layer.execution_path() == expected


# Configurations cuDNN cannot run that are still the plain LSTM, in an
# inference call: the fused loop (or PyTorch's kernel, but for return_gates)
# runs them; the others run the stepwise loop.
STILL_PLAIN = {"recurrent_dropout": PLAIN, "use_bias=False": PLAIN, "return_gates": "fused"}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_configurations_take_the_loops(with_gpu, name):
    layer = klg.LSTM(4, **UNSUPPORTED[name])
    reason = layer.cudnn_unsupported_reason()
    assert isinstance(reason, str) and reason
    assert layer.execution_path() == STILL_PLAIN.get(name, "stepwise")


def test_use_cudnn_false_takes_the_fused_kernel(with_gpu):
    assert klg.LSTM(4, use_cudnn=False).execution_path() == PLAIN


@pytest.mark.parametrize("config", list(UNSUPPORTED.values()), ids=list(UNSUPPORTED))
def test_use_cudnn_true_with_an_unsupported_configuration_raises(config):
    reason = klg.LSTM(4, **config).cudnn_unsupported_reason()
    with pytest.raises(ValueError, match="use_cudnn=True") as info:
        klg.LSTM(4, use_cudnn=True, **config)
    assert reason in str(info.value)


def test_use_cudnn_true_without_a_gpu_raises_at_call(monkeypatch):
    monkeypatch.setattr(sequence_module, "gpu_available", lambda: False)
    layer = klg.LSTM(4, use_cudnn=True)  # the configuration is fine
    with pytest.raises(ValueError, match="cannot run here"):
        layer(np.zeros((2, 3, 5), "float32"))


def test_bad_use_cudnn_value_raises():
    with pytest.raises(ValueError, match="use_cudnn"):
        klg.LSTM(4, use_cudnn="yes")


@pytest.mark.parametrize("go_backwards", [False, True])
def test_cudnn_path_gets_the_weights_in_keras_order(with_gpu, fake_cudnn, rng, go_backwards):
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    ours = klg.LSTM(4, return_sequences=True, go_backwards=go_backwards)
    ours.build(x.shape)
    klg.set_gates_from_fused(
        ours,
        rng.normal(scale=0.5, size=(3, 16)).astype("float32"),
        rng.normal(scale=0.5, size=(4, 16)).astype("float32"),
        rng.normal(scale=0.5, size=(16,)).astype("float32"),
    )
    ref = keras.layers.LSTM(4, return_sequences=True, go_backwards=go_backwards, use_cudnn=False)
    ref.build(x.shape)
    ref.set_weights(klg.get_fused_weights(ours))
    out = ours(x)
    assert len(fake_cudnn) == 1, "the cuDNN path was not taken"
    np.testing.assert_array_equal(fake_cudnn[0]["kernel"], klg.get_fused_weights(ours)[0])
    np.testing.assert_allclose(to_numpy(out), to_numpy(ref(x)), atol=1e-5)


def test_fused_configuration_never_calls_the_backend_lstm(with_gpu, fake_cudnn, rng):
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    klg.LSTM(4, recurrent_activation="hard_sigmoid")(x)
    klg.LSTM(4, return_gates=True)(x)
    assert fake_cudnn == []


def test_falls_back_when_the_backend_lstm_is_not_implemented(with_gpu, monkeypatch, rng):
    # e.g. Keras's JAX and torch backends raise NotImplementedError for masks
    # that cuDNN cannot take.
    calls = []

    def not_implemented(*args, **kwargs):
        calls.append(1)
        raise NotImplementedError("no cuDNN for this input")

    x = rng.normal(size=(2, 5, 3)).astype("float32")
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2])
    ref = keras.layers.LSTM(4, return_sequences=True, use_cudnn=False)
    ref.build(x.shape)
    ours = klg.LSTM.from_keras(ref)
    expected = to_numpy(ref(x, mask=mask))
    monkeypatch.setattr(keras_backend, "lstm", not_implemented)
    out = ours(x, mask=mask)
    assert calls, "the cuDNN kernel was not tried"
    np.testing.assert_allclose(to_numpy(out), expected, atol=1e-5)


def test_use_cudnn_true_raises_when_the_backend_lstm_is_not_implemented(with_gpu, monkeypatch):
    def not_implemented(*args, **kwargs):
        raise NotImplementedError("no cuDNN for this input")

    monkeypatch.setattr(keras_backend, "lstm", not_implemented)
    layer = klg.LSTM(4, use_cudnn=True)
    with pytest.raises(ValueError, match="use_cudnn=True"):
        layer(np.zeros((2, 3, 5), "float32"))
