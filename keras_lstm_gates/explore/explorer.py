"""klg.explore: the LSTMVis workflow on a Keras model, in one call.

:func:`explore` traces the model with :func:`keras_lstm_gates.trace`,
lines the six tracks of every LSTM layer (``h``, ``C``, ``f``, ``i``,
``C̃``, ``o``) up with the tokens, and returns an :class:`Explorer`: the
same selection, match, correlation and connectivity in Python (on the
traced float values) and in a self-contained HTML page (on quantised
values) that a notebook shows and :meth:`Explorer.save` writes.
"""

import warnings
from pathlib import Path

import keras
import numpy as np

from . import analysis, page
from .connectivity import connectivity as _connectivity
from .stream import (
    TRACK_KEYS,
    TRACKS,
    Stream,
    aligned_traces,
    hidden_values,
    input_grid,
    lstm_layers,
    track_key,
)

DEFAULT_MAX_BYTES = 19_000_000


class Explorer:
    """What :func:`explore` returns: the traced tracks on one token stream.

    Positions are flat token indices into :attr:`tokens`: the unmasked steps
    of sample 0, then of sample 1, ... (:attr:`sample` and :attr:`step` map
    them back; :meth:`position` maps a (sample, step) to one).

    In a notebook the explorer shows itself (``_repr_html_``); :meth:`save`
    writes the same page to a file that opens offline in any browser.
    """

    TRACK_KEYS = TRACK_KEYS

    def __init__(
        self,
        stream,
        layers,
        labels,
        connectivity_rows=None,
        title="klg.explore",
        threshold=0.5,
        saturation=(0.1, 0.9),
        max_bytes=DEFAULT_MAX_BYTES,
    ):
        self.stream = stream
        self.layers = layers
        self.labels = labels
        self.connectivity_rows = connectivity_rows
        self.title = title
        self.default_threshold = threshold
        self.saturation_thresholds = saturation
        self.max_bytes = max_bytes
        self._html = None

    # -- what it holds ---------------------------------------------------------

    @property
    def tokens(self):
        """The token of each position (strings)."""
        return self.stream.tokens

    @property
    def sample(self):
        """The sample (batch index) of each position."""
        return self.stream.sample

    @property
    def step(self):
        """The step (time index in the input) of each position."""
        return self.stream.step

    def position(self, sample, step):
        """The flat position of input step ``step`` of sample ``sample``."""
        hit = np.flatnonzero((self.stream.sample == sample) & (self.stream.step == step))
        if not len(hit):
            raise ValueError(
                f"Expected an unmasked (sample, step) of the inputs, received ({sample}, {step})."
            )
        return int(hit[0])

    def __repr__(self):
        return (
            f"Explorer(tokens={len(self.tokens)}, layers={list(self.layers)}, "
            f"labels={list(self.labels)}, connectivity="
            f"{0 if self.connectivity_rows is None else len(self.connectivity_rows['positions'])})"
        )

    def _layer(self, layer):
        if layer is None:
            return next(iter(self.layers))
        if layer not in self.layers:
            raise ValueError(f"Expected a layer among {list(self.layers)}, received {layer!r}.")
        return layer

    def values(self, track="h", layer=None):
        """(tokens, units) float32 values of one track of one layer."""
        return self.layers[self._layer(layer)]["values"][track_key(track)]

    def trace(self, layer=None):
        """The :class:`keras_lstm_gates.GateTrace` of a layer."""
        return self.layers[self._layer(layer)]["trace"]

    def saturation(self, layer=None):
        """``GateTrace.saturation`` of a layer, with the explorer's thresholds."""
        return self.trace(layer).saturation(*self.saturation_thresholds)

    # -- the analyses --------------------------------------------------------------

    def _check_range(self, start, end):
        n = len(self.tokens)
        for name, value in (("start", start), ("end", end)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"Expected `{name}` to be a token position, received {value!r}.")
            if not 0 <= value < n:
                raise ValueError(f"Expected `{name}` in [0, {n}), received {value}.")
        if start > end:
            raise ValueError(f"Expected start <= end, received start={start}, end={end}.")
        segment = self.stream.segment_of(start)
        if end >= segment[1]:
            raise ValueError(
                f"A range stays inside one sequence: tokens {start} and {end} are in "
                f"samples {self.sample[start]} and {self.sample[end]}."
            )
        return segment

    def select(self, start, end, threshold=None, *, track="h", layer=None, context=1, sign="+"):
        """The units on over tokens ``start..end`` (both included) and off
        around them, best first (LSTMVis's selection; the rule is in
        :mod:`keras_lstm_gates.explore.analysis`).

        Returns a list of dicts with ``unit``, ``sign`` (+1, or -1 for a unit
        selected with its sign flipped, ``sign="both"``), ``score``,
        ``inside_min`` and ``outside_max``.
        """
        segment = self._check_range(start, end)
        threshold = self.default_threshold if threshold is None else threshold
        return analysis.select(
            self.values(track, layer), segment, int(start), int(end), threshold, context, sign
        )

    def match(self, units, threshold=None, *, track="h", layer=None, min_length=2, limit=50):
        """Spans where all ``units`` are on together, ranked as LSTMVis
        ranks them.  ``units``: unit indices, ``(unit, sign)`` pairs or the
        dicts :meth:`select` returns.  Returns ``(spans, total)``."""
        values = self.values(track, layer)
        pairs = []
        for u in units:
            if isinstance(u, dict):
                u = (u["unit"], u["sign"])
            unit, sign = (u, 1) if not isinstance(u, (tuple, list)) else u
            if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)):
                raise ValueError(f"Expected unit indices, received {unit!r}.")
            if not 0 <= unit < values.shape[1] or sign not in (1, -1):
                raise ValueError(
                    f"Expected units in [0, {values.shape[1]}) with sign +1 or -1, "
                    f"received ({unit!r}, {sign!r})."
                )
            pairs.append((int(unit), int(sign)))
        threshold = self.default_threshold if threshold is None else threshold
        return analysis.match(values, self.stream.segments, pairs, threshold, min_length, limit)

    def _correlation_table(self, track, layer):
        layer = self._layer(layer)
        cache = self.layers[layer].setdefault("correlations", {})
        key = track_key(track)
        if key not in cache:
            values = self.values(key, layer)
            cache[key] = {
                column: analysis.correlations(values, series)
                for column, series in self._columns().items()
            }
        return cache[key]

    def _columns(self):
        if not hasattr(self, "_label_columns"):
            columns = analysis.label_columns(self.labels)
            for name, (kind, values) in self.labels.items():
                if kind != "categorical":
                    continue
                categories, counts = np.unique(values, return_counts=True)
                if len(categories) > page.MAX_CATEGORIES:
                    keep = set(
                        categories[np.argsort(-counts, kind="stable")[: page.MAX_CATEGORIES]]
                    )
                    for category in categories:
                        if category not in keep:
                            columns.pop(f"{name}={category}")
                    warnings.warn(
                        f"explore: labels[{name!r}] has {len(categories)} categories; "
                        f"correlations are kept for the {page.MAX_CATEGORIES} most frequent.",
                        stacklevel=4,
                    )
            self._label_columns = columns
        return self._label_columns

    def correlations(self, label=None, *, track="h", layer=None):
        """Units ranked by |r| with an annotation track (Pearson's r over all
        tokens); a categorical track is one 0/1 column per category, named
        ``"name=category"``.  ``label=None`` ranks over every column.

        Returns a list of ``{"label", "unit", "r"}`` dicts, largest |r| first.
        """
        table = self._correlation_table(track, layer)
        if label is not None:
            wanted = [c for c in table if c == label or c.startswith(f"{label}=")]
            if not wanted:
                raise ValueError(
                    f"Expected a label track among {sorted(self.labels)} (or a column among "
                    f"{sorted(table)}), received {label!r}."
                )
            table = {c: table[c] for c in wanted}
        rows = [
            {"label": column, "unit": int(u), "r": float(r[u])}
            for column, r in table.items()
            for u in range(len(r))
        ]
        rows.sort(key=lambda row: (-abs(row["r"]), row["label"], row["unit"]))
        return rows

    def connectivity(self, position):
        """Gradient norms of the output at ``position`` with respect to each
        input position, as a (tokens,) array with NaN where nothing was
        computed (other samples, steps past the window)."""
        rows = self.connectivity_rows
        if rows is None:
            raise ValueError(
                "This explorer has no connectivity (explore(..., connectivity=False))."
            )
        hit = np.flatnonzero(rows["positions"] == position)
        if not len(hit):
            raise ValueError(
                f"No connectivity row for position {position!r}; rows were computed for "
                f"{len(rows['positions'])} positions ({rows['which']})."
            )
        out = np.full(len(self.tokens), np.nan, np.float32)
        sample, step = self.sample[position], self.step[position]
        for j, value in enumerate(rows["norms"][hit[0]]):
            s = step - rows["before"] + j
            if np.isfinite(value):
                out[self.position(sample, s)] = value
        return out

    # -- the page --------------------------------------------------------------------

    def _fixed_bytes(self):
        """A generous estimate of the page's size besides the tracks."""
        text = sum(len(t.encode("utf-8")) + 6 for t in self.tokens)
        labels = sum(len(self.tokens) * 8 for _ in self.labels)
        units = sum(spec["trace"].units for spec in self.layers.values())
        extra = units * 6 * 10 * (len(self._columns()) + 4)
        con = self.connectivity_rows
        con_bytes = 0 if con is None else con["norms"].size * 2 + len(con["positions"]) * 12
        return 120_000 + text + labels + extra + con_bytes + len(self.tokens) * 8

    def to_html(self):
        """The explorer as one self-contained HTML page (a string)."""
        if self._html is None:
            self._html = page.render(self, self.max_bytes)
        return self._html

    def save(self, path):
        """Write the page to ``path`` (UTF-8); returns the path."""
        path = Path(path)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    def _repr_html_(self):
        return page.iframe(self.to_html())


def _positions_for(connectivity, stream):
    n = len(stream)
    if connectivity is True:
        return np.arange(n), "every token"
    if isinstance(connectivity, (int, np.integer)) and not isinstance(connectivity, bool):
        if connectivity < 1:
            raise ValueError(
                f"Expected `connectivity` to be True, False, a positive count or a list of "
                f"token positions, received {connectivity!r}."
            )
        if connectivity >= n:
            return np.arange(n), "every token"
        picks = np.unique(np.linspace(0, n - 1, int(connectivity)).round().astype(np.int64))
        return picks, f"{len(picks)} evenly spaced tokens"
    try:
        picks = np.unique(np.asarray(list(connectivity), dtype=np.int64))
    except (TypeError, ValueError):
        picks = None
    if picks is None or not len(picks) or picks.min() < 0 or picks.max() >= n:
        raise ValueError(
            "Expected `connectivity` to be True, False, a positive count or a list of token "
            f"positions in [0, {n}), received {connectivity!r}."
        )
    return picks, f"{len(picks)} chosen tokens"


def explore(
    model,
    inputs,
    tokens=None,
    labels=None,
    *,
    mask=None,
    layers=None,
    connectivity=2000,
    connectivity_window=64,
    threshold=0.5,
    saturation=(0.1, 0.9),
    max_bytes=DEFAULT_MAX_BYTES,
    title=None,
):
    """Study the cells of a trained LSTM model: an :class:`Explorer` of
    every LSTM layer's ``h``, ``C``, ``f``, ``i``, ``C̃`` and ``o`` over the
    tokens of ``inputs``.

    The explorer shows itself in a notebook and :meth:`Explorer.save`
    writes it as one offline HTML file: a Karpathy-style heatmap of any
    unit over the text, LSTMVis's range selection and match view, ranked
    correlations with annotation tracks, each gate's saturation and the
    gradient connectivity of each output.  The same analyses run in Python
    (:meth:`Explorer.select`, :meth:`Explorer.match`,
    :meth:`Explorer.correlations`, :meth:`Explorer.connectivity`).

    Args:
        model: a Keras model (or layer) holding ``klg.LSTM`` or
            ``keras.layers.LSTM`` layers (Keras's are read through
            :func:`keras_lstm_gates.convert`, as :func:`keras_lstm_gates.trace`
            reads them); ``Bidirectional`` layers give one layer per direction.
        inputs: what the model is called on, (batch, time, features) floats
            or (batch, time) token ids; a padded batch with a mask (from
            ``Masking``, ``Embedding(mask_zero=True)`` or ``mask=``) gives
            only its unmasked steps.
        tokens: the text of each input step: a (batch, time) nested list of
            strings, or for one sequence a flat list or a string of ``time``
            characters.  ``None`` shows step numbers.
        labels: annotation tracks, one value per input step, shaped like
            ``tokens``: a dict ``{name: values}`` (or one sequence, named
            ``"label"``).  Numbers (or booleans) are a numeric track;
            strings are categories.
        mask: optional boolean (batch, time) mask passed to the model.
        layers: names of the layers to show (default: every LSTM layer whose
            steps are the input's).
        connectivity: which output steps get a connectivity row: ``True``
            (every token), ``False`` (none), a count (that many evenly
            spaced tokens; every token when there are fewer), or a list of
            token positions.  A model with one output per sequence gets a
            row at the last step of each sample.
        connectivity_window: how many earlier input steps (and later ones,
            for a model whose outputs read ahead) each row keeps.
        threshold: the page's starting threshold for selection and match.
        saturation: the (left, right) saturation thresholds.
        max_bytes: the largest page to write; past it the values are
            quantised more coarsely and then kept for fewer tokens (the page
            says what it kept).
        title: the page's title.

    Returns:
        an :class:`Explorer`.

    Raises:
        ValueError: for tokens or labels that do not match the input's
            (batch, time), a model with no LSTM layer, an unknown layer name,
            or a bad ``connectivity``.

    >>> import numpy as np, keras, keras_lstm_gates as klg
    >>> model = keras.Sequential([keras.Input((6, 2)),
    ...                           klg.LSTM(3, return_sequences=True, name="lstm")])
    >>> x = np.random.default_rng(0).normal(size=(1, 6, 2)).astype("float32")
    >>> ex = klg.explore(model, x, tokens="abcdef", connectivity=False)
    >>> ex
    Explorer(tokens=6, layers=['lstm'], labels=[], connectivity=0)
    >>> ex.values("f").shape
    (6, 3)
    """
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            "explore expects a Keras model or layer holding LSTM layers, received "
            f"{type(model).__name__}."
        )
    from .. import trace as klg_trace  # public; bound after this module loads

    if not lstm_layers(model):
        raise ValueError(
            f"explore found no LSTM layer (klg.LSTM or keras.layers.LSTM) in "
            f"{model.name!r}; it shows the cells of LSTM layers."
        )
    batch, time = input_grid(inputs)
    # Tokens and labels are checked before the model runs.
    Stream(np.ones((batch, time), bool), tokens).labels(labels)
    traces = aligned_traces(klg_trace(model, inputs, mask=mask), batch, time)
    if layers is not None:
        layers = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in layers if name not in traces]
        if unknown:
            raise ValueError(f"Expected layer names among {list(traces)}, received {unknown}.")
        traces = {name: traces[name] for name in layers}
    if not traces:
        raise ValueError(
            f"explore: no LSTM layer of {model.name!r} reads the input's {time} steps."
        )
    first = next(iter(traces.values()))
    stream_mask = first.mask if mask is None else np.asarray(mask, bool)
    stream = Stream(stream_mask, tokens)
    label_tracks = stream.labels(labels)
    originals = lstm_layers(model)
    layer_data = {}
    for name, trace in traces.items():
        values = {}
        for key, attr, _label in TRACKS:
            grid = hidden_values(trace, originals.get(name)) if key == "h" else getattr(trace, attr)
            values[key] = stream.flat(grid).astype(np.float32)
        layer_data[name] = {"trace": trace, "values": values}
    rows = None
    if connectivity is not False and connectivity is not None:
        positions, which = _positions_for(connectivity, stream)
        if isinstance(connectivity_window, bool) or not isinstance(
            connectivity_window, (int, np.integer)
        ):
            raise ValueError(
                f"Expected `connectivity_window` to be a positive integer, received "
                f"{connectivity_window!r}."
            )
        if connectivity_window < 1:
            raise ValueError(
                f"Expected `connectivity_window` >= 1, received {connectivity_window}."
            )
        rows = _connectivity(model, inputs, stream, positions, int(connectivity_window), mask)
        if len(rows["positions"]) != len(positions):
            which = "the last step of each sequence (the model has one output per sequence)"
        rows["which"] = which
    if title is None:
        title = f"klg.explore: {model.name}"
    saturation = tuple(saturation)
    first.saturation(*saturation)  # a ValueError for bad thresholds, now
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise ValueError(f"Expected `max_bytes` to be a positive integer, received {max_bytes!r}.")
    explorer = Explorer(
        stream,
        layer_data,
        label_tracks,
        connectivity_rows=rows,
        title=title,
        threshold=analysis.check_threshold(threshold),
        saturation=saturation,
        max_bytes=max_bytes,
    )
    return explorer
