"""Recorded gate values and what is read from them: :class:`GateTrace` (one
layer over one batch), :class:`GateTraces` (every layer of a model) and
their saturation statistics.

Saturation follows Karpathy, Johnson & Fei-Fei (2015), "Visualizing and
Understanding Recurrent Networks": a gate value below ``left`` (0.1) is
left-saturated, above ``right`` (0.9) right-saturated; the fraction of time
each unit spends in either state places it in the saturation scatter.
:func:`keras_lstm_gates.trace` makes the traces; :mod:`keras_lstm_gates.plots`
draws them.
"""

import numpy as np

from .parts import GATES, TRACED


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


def check_majority(majority):
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
        missing = [k for k in TRACED if k not in values]
        if missing:
            raise ValueError(
                f"GateTrace {name!r}: expected values for {list(TRACED)}, missing {missing}."
            )
        arrays = {k: np.asarray(values[k]) for k in TRACED}
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
        return tuple(g for g in GATES if g not in self.constant_gates)

    def as_dict(self):
        """``{"input_gate", "forget_gate", "candidate", "output_gate",
        "cell_state", "mask"}`` as numpy arrays (input order).

        >>> import numpy as np, keras_lstm_gates as klg
        >>> t = klg.trace(klg.LSTM(2, name="lstm"), np.ones((1, 3, 2), "float32"))["lstm"]
        >>> sorted(t.as_dict())
        ['candidate', 'cell_state', 'forget_gate', 'input_gate', 'mask', 'output_gate']
        """
        out = {k: getattr(self, k) for k in TRACED}
        out["mask"] = self.mask
        return out

    def _check_gates(self, gates):
        gates = self.saturating_gates if gates is None else tuple(gates)
        for gate in gates:
            if gate not in TRACED:
                raise ValueError(f"Expected gate names among {list(TRACED)}, received {gate!r}.")
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
        majority = check_majority(majority)
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
