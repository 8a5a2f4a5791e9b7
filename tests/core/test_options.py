"""The constructor arguments of the gates, the cell and the layer are declared
once (keras_lstm_gates/options.py); their signatures, checks and configs all
come from that declaration.  Checked against keras.layers.LSTM and
keras.layers.LSTMCell, whose arguments klg takes with the same defaults."""

import inspect

import keras
import pytest

import keras_lstm_gates as klg


def defaults(cls):
    return {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    }


@pytest.mark.parametrize(
    "ours, theirs",
    [(klg.LSTM, keras.layers.LSTM), (klg.LSTMCell, keras.layers.LSTMCell)],
    ids=["LSTM", "LSTMCell"],
)
def test_signature_has_every_keras_argument_with_its_default(ours, theirs):
    mine, keras_own = defaults(ours), defaults(theirs)
    missing = sorted(set(keras_own) - set(mine) - {"implementation"})
    assert not missing, f"{ours.__name__} lacks {missing}"
    for name, default in keras_own.items():
        if name in mine:
            assert mine[name] == default, (name, mine[name], default)
    # Keras's positional order is kept: its arguments come first, in order.
    shared = [n for n in keras_own if n in mine]
    assert [n for n in mine if n in shared] == shared


@pytest.mark.parametrize(
    "cls", [klg.Gate, klg.InputGate, klg.ForgetGate, klg.OutputGate, klg.CandidateMemory]
)
def test_gate_signatures(cls):
    params = defaults(cls)
    assert list(params)[0] == "units"
    expected = "tanh" if cls in (klg.Gate, klg.CandidateMemory) else "sigmoid"
    assert params["activation"] == expected
    assert cls(3).get_config()["activation"] == expected


@pytest.mark.parametrize("cls", [klg.LSTM, klg.LSTMCell])
def test_config_round_trip_of_every_argument(cls):
    kwargs = {
        "units": 3,
        "activation": "relu",
        "dropout": 0.25,
        "seed": 7,
        "variant": "CIFG",
        "peepholes": True,
        "gate_options": {"candidate": {"kernel_initializer": "zeros"}},
        "implementation": 1,
    }
    if cls is klg.LSTM:
        kwargs.update(return_sequences=True, go_backwards=True, return_gates=True)
    config = cls(**kwargs).get_config()
    declared = set(defaults(cls))
    assert declared <= set(config), sorted(declared - set(config))
    again = cls.from_config(config).get_config()
    assert again == config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"return_sequences": "yes"}, "expected `return_sequences` to be True or False"),
        ({"dropout": 1.5}, r"expected `dropout` in \[0, 1\]"),
        ({"use_cudnn": 1}, "expected `use_cudnn` to be one of 'auto', True, False"),
        ({"implementation": 3}, "Expected `implementation` to be 1 .* or 2"),
        ({"variant": "GRU"}, "Unknown LSTM variant: expected one of"),
        ({"forget_bias": float("nan")}, "expected `forget_bias` to be a finite number"),
    ],
)
def test_bad_arguments_name_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        klg.LSTM(4, **kwargs)


def test_unknown_argument_is_refused():
    # Keras's own check of the layer arguments, as for keras.layers.LSTM.
    with pytest.raises(ValueError, match="forget_bais"):
        klg.LSTM(4, forget_bais=1.0)
