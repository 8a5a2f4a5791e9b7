"""The token stream of an explorer: the unmasked steps of every sequence of
a batch, one after another, with the six traced tracks of each LSTM layer,
the tokens and the annotation labels lined up on it.

LSTMVis reads one long sequence of states; a Keras model reads a padded
batch.  The stream is the bridge: step ``t`` of sample ``b`` becomes one
flat position when ``mask[b, t]`` is True, and ``sample``/``step`` say where
each position came from.  A range or a match never crosses from one sample
into the next.
"""

import warnings

import keras
import numpy as np

# (key, GateTrace attribute, label shown in the page)
TRACKS = (
    ("h", "hidden", "h"),
    ("c", "cell_state", "C"),
    ("f", "forget_gate", "f"),
    ("i", "input_gate", "i"),
    ("g", "candidate", "C\u0303"),
    ("o", "output_gate", "o"),
)
TRACK_KEYS = tuple(k for k, _, _ in TRACKS)
_ALIASES = {attr: key for key, attr, _ in TRACKS}
# Value ranges known from the activations; the cell state has none.
BOUNDS = {"f": (0.0, 1.0), "i": (0.0, 1.0), "o": (0.0, 1.0), "g": (-1.0, 1.0)}


def track_key(track):
    """``"h"``, ``"c"``, ``"f"``, ``"i"``, ``"g"`` or ``"o"`` for a track
    named by key or by its GateTrace attribute (``"forget_gate"``...).

    >>> track_key("forget_gate"), track_key("h")
    ('f', 'h')
    """
    if track in TRACK_KEYS:
        return track
    if track in _ALIASES:
        return _ALIASES[track]
    raise ValueError(
        f"Expected a track among {list(TRACK_KEYS)} (or {sorted(_ALIASES)}), received {track!r}."
    )


def _lstm_like(layer):
    # The public name, read when called: the package imports this module
    # before it binds klg.LSTM.
    from .. import LSTM

    return isinstance(layer, (LSTM, keras.layers.LSTM))


def _children(layer):
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    if _lstm_like(layer):
        return []
    return list(getattr(layer, "_layers", None) or getattr(layer, "layers", []) or [])


def lstm_layers(model):
    """``{path: layer}`` of the LSTM layers (klg's or Keras's) under
    ``model``, named as :func:`keras_lstm_gates.trace` names them."""
    found = {}

    def visit(layer, path):
        if _lstm_like(layer):
            found.setdefault(path, layer)
        for child in _children(layer):
            visit(child, f"{path}/{child.name}" if path else child.name)

    if isinstance(model, keras.Model):
        for child in _children(model):
            visit(child, child.name)
    else:
        visit(model, model.name)
    return found


def hidden_values(trace, layer=None):
    """``h`` at every step: the traced output when the layer returns
    sequences, else ``o * act(c)`` from the traced gates, ``act`` being the
    layer's output activation (identity for the NOAF variant)."""
    if trace.hidden is not None:
        return np.asarray(trace.hidden, np.float32)
    if trace.variant == "NOAF":
        act = None
    else:
        act = getattr(layer, "activation", None) or keras.activations.tanh
    c = trace.cell_state
    if act is None:
        squashed = c
    elif act is keras.activations.tanh:
        squashed = np.tanh(c)
    else:
        squashed = np.asarray(keras.ops.convert_to_numpy(act(keras.ops.convert_to_tensor(c))))
    return (trace.output_gate * squashed * trace.mask[..., None]).astype(np.float32)


def _as_grid(values, batch, time, what, kind):
    """``values`` as a (batch, time) object/number array, or a ValueError
    that says what shape was expected and what came."""
    if isinstance(values, str):
        values = list(values)
    try:
        array = np.asarray(values, dtype=object if kind == "tokens" else None)
    except ValueError:  # ragged nested lists
        array = None
    if array is not None and array.ndim == 1 and batch == 1 and len(array) == time:
        array = array[None, :]
    if array is not None and array.ndim == 1 and any(isinstance(v, (list, tuple)) for v in array):
        array = None
    if array is None or array.ndim != 2 or array.shape != (batch, time):
        got = "a ragged list" if array is None else f"shape {array.shape}"
        if array is not None and array.ndim == 1:
            got = f"{len(array)} values"
        raise ValueError(
            f"Expected {what} with one entry per input step, shape (batch, time) = "
            f"({batch}, {time})"
            + (f" or a flat sequence of {time}" if batch == 1 else "")
            + f"; received {got}."
        )
    return array


class Stream:
    """The flattened steps: ``sample[n]``, ``step[n]`` and the token of each.

    Built from the (batch, time) mask of the model's input; ``tokens`` is a
    (batch, time) grid of strings (a flat sequence or a string when batch is
    1), ``None`` for step numbers.
    """

    def __init__(self, mask, tokens=None):
        mask = np.asarray(mask, bool)
        self.batch, self.time = mask.shape
        self.mask = mask
        self.sample, self.step = np.nonzero(mask)
        if len(self.sample) == 0:
            raise ValueError("explore: every step of the inputs is masked; nothing to show.")
        if tokens is None:
            self.tokens = [str(t) for t in self.step]
        else:
            grid = _as_grid(tokens, self.batch, self.time, "tokens", "tokens")
            self.tokens = [str(t) for t in grid[self.sample, self.step]]
        starts = np.flatnonzero(np.r_[True, self.sample[1:] != self.sample[:-1]])
        self.segments = [
            (int(s), int(e - s), int(self.sample[s]))
            for s, e in zip(starts, np.r_[starts[1:], len(self.sample)])
        ]

    def __len__(self):
        return len(self.sample)

    def flat(self, grid):
        """A (batch, time, ...) array's values at the stream's steps."""
        return np.asarray(grid)[self.sample, self.step]

    def segment_of(self, position):
        """``(start, end)`` (end excluded) of the sample holding ``position``."""
        for start, length, _ in self.segments:
            if start <= position < start + length:
                return start, start + length
        raise ValueError(f"Expected a token position in [0, {len(self)}), received {position!r}.")

    def labels(self, labels):
        """``{name: (kind, values)}``: kind ``"numeric"`` (float array) or
        ``"categorical"`` (array of category strings), one value a token."""
        if labels is None:
            return {}
        if not isinstance(labels, dict):
            labels = {"label": labels}
        out = {}
        for name, values in labels.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"Expected label track names as strings, received {name!r}.")
            grid = _as_grid(values, self.batch, self.time, f"labels[{name!r}]", "labels")
            flat = self.flat(grid)
            if flat.dtype.kind in "biuf":
                out[name] = ("numeric", flat.astype(np.float64))
            else:
                out[name] = ("categorical", np.array([str(v) for v in flat], dtype=object))
        return out


def aligned_traces(traces, batch, time):
    """The traces whose (batch, time) is the inputs'; a warning names any
    other layer (it reads another sequence: it cannot share the tokens)."""
    kept, dropped = {}, []
    for name, trace in traces.items():
        if (trace.batch_size, trace.timesteps) == (batch, time):
            kept[name] = trace
        else:
            dropped.append(f"{name} ({trace.batch_size}, {trace.timesteps})")
    if dropped:
        warnings.warn(
            "explore: left out LSTM layers whose steps are not the input's "
            f"(batch, time) = ({batch}, {time}): {', '.join(dropped)}.",
            stacklevel=3,
        )
    return kept


def input_grid(inputs):
    """(batch, time) of the model's inputs (the first input of several)."""
    first = inputs
    while isinstance(first, (list, tuple)):
        first = first[0]
    if isinstance(first, dict):
        first = next(iter(first.values()))
    shape = tuple(getattr(first, "shape", np.shape(first)))
    if len(shape) < 2:
        raise ValueError(
            "explore expects sequence inputs of shape (batch, time, ...) or (batch, time) "
            f"token ids, received an input of shape {shape}."
        )
    return int(shape[0]), int(shape[1])
