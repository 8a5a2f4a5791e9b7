"""Gate traces: the per-timestep gate values of every klg LSTM in a model.

:func:`trace` runs a model (or a single layer) once, eagerly, on a batch of
inputs and collects, for each :class:`keras_lstm_gates.LSTM` it reaches, the
input gate ``i``, forget gate ``f``, candidate ``g``, output gate ``o`` and
cell state ``c`` at every timestep, as numpy arrays in a :class:`GateTrace`.

How it works: for the duration of one forward pass, each klg LSTM instance
in the model gets an instance-level ``call`` that switches ``return_gates``
on, keeps the gate dict and hands the usual output on to the next layer.
The same layer objects (and so the same weights, never a copy) compute both
the model's output and the trace, with exactly the inputs, mask and initial
state they see in the model.  This is why :func:`trace` works alike for
Sequential, functional and subclassed models, nested models and
``keras.layers.Bidirectional`` wrappers, whose ``forward_layer`` and
``backward_layer`` are klg LSTMs of their own.  The pieces of that pass
(:class:`GateRecorder`, :func:`layer_paths`, :func:`snapshot_variables` and
:func:`restore_variables`, :func:`call_quietly`, :func:`check_mask`) are
shared with :mod:`keras_lstm_gates.monitor`.

Saturation follows Karpathy, Johnson & Fei-Fei (2015), "Visualizing and
Understanding Recurrent Networks": a gate value below ``left`` (0.1) is
left-saturated, above ``right`` (0.9) right-saturated; the fraction of time
each unit spends in either state places it in the saturation scatter.
"""

import inspect
import warnings

import keras
import numpy as np
from keras import ops

from .layer import LSTM, TRACE_KEYS
from .variants import SIGMOID_GATES


def check_thresholds(left, right):
    """Validate the saturation thresholds ``0 <= left < right <= 1``.

    >>> check_thresholds(0.1, 0.9)
    (0.1, 0.9)
    >>> check_thresholds(0.9, 0.1)
    Traceback (most recent call last):
    ...
    ValueError: Expected saturation thresholds with 0 <= left < right <= 1, received left=0.9, right=0.1.
    """
    for name, value in (("left", left), ("right", right)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise ValueError(f"Expected `{name}` to be a number in [0, 1], received {value!r}.")
    if not 0.0 <= left < right <= 1.0:
        raise ValueError(
            "Expected saturation thresholds with 0 <= left < right <= 1, "
            f"received left={left!r}, right={right!r}."
        )
    return float(left), float(right)


def _check_majority(majority):
    if isinstance(majority, bool) or not isinstance(majority, (int, float, np.floating)):
        raise ValueError(f"Expected `majority` to be a number in [0, 1), received {majority!r}.")
    if not 0.0 <= majority < 1.0:
        raise ValueError(f"Expected `majority` in [0, 1), received majority={majority!r}.")
    return float(majority)


class GateTrace:
    """The gate values of one klg LSTM layer over one batch of sequences.

    Built by :func:`trace`; each array is numpy, shape
    ``(batch, time, units)``, with time in **input order** even for a
    ``go_backwards`` layer (whose own ``return_gates`` output is in
    processing order): ``trace.forget_gate[b, t]`` is the forget gate while
    the layer reads ``inputs[b, t]``.  ``go_backwards`` says which way the
    layer ran: then ``c`` at step ``t`` follows from ``c`` at step ``t + 1``.

    Attributes:
        name: the layer's path in the model, e.g. ``"lstm"`` or
            ``"bidirectional/backward_lstm"``.
        input_gate, forget_gate, candidate, output_gate, cell_state: the
            traced values; zero at masked steps.
        mask: boolean ``(batch, time)``, False where the step was masked
            (the layer skipped it); all True when no mask reached the layer.
        hidden: the layer's output ``h`` at every step (input order) when the
            layer has ``return_sequences=True``, else ``None``.
        go_backwards: whether the layer read the sequence from the end.
        variant: the layer's LSTM variant (``"vanilla"``, ``"CIFG"``, ...).
        constant_gates: gates the variant removes; they are traced as ones.

    >>> import numpy as np, keras_lstm_gates as klg
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    >>> t = klg.trace(klg.LSTM(4, name="lstm"), x)["lstm"]
    >>> t.forget_gate.shape, t.mask.shape, t.units, t.timesteps
    ((2, 5, 4), (2, 5), 4, 5)
    >>> sat = t.saturation(left=0.1, right=0.9)
    >>> sorted(sat), sat["forget_gate"]["right"].shape
    (['forget_gate', 'input_gate', 'output_gate'], (4,))
    """

    def __init__(
        self,
        name,
        values,
        mask=None,
        hidden=None,
        go_backwards=False,
        variant="vanilla",
        constant_gates=(),
    ):
        missing = [k for k in TRACE_KEYS if k not in values]
        if missing:
            raise ValueError(
                f"GateTrace {name!r}: expected values for {list(TRACE_KEYS)}, missing {missing}."
            )
        arrays = {k: np.asarray(values[k]) for k in TRACE_KEYS}
        shape = arrays["forget_gate"].shape
        for key, value in arrays.items():
            if value.ndim != 3 or value.shape != shape:
                raise ValueError(
                    f"GateTrace {name!r}: expected every array with shape (batch, time, "
                    f"units) = {shape}, received {key} with shape {value.shape}."
                )
        if mask is None:
            mask = np.ones(shape[:2], dtype=bool)
        mask = np.asarray(mask).astype(bool)
        if mask.shape != shape[:2]:
            raise ValueError(
                f"GateTrace {name!r}: expected a mask of shape (batch, time) = "
                f"{shape[:2]}, received shape {mask.shape}."
            )
        self.name = name
        for key, value in arrays.items():
            setattr(self, key, value)
        self.mask = mask
        self.hidden = None if hidden is None else np.asarray(hidden)
        self.go_backwards = bool(go_backwards)
        self.variant = variant
        self.constant_gates = tuple(constant_gates)

    def __repr__(self):
        b, t, u = self.forget_gate.shape
        return (
            f"GateTrace(name={self.name!r}, batch={b}, time={t}, units={u}, "
            f"go_backwards={self.go_backwards}, masked_steps={int((~self.mask).sum())})"
        )

    @property
    def batch_size(self):
        return self.forget_gate.shape[0]

    @property
    def timesteps(self):
        return self.forget_gate.shape[1]

    @property
    def units(self):
        return self.forget_gate.shape[2]

    @property
    def saturating_gates(self):
        """The sigmoid gates that vary in this variant (the saturation default)."""
        return tuple(g for g in SIGMOID_GATES if g not in self.constant_gates)

    def as_dict(self):
        """``{"input_gate", "forget_gate", "candidate", "output_gate",
        "cell_state", "mask"}`` as numpy arrays (input order).

        >>> import numpy as np, keras_lstm_gates as klg
        >>> t = klg.trace(klg.LSTM(2, name="lstm"), np.ones((1, 3, 2), "float32"))["lstm"]
        >>> sorted(t.as_dict())
        ['candidate', 'cell_state', 'forget_gate', 'input_gate', 'mask', 'output_gate']
        """
        out = {k: getattr(self, k) for k in TRACE_KEYS}
        out["mask"] = self.mask
        return out

    def _check_gates(self, gates):
        gates = self.saturating_gates if gates is None else tuple(gates)
        for gate in gates:
            if gate not in TRACE_KEYS:
                raise ValueError(
                    f"Expected gate names among {list(TRACE_KEYS)}, received {gate!r}."
                )
        return gates

    def saturation(self, left=0.1, right=0.9, gates=None):
        """Per-unit fractions of (unmasked) steps spent saturated.

        A value below ``left`` counts as left-saturated, above ``right`` as
        right-saturated (Karpathy et al. 2015 use 0.1 and 0.9).  Fractions
        are taken over every unmasked step of every sample.

        Args:
            left, right: thresholds, ``0 <= left < right <= 1``.
            gates: names to analyse; by default the sigmoid gates the
                variant has (``input_gate``, ``forget_gate``, ``output_gate``).

        Returns:
            ``{gate: {"left": (units,), "right": (units,)}}`` of floats in
            ``[0, 1]``.

        >>> import numpy as np, keras_lstm_gates as klg
        >>> layer = klg.LSTM(3, forget_bias=10.0, name="lstm")
        >>> t = klg.trace(layer, np.zeros((2, 4, 1), "float32"))["lstm"]
        >>> t.saturation()["forget_gate"]["right"]  # sigma(10) > 0.9 always
        array([1., 1., 1.])
        """
        left, right = check_thresholds(left, right)
        gates = self._check_gates(gates)
        steps = self.mask[..., None]
        count = max(int(self.mask.sum()), 1)
        result = {}
        for gate in gates:
            values = getattr(self, gate)
            result[gate] = {
                "left": ((values < left) & steps).sum(axis=(0, 1)) / count,
                "right": ((values > right) & steps).sum(axis=(0, 1)) / count,
            }
        return result

    def summary(self, left=0.1, right=0.9, majority=0.5, gates=None):
        """Saturation statistics per gate, as a dict.

        For each gate: ``mean`` (over unmasked steps), ``left`` and ``right``
        (fraction of all unmasked values saturated), ``units``, and
        ``units_left`` / ``units_right``: how many units are saturated more
        than ``majority`` of the time.

        >>> import numpy as np, keras_lstm_gates as klg
        >>> layer = klg.LSTM(3, forget_bias=10.0, name="lstm")
        >>> t = klg.trace(layer, np.zeros((2, 4, 1), "float32"))["lstm"]
        >>> s = t.summary()["forget_gate"]
        >>> s["right"], s["units_right"], s["units"]
        (1.0, 3, 3)
        """
        majority = _check_majority(majority)
        sat = self.saturation(left, right, gates)
        keep = self.mask
        out = {}
        for gate, fractions in sat.items():
            values = getattr(self, gate)[keep]
            out[gate] = {
                "mean": float(values.mean()) if values.size else float("nan"),
                "left": float(fractions["left"].mean()),
                "right": float(fractions["right"].mean()),
                "units": int(self.units),
                "units_left": int((fractions["left"] > majority).sum()),
                "units_right": int((fractions["right"] > majority).sum()),
            }
        return out

    def summary_table(self, left=0.1, right=0.9, majority=0.5, gates=None):
        """:meth:`summary` as a fixed-width text table.

        >>> import numpy as np, keras_lstm_gates as klg
        >>> t = klg.trace(klg.LSTM(3, name="lstm"), np.zeros((1, 4, 2), "float32"))["lstm"]
        >>> print(t.summary_table().splitlines()[0])  # doctest: +NORMALIZE_WHITESPACE
        layer gate mean left<0.1 right>0.9 units mostly_left mostly_right
        """
        return format_table({self.name: self.summary(left, right, majority, gates)}, left, right)

    def plot_heatmap(self, sample=0, gates=None, units=None):
        """Heatmaps of the traced values over time for one sample.

        See :func:`keras_lstm_gates.plots.plot_heatmap`; returns a
        matplotlib Figure.
        """
        from .plots import plot_heatmap

        return plot_heatmap(self, sample=sample, gates=gates, units=units)

    def plot_saturation(self, left=0.1, right=0.9, gates=None):
        """The left/right saturation scatter of this layer's gate units.

        See :func:`keras_lstm_gates.plots.plot_saturation`; returns a
        matplotlib Figure.
        """
        from .plots import plot_saturation

        return plot_saturation(self, left=left, right=right, gates=gates)


class GateTraces(dict):
    """What :func:`trace` returns: ``{layer name: GateTrace}`` in call order.

    A plain dict with three helpers over all layers: :meth:`summary`,
    :meth:`summary_table` and :meth:`plot_saturation`.

    >>> import numpy as np, keras, keras_lstm_gates as klg
    >>> model = keras.Sequential([klg.LSTM(3, return_sequences=True, name="a"),
    ...                           klg.LSTM(2, name="b")])
    >>> traces = klg.trace(model, np.zeros((1, 4, 2), "float32"))
    >>> list(traces), sorted(traces.summary()["b"])
    (['a', 'b'], ['forget_gate', 'input_gate', 'output_gate'])
    """

    def summary(self, left=0.1, right=0.9, majority=0.5):
        """``{layer: GateTrace.summary(...)}``."""
        return {name: t.summary(left, right, majority) for name, t in self.items()}

    def summary_table(self, left=0.1, right=0.9, majority=0.5):
        """The summary of every layer as one text table."""
        return format_table(self.summary(left, right, majority), left, right)

    def plot_saturation(self, left=0.1, right=0.9, gates=None):
        """The saturation scatter with every layer in its own colour (a
        matplotlib Figure; see :func:`keras_lstm_gates.plots.plot_saturation`)."""
        from .plots import plot_saturation

        return plot_saturation(self, left=left, right=right, gates=gates)


def format_table(summary, left=0.1, right=0.9):
    """Render ``{layer: {gate: stats}}`` (from ``summary``) as text.

    >>> stats = {"mean": 0.7, "left": 0.0, "right": 0.25, "units": 4,
    ...          "units_left": 0, "units_right": 1}
    >>> print(format_table({"lstm": {"forget_gate": stats}}))
    layer  gate          mean  left<0.1  right>0.9  units  mostly_left  mostly_right
    lstm   forget_gate  0.700     0.000      0.250      4            0             1
    """
    header = (
        "layer",
        "gate",
        "mean",
        f"left<{left:g}",
        f"right>{right:g}",
        "units",
        "mostly_left",
        "mostly_right",
    )
    rows = [header]
    for layer, gates in summary.items():
        for gate, s in gates.items():
            rows.append(
                (
                    layer,
                    gate,
                    f"{s['mean']:.3f}",
                    f"{s['left']:.3f}",
                    f"{s['right']:.3f}",
                    str(s["units"]),
                    str(s["units_left"]),
                    str(s["units_right"]),
                )
            )
    widths = [max(len(r[k]) for r in rows) for k in range(len(header))]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# -- collecting traces -------------------------------------------------------


def _children(layer):
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    if isinstance(layer, LSTM):
        return []
    children = getattr(layer, "_layers", None)
    if children is None:
        children = getattr(layer, "layers", [])
    return list(children)


def layer_paths(root):
    """``{id(layer): (layer, path)}`` for every layer under ``root``."""
    found = {}

    def visit(layer, path):
        if id(layer) in found:
            return
        found[id(layer)] = (layer, path)
        for child in _children(layer):
            visit(child, f"{path}/{child.name}" if path else child.name)

    if isinstance(root, keras.Model):
        found[id(root)] = (root, "")
        for child in _children(root):
            visit(child, child.name)
    else:
        visit(root, root.name)
    return found


def _constant_gates(layer):
    spec = layer.cell.spec
    constant = []
    if not spec.has_input_gate:
        constant.append("input_gate")
    if not spec.has_forget_gate and not spec.coupled:
        constant.append("forget_gate")
    if not spec.has_output_gate:
        constant.append("output_gate")
    return tuple(constant)


def _to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


class GateRecorder:
    """Swaps in a recording ``call`` on each klg LSTM; undoes it on exit."""

    def __init__(self, layers):
        self.layers = layers  # [(layer, path)]
        self.records = []
        self.calls = {}

    def __enter__(self):
        self.saved = []
        for layer, path in self.layers:
            had_own = "call" in layer.__dict__
            original = layer.__dict__.get("call", layer.call)
            self.saved.append((layer, had_own, original))
            layer.__dict__["call"] = self._wrap(layer, path, original)
        return self

    def __exit__(self, *exc):
        for layer, had_own, original in self.saved:
            if had_own:
                layer.__dict__["call"] = original
            else:
                layer.__dict__.pop("call", None)
        return False

    def _wrap(self, layer, path, original):
        signature = inspect.signature(original)

        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            mask = bound.arguments.get("mask")
            own = layer.return_gates
            layer.return_gates = True
            try:
                result = original(*args, **kwargs)
            finally:
                layer.return_gates = own
            gates = result[-1]
            passed_on = result if own else (result[0] if len(result) == 2 else result[:-1])
            output = result[0]
            self.record(layer, path, gates, mask, output)
            return passed_on

        return call

    def record(self, layer, path, gates, mask, output):
        """Append the :class:`GateTrace` of one call of ``layer``."""
        values = {k: _to_numpy(gates[k]).astype(np.float32) for k in TRACE_KEYS}
        batch, steps = values["forget_gate"].shape[:2]
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
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
                constant_gates=_constant_gates(layer),
            )
        )


def snapshot_variables(found):
    """Values of the variables a forward pass can change: RNN states and
    non-trainable variables (seed generators, moving statistics)."""
    variables = {}
    for layer, _ in found.values():
        if getattr(layer, "stateful", False) and getattr(layer, "states", None) is not None:
            for v in keras.tree.flatten(layer.states):
                if isinstance(v, keras.Variable):
                    variables[id(v)] = v
        for v in getattr(layer, "non_trainable_variables", []):
            variables[id(v)] = v
    return [(v, _to_numpy(v.value).copy()) for v in variables.values()]


def restore_variables(snapshot):
    """Assign back the values :func:`snapshot_variables` kept."""
    for variable, value in snapshot:
        variable.assign(value)


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
            array (or a list/dict of arrays for a multi-input model).
        mask: optional boolean (batch, time) array passed as the call's
            ``mask`` (False marks padding).  Masks a model makes itself
            (``Masking``, ``Embedding(mask_zero=True)``) are picked up
            without it.

    Returns:
        :class:`GateTraces`, a dict ``{name: GateTrace}`` in call order.
        Names are paths from the model, leaving the model's own name out
        (``"lstm"``, ``"encoder/lstm"``, ``"bidirectional/forward_lstm"``);
        a wrapper or layer passed directly keeps its own name first.  A
        layer called several times gets ``"[1]"``, ``"[2]"``... appended
        from the second call.

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
        mask = check_mask(mask, inputs)
        call_kwargs["mask"] = mask
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
        for layer, _ in found.values():
            if getattr(layer, "stateful", False) and hasattr(layer, "reset_states"):
                layer.reset_states()
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
    return GateTraces((t.name, t) for t in recorder.records)


def _klg_twin(model_or_layer, found, inputs, call_kwargs):
    """The model with its keras.layers.LSTM layers converted to klg (see
    :func:`keras_lstm_gates.convert`); the model itself is only read."""
    from .convert import _is_graph_model, convert

    subclassed = isinstance(model_or_layer, keras.Model) and not _is_graph_model(model_or_layer)
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
        for layer, _ in found.values():
            if getattr(layer, "stateful", False) and hasattr(layer, "reset_states"):
                layer.reset_states()
    return convert(model_or_layer)


def call_quietly(model_or_layer, inputs, call_kwargs):
    """Call the model, without the warning a masked call of it may give."""
    with warnings.catch_warnings():
        # A model given `mask=` warns that its own output drops the mask; the
        # layers inside saw it, which is all that matters here.
        warnings.filterwarnings("ignore", message=".*does not support masking.*")
        model_or_layer(inputs, **call_kwargs)


def check_mask(mask, inputs):
    """``mask`` as a boolean numpy (batch, time) array matching ``inputs``,
    or a ValueError naming what was expected."""
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
