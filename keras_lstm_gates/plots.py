"""Matplotlib plots of gate traces.

matplotlib is optional (``pip install "keras-lstm-gates[plot]"``); it is
imported when a plot is drawn, never when the package is imported.  Every
function returns a ``matplotlib.figure.Figure`` built without pyplot, so no
global figure is left open: save it with ``fig.savefig(path)`` or let a
notebook display it.
"""

import numpy as np

from .parts import TRACED

#: Plot titles of the traced quantities (matplotlib mathtext).
LABELS = {
    "input_gate": "input gate $i_t$",
    "forget_gate": "forget gate $f_t$",
    "candidate": "candidate $g_t$",
    "output_gate": "output gate $o_t$",
    "cell_state": "cell state $c_t$",
}
_SYMBOLS = {k: v.split(" ")[-1] for k, v in LABELS.items()}


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError(
            "keras_lstm_gates.plots needs matplotlib; install it with "
            "`pip install 'keras-lstm-gates[plot]'` (or `pip install matplotlib`)."
        ) from err
    return Figure(**kwargs)


def _is_trace(obj):
    # A GateTrace (from klg.trace) by what it holds: this module draws traces
    # and is imported by them, so it does not import their class.
    return all(hasattr(obj, name) for name in (*TRACED, "mask", "saturation"))


def _check_trace(trace):
    if not _is_trace(trace):
        raise ValueError(f"Expected a GateTrace (from klg.trace), received {type(trace).__name__}.")


def _as_traces(traces):
    if _is_trace(traces):
        return [traces]
    if isinstance(traces, dict):
        traces = list(traces.values())
    traces = list(traces) if isinstance(traces, (list, tuple)) else None
    if not traces or not all(_is_trace(t) for t in traces):
        raise ValueError(
            "Expected a GateTrace, a dict of GateTraces (from klg.trace) or a "
            "non-empty list of GateTraces."
        )
    return traces


def _check_sample(trace, sample):
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)):
        raise ValueError(f"Expected `sample` to be an integer index, received {sample!r}.")
    if not -trace.batch_size <= sample < trace.batch_size:
        raise ValueError(
            f"Expected `sample` in [0, {trace.batch_size}) for a batch of "
            f"{trace.batch_size}, received sample={sample}."
        )


def _check_gate_names(gates):
    if not gates:
        raise ValueError("Expected at least one gate name, received none.")
    for gate in gates:
        if gate not in TRACED:
            raise ValueError(f"Expected gate names among {list(TRACED)}, received {gate!r}.")


def _unit_index(trace, units):
    if units is None:
        return np.arange(trace.units)
    index = np.asarray(units)
    if index.ndim != 1 or index.size == 0 or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(
            f"Expected `units` to be a non-empty list of unit indices, received {units!r}."
        )
    if index.min() < 0 or index.max() >= trace.units:
        raise ValueError(f"Expected unit indices in [0, {trace.units}), received {index.tolist()}.")
    return index


def _panel(fig, ax, trace, gate, sample, unit_index, label_units):
    """One heatmap (units x time) with its colour bar; masked steps grey."""
    import matplotlib
    import matplotlib.ticker

    keep = trace.mask[sample]
    values = getattr(trace, gate)[sample][:, unit_index].T  # (units, time)
    if gate in ("candidate", "cell_state"):
        bound = 1.0 if gate == "candidate" else 0.0
        bound = max(bound, float(np.abs(values[:, keep]).max()) if keep.any() else 1.0)
        cmap, vmin, vmax = "RdBu_r", -bound, bound
    else:
        cmap, vmin, vmax = "viridis", 0.0, 1.0
    cmap = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
    shown = np.ma.masked_array(values, mask=np.broadcast_to(~keep, values.shape))
    image = ax.imshow(
        shown,
        aspect="auto",
        origin="lower",
        interpolation="nearest",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
    )
    ax.set_title(f"{trace.name}: {LABELS[gate]}, sample {sample}")
    ax.set_ylabel("unit")
    if label_units and len(unit_index) <= 16:
        ax.set_yticks(range(len(unit_index)), [str(u) for u in unit_index])
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.colorbar(image, ax=ax, pad=0.01).set_label(_SYMBOLS[gate])


def _time_label(trace):
    direction = ", read backwards" if trace.go_backwards else ""
    masked = "; grey: masked" if not trace.mask.all() else ""
    return f"time step t (input order{direction}{masked})"


def plot_heatmap(trace, sample=0, gates=None, units=None):
    """Heatmap of each traced quantity over time for one sample.

    One panel per quantity, stacked: time (input order) runs along x, the
    units along y, and the colour is the value, with a colour bar per panel.
    Gates use a fixed 0..1 scale, the candidate -1..1 and the cell state a
    scale symmetric about 0; masked steps are left blank (grey).

    Args:
        trace: a :class:`keras_lstm_gates.GateTrace`.
        sample: index of the sequence in the batch.
        gates: names to draw, by default all five (``input_gate``,
            ``forget_gate``, ``candidate``, ``output_gate``, ``cell_state``).
        units: optional sequence of unit indices to draw (all by default).

    Returns:
        a matplotlib ``Figure``.

    >>> import numpy as np, keras_lstm_gates as klg
    >>> t = klg.trace(klg.LSTM(3, name="lstm"), np.ones((2, 5, 2), "float32"))["lstm"]
    >>> fig = plot_heatmap(t, sample=1, gates=["forget_gate"])
    >>> fig.axes[0].get_title()
    'lstm: forget gate $f_t$, sample 1'
    """
    _check_trace(trace)
    _check_sample(trace, sample)
    gates = tuple(TRACED) if gates is None else tuple(gates)
    _check_gate_names(gates)
    unit_index = _unit_index(trace, units)
    fig = _figure(figsize=(8.0, 1.0 + 1.9 * len(gates)), layout="constrained")
    axes = fig.subplots(len(gates), 1, sharex=True, squeeze=False)[:, 0]
    for ax, gate in zip(axes, gates):
        _panel(fig, ax, trace, gate, sample, unit_index, units is not None)
    axes[-1].set_xlabel(_time_label(trace))
    return fig


def plot_gate(traces, gate="forget_gate", sample=0):
    """One gate over time for one sample, one heatmap panel per layer.

    The demo's picture of the forget gate: for every traced layer, units
    along y, time (input order) along x, the value as colour (0..1 with a
    colour bar); masked steps grey.

    Args:
        traces: a GateTrace, the dict returned by :func:`keras_lstm_gates.trace`
            or a list of GateTraces.
        gate: which quantity to draw (``"forget_gate"`` by default).
        sample: index of the sequence in the batch.

    Returns:
        a matplotlib ``Figure``.

    >>> import numpy as np, keras, keras_lstm_gates as klg
    >>> model = keras.Sequential([klg.LSTM(3, return_sequences=True, name="a"),
    ...                           klg.LSTM(3, name="b")])
    >>> fig = plot_gate(klg.trace(model, np.ones((2, 5, 2), "float32")))
    >>> [ax.get_title() for ax in fig.axes[:2]]
    ['a: forget gate $f_t$, sample 0', 'b: forget gate $f_t$, sample 0']
    """
    traces = _as_traces(traces)
    _check_gate_names([gate])
    for t in traces:
        _check_sample(t, sample)
    fig = _figure(figsize=(8.0, 0.8 + 2.0 * len(traces)), layout="constrained")
    axes = fig.subplots(len(traces), 1, squeeze=False)[:, 0]
    for ax, t in zip(axes, traces):
        _panel(fig, ax, t, gate, sample, np.arange(t.units), False)
        ax.set_xlabel(_time_label(t))
    return fig


def plot_saturation(traces, left=0.1, right=0.9, gates=None):
    """The left/right saturation scatter of Karpathy, Johnson & Fei-Fei (2015).

    One panel per gate; each dot is one unit of one layer, at
    (fraction of time left-saturated, fraction of time right-saturated).
    Dots on the right edge of the triangle are always saturated, dots near
    the origin never; a forget-gate unit high on the y axis is an integrator
    that keeps its cell state.  Layers are told apart by colour (legend).

    Args:
        traces: a GateTrace, the dict returned by :func:`keras_lstm_gates.trace`
            or a list of GateTraces.
        left, right: saturation thresholds (0.1 and 0.9 by default).
        gates: the gates to draw (the sigmoid gates present by default).

    Returns:
        a matplotlib ``Figure``.

    >>> import numpy as np, keras, keras_lstm_gates as klg
    >>> model = keras.Sequential([klg.LSTM(3, return_sequences=True, name="a"),
    ...                           klg.LSTM(3, name="b")])
    >>> fig = plot_saturation(klg.trace(model, np.ones((2, 5, 2), "float32")))
    >>> [ax.get_title() for ax in fig.axes]
    ['input gate $i_t$', 'forget gate $f_t$', 'output gate $o_t$']
    """
    traces = _as_traces(traces)
    traces[0].saturation(left, right, gates=())  # checks the thresholds
    left, right = float(left), float(right)
    if gates is None:
        gates = [g for g in TRACED if any(g in t.saturating_gates for t in traces)]
    gates = list(gates)
    _check_gate_names(gates)

    import matplotlib

    colours = matplotlib.colormaps["tab10"]
    fig = _figure(figsize=(3.6 * len(gates) + 0.4, 4.6), layout="constrained")
    fig.suptitle(f"Gate saturation: left < {left:g}, right > {right:g} (one dot per unit)")
    axes = fig.subplots(1, len(gates), squeeze=False)[0]
    for ax, gate in zip(axes, gates):
        ax.plot([0, 1], [1, 0], color="0.6", linestyle="--", linewidth=0.8)
        for k, t in enumerate(traces):
            if gate not in t.saturating_gates:
                continue
            sat = t.saturation(left, right, gates=[gate])[gate]
            ax.scatter(
                sat["left"],
                sat["right"],
                s=18,
                alpha=0.75,
                color=colours(k % 10),
                label=t.name,
                edgecolors="none",
            )
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_title(LABELS[gate])
        ax.set_xlabel(f"fraction left-saturated (< {left:g})")
        ax.set_ylabel(f"fraction right-saturated (> {right:g})")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
    return fig
