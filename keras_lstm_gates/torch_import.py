"""Moving weights between ``torch.nn.LSTM`` and klg.

PyTorch stores an ``nn.LSTM`` as one set of four arrays per layer and
direction, named in its ``state_dict``:

* ``weight_ih_l{k}``  (4 * hidden_size, input_size of layer k)
* ``weight_hh_l{k}``  (4 * hidden_size, hidden_size)
* ``bias_ih_l{k}``, ``bias_hh_l{k}``  (4 * hidden_size,), absent with ``bias=False``

with the gates stacked along the rows in the order i, f, g, o (``g`` is the
candidate) and a ``_reverse`` suffix for the backward direction of a
bidirectional LSTM.  PyTorch computes ``x W_ih^T + b_ih + h W_hh^T + b_hh``,
so each klg part gets the transposed row block of ``weight_ih`` as its
``kernel``, that of ``weight_hh`` as its ``recurrent_kernel`` and the sum of
the two bias blocks as its ``bias``.  The equations are otherwise the same
as Keras's (sigmoid gates, tanh candidate and output activation).

:func:`from_torch` builds the klg layers, :func:`to_torch_state_dict` and
:func:`to_torch` go the other way.  Nothing here imports torch unless it is
asked to make torch tensors or a torch module: a state dict of numpy arrays
loads without torch installed.
"""

import re

import numpy as np
from keras import ops

from . import parts

_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")
_CELL_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)$")
# Arguments whose value nn.LSTM fixes: passing them would break the equivalence.
_FIXED = {
    "units": "hidden_size comes from the weights",
    "use_bias": "the presence of bias_ih/bias_hh decides it",
    "activation": "nn.LSTM always uses tanh",
    "recurrent_activation": "nn.LSTM always uses sigmoid gates",
    "variant": "nn.LSTM is the vanilla LSTM",
    "peepholes": "nn.LSTM has no peepholes",
    "gate_options": "nn.LSTM has no per-gate options",
    "go_backwards": "the direction comes from the _reverse keys",
}


def _array(value, key):
    """A float numpy array from a torch tensor or anything array-like."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise ValueError(
            f"{key}: expected a floating-point tensor or array, received dtype {array.dtype}."
        )
    return array


def _state_dict_of(source):
    if hasattr(source, "state_dict") and callable(source.state_dict):
        mode = getattr(source, "mode", "LSTM")
        if mode != "LSTM":
            raise ValueError(
                f"from_torch loads torch.nn.LSTM; received a {type(source).__name__} "
                f"(mode={mode!r})."
            )
        if getattr(source, "proj_size", 0):
            raise ValueError(
                "from_torch: nn.LSTM with proj_size > 0 (received proj_size="
                f"{source.proj_size}) projects h through weight_hr, which klg.LSTM does "
                "not have."
            )
        return dict(source.state_dict())
    if not hasattr(source, "items"):
        raise TypeError(
            "from_torch expects a torch.nn.LSTM or its state_dict (a mapping of names to "
            f"tensors or arrays), received {type(source).__name__}."
        )
    return dict(source)


def parse_state_dict(state_dict, prefix=""):
    """Check an ``nn.LSTM`` state dict and return its layers.

    Returns a list with one entry per layer; each entry is a list with one
    ``(weight_ih, weight_hh, bias)`` tuple of numpy arrays per direction
    (forward first), ``bias`` being ``bias_ih + bias_hh`` or ``None``.  Keys of
    an ``nn.LSTMCell`` (no ``_l0`` suffix) read as one layer.  Keys outside
    ``prefix`` are ignored; unknown keys inside it raise a ``ValueError``.

    >>> import numpy as np
    >>> sd = {"weight_ih_l0": np.zeros((8, 3)), "weight_hh_l0": np.zeros((8, 2))}
    >>> [[tuple(a.shape) for a in d[:2]] for d in parse_state_dict(sd)[0]]
    [[(8, 3), (8, 2)]]
    """
    if not isinstance(prefix, str):
        raise TypeError(f"prefix: expected a string, received {type(prefix).__name__}.")
    items = {k[len(prefix) :]: v for k, v in state_dict.items() if str(k).startswith(prefix)}
    if not items:
        raise ValueError(
            f"from_torch: no key starts with prefix {prefix!r}; received keys "
            f"{sorted(state_dict)[:8]}."
        )
    found, unknown, cell_keys = {}, [], {}
    for key, value in items.items():
        match = _KEY.match(key)
        if match:
            kind, layer, reverse = match.group(1), int(match.group(2)), bool(match.group(3))
            if kind == "weight_hr":
                raise ValueError(
                    f"from_torch: {prefix}{key} is the projection of an nn.LSTM with "
                    "proj_size > 0, which klg.LSTM does not have."
                )
            found[(layer, int(reverse), kind)] = _array(value, prefix + key)
        elif _CELL_KEY.match(key):
            cell_keys[key] = value
        else:
            unknown.append(prefix + key)
    if unknown:
        guesses = sorted({k[: -len("weight_ih_l0")] for k in unknown if k.endswith("weight_ih_l0")})
        hint = f" (prefix={guesses[0]!r}?)" if guesses else ""
        raise ValueError(
            f"from_torch: unknown key(s) {sorted(unknown)[:6]}; expected nn.LSTM keys "
            "weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k} (optionally with "
            f"_reverse). Pass prefix='...' to select the LSTM inside a larger state dict{hint}."
        )
    if cell_keys:
        if found:
            raise ValueError(
                "from_torch: the state dict mixes nn.LSTMCell keys "
                f"{sorted(cell_keys)} with nn.LSTM keys."
            )
        found = {(0, 0, k): _array(v, prefix + k) for k, v in cell_keys.items()}
    layers = sorted({k[0] for k in found})
    if layers != list(range(len(layers))):
        raise ValueError(
            f"from_torch: expected layers 0..{layers[-1]}, found weights for layers {layers}."
        )
    directions = 2 if any(k[1] for k in found) else 1
    has_bias = any(k[2].startswith("bias") for k in found)
    hidden = None
    parsed = []
    for layer in layers:
        per_direction = []
        for d in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            if cell_keys:
                suffix = ""
            name = {kind: f"{prefix}{kind}{suffix}" for kind in _KINDS}
            needed = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if has_bias else ())
            missing = [name[k] for k in needed if (layer, d, k) not in found]
            if missing:
                raise ValueError(
                    f"from_torch: missing key(s) {missing}"
                    + (" (the state dict has biases for other layers)" if has_bias else "")
                    + ("; a bidirectional LSTM needs _reverse keys for every layer" if d else "")
                    + "."
                )
            w_ih, w_hh = found[(layer, d, "weight_ih")], found[(layer, d, "weight_hh")]
            if w_hh.ndim != 2 or w_hh.shape[0] != 4 * w_hh.shape[1]:
                hint = ""
                if w_hh.ndim == 2 and w_hh.shape[0] == 3 * w_hh.shape[1]:
                    hint = " (3 * hidden_size rows is nn.GRU's layout, which is not an LSTM)"
                raise ValueError(
                    f"{name['weight_hh']}: expected shape (4 * hidden_size, hidden_size), "
                    f"the gates i, f, g, o stacked along the rows; received "
                    f"{tuple(w_hh.shape)}{hint}."
                )
            if hidden is None:
                hidden = w_hh.shape[1]
            if w_hh.shape[1] != hidden:
                raise ValueError(
                    f"{name['weight_hh']}: expected hidden_size {hidden} like layer 0, "
                    f"received shape {tuple(w_hh.shape)}."
                )
            expected_in = w_ih.shape[1] if layer == 0 else hidden * directions
            if w_ih.ndim != 2 or w_ih.shape != (4 * hidden, expected_in):
                raise ValueError(
                    f"{name['weight_ih']}: expected shape ({4 * hidden}, "
                    f"{expected_in if layer else 'input_size'}), received {tuple(w_ih.shape)}."
                )
            bias = None
            if has_bias:
                b_ih, b_hh = found[(layer, d, "bias_ih")], found[(layer, d, "bias_hh")]
                for kind, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
                    if b.shape != (4 * hidden,):
                        raise ValueError(
                            f"{name[kind]}: expected shape ({4 * hidden},), "
                            f"received {tuple(b.shape)}."
                        )
                bias = b_ih.astype(np.float64) + b_hh.astype(np.float64)
            per_direction.append((w_ih, w_hh, bias))
        parsed.append(per_direction)
    return parsed


_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _assign(lstm, weights):
    """Set a built klg.LSTM's four parts from one direction's torch arrays."""
    w_ih, w_hh, bias = weights
    units = lstm.cell.units
    # PyTorch stacks the parts along the rows, in the order of parts.PARTS.
    rows = [None if a is None else parts.split(a, units, axis=0) for a in (w_ih, w_hh, bias)]
    for name, gate in lstm.cell.present_gates.items():
        gate.kernel.assign(np.asarray(rows[0][name].T, dtype=gate.kernel.dtype))
        gate.recurrent_kernel.assign(np.asarray(rows[1][name].T, dtype=gate.recurrent_kernel.dtype))
        if bias is not None:
            gate.bias.assign(np.asarray(rows[2][name], dtype=gate.bias.dtype))


def from_torch(
    source,
    *,
    prefix="",
    return_sequences=False,
    return_state=False,
    merge_mode="concat",
    as_list=False,
    **lstm_kwargs,
):
    """Built klg layers with the weights of a ``torch.nn.LSTM``.

    Args:
        source: an ``nn.LSTM`` module, or its ``state_dict()`` as torch tensors
            or numpy arrays (``nn.LSTMCell`` keys load as one layer).
        prefix: the prefix of the LSTM's keys inside a larger state dict,
            e.g. ``"encoder.lstm."``; other keys are ignored.
        return_sequences: whether the (last) layer returns every step, as
            ``nn.LSTM``'s ``output`` does.  Stacked layers below the last
            always return sequences.
        return_state: also return the final ``h`` and ``c`` (one layer, or
            every layer with ``as_list=True``).
        merge_mode: how ``keras.layers.Bidirectional`` joins the two
            directions; ``"concat"`` (forward first) is what ``nn.LSTM`` does.
        as_list: return a list of layers, one per torch layer, instead of a
            ``keras.Sequential`` when there are several.
        **lstm_kwargs: other arguments of :class:`keras_lstm_gates.LSTM`
            (``dtype``, ``stateful``, ``return_gates``, ...).  Those nn.LSTM
            fixes (``units``, ``activation``, ``variant``, ...) are refused.

    Returns:
        one layer: a ``klg.LSTM``, or ``keras.layers.Bidirectional(klg.LSTM)``
        for a bidirectional LSTM; several layers: a ``keras.Sequential`` of
        those (or a list with ``as_list=True``).  Everything is built.

    Notes:
        Keras is batch-major: feed ``(batch, time, features)``.  A module made
        with ``batch_first=False`` takes ``(time, batch, features)``, so
        transpose its inputs.  Torch's initial states ``h0, c0`` of shape
        ``(num_layers * num_directions, batch, hidden_size)`` become one
        ``initial_state=[h0[k], c0[k]]`` per layer and direction.  Torch's
        ``dropout`` between layers applies only in training and is not
        carried over.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> sd = {"weight_ih_l0": rng.normal(size=(8, 3)), "weight_hh_l0": rng.normal(size=(8, 2)),
    ...       "bias_ih_l0": np.zeros(8), "bias_hh_l0": np.ones(8)}
    >>> layer = from_torch(sd, return_sequences=True)
    >>> tuple(layer(np.zeros((1, 5, 3), "float32")).shape)
    (1, 5, 2)
    >>> float(np.asarray(layer.cell.forget_gate.bias)[0])
    1.0
    """
    import keras

    from .layer import LSTM

    for key, why in _FIXED.items():
        if key in lstm_kwargs:
            raise ValueError(f"from_torch: {key}= cannot be set ({why}).")
    if merge_mode not in ("concat", "sum", "mul", "ave", None):
        raise ValueError(
            "merge_mode: expected one of 'concat', 'sum', 'mul', 'ave', None; "
            f"received {merge_mode!r}."
        )
    parsed = parse_state_dict(_state_dict_of(source), prefix)
    n_layers = len(parsed)
    if n_layers > 1 and return_state and not as_list:
        raise ValueError(
            f"from_torch: return_state=True with {n_layers} stacked layers needs "
            "as_list=True (a keras.Sequential returns one tensor)."
        )
    name = lstm_kwargs.pop("name", None)
    layers = []
    for k, per_direction in enumerate(parsed):
        w_ih, w_hh, bias = per_direction[0]
        units, input_dim = w_hh.shape[1], w_ih.shape[1]
        last = k == n_layers - 1
        config = dict(
            lstm_kwargs,
            units=units,
            use_bias=bias is not None,
            return_sequences=return_sequences if last else True,
            return_state=return_state,
        )
        layer_name = None if name is None else (name if n_layers == 1 else f"{name}_l{k}")
        if len(per_direction) == 1:
            layer = LSTM(name=layer_name, **config)
            layer.build((None, None, input_dim))
            _assign(layer, per_direction[0])
        else:
            layer = keras.layers.Bidirectional(
                LSTM(**config), merge_mode=merge_mode, name=layer_name
            )
            layer.build((None, None, input_dim))
            _assign(layer.forward_layer, per_direction[0])
            _assign(layer.backward_layer, per_direction[1])
        layers.append(layer)
    if as_list:
        return layers
    if n_layers == 1:
        return layers[0]
    input_dim = parsed[0][0][0].shape[1]
    return keras.Sequential([keras.Input((None, input_dim)), *layers], name=name)


def _lstm_layers(model):
    """The klg LSTM / Bidirectional layers of ``model``, in order."""
    import keras

    from .layer import LSTM

    if isinstance(model, (LSTM, keras.layers.Bidirectional)):
        items = [model]
    elif isinstance(model, (list, tuple)):
        items = list(model)
    elif isinstance(model, keras.Model):
        items = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    else:
        raise TypeError(
            "to_torch_state_dict expects a klg.LSTM, a keras.layers.Bidirectional of one, "
            f"or a list or keras.Sequential of those; received {type(model).__name__}."
        )
    if not items:
        raise ValueError("to_torch_state_dict: received no layers.")
    out = []
    for k, item in enumerate(items):
        if isinstance(item, keras.layers.Bidirectional):
            directions = [item.forward_layer, item.backward_layer]
            if not all(isinstance(d, LSTM) for d in directions):
                raise TypeError(
                    f"to_torch_state_dict: layer {k} is a Bidirectional of "
                    f"{type(item.forward_layer).__name__}, expected one of klg.LSTM."
                )
            if item.merge_mode != "concat":
                raise ValueError(
                    f"to_torch_state_dict: layer {k} has merge_mode={item.merge_mode!r}; "
                    "nn.LSTM concatenates the two directions (merge_mode='concat')."
                )
        elif isinstance(item, LSTM):
            directions = [item]
            if item.go_backwards:
                raise ValueError(
                    f"to_torch_state_dict: layer {k} ({item.name}) has go_backwards=True; "
                    "a one-directional nn.LSTM runs forward."
                )
        else:
            raise TypeError(
                f"to_torch_state_dict: layer {k} is a {type(item).__name__}; expected klg.LSTM "
                "or keras.layers.Bidirectional(klg.LSTM)."
            )
        out.append(directions)
    if len({len(d) for d in out}) != 1:
        raise ValueError(
            "to_torch_state_dict: nn.LSTM layers are all bidirectional or all not; received a mix."
        )
    return out


def _check_torch_compatible(lstm):
    cell = lstm.cell
    if not cell.built:
        raise ValueError(f"{lstm.name} is not built: call it on data first so its weights exist.")
    reason = cell.plain_lstm_reason()
    if reason is not None:
        raise ValueError(
            f"{lstm.name}: nn.LSTM is the LSTM with sigmoid gates and tanh candidate and "
            f"output, and no weight beyond its own; this layer differs: {reason}."
        )


def to_torch_state_dict(model, *, as_torch=False):
    """The ``nn.LSTM`` state dict of vanilla klg layers.

    ``model`` is a built ``klg.LSTM``, ``keras.layers.Bidirectional(klg.LSTM)``,
    or a list or ``keras.Sequential`` of those stacked.  Each klg bias goes to
    ``bias_ih_l{k}`` and ``bias_hh_l{k}`` is zero (only their sum matters).
    Values are numpy arrays, or torch tensors with ``as_torch=True`` (which
    ``nn.Module.load_state_dict`` needs).

    >>> import numpy as np, keras_lstm_gates as klg
    >>> layer = klg.LSTM(2)
    >>> layer.build((None, None, 3))
    >>> {k: v.shape for k, v in to_torch_state_dict(layer).items()}
    {'weight_ih_l0': (8, 3), 'weight_hh_l0': (8, 2), 'bias_ih_l0': (8,), 'bias_hh_l0': (8,)}
    """
    stack = _lstm_layers(model)
    state = {}
    for k, directions in enumerate(stack):
        for d, lstm in enumerate(directions):
            _check_torch_compatible(lstm)
            cell = lstm.cell
            suffix = f"_l{k}" + ("_reverse" if d else "")
            gates = [cell.gates[n] for n in parts.PARTS]

            def rows(weight, gates=gates):
                return parts.join(
                    [np.asarray(ops.convert_to_numpy(getattr(g, weight))).T for g in gates], axis=0
                )

            state["weight_ih" + suffix] = rows("kernel")
            state["weight_hh" + suffix] = rows("recurrent_kernel")
            if cell.use_bias:
                bias = rows("bias")
                state["bias_ih" + suffix] = bias
                state["bias_hh" + suffix] = np.zeros_like(bias)
    if {s[0].cell.use_bias for s in stack} != {stack[0][0].cell.use_bias}:
        raise ValueError("to_torch_state_dict: nn.LSTM layers all have biases or none do.")
    if as_torch:
        import torch

        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    return state


def to_torch(model):
    """A ``torch.nn.LSTM`` (``batch_first=True``, float32) with the weights of
    vanilla klg layers; see :func:`to_torch_state_dict`.  Needs torch.

    >>> import numpy as np, keras, torch, keras_lstm_gates as klg
    >>> layer = klg.LSTM(2, return_sequences=True)
    >>> y = keras.ops.convert_to_numpy(layer(np.ones((1, 4, 3), "float32")))
    >>> out, (h, c) = to_torch(layer)(torch.ones(1, 4, 3))
    >>> bool(np.allclose(out.detach().numpy(), y, atol=1e-5))
    True
    """
    import torch

    stack = _lstm_layers(model)
    first = stack[0][0]
    state = to_torch_state_dict(model)
    module = torch.nn.LSTM(
        input_size=first.cell.input_dim,
        hidden_size=first.cell.units,
        num_layers=len(stack),
        bias=first.cell.use_bias,
        batch_first=True,
        bidirectional=len(stack[0]) == 2,
    )
    module.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()})
    return module
