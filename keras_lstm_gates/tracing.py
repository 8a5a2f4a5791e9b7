"""Recording the gates of a model: :func:`trace`, and the tracer that
:class:`keras_lstm_gates.GateMonitor` calls at every traced epoch.

:func:`trace` runs a model (or a single layer) once, eagerly, on a batch of
inputs and collects, for each :class:`keras_lstm_gates.LSTM` it reaches, the
input gate ``i``, forget gate ``f``, candidate ``C~``, output gate ``o`` and
cell state ``c`` at every timestep, as numpy arrays in a
:class:`~keras_lstm_gates.traces.GateTrace`.

How it works: for the duration of one forward pass, each klg LSTM of the
model records its gate values (:meth:`keras_lstm_gates.LSTM.recording`) and
hands its usual output on to the next layer.  The same layer objects (and so
the same weights, never a copy) compute both the model's output and the
trace, with exactly the inputs, mask and initial state they see in the
model.  This is why :func:`trace` works alike for Sequential, functional and
subclassed models, nested models and ``keras.layers.Bidirectional``
wrappers, whose ``forward_layer`` and ``backward_layer`` are klg LSTMs of
their own.
"""

import contextlib
import warnings

import keras
import numpy as np
from keras import ops

from .layer import LSTM
from .parts import TRACED
from .traces import GateTrace, GateTraces
from .walk import layer_paths


def _to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


class GateRecorder:
    """Records the gate values of each klg LSTM of ``layers`` (a list of
    ``(layer, path)``) while the ``with`` block runs (through
    :meth:`keras_lstm_gates.LSTM.recording`).

    ``keep_tensors=True`` keeps the values as the layer computed them
    (symbolic inside a compiled function) for :meth:`record` later.
    """

    def __init__(self, layers, keep_tensors=False):
        self.layers = layers
        self.keep_tensors = keep_tensors
        self.records = []
        self.calls = {}
        self._stack = None

    def __enter__(self):
        self._stack = contextlib.ExitStack()
        for layer, path in self.layers:
            self._stack.enter_context(layer.recording(self._recorder(path)))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def _recorder(self, path):
        def recorder(layer, values, mask, output):
            if self.keep_tensors:
                self.records.append((layer, path, values, mask, output))
            else:
                self.record(layer, path, values, mask, output)

        return recorder

    def record(self, layer, path, values, mask, output):
        """Append the :class:`GateTrace` of one call of ``layer``."""
        values = {k: _to_numpy(values[k]).astype(np.float32) for k in TRACED}
        batch, steps = values["forget_gate"].shape[:2]
        mask = np.ones((batch, steps), bool) if mask is None else _to_numpy(mask).astype(bool)
        hidden = _to_numpy(output).astype(np.float32) if layer.return_sequences else None
        if layer.go_backwards:  # processing order -> input order
            values = {k: v[:, ::-1] for k, v in values.items()}
            hidden = None if hidden is None else hidden[:, ::-1]
        n = self.calls.get(id(layer), 0)
        self.calls[id(layer)] = n + 1
        name = path if n == 0 else f"{path}[{n}]"
        self.records.append(
            GateTrace(
                name,
                values,
                mask=mask,
                hidden=hidden,
                go_backwards=layer.go_backwards,
                variant=layer.cell.spec.name,
                constant_gates=layer.cell.spec.constant_gates,
            )
        )

    def traces(self):
        return GateTraces((t.name, t) for t in self.records)


def snapshot_variables(found):
    """Values of the variables a forward pass can change: RNN states and
    non-trainable variables (seed generators, moving statistics)."""
    variables = {}
    for layer, _ in found.values():
        if getattr(layer, "stateful", False) and getattr(layer, "states", None) is not None:
            for v in keras.tree.flatten(layer.states):
                # A variable by what it does: older Keras (3.3) exports a
                # `keras.Variable` that their backends' variables do not
                # subclass.
                if hasattr(v, "assign") and hasattr(v, "value"):
                    variables[id(v)] = v
        for v in getattr(layer, "non_trainable_variables", []):
            variables[id(v)] = v
    return [(v, _to_numpy(v.value).copy()) for v in variables.values()]


def restore_variables(snapshot):
    """Assign back the values :func:`snapshot_variables` kept."""
    for variable, value in snapshot:
        variable.assign(value)


def call_quietly(model_or_layer, inputs, call_kwargs):
    """Call the model, without the warning a masked call of it may give."""
    with warnings.catch_warnings():
        # A model given `mask=` warns that its own output drops the mask; the
        # layers inside saw it, which is all that matters here.
        warnings.filterwarnings("ignore", message=".*does not support masking.*")
        return model_or_layer(inputs, **call_kwargs)


def check_call_mask(mask, inputs):
    """The ``mask`` argument of :func:`trace` as a boolean numpy (batch,
    time) array matching ``inputs``, or a ValueError naming what was
    expected."""
    mask = np.asarray(_to_numpy(mask) if not isinstance(mask, np.ndarray) else mask)
    if mask.dtype != bool:
        raise ValueError(
            f"Expected `mask` to be a boolean (batch, time) array, received dtype {mask.dtype}."
        )
    shape = getattr(inputs, "shape", None)
    if shape is not None and len(shape) >= 2 and tuple(mask.shape) != tuple(shape[:2]):
        raise ValueError(
            "Expected `mask` of shape (batch, time) = "
            f"{tuple(shape[:2])}, received shape {tuple(mask.shape)}."
        )
    return mask


def _reset_stateful(found):
    for layer, _ in found.values():
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_states"):
            layer.reset_states()


def trace(model_or_layer, inputs, mask=None):
    """Trace the gates of every klg LSTM in a model over one batch.

    The model runs once, eagerly and in inference mode (``training=False``);
    each :class:`keras_lstm_gates.LSTM` it reaches records its gate values.
    Weights are not copied or changed, and the states of stateful layers
    (and any other non-trainable variable) are restored afterwards.

    Args:
        model_or_layer: a ``keras.Model`` (Sequential, functional or
            subclassed; nested models are searched), a
            ``keras.layers.Bidirectional`` wrapping a klg LSTM, or a klg LSTM.
        inputs: what the model is called on, e.g. a (batch, time, features)
            array (or a list/dict of arrays for a multi-input model, or raw
            strings for a model that starts with a ``TextVectorization``).
        mask: optional boolean (batch, time) array passed as the call's
            ``mask`` (False marks padding).  Masks a model makes itself
            (``Masking``, ``Embedding(mask_zero=True)``) are picked up
            without it.

    Returns:
        :class:`~keras_lstm_gates.traces.GateTraces`, a dict ``{name:
        GateTrace}`` in call order.  Names are paths from the model, leaving
        the model's own name out (``"lstm"``, ``"encoder/lstm"``,
        ``"bidirectional/forward_lstm"``); a wrapper or layer passed directly
        keeps its own name first.  A layer called several times gets
        ``"[1]"``, ``"[2]"``... appended from the second call.

    Raises:
        ValueError: if ``model_or_layer`` is not a Keras layer, holds no klg
            LSTM, none of them ran, or ``mask`` has the wrong shape.

    Limitations: the model is called directly (not through ``predict``), so
    a subclassed model must be callable as ``model(inputs, training=False)``
    (and take ``mask=`` when one is given); layers it creates inside
    ``call`` are not seen, so pass such a layer and its inputs directly.

    Models built with ``keras.layers.LSTM``: a Sequential or functional
    model (or a single layer) that holds ``keras.layers.LSTM`` layers is
    traced through a twin made by :func:`keras_lstm_gates.convert` (same
    structure, names, weights and states, with klg LSTMs in place of
    Keras's); the model itself is left as it was (an unbuilt one is built
    by a first call, as above).  A subclassed model cannot be converted:
    one with no klg LSTM raises convert's ``TypeError``, one with klg LSTMs
    has only those traced (with a warning).

    >>> import numpy as np, keras, keras_lstm_gates as klg
    >>> model = keras.Sequential([
    ...     keras.Input((6, 3)),
    ...     keras.layers.Bidirectional(klg.LSTM(4, name="lstm"), name="bi"),
    ... ])
    >>> x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype("float32")
    >>> traces = klg.trace(model, x)
    >>> list(traces)
    ['bi/forward_lstm', 'bi/backward_lstm']
    >>> traces["bi/backward_lstm"].go_backwards, traces["bi/backward_lstm"].cell_state.shape
    (True, (2, 6, 4))
    """
    if not isinstance(model_or_layer, keras.layers.Layer):
        raise ValueError(
            "trace expects a keras Model or Layer (holding klg.LSTM layers), "
            f"received {type(model_or_layer).__name__}: {model_or_layer!r}."
        )
    call_kwargs = {"training": False}
    if mask is not None:
        call_kwargs["mask"] = check_call_mask(mask, inputs)
    found = layer_paths(model_or_layer)
    if any(type(layer) is keras.layers.LSTM for layer, _ in found.values()):
        model_or_layer = _klg_twin(model_or_layer, found, inputs, call_kwargs)
        found = layer_paths(model_or_layer)
    lstms = [(layer, path) for layer, path in found.values() if isinstance(layer, LSTM)]
    if not lstms:
        raise ValueError(
            f"trace found no klg.LSTM or keras.layers.LSTM layer in "
            f"{model_or_layer.name!r}; it reads only LSTM layers."
        )
    if isinstance(model_or_layer, keras.Model) and not model_or_layer.built:
        # Build first, outside the recording: some backends build a
        # subclassed model by running its call once.  Stateful layers then
        # start from zero states, as in a first call.
        call_quietly(model_or_layer, inputs, call_kwargs)
        _reset_stateful(found)
    snapshot = snapshot_variables(found)
    try:
        with GateRecorder(lstms) as recorder:
            call_quietly(model_or_layer, inputs, call_kwargs)
    finally:
        restore_variables(snapshot)
    if not recorder.records:
        raise ValueError(
            f"trace: none of the klg.LSTM layers of {model_or_layer.name!r} "
            f"({[p for _, p in lstms]}) ran on these inputs."
        )
    return recorder.traces()


def _klg_twin(model_or_layer, found, inputs, call_kwargs):
    """The model with its keras.layers.LSTM layers converted to klg (see
    :func:`keras_lstm_gates.convert`); the model itself is only read."""
    from .convert import convert, is_graph_model

    subclassed = isinstance(model_or_layer, keras.Model) and not is_graph_model(model_or_layer)
    if subclassed and any(isinstance(layer, LSTM) for layer, _ in found.values()):
        warnings.warn(
            f"trace: {model_or_layer.name!r} is a subclassed model, which klg.convert "
            "cannot rebuild, so its keras.layers.LSTM layers are not traced, only its "
            "klg.LSTM layers.",
            stacklevel=3,
        )
        return model_or_layer
    if not model_or_layer.built:
        call_quietly(model_or_layer, inputs, call_kwargs)
        _reset_stateful(found)
    return convert(model_or_layer)


# -- the tracer of GateMonitor -------------------------------------------------


class _torch_rng_state:
    """PyTorch's global random state, to put back after a trace: on the torch
    backend a recurrent layer with dropout (``keras.layers.LSTM`` as well as
    klg's) draws from it even in inference, which would shift the dropout
    masks of the next training step."""

    def __init__(self):
        import torch

        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self):
        import torch

        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def model_tracer(model, lstms, inputs, mask=None):
    """A function that traces ``model``'s klg LSTMs (``lstms``, a list of
    ``(layer, path)``) on ``inputs`` with their current weights and returns
    :class:`~keras_lstm_gates.traces.GateTraces`, as :func:`trace` does.

    On JAX and TensorFlow the model runs inside one compiled function
    (``jax.jit`` or ``tf.function``), made at the first call, with the
    recorder active while it is traced; the function returns the recorded
    values, and they become the same ``GateTrace`` objects afterwards.  An
    eager pass would re-dispatch (on JAX: recompile) the sequence loop at
    every call.  On JAX the model runs through ``stateless_call`` and its
    new non-trainable values are dropped; elsewhere those variables are
    saved and restored around the call, as :func:`trace` does.
    """
    found = layer_paths(model)
    backend = keras.backend.backend()
    kwargs = {"training": False}
    if mask is not None:
        mask = check_call_mask(mask, inputs)
    recorded = []

    def record(call):
        with GateRecorder(lstms, keep_tensors=True) as recorder:
            call()
        recorded[:] = [(layer, path) for layer, path, *_ in recorder.records]
        return [tuple(r[2:]) for r in recorder.records]

    if backend == "jax":
        import jax

        def run(trainable, non_trainable, inputs, mask):
            extra = {} if mask is None else {"mask": mask}
            return record(
                lambda: model.stateless_call(trainable, non_trainable, inputs, **kwargs, **extra)
            )

        compiled = jax.jit(run)

        def execute():
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            return jax.device_get(compiled(trainable, non_trainable, inputs, mask))

    elif backend == "tensorflow":
        import tensorflow as tf

        tensors = keras.tree.map_structure(tf.convert_to_tensor, inputs)
        mask_tensor = None if mask is None else tf.convert_to_tensor(mask)
        warmed = []

        @tf.function
        def run(inputs, mask):
            extra = {} if mask is None else {"mask": mask}
            return record(lambda: call_quietly(model, inputs, {**kwargs, **extra}))

        def execute():
            snapshot = snapshot_variables(found)
            try:
                if not warmed:
                    # One eager call first: whatever a layer builds lazily on
                    # its first call is then not built inside the graph.
                    extra = {} if mask is None else {"mask": mask_tensor}
                    call_quietly(model, tensors, {**kwargs, **extra})
                    warmed.append(True)
                return run(tensors, mask_tensor)
            finally:
                restore_variables(snapshot)

    else:

        def execute():
            extra = {} if mask is None else {"mask": mask}
            snapshot = snapshot_variables(found)
            rng = _torch_rng_state() if backend == "torch" else None
            try:
                return record(lambda: call_quietly(model, inputs, {**kwargs, **extra}))
            finally:
                restore_variables(snapshot)
                if rng is not None:
                    rng.restore()

    def tracer():
        values = execute()
        if not recorded:
            raise ValueError(f"none of the klg.LSTM layers of {model.name!r} ran on these inputs.")
        builder = GateRecorder(lstms)
        for (layer, path), (gates, step_mask, output) in zip(recorded, values):
            builder.record(layer, path, gates, step_mask, output)
        return builder.traces()

    return tracer
