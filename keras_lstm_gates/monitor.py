"""``GateMonitor``: watch the gates of every klg LSTM while ``model.fit`` runs.

A ``keras.callbacks.Callback`` that, at the end of every ``every`` epochs,
traces the model's klg LSTM layers on a fixed batch of inputs (with
:func:`keras_lstm_gates.trace`'s own recorder: the layers of the model run
with their current weights, never a copy) and records, per layer and per
sigmoid gate:

========================  ===================================================
statistic                 meaning
========================  ===================================================
``mean``                  mean gate value over every unit and unmasked step
``left_saturated``        fraction of the values below ``left`` (0.1)
``right_saturated``       fraction of the values above ``right`` (0.9)
``mostly_left``           fraction of units left-saturated on more than
                          ``majority`` (half) of the steps
``mostly_right``          fraction of units right-saturated on more than
                          ``majority`` of the steps
``mostly_saturated``      fraction of units saturated (either side) on more
                          than ``majority`` of the steps
========================  ===================================================

Saturation follows Karpathy, Johnson & Fei-Fei (2015).  Each statistic is
named ``layer/gate/statistic`` (e.g. ``memory/forget_gate/right_saturated``):
the key in :attr:`GateMonitor.history` and in Keras's ``logs``, and the
TensorBoard tag.

With ``log_dir`` the monitor also writes TensorBoard event files (in the
``gates`` run under ``log_dir``, beside the ``train`` and ``validation`` runs
of ``keras.callbacks.TensorBoard``): the statistics as scalars, the gate
values as histograms, and the forget-gate heatmap and the saturation scatter
as images.  It writes them with TensorBoard's own record writer and protocol
buffers, so it needs the ``tensorboard`` package
(``pip install "keras-lstm-gates[tensorboard]"``) but not TensorFlow, and works
alike on the TensorFlow, JAX and PyTorch backends.
"""

import os
import time
import warnings

import keras
import numpy as np

from .event_files import EventWriter, png, tensorboard_modules
from .layer import LSTM
from .parts import SYMBOLS
from .traces import GateTraces, check_thresholds
from .tracing import model_tracer
from .walk import layer_paths

#: The statistics recorded per layer and gate, in tag order.
STATISTICS = (
    "mean",
    "left_saturated",
    "right_saturated",
    "mostly_left",
    "mostly_right",
    "mostly_saturated",
)

# (gate, side) -> what it means when almost every unit is stuck there.
_ALERTS = {
    ("forget_gate", "right"): (
        "memory always kept: the cell state carries everything forward and (almost) never forgets"
    ),
    ("forget_gate", "left"): (
        "memory always wiped: the cell state is reset at (almost) every step, "
        "so the layer remembers nothing beyond one step"
    ),
    ("input_gate", "left"): "input gate closed: (almost) nothing new is written to the memory",
    ("output_gate", "left"): "output gate closed: the memory is (almost) never shown",
}


class GateSaturationWarning(UserWarning):
    """A layer's gates have been stuck at 0 or 1 on almost every unit for
    several epochs (shown once per layer, gate and side)."""


def gate_statistics(traces, left=0.1, right=0.9, majority=0.5):
    """The monitor's statistics of a :func:`keras_lstm_gates.trace` result.

    Args:
        traces: the ``GateTraces`` (``{layer: GateTrace}``) of one trace.
        left, right: saturation thresholds, ``0 <= left < right <= 1``.
        majority: a unit is *mostly* saturated when it is saturated on more
            than this fraction of the (unmasked) steps.

    Returns:
        ``{"layer/gate/statistic": float}`` for every layer, every sigmoid
        gate the layer's variant has and every name in :data:`STATISTICS`.

    >>> import numpy as np, keras_lstm_gates as klg
    >>> from keras_lstm_gates.monitor import gate_statistics
    >>> layer = klg.LSTM(3, forget_bias=10.0, name="memory")
    >>> stats = gate_statistics(klg.trace(layer, np.zeros((2, 4, 1), "float32")))
    >>> stats["memory/forget_gate/right_saturated"], stats["memory/forget_gate/mostly_right"]
    (1.0, 1.0)
    """
    left, right = check_thresholds(left, right)
    out = {}
    for name, t in traces.items():
        summary = t.summary(left, right, majority)
        fractions = t.saturation(left, right)
        for gate, s in summary.items():
            units = max(s["units"], 1)
            either = fractions[gate]["left"] + fractions[gate]["right"]
            values = {
                "mean": s["mean"],
                "left_saturated": s["left"],
                "right_saturated": s["right"],
                "mostly_left": s["units_left"] / units,
                "mostly_right": s["units_right"] / units,
                "mostly_saturated": float((either > majority).sum()) / units,
            }
            for stat in STATISTICS:
                out[f"{name}/{gate}/{stat}"] = float(values[stat])
    return out


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Expected `{name}` to be a positive integer (>= 1), received {value!r}.")
    return int(value)


def _check_fraction(name, value, low_open=True):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise ValueError(f"Expected `{name}` to be a number in (0, 1], received {value!r}.")
    if not (0.0 < value <= 1.0 if low_open else 0.0 <= value < 1.0):
        interval = "(0, 1]" if low_open else "[0, 1)"
        raise ValueError(f"Expected `{name}` in {interval}, received {name}={value!r}.")
    return float(value)


def _shape_text(shape):
    return (
        "("
        + ", ".join("None" if d is None else str(d) for d in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )


class GateMonitor(keras.callbacks.Callback):
    """Trace the gates during ``model.fit`` and log their saturation.

    Every ``every`` epochs (at the end of epochs 0, ``every``, ``2 * every``,
    ..., as ``keras.callbacks.TensorBoard``'s ``histogram_freq``), the monitor
    traces every :class:`keras_lstm_gates.LSTM` of the model on ``inputs``
    and records the statistics listed in :data:`STATISTICS` for each layer
    and sigmoid gate.  Tracing runs in inference mode and changes nothing:
    the same weights, optimizer state and random state as without the
    monitor, so the training result is the same.

    Args:
        inputs: a fixed batch the model can be called on, e.g. a
            ``(batch, time, features)`` array (a list or dict of arrays for a
            multi-input model).  A few dozen sequences are enough.
        log_dir: if given, also write TensorBoard event files under
            ``log_dir/<run_name>`` (needs ``tensorboard``).  The same
            ``log_dir`` as a ``keras.callbacks.TensorBoard`` puts the gates
            beside its ``train`` and ``validation`` runs.
        every: trace every this many epochs (an integer >= 1).
        left, right: saturation thresholds, ``0 <= left < right <= 1``
            (Karpathy et al. 2015: 0.1 and 0.9).
        majority: a unit is mostly saturated when saturated on more than
            this fraction of the steps (0.5).
        mask: optional boolean ``(batch, time)`` mask passed to the model
            with ``inputs`` (masks made by ``Masking`` or ``Embedding`` layers
            are picked up without it).
        add_to_logs: if True, put the statistics into the ``logs`` that Keras
            hands to the callbacks after this one (``CSVLogger``, the progress
            bar, ``EarlyStopping``...), on the epochs the monitor traces.
        images_every: with ``log_dir``, draw the forget-gate heatmap and the
            saturation scatter at the first traced epoch, every this many
            traced epochs after it, and after the last one (when training
            ends); drawing is the slow part of the monitor.
        sample: which sequence of ``inputs`` the heatmap shows.
        warn_units, warn_epochs: warn (once, with the numbers) when a
            layer's forget gates are mostly right-saturated (memory always
            kept) or mostly left-saturated (memory always wiped), or its
            input or output gates mostly closed, on at least ``warn_units``
            of its units for ``warn_epochs`` traced epochs in a row.
            ``warn_epochs=None`` turns the warnings off.
        run_name: the TensorBoard run (subfolder of ``log_dir``).

    Attributes:
        history: a list with one dict per traced epoch:
            ``{"epoch": epoch, "layer/gate/statistic": value, ...}``.
        traces: the :class:`keras_lstm_gates.tracing.GateTraces` of the last
            traced epoch (``None`` before the first).
        alerts: the saturation warnings issued so far (their text).

    Raises:
        ValueError: for ``every`` or ``images_every`` not a positive integer,
            thresholds out of order, and (when training starts) a model
            without any klg LSTM or ``inputs`` the model cannot be called on.
        ImportError: if ``log_dir`` is given and ``tensorboard`` is not
            installed.

    >>> import numpy as np, keras, keras_lstm_gates as klg
    >>> x = np.random.default_rng(0).normal(size=(32, 10, 3)).astype("float32")
    >>> y = np.zeros((32, 1), "float32")
    >>> model = keras.Sequential([keras.Input((10, 3)), klg.LSTM(4, name="memory"),
    ...                           keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> monitor = klg.GateMonitor(x[:8], every=2)
    >>> _ = model.fit(x, y, epochs=3, verbose=0, callbacks=[monitor])
    >>> [h["epoch"] for h in monitor.history]
    [0, 2]
    >>> 0.0 <= monitor.history[-1]["memory/forget_gate/right_saturated"] <= 1.0
    True
    """

    def __init__(
        self,
        inputs,
        log_dir=None,
        every=1,
        left=0.1,
        right=0.9,
        majority=0.5,
        mask=None,
        add_to_logs=False,
        images_every=5,
        sample=0,
        warn_units=0.9,
        warn_epochs=3,
        run_name="gates",
    ):
        super().__init__()
        self.every = _check_positive_int("every", every)
        self.images_every = _check_positive_int("images_every", images_every)
        self.left, self.right = check_thresholds(left, right)
        self.majority = _check_fraction("majority", majority, low_open=False)
        self.warn_units = _check_fraction("warn_units", warn_units)
        self.warn_epochs = (
            None if warn_epochs is None else _check_positive_int("warn_epochs", warn_epochs)
        )
        if not isinstance(add_to_logs, bool):
            raise ValueError(
                f"Expected `add_to_logs` to be True or False, received {add_to_logs!r}."
            )
        if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)):
            raise ValueError(f"Expected `sample` to be an integer index, received {sample!r}.")
        if inputs is None:
            raise ValueError("GateMonitor expects `inputs`: a batch the model can be called on.")
        self.inputs = inputs
        self.mask = mask
        self.add_to_logs = add_to_logs
        self.sample = int(sample)
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.run_name = str(run_name)
        if self.log_dir is not None:
            tensorboard_modules()  # fail now, not after the first epoch
        self.history = []
        self.traces = None
        self.alerts = []
        self._streaks = {}
        self._warned = set()
        self._writer = None
        self._tracer = None
        self._traced_model = None
        self._images_pending = False
        self._last_epoch = None
        self._count = 0
        #: seconds spent at epoch ends (tracing, statistics, writing)
        self.seconds = 0.0

    # -- Keras hooks -------------------------------------------------------

    def on_train_begin(self, logs=None):
        if self._tracer is None or self._traced_model is not self.model:
            self._prepare()

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.every:
            return
        started = time.perf_counter()
        stats = self._measure(epoch)
        if self.add_to_logs and logs is not None:
            logs.update(stats)
        self._check_alerts(epoch, stats)
        self.seconds += time.perf_counter() - started

    def on_train_end(self, logs=None):
        if self._writer is not None:
            if self._images_pending and self.traces is not None:
                self._write_images(self._last_epoch)
            self._writer.close()
            self._writer = None

    # -- tracing -------------------------------------------------------------

    def trace(self):
        """Trace the model on the monitor's inputs with its current weights.

        Returns a :class:`keras_lstm_gates.tracing.GateTraces`, as
        :func:`keras_lstm_gates.trace` does, for the model's klg LSTMs (on
        JAX and TensorFlow through one compiled function, made at the first
        call, that runs the model's layers with their current values).
        """
        if self._tracer is None or self._traced_model is not self.model:
            self._prepare()
        return self._tracer()

    def _prepare(self):
        model = self.model
        if model is None:
            raise ValueError(
                "GateMonitor has no model: pass it in `model.fit(..., callbacks=[...])`."
            )
        found = layer_paths(model)
        lstms = [(layer, path) for layer, path in found.values() if isinstance(layer, LSTM)]
        if not lstms:
            keras_lstms = [
                path for layer, path in found.values() if type(layer) is keras.layers.LSTM
            ]
            hint = (
                f" It holds keras.layers.LSTM layers ({', '.join(keras_lstms)}): convert the "
                "model with `klg.convert(model)` (same weights, same numbers) and monitor that."
                if keras_lstms
                else ""
            )
            raise ValueError(
                f"GateMonitor found no klg.LSTM layer in model {model.name!r}; it traces "
                f"keras_lstm_gates.LSTM layers only.{hint}"
            )
        keras_lstms = [path for layer, path in found.values() if type(layer) is keras.layers.LSTM]
        if keras_lstms:
            warnings.warn(
                f"GateMonitor traces the klg.LSTM layers of {model.name!r} only, not its "
                f"keras.layers.LSTM layers ({', '.join(keras_lstms)}); build the model with "
                "klg.LSTM (or `klg.convert(model)`) to watch those too.",
                stacklevel=3,
            )
        self._check_inputs(model)
        self._tracer = model_tracer(model, lstms, self.inputs, self.mask)
        self._traced_model = model
        try:  # one trace now: inputs the model cannot take fail before training
            traces = self._tracer()
        except Exception as err:
            raise ValueError(
                f"GateMonitor could not run model {model.name!r} on its `inputs` "
                f"({_describe(self.inputs)}): {type(err).__name__}: {err}"
            ) from err
        batch = next(iter(traces.values())).batch_size
        if self.log_dir is not None and not -batch <= self.sample < batch:
            raise ValueError(
                f"Expected `sample` in [0, {batch}) for the {batch} sequences of `inputs`, "
                f"received sample={self.sample}."
            )

    def _check_inputs(self, model):
        given = keras.tree.flatten(self.inputs)
        for x in given:
            if not hasattr(x, "shape") or len(x.shape) < 1:
                raise ValueError(
                    "GateMonitor expects `inputs` to be an array (or a list or dict of "
                    f"arrays) the model can be called on, received {_describe(self.inputs)}."
                )
            if x.shape[0] == 0:
                raise ValueError(
                    "GateMonitor expects at least one sequence in `inputs`, received 0."
                )
        try:
            expected = keras.tree.flatten(model.inputs) if model.inputs else None
        except (AttributeError, ValueError):
            expected = None  # subclassed model: the trial trace checks
        if not expected:
            return
        if len(expected) != len(given):
            raise ValueError(
                f"GateMonitor: model {model.name!r} takes {len(expected)} input(s), "
                f"received {len(given)} in `inputs` ({_describe(self.inputs)})."
            )
        for spec, x in zip(expected, given):
            want, got = tuple(spec.shape), tuple(x.shape)
            fits = len(want) == len(got) and all(
                w is None or w == g for w, g in zip(want[1:], got[1:])
            )
            if not fits:
                raise ValueError(
                    f"GateMonitor: `inputs` do not fit model {model.name!r}: expected "
                    f"shape {_shape_text(want)} (batch first), received shape {_shape_text(got)}."
                )

    def _measure(self, epoch):
        traces = self.trace()
        stats = gate_statistics(traces, self.left, self.right, self.majority)
        self.traces = traces
        self.history.append({"epoch": int(epoch), **stats})
        self._last_epoch = int(epoch)
        if self.log_dir is not None:
            self._write(epoch, traces, stats)
        self._count += 1
        return stats

    # -- TensorBoard ---------------------------------------------------------

    def _write(self, epoch, traces, stats):
        if self._writer is None:
            self._writer = EventWriter(os.path.join(self.log_dir, self.run_name))
        self._writer.scalars(epoch, stats)
        for name, t in traces.items():
            for gate in t.saturating_gates:
                values = getattr(t, gate)[t.mask]
                self._writer.histogram(epoch, f"{name}/{gate}/values", values, 0.0, 1.0)
        self._images_pending = True
        if (self._count % self.images_every) == 0:
            self._write_images(epoch)
        self._writer.flush()

    def _write_images(self, epoch):
        from .plots import plot_gate, plot_saturation

        for name, t in self.traces.items():
            fig = plot_gate(GateTraces([(name, t)]), "forget_gate", sample=self.sample)
            fig.suptitle(f"after epoch {epoch + 1} (step {epoch})")
            self._writer.image(epoch, f"{name}/forget_gate/heatmap", png(fig))
            fig = plot_saturation(t, self.left, self.right)
            fig.suptitle(
                f"{name} after epoch {epoch + 1} (step {epoch}): gate saturation, "
                f"left < {self.left:g}, right > {self.right:g} (one dot per unit)"
            )
            self._writer.image(epoch, f"{name}/gates/saturation", png(fig))
        self._writer.flush()
        self._images_pending = False

    # -- warnings ------------------------------------------------------------

    def _check_alerts(self, epoch, stats):
        if self.warn_epochs is None or self.traces is None:
            return
        for name, t in self.traces.items():
            for (gate, side), meaning in _ALERTS.items():
                if gate not in t.saturating_gates:
                    continue
                key = (name, gate, side)
                fraction = stats[f"{name}/{gate}/mostly_{side}"]
                if fraction < self.warn_units:
                    self._streaks.pop(key, None)
                    continue
                first, length = self._streaks.get(key, (epoch, 0))
                self._streaks[key] = (first, length + 1)
                length += 1
                if length < self.warn_epochs or key in self._warned:
                    continue
                self._warned.add(key)
                symbol = SYMBOLS[gate]
                threshold = (
                    f"{symbol} > {self.right:g}" if side == "right" else f"{symbol} < {self.left:g}"
                )
                units = t.units
                stuck = int(round(fraction * units))
                message = (
                    f"GateMonitor: layer {name!r}: {stuck} of {units} {gate.replace('_', ' ')} "
                    f"units ({fraction:.0%}) were {side}-saturated ({threshold}) on more than "
                    f"{self.majority:.0%} of the steps in each of the last {length} traced "
                    f"epochs (epochs {first} to {epoch}); mean {symbol} = "
                    f"{stats[f'{name}/{gate}/mean']:.3f}, "
                    f"{stats[f'{name}/{gate}/{side}_saturated']:.1%} of all values {side}-"
                    f"saturated. {meaning[0].upper()}{meaning[1:]}."
                )
                self.alerts.append(message)
                warnings.warn(message, GateSaturationWarning, stacklevel=2)


def _describe(inputs):
    if isinstance(inputs, dict):
        return "dict of " + ", ".join(f"{k!r}: {_describe(v)}" for k, v in inputs.items())
    if isinstance(inputs, (list, tuple)):
        return f"{type(inputs).__name__} of [" + ", ".join(_describe(v) for v in inputs) + "]"
    shape = getattr(inputs, "shape", None)
    if shape is not None:
        return f"shape {_shape_text(tuple(shape))}"
    return type(inputs).__name__
