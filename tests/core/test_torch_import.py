"""klg.from_torch / to_torch_state_dict against torch.nn.LSTM itself.

torch is importable under every Keras backend, so these run on all three:
torch computes the reference outputs, Keras's backend runs klg.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops

import keras_lstm_gates as klg

NO_TORCH = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None  # any "import torch" now raises ImportError
    import numpy as np
    import keras_lstm_gates as klg
    rng = np.random.default_rng(0)
    sd = {"weight_ih_l0": rng.normal(size=(8, 3)), "weight_hh_l0": rng.normal(size=(8, 2)),
          "bias_ih_l0": rng.normal(size=8), "bias_hh_l0": rng.normal(size=8)}
    layer = klg.from_torch(sd)
    back = klg.to_torch_state_dict(layer)
    assert np.allclose(back["weight_hh_l0"], sd["weight_hh_l0"], atol=1e-6)
    assert np.allclose(back["bias_ih_l0"], sd["bias_ih_l0"] + sd["bias_hh_l0"], atol=1e-6)
    try:
        klg.to_torch_state_dict(layer, as_torch=True)
    except ImportError:
        print("ok")
    """
)


def test_numpy_state_dicts_need_no_torch():
    """Importing klg and loading numpy arrays never imports torch."""
    if keras.backend.backend() != "jax":
        pytest.skip("one run is enough; the subprocess uses the JAX backend")
    env = dict(os.environ, KERAS_BACKEND="jax")
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


torch = pytest.importorskip("torch")

ATOL = 1e-5


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def random_torch_lstm(input_size=3, hidden_size=4, seed=0, **kwargs):
    """An nn.LSTM with N(0, 0.5) weights and different bias_ih and bias_hh."""
    torch.manual_seed(seed)
    module = torch.nn.LSTM(input_size, hidden_size, batch_first=True, **kwargs)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    return module


def run_torch(module, x, h0=None, c0=None):
    with torch.no_grad():
        state = None if h0 is None else (torch.from_numpy(h0), torch.from_numpy(c0))
        out, (h, c) = module(torch.from_numpy(x), state)
    return out.numpy(), h.numpy(), c.numpy()


@pytest.fixture
def x(rng):
    return rng.normal(size=(3, 6, 3)).astype("float32")


def test_one_layer_outputs_and_states(x):
    module = random_torch_lstm()
    layer = klg.from_torch(module, return_sequences=True, return_state=True)
    assert isinstance(layer, klg.LSTM) and layer.units == 4 and layer.cell.input_dim == 3
    y, h, c = layer(x)
    ref_y, ref_h, ref_c = run_torch(module, x)
    np.testing.assert_allclose(to_numpy(y), ref_y, atol=ATOL)
    np.testing.assert_allclose(to_numpy(h), ref_h[0], atol=ATOL)
    np.testing.assert_allclose(to_numpy(c), ref_c[0], atol=ATOL)


def test_state_dict_of_numpy_arrays_and_initial_state(x, rng):
    module = random_torch_lstm(seed=1)
    state = {k: v.numpy().astype("float64") for k, v in module.state_dict().items()}
    layer = klg.from_torch(state)
    h0 = rng.normal(size=(1, 3, 4)).astype("float32")
    c0 = rng.normal(size=(1, 3, 4)).astype("float32")
    y = layer(x, initial_state=[h0[0], c0[0]])
    ref_y, _, _ = run_torch(module, x, h0, c0)
    np.testing.assert_allclose(to_numpy(y), ref_y[:, -1], atol=ATOL)


def test_weights_land_in_the_right_gates():
    """Torch's row blocks are i, f, g, o; the two biases are summed."""
    module = random_torch_lstm(seed=2)
    sd = {k: v.numpy() for k, v in module.state_dict().items()}
    layer = klg.from_torch(sd)
    for k, name in enumerate(("input_gate", "forget_gate", "candidate", "output_gate")):
        rows = slice(4 * k, 4 * k + 4)
        gate = getattr(layer.cell, name)
        np.testing.assert_array_equal(to_numpy(gate.kernel), sd["weight_ih_l0"][rows].T)
        np.testing.assert_array_equal(to_numpy(gate.recurrent_kernel), sd["weight_hh_l0"][rows].T)
        expected = sd["bias_ih_l0"][rows].astype("float64") + sd["bias_hh_l0"][rows]
        np.testing.assert_allclose(to_numpy(gate.bias), expected, atol=1e-7)


def test_bidirectional(x):
    module = random_torch_lstm(seed=3, bidirectional=True)
    model = klg.from_torch(module, return_sequences=True)
    assert isinstance(model, keras.layers.Bidirectional)
    assert isinstance(model.forward_layer, klg.LSTM) and isinstance(model.backward_layer, klg.LSTM)
    ref_y, ref_h, _ = run_torch(module, x)
    np.testing.assert_allclose(to_numpy(model(x)), ref_y, atol=ATOL)
    last = klg.from_torch(module)(x)  # return_sequences=False: both final h
    np.testing.assert_allclose(to_numpy(last), np.concatenate([ref_h[0], ref_h[1]], -1), atol=ATOL)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacked_layers(x, bidirectional):
    module = random_torch_lstm(seed=4, num_layers=3, bidirectional=bidirectional)
    model = klg.from_torch(module, return_sequences=True)
    assert isinstance(model, keras.Sequential) and len(model.layers) == 3
    ref_y, ref_h, ref_c = run_torch(module, x)
    np.testing.assert_allclose(to_numpy(model(x)), ref_y, atol=ATOL)
    # as_list with return_state: each layer's final states are torch's h_n[k], c_n[k].
    layers = klg.from_torch(module, as_list=True, return_state=True)
    assert len(layers) == 3
    out = x
    for k, layer in enumerate(layers):
        out, *states = layer(out)
        dirs = 2 if bidirectional else 1
        for d in range(dirs):
            h, c = states[2 * d], states[2 * d + 1]
            np.testing.assert_allclose(to_numpy(h), ref_h[dirs * k + d], atol=ATOL)
            np.testing.assert_allclose(to_numpy(c), ref_c[dirs * k + d], atol=ATOL)


def test_bias_false(x):
    module = random_torch_lstm(seed=5, bias=False, num_layers=2)
    model = klg.from_torch(module, return_sequences=True)
    assert not model.layers[0].use_bias
    np.testing.assert_allclose(to_numpy(model(x)), run_torch(module, x)[0], atol=ATOL)


def test_lstm_cell_keys_and_prefix(x):
    torch.manual_seed(6)
    cell = torch.nn.LSTMCell(3, 4)
    layer = klg.from_torch(cell, return_sequences=True)
    h = c = torch.zeros(3, 4)
    with torch.no_grad():
        steps = []
        for t in range(x.shape[1]):
            h, c = cell(torch.from_numpy(x[:, t]), (h, c))
            steps.append(h.numpy())
    np.testing.assert_allclose(to_numpy(layer(x)), np.stack(steps, 1), atol=ATOL)
    # An LSTM inside a bigger model: select it by prefix.
    net = torch.nn.Module()
    net.encoder = random_torch_lstm(seed=7)
    net.head = torch.nn.Linear(4, 2)
    layer = klg.from_torch(net.state_dict(), prefix="encoder.")
    np.testing.assert_allclose(to_numpy(layer(x)), run_torch(net.encoder, x)[0][:, -1], atol=ATOL)


def test_batch_first_false_needs_transposed_inputs(x):
    module = random_torch_lstm(seed=8)
    time_major = torch.nn.LSTM(3, 4)  # batch_first=False
    time_major.load_state_dict(module.state_dict())
    with torch.no_grad():
        ref = time_major(torch.from_numpy(np.swapaxes(x, 0, 1).copy()))[0].numpy()
    y = klg.from_torch(time_major, return_sequences=True)(x)
    np.testing.assert_allclose(to_numpy(y), np.swapaxes(ref, 0, 1), atol=ATOL)


def test_other_lstm_options_pass_through(x):
    module = random_torch_lstm(seed=9)
    layer = klg.from_torch(module, return_sequences=True, return_gates=True, name="enc")
    y, gates = layer(x)
    assert layer.name == "enc" and set(gates) >= {"forget_gate", "cell_state"}
    np.testing.assert_allclose(to_numpy(y), run_torch(module, x)[0], atol=ATOL)


# -- the other direction -------------------------------------------------------


def test_to_torch_state_dict_round_trip(x, rng):
    layer = klg.LSTM(4, return_sequences=True)
    layer.build((None, None, 3))
    for w in layer.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    state = klg.to_torch_state_dict(layer, as_torch=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    module = torch.nn.LSTM(3, 4, batch_first=True)
    module.load_state_dict(state)
    np.testing.assert_allclose(run_torch(module, x)[0], to_numpy(layer(x)), atol=ATOL)


@pytest.mark.parametrize("bidirectional,layers", [(True, 1), (True, 2), (False, 2)])
def test_to_torch_of_stacks(x, bidirectional, layers):
    source = random_torch_lstm(seed=10, bidirectional=bidirectional, num_layers=layers)
    model = klg.from_torch(source, return_sequences=True)
    back = klg.to_torch(model)
    assert back.bidirectional == bidirectional and back.num_layers == layers
    np.testing.assert_allclose(run_torch(back, x)[0], run_torch(source, x)[0], atol=ATOL)
    state = klg.to_torch_state_dict(model)
    assert set(state) == set(source.state_dict())


# -- refusals ------------------------------------------------------------------


def test_proj_size_is_refused():
    module = torch.nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match=r"proj_size > 0 \(received proj_size=2\)"):
        klg.from_torch(module)
    with pytest.raises(ValueError, match=r"weight_hr_l0 is the projection.*proj_size"):
        klg.from_torch(module.state_dict())


def test_gru_is_refused():
    with pytest.raises(ValueError, match=r"torch.nn.LSTM; received a GRU"):
        klg.from_torch(torch.nn.GRU(3, 4))
    with pytest.raises(ValueError, match=r"weight_hh_l0: expected shape .*nn.GRU's layout"):
        klg.from_torch(torch.nn.GRU(3, 4).state_dict())


def test_bad_state_dicts_are_refused():
    sd = {k: v.numpy() for k, v in random_torch_lstm(num_layers=2).state_dict().items()}
    with pytest.raises(TypeError, match=r"state_dict.*received list"):
        klg.from_torch([1, 2])
    with pytest.raises(ValueError, match=r"missing key\(s\) \['bias_hh_l1'\]"):
        klg.from_torch({k: v for k, v in sd.items() if k != "bias_hh_l1"})
    with pytest.raises(ValueError, match=r"expected layers 0..1, found weights for layers \[1\]"):
        klg.from_torch({k: v for k, v in sd.items() if k.endswith("l1")})
    with pytest.raises(ValueError, match=r"weight_ih_l1: expected shape \(16, 4\), received"):
        klg.from_torch({**sd, "weight_ih_l1": np.zeros((16, 5))})
    with pytest.raises(ValueError, match=r"bias_ih_l0: expected shape \(16,\), received \(12,\)"):
        klg.from_torch({**sd, "bias_ih_l0": np.zeros(12)})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lstm\..*\(prefix='lstm\.'\?\)"):
        klg.from_torch({"lstm." + k: v for k, v in sd.items()})
    with pytest.raises(ValueError, match=r"no key starts with prefix 'enc.'"):
        klg.from_torch(sd, prefix="enc.")
    with pytest.raises(ValueError, match=r"_reverse keys for every layer"):
        klg.from_torch({**sd, "weight_ih_l0_reverse": sd["weight_ih_l0"]})
    with pytest.raises(ValueError, match=r"floating-point .*received dtype int64"):
        klg.from_torch({**sd, "weight_ih_l0": np.zeros((16, 3), "int64")})


def test_arguments_fixed_by_torch_are_refused():
    module = random_torch_lstm()
    for key, value in (("units", 8), ("variant", "CIFG"), ("activation", "relu")):
        with pytest.raises(ValueError, match=f"{key}= cannot be set"):
            klg.from_torch(module, **{key: value})
    with pytest.raises(ValueError, match=r"return_state=True with 2 stacked layers needs as_list"):
        klg.from_torch(random_torch_lstm(num_layers=2), return_state=True)


def test_to_torch_refuses_what_nn_lstm_cannot_hold():
    def built(**kwargs):
        layer = klg.LSTM(2, **kwargs)
        layer.build((None, None, 3))
        return layer

    with pytest.raises(ValueError, match=r"differs: variant='NOG'"):
        klg.to_torch_state_dict(built(variant="NOG"))
    with pytest.raises(ValueError, match=r"differs: the forget_gate activation must be sigmoid"):
        klg.to_torch_state_dict(built(gate_options={"forget_gate": {"activation": "hard_sigmoid"}}))
    with pytest.raises(ValueError, match=r"go_backwards=True"):
        klg.to_torch_state_dict(built(go_backwards=True))
    with pytest.raises(ValueError, match=r"not built"):
        klg.to_torch_state_dict(klg.LSTM(2))
    with pytest.raises(TypeError, match=r"received Dense"):
        klg.to_torch_state_dict(keras.layers.Dense(2))
    with pytest.raises(ValueError, match=r"merge_mode='sum'"):
        bi = keras.layers.Bidirectional(klg.LSTM(2), merge_mode="sum")
        bi.build((None, None, 3))
        klg.to_torch_state_dict(bi)
    with pytest.raises(TypeError, match=r"layer 1 is a Dense"):
        klg.to_torch_state_dict(
            keras.Sequential([keras.Input((None, 3)), klg.LSTM(2), keras.layers.Dense(2)])
        )
