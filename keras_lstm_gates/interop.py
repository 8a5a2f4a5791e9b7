"""Moving weights between klg and Keras's fused LSTM layout.

``keras.layers.LSTM`` stores three fused arrays, each with the four parts
side by side along the last axis in the order i, f, c, o:

* ``kernel``           (input_dim, 4 * units)
* ``recurrent_kernel`` (units, 4 * units)
* ``bias``             (4 * units,)

klg stores the same numbers in the four sublayers.
"""

import inspect

import numpy as np
from keras import ops

from . import parts
from .parts import PARTS


def _cell_of(layer_or_cell):
    cell = getattr(layer_or_cell, "cell", layer_or_cell)
    if not hasattr(cell, "gates"):
        raise TypeError(
            "Expected a keras_lstm_gates LSTM or LSTMCell, received "
            f"{type(layer_or_cell).__name__}."
        )
    if not cell.built:
        raise ValueError(
            f"{cell.name} is not built yet: call it on data or call "
            "build((batch, time, features)) first, so its weights exist."
        )
    return cell


def _check_shape(what, array, expected):
    if tuple(array.shape) != tuple(expected):
        raise ValueError(
            f"{what}: expected shape {tuple(expected)}, received shape {tuple(array.shape)}."
        )


def split_fused_weights(kernel, recurrent_kernel, bias=None):
    """Split Keras's fused ``(kernel, recurrent_kernel, bias)`` into the four
    parts, in Keras's order i, f, c, o.

    Returns ``{"input_gate": (W, U, b), "forget_gate": ..., "candidate": ...,
    "output_gate": ...}`` of numpy arrays (``b`` is ``None`` without bias).

    >>> import numpy as np
    >>> parts = split_fused_weights(np.zeros((3, 8)), np.zeros((2, 8)), np.arange(8.0))
    >>> parts["forget_gate"][2]
    array([2., 3.])
    """
    kernel = np.asarray(kernel)
    recurrent_kernel = np.asarray(recurrent_kernel)
    if recurrent_kernel.ndim != 2 or recurrent_kernel.shape[1] != 4 * recurrent_kernel.shape[0]:
        raise ValueError(
            "recurrent_kernel: expected shape (units, 4 * units), received shape "
            f"{tuple(recurrent_kernel.shape)}."
        )
    units = recurrent_kernel.shape[0]
    if kernel.ndim != 2:
        raise ValueError(
            f"kernel: expected shape (input_dim, {4 * units}), received shape {tuple(kernel.shape)}."
        )
    _check_shape("kernel", kernel, (kernel.shape[0], 4 * units))
    if bias is not None:
        bias = np.asarray(bias)
        _check_shape("bias", bias, (4 * units,))
    blocks = [
        parts.split(a, units) if a is not None else None for a in (kernel, recurrent_kernel, bias)
    ]
    return {name: tuple(None if b is None else b[name] for b in blocks) for name in PARTS}


def set_gates_from_fused(layer_or_cell, kernel, recurrent_kernel, bias=None):
    """Set the four parts of a built klg layer or cell from Keras's fused
    arrays (order i, f, c, o) and return them as :func:`split_fused_weights`
    does.  Wrong shapes raise a ``ValueError`` naming expected and received.

    >>> import numpy as np, keras_lstm_gates as klg
    >>> layer = klg.LSTM(2)
    >>> layer.build((None, 5, 3))
    >>> k = np.ones((3, 8), "float32")
    >>> parts = set_gates_from_fused(layer, k, np.zeros((2, 8)), np.zeros(8))
    >>> float(np.asarray(layer.cell.output_gate.kernel).sum())
    6.0
    """
    cell = _cell_of(layer_or_cell)
    if not cell.spec.is_vanilla:
        raise ValueError(
            f"Keras's fused layout has no place for variant {cell.spec.name!r} "
            f"(peepholes={cell.spec.peepholes}); set its gates one by one."
        )
    units, input_dim = cell.units, cell.input_dim
    _check_shape("kernel", np.asarray(kernel), (input_dim, 4 * units))
    _check_shape("recurrent_kernel", np.asarray(recurrent_kernel), (units, 4 * units))
    if cell.use_bias:
        if bias is None:
            raise ValueError(f"bias: expected shape ({4 * units},), received None.")
        _check_shape("bias", np.asarray(bias), (4 * units,))
    elif bias is not None:
        raise ValueError("bias: the layer has use_bias=False, so expected None, received an array.")
    blocks = split_fused_weights(kernel, recurrent_kernel, bias)
    for name, (w, u, b) in blocks.items():
        gate = cell.gates[name]
        gate.kernel.assign(w)
        gate.recurrent_kernel.assign(u)
        if b is not None:
            gate.bias.assign(b)
    return blocks


def get_fused_weights(layer_or_cell):
    """The klg weights in Keras's fused layout: ``[kernel, recurrent_kernel]``
    plus ``bias`` when the layer has one, as numpy arrays.

    >>> import keras_lstm_gates as klg
    >>> layer = klg.LSTM(2)
    >>> layer.build((None, 5, 3))
    >>> [w.shape for w in get_fused_weights(layer)]
    [(3, 8), (2, 8), (8,)]
    """
    cell = _cell_of(layer_or_cell)
    if not cell.spec.is_vanilla:
        raise ValueError(
            f"Keras's fused layout has no place for variant {cell.spec.name!r} "
            f"(peepholes={cell.spec.peepholes})."
        )
    gates = [cell.gates[n] for n in PARTS]
    names = ("kernel", "recurrent_kernel") + (("bias",) if cell.use_bias else ())
    return [
        parts.join([np.asarray(ops.convert_to_numpy(getattr(g, w))) for g in gates]) for w in names
    ]


def fused_layout_shapes(cell):
    """The shapes of keras.layers.LSTM's weights for a built klg cell:
    ``[(input_dim, 4u), (u, 4u)]`` plus ``(4u,)`` with a bias."""
    units, input_dim = cell.units, cell.input_dim
    shapes = [(input_dim, 4 * units), (units, 4 * units)]
    if cell.use_bias:
        shapes.append((4 * units,))
    return shapes


def _shapes(arrays):
    return [tuple(np.shape(a)) for a in arrays]


def is_fused_layout(cell, arrays):
    """Whether ``arrays`` are keras.layers.LSTM's fused weights for ``cell``
    (by count and shapes)."""
    return _shapes(arrays) == fused_layout_shapes(cell)


def describe_layouts(layer_or_cell, arrays):
    """A sentence naming the two layouts klg accepts, with the expected and
    the received shapes (for the errors of set_weights and load_weights)."""
    cell = _cell_of(layer_or_cell)
    own = [tuple(w.shape) for w in layer_or_cell.weights]
    text = (
        f"expected either klg's per-gate layout (layer.get_weights()): {len(own)} arrays "
        f"with shapes {own}, or keras.layers.LSTM's fused layout (i, f, c, o): "
    )
    if cell.spec.is_vanilla:
        fused = fused_layout_shapes(cell)
        text += f"{len(fused)} arrays with shapes {fused}"
    else:
        text += (
            f"none for variant {cell.spec.name!r} (peepholes={cell.spec.peepholes}), "
            "whose weights Keras's LSTM has no place for"
        )
    return text + f"; received {len(arrays)} arrays with shapes {_shapes(arrays)}."


def set_weights_any_layout(layer_or_cell, weights):
    """``set_weights`` for a klg LSTM or LSTMCell: klg's own per-gate list, or
    keras.layers.LSTM's fused ``[kernel, recurrent_kernel(, bias)]``
    (recognised by count and shapes; an unbuilt layer is built from them).
    Anything else raises a ``ValueError`` naming both layouts.

    >>> import keras, numpy as np, keras_lstm_gates as klg
    >>> ref = keras.layers.LSTM(2)
    >>> ref.build((None, 5, 3))
    >>> layer = klg.LSTM(2)
    >>> layer.set_weights(ref.get_weights())
    >>> len(layer.get_weights()), layer.get_weights()[0].shape
    (12, (3, 2))
    """
    weights = list(weights)
    cell = getattr(layer_or_cell, "cell", layer_or_cell)
    if not cell.built and cell.spec.is_vanilla and len(weights) in (2, 3):
        kernel = np.shape(weights[0])
        if len(kernel) == 2:  # Build from the fused kernel's input_dim.
            if cell is layer_or_cell:
                cell.build((None, kernel[0]))
            else:
                layer_or_cell.build((None, None, kernel[0]))
    _cell_of(layer_or_cell)  # raises if still not built
    own = layer_or_cell.weights
    if _shapes(weights) == [tuple(w.shape) for w in own]:
        for variable, value in zip(own, weights):
            variable.assign(value)
        return
    if cell.spec.is_vanilla and is_fused_layout(cell, weights):
        set_gates_from_fused(cell, *weights)
        return
    raise ValueError(
        f"{layer_or_cell.name}.set_weights: {describe_layouts(layer_or_cell, weights)}"
    )


_NOT_CARRIED = ("implementation", "cell")


def lstm_from_keras(cls, keras_layer, **overrides):
    import keras

    if not isinstance(keras_layer, keras.layers.LSTM):
        raise TypeError(
            f"from_keras expects a keras.layers.LSTM, received {type(keras_layer).__name__}."
        )
    if not keras_layer.built:
        raise ValueError(
            f"{keras_layer.name} is not built: call it on data first so that its weights exist."
        )
    config = {k: v for k, v in keras_layer.get_config().items() if k not in _NOT_CARRIED}
    # Keras keeps `implementation` out of its config; the cell holds it.
    config["implementation"] = getattr(keras_layer.cell, "implementation", 2)
    config.update(overrides)
    layer = cls(**config)
    input_dim = keras_layer.cell.kernel.shape[0]
    batch = None
    if keras_layer.stateful:
        batch = int(ops.shape(keras_layer.states[0])[0])
    layer.build((batch, None, input_dim))
    set_gates_from_fused(layer, *[ops.convert_to_numpy(w) for w in keras_layer.cell.weights])
    return layer


def lstm_to_keras(layer):
    import keras

    cell = _cell_of(layer)
    if not cell.spec.is_vanilla or cell.gate_options:
        raise ValueError(
            "to_keras needs a vanilla LSTM with no per-gate options; this layer "
            f"has variant={cell.spec.name!r}, peepholes={cell.spec.peepholes}, "
            f"gate_options={sorted(cell.gate_options)}."
        )
    if layer.return_gates:
        raise ValueError("to_keras: keras.layers.LSTM cannot return gates; set return_gates=False.")
    from .layer import LAYER_OPTIONS

    # klg's own arguments; Keras takes `implementation` through its **kwargs.
    keras_arguments = set(inspect.signature(keras.layers.LSTM).parameters) | {"implementation"}
    klg_only = {o.name for o in LAYER_OPTIONS} - keras_arguments
    config = {k: v for k, v in layer.get_config().items() if k not in klg_only}
    keras_layer = keras.layers.LSTM(**config)
    batch = int(ops.shape(layer.states[0])[0]) if layer.stateful else None
    keras_layer.build((batch, None, cell.input_dim))
    keras_layer.set_weights(get_fused_weights(layer))
    return keras_layer
