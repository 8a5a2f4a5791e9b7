"""``LSTM``: the sequence layer, a drop-in for ``keras.layers.LSTM``."""

from keras import activations, backend, constraints, initializers, ops, regularizers, tree
from keras.layers import RNN, InputSpec
from keras.saving import register_keras_serializable

from . import recurrence
from .cell import LSTMCell, serialize_gate_options
from .gates import PACKAGE
from .variants import SIGMOID_GATES

TRACE_KEYS = ("input_gate", "forget_gate", "candidate", "output_gate", "cell_state")


def gpu_available():
    """Whether the current Keras backend sees a GPU (the cuDNN kernels' home)."""
    name = backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if name == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if name == "torch":
        import torch

        return torch.cuda.is_available()
    return False


@register_keras_serializable(package=PACKAGE)
class LSTM(RNN):
    """Long Short-Term Memory layer whose gates are sublayers.

    A drop-in for ``keras.layers.LSTM``: it takes the same arguments with the
    same defaults and computes the same numbers (to float32 rounding), but
    its cell exposes the four parts as layers:
    ``layer.cell.input_gate``, ``layer.cell.forget_gate``,
    ``layer.cell.candidate`` and ``layer.cell.output_gate``, each with
    ``kernel``, ``recurrent_kernel`` and ``bias``.

    For every timestep ``t``::

        i_t = sigma(x_t W_i + h_{t-1} U_i + b_i)
        f_t = sigma(x_t W_f + h_{t-1} U_f + b_f)
        g_t = tanh (x_t W_c + h_{t-1} U_c + b_c)
        o_t = sigma(x_t W_o + h_{t-1} U_o + b_o)
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)

    The gates' weights are stored once, in the gate sublayers, and
    concatenated at call time so that each step is one matmul for all
    gates; in the vanilla configuration a large layer (from 256 units, or
    on JAX when the call's steps * batch is small against the weights'
    rows) multiplies each gate by its own weights instead, so that a
    training step holds no concatenated copy of the weights or of their
    gradients.  On a GPU, when
    the configuration allows it, the layer calls the same cuDNN kernel as
    ``keras.layers.LSTM`` (see ``use_cudnn``).

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
        return_gates: if True, also return a dict of per-timestep traces
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

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        gate_options=None,
        variant="vanilla",
        peepholes=False,
        forget_bias=None,
        chrono_t_max=None,
        chrono_seed=None,
        return_gates=False,
        implementation=2,
        **kwargs,
    ):
        if not (isinstance(use_cudnn, bool) or use_cudnn == "auto"):  # not 0 / 1
            raise ValueError(
                "Expected `use_cudnn` to be one of 'auto', True, False; "
                f"received use_cudnn={use_cudnn!r}."
            )
        cell = LSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            gate_options=gate_options,
            variant=variant,
            peepholes=peepholes,
            forget_bias=forget_bias,
            chrono_t_max=chrono_t_max,
            chrono_seed=chrono_seed,
            implementation=implementation,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="lstm_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = InputSpec(ndim=3)
        self.use_cudnn = use_cudnn
        if not isinstance(return_gates, bool):
            raise ValueError(
                "Expected `return_gates` to be True or False, received "
                f"return_gates={return_gates!r}."
            )
        self.return_gates = return_gates
        if use_cudnn is True and self.cudnn_unsupported_reason() is not None:
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
        cell = self.cell
        if not cell.spec.is_vanilla:
            return f"variant={cell.spec.name!r}, peepholes={cell.spec.peepholes}"
        if (
            cell.candidate.activation is not activations.tanh
            or cell.activation is not activations.tanh
        ):
            return "the candidate and output activations must be tanh"
        for name in SIGMOID_GATES:
            if cell.gates[name].activation is not activations.sigmoid:
                return f"the {name} activation must be sigmoid"
        if cell.recurrent_dropout:
            return "recurrent_dropout must be 0"
        if cell.implementation == 1 and cell.dropout:
            return "implementation=1 with dropout draws one input mask per gate"
        if not cell.use_bias:
            return "use_bias must be True"
        if self.unroll:
            return "unroll must be False"
        if self.return_gates:
            return "return_gates needs the per-step gate values"
        return None

    def execution_path(self):
        """``"cudnn"`` or ``"fused"``: the kernel an unmasked call would take."""
        if (
            self.use_cudnn in ("auto", True)
            and self.cudnn_unsupported_reason() is None
            and gpu_available()
        ):
            return "cudnn"
        return "fused"

    def _run_cudnn(self, sequences, initial_state, mask, training):
        from keras.src import backend as keras_backend

        if training and self.cell.dropout:
            dp_mask = self.cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(dp_mask, 1)
        kernel, recurrent_kernel, bias = recurrence.StepPlan(self.cell).weights(
            recurrence.KERAS_ORDER
        )
        last, outputs, states = keras_backend.lstm(
            sequences,
            initial_state[0],
            initial_state[1],
            mask,
            kernel=kernel,
            recurrent_kernel=recurrent_kernel,
            bias=bias,
            activation=self.cell.activation,
            recurrent_activation=self.cell.recurrent_activation,
            return_sequences=self.return_sequences,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
        )
        if backend.backend() == "tensorflow":
            self.supports_jit = False
        return last, outputs, list(states), None

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """Run the sequence; returns ``(last_output, outputs, states)`` like
        ``keras.layers.RNN.inner_loop``."""
        return self._run(sequences, initial_state, mask, training)[:3]

    def _run(self, sequences, initial_state, mask, training):
        if tree.is_nested(mask):
            mask = mask[0]
        mask = recurrence.check_mask(mask, sequences.shape)
        if self.execution_path() == "cudnn":
            try:
                return self._run_cudnn(sequences, initial_state, mask, training)
            except NotImplementedError:
                pass
        if self.use_cudnn is True:
            raise ValueError(
                "use_cudnn=True was specified, but the cuDNN kernel cannot run "
                "here: "
                + (self.cudnn_unsupported_reason() or "no GPU, or a mask that is not right-padded")
                + ". Pass use_cudnn='auto' to fall back to the fused kernel."
            )
        cell = self.cell
        dp = rdp = None
        if training and 0.0 < cell.dropout < 1.0:
            dp = cell.get_dropout_mask(sequences[:, 0, :])
        if training and 0.0 < cell.recurrent_dropout < 1.0:
            rdp = cell.get_recurrent_dropout_mask(initial_state[0])
        return recurrence.run_sequence(
            cell,
            sequences,
            initial_state,
            mask=mask,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask,
            return_sequences=self.return_sequences,
            return_gates=self.return_gates,
            input_dropout_mask=dp,
            recurrent_dropout_mask=rdp,
        )

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
        if self.stateful and self._expected_batch_size is not None and batch_size is not None:
            if batch_size != self._expected_batch_size:
                raise ValueError(
                    f"{self.name}: stateful layer built for batch size "
                    f"{self._expected_batch_size}, received {batch_size}."
                )
        self._check_initial_state(initial_state, batch_size)
        # As keras.layers.RNN: draw the dropout masks at every call, in
        # training or not, so that a seeded layer's generator advances as
        # Keras's does and both draw the same masks.
        self.cell.get_dropout_mask(sequences[:, 0, :])
        self.cell.get_recurrent_dropout_mask(initial_state[0])
        last_output, outputs, states, trace = self._run(sequences, initial_state, mask, training)
        self.cell.reset_dropout_mask()
        self.cell.reset_recurrent_dropout_mask()
        dtype = self.compute_dtype
        last_output = ops.cast(last_output, dtype)
        outputs = ops.cast(outputs, dtype)
        states = [ops.cast(s, dtype) for s in states]
        if self.stateful:
            for variable, value in zip(tree.flatten(self.states), states):
                variable.assign(value)
        output = outputs if self.return_sequences else last_output
        result = [output]
        if self.return_state:
            result.extend(states)
        if self.return_gates:
            result.append({k: ops.cast(trace[k], dtype) for k in TRACE_KEYS})
        return result[0] if len(result) == 1 else tuple(result)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        shape = super().compute_output_shape(sequences_shape, initial_state_shape)
        if not self.return_gates:
            return shape
        trace = {k: (sequences_shape[0], sequences_shape[1], self.units) for k in TRACE_KEYS}
        if self.return_state:
            return (*shape, trace)
        return (shape, trace)

    def compute_mask(self, inputs, mask):
        out = super().compute_mask(inputs, mask)
        if not self.return_gates:
            return out
        out = list(out) if isinstance(out, list) else [out]
        return out + [{k: None for k in TRACE_KEYS}]

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

    @property
    def variant(self):
        return self.cell.spec.name

    @property
    def peepholes(self):
        return self.cell.spec.peepholes

    def get_config(self):
        cell = self.cell
        config = {
            "units": cell.units,
            "activation": activations.serialize(cell.activation),
            "recurrent_activation": activations.serialize(cell.recurrent_activation),
            "use_bias": cell.use_bias,
            "kernel_initializer": initializers.serialize(cell.kernel_initializer),
            "recurrent_initializer": initializers.serialize(cell.recurrent_initializer),
            "bias_initializer": initializers.serialize(cell.bias_initializer),
            "unit_forget_bias": cell.unit_forget_bias,
            "kernel_regularizer": regularizers.serialize(cell.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(cell.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(cell.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(cell.kernel_constraint),
            "recurrent_constraint": constraints.serialize(cell.recurrent_constraint),
            "bias_constraint": constraints.serialize(cell.bias_constraint),
            "dropout": cell.dropout,
            "recurrent_dropout": cell.recurrent_dropout,
            "seed": cell.seed,
            "use_cudnn": self.use_cudnn,
            "gate_options": serialize_gate_options(cell.gate_options),
            "variant": cell.spec.name,
            "peepholes": cell.spec.peepholes,
            "forget_bias": cell.forget_bias,
            "chrono_t_max": cell.chrono_t_max,
            "chrono_seed": cell.chrono_seed,
            "return_gates": self.return_gates,
            "implementation": cell.implementation,
        }
        base = super().get_config()
        del base["cell"]
        return {**base, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# units, activation, dropout, ... read through to the cell, as in
# keras.layers.LSTM's properties.
for _name in (
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "unit_forget_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "gate_options",
    "forget_bias",
    "chrono_t_max",
    "implementation",
):
    setattr(LSTM, _name, property(lambda self, _n=_name: getattr(self.cell, _n)))
del _name
