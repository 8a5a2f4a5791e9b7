"""``LSTM``: the sequence layer, a drop-in for ``keras.layers.LSTM``."""

import contextlib

from keras import backend, ops, tree
from keras.layers import RNN, InputSpec
from keras.saving import register_keras_serializable

from . import compat, sequence
from .cell import CELL_OPTIONS, LSTMCell
from .gates import PACKAGE
from .options import Option, assign, config_of, named, takes
from .parts import TRACED

#: The arguments of the sequence layer that its cell does not take.
SEQUENCE_OPTIONS = (
    Option("activity_regularizer", None, "regularizer of the output", kind="regularizer"),
    Option("return_sequences", False, "return every step's h", kind="bool"),
    Option("return_state", False, "also return the last h and c", kind="bool"),
    Option("go_backwards", False, "read the sequence from its end", kind="bool"),
    Option("stateful", False, "carry the states from batch to batch", kind="bool"),
    Option("unroll", False, "unroll the loop over a known length", kind="bool"),
    Option(
        "use_cudnn",
        "auto",
        "run the cuDNN kernel on a GPU",
        kind="choice",
        choices=("auto", True, False),
    ),
    Option("return_gates", False, "also return the gate values of every step", kind="bool"),
)
#: The order of the layer's signature (that of ``keras.layers.LSTM``, klg's own
#: arguments after Keras's).
_ORDER = (
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "unit_forget_bias",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "use_cudnn",
    "gate_options",
    "variant",
    "peepholes",
    "forget_bias",
    "chrono_t_max",
    "chrono_seed",
    "return_gates",
    "implementation",
)
LAYER_OPTIONS = tuple(named((*CELL_OPTIONS, *SEQUENCE_OPTIONS), _ORDER))


@register_keras_serializable(package=PACKAGE)
class LSTM(RNN):
    """Long Short-Term Memory layer whose gates are sublayers.

    A drop-in for ``keras.layers.LSTM``: it takes the same arguments with the
    same defaults and computes the same numbers (to float32 rounding), but
    its cell exposes the four parts as layers:
    ``layer.cell.input_gate``, ``layer.cell.forget_gate``,
    ``layer.cell.candidate`` and ``layer.cell.output_gate``, each with
    ``kernel``, ``recurrent_kernel`` and ``bias``.

    For every timestep ``t`` (the d2l.ai notation of the site: ``W_xf`` is
    ``cell.forget_gate.kernel``, ``W_hf`` its ``recurrent_kernel``)::

        i_t  = sigmoid(x_t W_xi + h_(t-1) W_hi + b_i)
        f_t  = sigmoid(x_t W_xf + h_(t-1) W_hf + b_f)
        C~_t = tanh   (x_t W_xc + h_(t-1) W_hc + b_c)
        o_t  = sigmoid(x_t W_xo + h_(t-1) W_ho + b_o)
        c_t  = f_t * c_(t-1) + i_t * C~_t
        h_t  = o_t * tanh(c_t)

    The gates' weights are stored once, in the gate sublayers, and joined
    at call time so that each step is one matmul for all parts; a large
    layer (from 256 units, or on JAX when the call's steps * batch is small
    against the weights' rows) multiplies each part by its own weights
    instead, so that a training step holds no joined copy of the weights or
    of their gradients.  On a GPU, when the configuration allows it, the
    layer calls the same cuDNN kernel as ``keras.layers.LSTM`` (see
    ``use_cudnn`` and :meth:`execution_path`).

    Args:
        units, activation, recurrent_activation, use_bias,
        kernel_initializer, recurrent_initializer, bias_initializer,
        unit_forget_bias, kernel_regularizer, recurrent_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint,
        recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
        seed, return_sequences, return_state, go_backwards, stateful,
        unroll, zero_output_for_mask: as in ``keras.layers.LSTM``.
        use_cudnn: ``"auto"`` (use cuDNN on a GPU when possible), ``True``
            (require it; raise otherwise) or ``False``.
        gate_options, variant, peepholes, forget_bias, chrono_t_max,
        chrono_seed: see :class:`keras_lstm_gates.LSTMCell`.
        implementation: ``1`` or ``2``: how the dropout masks are drawn
            and applied, as in ``keras.layers.LSTM`` (see
            :class:`keras_lstm_gates.LSTMCell`); it changes nothing else.
        return_gates: if True, also return a dict of per-timestep values
            ``{"input_gate", "forget_gate", "candidate", "output_gate",
            "cell_state"}``, each (batch, time, units), in processing order
            (reversed when ``go_backwards``); masked steps are zero.  It is
            the last element of the returned tuple.

    Call arguments:
        sequences: (batch, time, features).
        initial_state: list ``[h, c]`` of (batch, units) tensors.
        mask: (batch, time) booleans; ``False`` steps are skipped.
        training: whether dropout applies.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 7, 3)).astype("float32")
    >>> layer = LSTM(4, return_sequences=True)
    >>> tuple(layer(x).shape)
    (2, 7, 4)
    >>> tuple(layer.cell.forget_gate.kernel.shape), tuple(layer.cell.forget_gate.bias.shape)
    ((3, 4), (4,))
    >>> y, gates = LSTM(4, return_gates=True)(x)
    >>> sorted(gates), tuple(gates["forget_gate"].shape)
    (['candidate', 'cell_state', 'forget_gate', 'input_gate', 'output_gate'], (2, 7, 4))
    """

    @takes(LAYER_OPTIONS)
    def __init__(self, given, **kwargs):
        cell = LSTMCell(
            **{o.name: given[o.name] for o in CELL_OPTIONS},
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="lstm_cell",
        )
        own = {o.name: given[o.name] for o in SEQUENCE_OPTIONS}
        super().__init__(cell, **kwargs)
        assign(self, SEQUENCE_OPTIONS, own, self.name)
        self.input_spec = InputSpec(ndim=3)
        self._gate_recorder = None
        if self.use_cudnn is True and self.cudnn_unsupported_reason() is not None:
            raise ValueError(
                "use_cudnn=True, but this configuration cannot run on the cuDNN "
                f"kernel: {self.cudnn_unsupported_reason()}. Pass use_cudnn='auto' "
                "to fall back to the fused kernel."
            )

    # -- building and checking -------------------------------------------

    def build(self, sequences_shape, initial_state_shape=None):
        if len(sequences_shape) != 3:
            raise ValueError(
                f"{self.name}: expected input of rank 3 (batch, time, features), "
                f"received shape {tuple(sequences_shape)}."
            )
        super().build(sequences_shape, initial_state_shape)
        self.input_spec = InputSpec(ndim=3, axes={-1: sequences_shape[-1]})

    def _check_initial_state(self, initial_state, batch_size):
        if len(initial_state) != len(self.state_size):
            raise ValueError(
                f"{self.name}: expected initial_state to be a list of "
                f"{len(self.state_size)} tensors ([h, c]"
                f"{', gates' if len(self.state_size) == 3 else ''}), "
                f"received {len(initial_state)}."
            )
        for k, (state, size) in enumerate(zip(initial_state, self.state_size)):
            shape = tuple(state.shape)
            expected = (batch_size, size)
            ok = len(shape) == 2 and shape[-1] == size
            if ok and batch_size is not None and shape[0] is not None:
                ok = shape[0] == batch_size
            if not ok:
                raise ValueError(
                    f"{self.name}: initial_state[{k}] must have shape {expected}, received {shape}."
                )

    # -- execution paths ---------------------------------------------------

    def cudnn_unsupported_reason(self):
        """Why this configuration cannot use the cuDNN kernel, or ``None``.

        It reads only the configuration; whether a GPU is present and the mask
        is right-padded is decided at call time.
        """
        return sequence.cudnn_unsupported_reason(self)

    def execution_path(self):
        """The kernel an unmasked inference call takes: ``"cudnn"``,
        ``"fused"`` (the loops with a hand-written backward pass) or
        ``"stepwise"`` (the step in a loop, differentiated by the backend;
        see :mod:`keras_lstm_gates.sequence`)."""
        return sequence.kernel_for(self)

    @contextlib.contextmanager
    def recording(self, recorder):
        """Within the block, every call of the layer also computes its gate
        values and hands them to ``recorder(layer, values, mask, output)``
        (``values`` as ``return_gates`` gives them, ``mask`` the call's
        (batch, time) mask or ``None``, ``output`` what the layer outputs
        first); what the layer returns is unchanged.
        :func:`keras_lstm_gates.trace` and :class:`keras_lstm_gates.GateMonitor`
        record through it."""
        previous, self._gate_recorder = self._gate_recorder, recorder
        try:
            yield self
        finally:
            self._gate_recorder = previous

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """Run the sequence; returns ``(last_output, outputs, states)`` like
        ``keras.layers.RNN.inner_loop``."""
        return sequence.run(self, sequences, initial_state, mask, training, False)[:3]

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if len(sequences.shape) != 3:
            raise ValueError(
                f"{self.name}: expected input of rank 3 (batch, time, features), "
                f"received shape {tuple(sequences.shape)}."
            )
        if self.unroll and sequences.shape[1] is None:
            raise ValueError(
                f"{self.name}: unroll=True needs a known number of timesteps; "
                f"received input shape {tuple(sequences.shape)}."
            )
        batch_size = sequences.shape[0]
        if initial_state is None:
            if self.stateful:
                initial_state = self.states
                if backend.backend() == "torch":
                    # The state variables are overwritten in place at the end
                    # of the call; autograd must keep the values it read.
                    initial_state = [ops.copy(s) for s in initial_state]
            else:
                initial_state = self.get_initial_state(batch_size=ops.shape(sequences)[0])
        if not tree.is_nested(initial_state):
            initial_state = [initial_state]
        initial_state = [
            ops.convert_to_tensor(s, dtype=self.cell.compute_dtype) for s in initial_state
        ]
        # The batch size check first: a stateful layer's own states would
        # otherwise be reported as a wrong initial_state.
        expected_batch = compat.stateful_batch_size(self) if self.stateful else None
        if expected_batch is not None and batch_size is not None and batch_size != expected_batch:
            raise ValueError(
                f"{self.name}: stateful layer built for batch size "
                f"{expected_batch}, received {batch_size}."
            )
        self._check_initial_state(initial_state, batch_size)
        # As keras.layers.RNN: draw the dropout masks at every call, in
        # training or not, so that a seeded layer's generator advances as
        # Keras's does and both draw the same masks.  (At a rate of 0 no
        # mask is drawn, nor needs resetting.)
        cell = self.cell
        if cell.dropout > 0:
            cell.get_dropout_mask(sequences[:, 0, :])
        if cell.recurrent_dropout > 0:
            cell.get_recurrent_dropout_mask(initial_state[0])
        recorder = self._gate_recorder
        mask = sequence.sequence_mask(mask, sequences.shape)
        last_output, outputs, states, gate_values = sequence.run(
            self,
            sequences,
            initial_state,
            mask,
            training,
            return_gates=self.return_gates or recorder is not None,
        )
        if cell.dropout > 0:
            cell.reset_dropout_mask()
        if cell.recurrent_dropout > 0:
            cell.reset_recurrent_dropout_mask()
        dtype = self.compute_dtype
        last_output = ops.cast(last_output, dtype)
        outputs = ops.cast(outputs, dtype)
        states = [ops.cast(s, dtype) for s in states]
        if self.stateful:
            for variable, value in zip(tree.flatten(self.states), states):
                variable.assign(value)
        output = outputs if self.return_sequences else last_output
        if gate_values is not None:
            gate_values = {k: ops.cast(gate_values[k], dtype) for k in TRACED}
        if recorder is not None:
            recorder(self, gate_values, mask, output)
        result = [output]
        if self.return_state:
            result.extend(states)
        if self.return_gates:
            result.append(gate_values)
        return result[0] if len(result) == 1 else tuple(result)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        shape = super().compute_output_shape(sequences_shape, initial_state_shape)
        if not self.return_gates:
            return shape
        values = {k: (sequences_shape[0], sequences_shape[1], self.units) for k in TRACED}
        if self.return_state:
            return (*shape, values)
        return (shape, values)

    def compute_mask(self, inputs, mask):
        out = super().compute_mask(inputs, mask)
        if not self.return_gates:
            return out
        out = list(out) if isinstance(out, list) else [out]
        return out + [{k: None for k in TRACED}]

    # -- weight interop ----------------------------------------------------

    def set_weights(self, weights):
        """Set the weights from klg's per-gate list (``get_weights()``) or
        from ``keras.layers.LSTM``'s fused ``[kernel, recurrent_kernel, bias]``
        (told apart by count and shapes; see
        :func:`keras_lstm_gates.interop.set_weights_any_layout`)."""
        from .interop import set_weights_any_layout

        set_weights_any_layout(self, weights)

    @classmethod
    def from_keras(cls, keras_layer, **overrides):
        """A klg.LSTM with the configuration and weights of a built
        ``keras.layers.LSTM``.

        >>> import keras, numpy as np
        >>> ref = keras.layers.LSTM(3)
        >>> x = np.ones((1, 4, 2), "float32")
        >>> _ = ref(x)
        >>> ours = LSTM.from_keras(ref)
        >>> to_np = keras.ops.convert_to_numpy
        >>> bool(np.allclose(to_np(ours(x)), to_np(ref(x)), atol=1e-6))
        True
        """
        from .interop import lstm_from_keras

        return lstm_from_keras(cls, keras_layer, **overrides)

    def to_keras(self):
        """A built ``keras.layers.LSTM`` with this layer's configuration and
        weights (vanilla LSTMs only).

        >>> import numpy as np
        >>> layer = LSTM(3)
        >>> _ = layer(np.ones((1, 4, 2), "float32"))
        >>> layer.to_keras().get_weights()[0].shape
        (2, 12)
        """
        from .interop import lstm_to_keras

        return lstm_to_keras(self)

    # -- configuration -----------------------------------------------------

    def get_config(self):
        base = super().get_config()
        del base["cell"]
        return {**base, **config_of(self.cell, CELL_OPTIONS), **config_of(self, SEQUENCE_OPTIONS)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# The cell's arguments read through the layer, as keras.layers.LSTM's do.
for _option in CELL_OPTIONS:
    setattr(LSTM, _option.name, property(lambda self, _n=_option.attribute: getattr(self.cell, _n)))
del _option
