"""Whole-model conversion: every ``keras.layers.LSTM`` of a model becomes a
:class:`keras_lstm_gates.LSTM`, and back.

:func:`convert` rebuilds a built Sequential or functional model with
``keras.models.clone_model``: each ``keras.layers.LSTM`` (at any depth: in
nested models, inside ``keras.layers.Bidirectional`` and
``keras.layers.TimeDistributed``) becomes a klg LSTM made by
:meth:`keras_lstm_gates.LSTM.from_keras`, every other layer is rebuilt from
its config.  Then a second pass walks the original and the new model side
by side and copies, layer by layer, the weights (Keras's fused LSTM weights
into the four gates with :func:`keras_lstm_gates.set_gates_from_fused`, any
other layer's with ``set_weights``), the states of stateful layers and the
``trainable`` flags.  Every other layer also gets what Keras's own saving
keeps of it beyond its weights (:func:`copy_layer_state`): an adapted
``Normalization``'s statistics, a lookup table's vocabulary.  The original
model is only read.

``to="keras"`` goes the other way, with
:meth:`keras_lstm_gates.LSTM.to_keras`; a klg LSTM that
``keras.layers.LSTM`` cannot express (a variant, peepholes, per-gate
options, ``return_gates``) is refused with a ``ValueError`` naming it.
"""

import pathlib
import tempfile
import warnings

import keras
import numpy as np
from keras import ops, tree

from . import compat
from .interop import get_fused_weights, set_gates_from_fused
from .layer import LSTM
from .walk import find

TARGETS = ("klg", "keras")


def _is_keras_lstm(layer):
    # Exactly Keras's class: a subclass may change what `call` computes, so it
    # is copied as it is rather than replaced.
    return type(layer) is keras.layers.LSTM


def _is_klg_lstm(layer):
    return isinstance(layer, LSTM)


def is_graph_model(layer):
    """Whether ``layer`` is a Sequential or functional model, whose structure
    Keras can clone (a subclassed model's lives in its Python code)."""
    return isinstance(layer, keras.Sequential) or compat.is_functional(layer)


def _subclassed_error(model, what):
    return TypeError(
        f"klg.convert cannot rebuild {model.name!r}: it is a subclassed model "
        f"({type(model).__name__}), whose structure lives in its Python code, not "
        f"in a graph that Keras can clone; it holds {what}. Build it with klg.LSTM "
        "in place of keras.layers.LSTM (or vice versa) and copy each layer's "
        "weights with klg.LSTM.from_keras / layer.to_keras, or make it a "
        "Sequential or functional model."
    )


class _Converter:
    """The ``clone_function`` of ``keras.models.clone_model`` for one
    direction; it builds layers, the copy pass fills them."""

    def __init__(self, to):
        self.to = to
        self.source = _is_keras_lstm if to == "klg" else _is_klg_lstm
        self.source_name = "keras.layers.LSTM" if to == "klg" else "klg.LSTM"
        self.cache = {}

    def __call__(self, layer):
        # One new layer per original, so a layer shared by several models
        # (or called twice) stays shared.
        if id(layer) not in self.cache:
            self.cache[id(layer)] = self.build(layer)
        return self.cache[id(layer)]

    def build(self, layer):
        if self.source(layer):
            return self.lstm(layer)
        if isinstance(layer, keras.layers.Bidirectional):
            return keras.layers.Bidirectional(
                self(layer.forward_layer),
                merge_mode=layer.merge_mode,
                backward_layer=self(layer.backward_layer),
                name=layer.name,
                trainable=layer.trainable,
                dtype=layer.dtype_policy,
            )
        if isinstance(layer, keras.layers.TimeDistributed):
            return keras.layers.TimeDistributed(
                self(layer.layer),
                name=layer.name,
                trainable=layer.trainable,
                dtype=layer.dtype_policy,
            )
        if is_graph_model(layer):  # e.g. the model inside a TimeDistributed
            return self.model(layer)
        if isinstance(layer, keras.Model):
            inner = find(layer, self.source)
            if inner:
                raise _subclassed_error(layer, f"{self.source_name} layers at {inner}")
            try:
                return _copy_of(layer)
            except Exception as err:
                raise _subclassed_error(layer, "no LSTM, but it cannot be copied") from err
        return _copy_of(layer)

    def lstm(self, layer):
        if self.to == "klg":
            return LSTM.from_keras(layer, use_cudnn=layer.use_cudnn)
        try:
            return layer.to_keras()
        except ValueError as err:
            raise ValueError(
                f"klg.convert(to='keras'): {layer.name!r} cannot become a keras.layers.LSTM. {err}"
            ) from None

    def model(self, model):
        # Nested models come back to __call__ (recursive=False), so each level
        # gets inputs named after the original's InputLayers.
        inputs = None
        if compat.is_functional(model):
            inputs = tree.map_structure(_input_like, model.input)
        return keras.models.clone_model(model, input_tensors=inputs, clone_function=self)


def _copy_of(layer):
    # The config comes from a live layer, not from a file, so a Python
    # lambda in it (a Lambda layer's function) is the user's own code:
    # Keras's safe mode, which guards loading, does not apply.
    with compat.unsafe_deserialization():
        return layer.__class__.from_config(layer.get_config())


def _input_like(tensor):
    return keras.Input(
        batch_shape=tensor.shape,
        dtype=tensor.dtype,
        sparse=tensor.sparse,
        name=compat.input_layer_name(tensor),
    )


# -- the copy pass -------------------------------------------------------------


def _children(layer):
    """The sublayers the copy pass walks into; every other layer is a leaf
    whose weights are copied whole."""
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    if isinstance(layer, keras.layers.TimeDistributed):
        return [layer.layer]
    return []


def _pairs(source, target, path):
    """``(source layer, target layer, path)`` in pre-order, parents first."""
    yield source, target, path
    a, b = _children(source), _children(target)
    if len(a) != len(b) or (a and not is_graph_model(source) and type(source) is not type(target)):
        raise RuntimeError(  # pragma: no cover - a bug in the rebuild, never the user's input
            f"klg.convert: the rebuilt {path!r} does not match the original "
            f"({len(a)} sublayers vs {len(b)})."
        )
    for x, y in zip(a, b):
        yield from _pairs(x, y, f"{path}/{x.name}" if path else x.name)


def _copy_leaf(source, target, path):
    lstms = _is_klg_lstm(source) or _is_keras_lstm(source)
    if source.weights and not target.built:
        raise RuntimeError(  # pragma: no cover - the rebuilt model is always built
            f"klg.convert: {path!r} of the new model was not built."
        )
    if _is_keras_lstm(source) and _is_klg_lstm(target):
        set_gates_from_fused(target, *source.get_weights())
    elif _is_klg_lstm(source) and _is_keras_lstm(target):
        target.set_weights(get_fused_weights(source))
    elif source.weights:
        try:
            target.set_weights(source.get_weights())
        except ValueError as err:
            raise ValueError(
                f"klg.convert: cannot copy the weights of {path!r} ({type(source).__name__}): {err}"
            ) from None
    if not lstms:
        copy_layer_state(source, target, path)
    if getattr(source, "stateful", False) and getattr(source, "states", None) is not None:
        for s, t in zip(tree.flatten(source.states), tree.flatten(target.states)):
            t.assign(np.asarray(ops.convert_to_numpy(s)))


class _ArrayStore(dict):
    """The ``store`` that Keras's ``save_own_variables`` writes and
    ``load_own_variables`` reads, in memory, holding numpy arrays as a
    ``.keras`` file does (a variable is read when it is stored, not later)."""

    def __setitem__(self, key, value):
        if not isinstance(value, np.ndarray):
            value = np.asarray(ops.convert_to_numpy(value))
        super().__setitem__(key, value)


def _saved_state(layer):
    """What Keras's saving writes for ``layer`` alone: ``(variables, assets)``,
    the store of ``save_own_variables`` and the files of ``save_assets``."""
    store = _ArrayStore()
    layer.save_own_variables(store)
    files = {}
    if hasattr(layer, "save_assets"):
        with tempfile.TemporaryDirectory() as folder:
            layer.save_assets(folder)
            root = pathlib.Path(folder)
            for file in sorted(root.rglob("*")):
                if file.is_file():
                    files[str(file.relative_to(root))] = file.read_bytes()
    return dict(store), files


def _load_state(layer, variables, files):
    store = _ArrayStore()
    dict.update(store, variables)
    layer.load_own_variables(store)
    if hasattr(layer, "load_assets"):
        with tempfile.TemporaryDirectory() as folder:
            for name, data in files.items():
                file = pathlib.Path(folder, name)
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_bytes(data)
            layer.load_assets(folder)


def _same_state(a, b):
    (vars_a, files_a), (vars_b, files_b) = a, b
    if files_a != files_b or sorted(vars_a) != sorted(vars_b):
        return False
    return all(
        vars_a[k].shape == vars_b[k].shape and np.array_equal(vars_a[k], vars_b[k]) for k in vars_a
    )


def copy_layer_state(source, target, path):
    """Give ``target`` (a layer rebuilt from ``source``'s config) what Keras's
    own saving keeps of ``source`` beyond its config: each layer's variables
    as its ``save_own_variables`` writes them, whose ``load_own_variables``
    also rebuilds what the layer derives from them (an adapted
    ``Normalization``'s mean and variance), and the files of its
    ``save_assets`` (the vocabulary of a ``StringLookup``, ``IntegerLookup``
    or ``TextVectorization``, held in a lookup table outside the weights),
    for ``source`` and every layer inside it.

    The target's state is then saved again and compared with the source's,
    so that state Keras's hooks cannot carry raises a ``ValueError`` naming
    the layer here, not a wrong answer or a failure at a later ``predict``.
    """
    pairs = list(zip(compat.sublayers(source), compat.sublayers(target)))
    for s, t in pairs:
        name = path if s is source else f"{path}/{s.name}"
        what = f"klg.convert: cannot carry the state of {name!r} ({type(s).__name__})"
        try:
            state = _saved_state(s)
            _load_state(t, *state)
            carried = _same_state(state, _saved_state(t))
        except Exception as err:
            raise ValueError(f"{what}: {type(err).__name__}: {err}") from err
        if not carried:
            raise ValueError(
                f"{what}: after loading what Keras saves of it (save_own_variables, "
                "save_assets) into the rebuilt layer, the rebuilt layer saves something "
                "else. Its state lives outside what Keras's saving reaches, so the "
                "converted model would compute other numbers."
            )


def _copy(source, target):
    pairs = list(_pairs(source, target, ""))
    for s, t, path in pairs:
        if not _children(s):
            _copy_leaf(s, t, path or s.name)
    # Parents first: setting a layer's `trainable` sets its sublayers' and
    # their variables', so a sublayer frozen on its own inside a trainable
    # model stays frozen.  Set even where the flag already agrees (a klg
    # LSTM made with trainable=False holds gate variables still marked
    # trainable), through Keras's setter itself: on TensorFlow,
    # `t.trainable = value` is skipped when the flag already equals value.
    set_trainable = keras.layers.Layer.trainable.fset
    for s, t, _ in pairs:
        set_trainable(t, s.trainable)


def _input_dim(lstm_like):
    cell = lstm_like.cell
    kernel = getattr(cell, "kernel", None)
    if kernel is None:
        return cell.input_dim
    return kernel.shape[0]


def _batch(layer):
    if getattr(layer, "stateful", False) and getattr(layer, "states", None) is not None:
        return int(ops.shape(tree.flatten(layer.states)[0])[0])
    return None


# -- the entry point -----------------------------------------------------------


def convert(model, to="klg"):
    """A new model of the same structure with every ``keras.layers.LSTM``
    replaced by a :class:`keras_lstm_gates.LSTM` (``to="klg"``), or every
    klg LSTM by a ``keras.layers.LSTM`` (``to="keras"``).

    The replacement has the same configuration, name, dtype policy,
    ``trainable`` flag, weights and (for stateful layers) states, so the new
    model computes the same outputs as the original to float32 rounding.
    LSTMs are found at any depth: in nested Sequential and functional
    models, inside ``keras.layers.Bidirectional`` (both directions,
    including a custom ``backward_layer``; the ``merge_mode`` is kept) and
    ``keras.layers.TimeDistributed``.  Every other layer is rebuilt from its
    config and given the original's weights.  The original model is only
    read: its layers, weights and states are left as they were, and no
    object is shared between the two models.

    What is not carried: the optimizer's state (slot variables, step
    counter) and any training in progress.  Keras's ``clone_model`` compiles
    the new model with the original's compile configuration when the
    original was compiled, but with a fresh optimizer; compile it yourself
    if you want different settings.  The random state of dropout layers
    starts anew (the seeds in the configs are kept).

    Args:
        model: a built Sequential or functional ``keras.Model`` (a model
            with ``keras.Input``, or one that has been called on data), or a
            single built ``keras.layers.LSTM`` / klg LSTM, or a
            ``keras.layers.Bidirectional`` wrapping one.
        to: ``"klg"`` (default) or ``"keras"``.

    Returns:
        The new model (or layer), built.

    Raises:
        TypeError: ``model`` is not a Keras model or layer, or is a
            subclassed model (whose structure Keras cannot clone).
        ValueError: ``to`` is not ``"klg"`` or ``"keras"``, the model is not
            built, or (``to="keras"``) a klg LSTM uses a variant, peepholes,
            per-gate options or ``return_gates``.

    A keras.layers.LSTM subclass is copied as it is (with a warning), since
    its own ``call`` may compute something else.

    >>> import numpy as np, keras, keras_lstm_gates as klg
    >>> model = keras.Sequential([
    ...     keras.Input((6, 3)),
    ...     keras.layers.Bidirectional(keras.layers.LSTM(4), name="bi"),
    ...     keras.layers.Dense(1),
    ... ])
    >>> ours = klg.convert(model)
    >>> type(ours.get_layer("bi").forward_layer).__name__, ours.get_layer("bi").forward_layer.name
    ('LSTM', 'forward_lstm')
    >>> isinstance(ours.get_layer("bi").backward_layer, klg.LSTM)
    True
    >>> x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype("float32")
    >>> diff = keras.ops.convert_to_numpy(ours(x) - model(x))
    >>> bool(np.abs(diff).max() < 1e-5)
    True
    >>> back = klg.convert(ours, to="keras")
    >>> isinstance(back.get_layer("bi").forward_layer, klg.LSTM)
    False
    """
    if isinstance(to, str) and to.lower() in TARGETS:
        to = to.lower()
    else:
        raise ValueError(f"klg.convert: expected to='klg' or to='keras', received to={to!r}.")
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            "klg.convert expects a keras.Model (Sequential or functional) or an "
            f"LSTM layer, received {type(model).__name__}: {model!r}."
        )
    converter = _Converter(to)
    if isinstance(model, keras.Model):
        if not is_graph_model(model):
            inner = find(model, converter.source)
            raise _subclassed_error(
                model,
                f"{converter.source_name} layers at {inner}" if inner else "no layer to convert",
            )
        if not model.built:
            raise ValueError(
                f"klg.convert: {model.name!r} is not built, so it has no weights to "
                "carry over: call it on data, or build it (e.g. start it with "
                "keras.Input), first."
            )
        new = converter.model(model)
    else:
        new = _convert_layer(model, converter)
    _copy(model, new)
    _warn_left_over(new, converter)
    return new


def _convert_layer(layer, converter):
    lstms = (keras.layers.LSTM, LSTM)
    inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
    if not isinstance(inner, lstms):
        raise TypeError(
            "klg.convert expects a keras.Model (Sequential or functional), a "
            "keras.layers.LSTM, a klg.LSTM or a Bidirectional wrapping one; "
            f"received {type(layer).__name__} {layer.name!r}."
        )
    if not layer.built:
        raise ValueError(
            f"klg.convert: {layer.name!r} is not built, so it has no weights to "
            "carry over: call it on data, or build it, first."
        )
    new = converter(layer)
    if not new.built:  # a Bidirectional; its LSTMs carry their own shapes
        new.build((_batch(inner), None, _input_dim(inner)))
    return new


def _warn_left_over(new, converter):
    left = find(new, converter.source)
    subclasses = find(
        new,
        lambda layer: (
            converter.to == "klg"
            and isinstance(layer, keras.layers.LSTM)
            and not _is_keras_lstm(layer)
        ),
    )
    if left or subclasses:
        warnings.warn(
            f"klg.convert(to={converter.to!r}) left {left + subclasses} as they were: "
            "they sit inside custom layers or are subclasses of "
            f"{converter.source_name}, which it does not rebuild.",
            stacklevel=3,
        )
