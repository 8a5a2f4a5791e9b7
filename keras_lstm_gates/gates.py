"""The four parts of an LSTM cell, each a Keras layer that owns its weights.

Every part computes one affine map of the step input ``x_t`` and the previous
hidden state ``h_{t-1}`` followed by an activation:

    a_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)

This is the ``g(n+1) = sigma(W [1; x])`` of the equation pages with ``W``
split into its bias, input and recurrent parts.  The three gates
(:class:`InputGate`, :class:`ForgetGate`, :class:`OutputGate`) must squash
into ``[0, 1]``; :class:`CandidateMemory` (the block input ``C~_t``) uses
``tanh`` by default and may use any activation.
"""

import numpy as np
from keras import activations, constraints, initializers, ops, regularizers
from keras.layers import Layer
from keras.saving import register_keras_serializable

PACKAGE = "keras_lstm_gates"

# Options that may be given per gate (see ``LSTMCell(gate_options=...)``).
GATE_OPTIONS = (
    "activation",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
)

_KNOWN_OUT_OF_RANGE = {
    "softmax": "softmax normalises across units so that they sum to 1: one "
    "unit's gate value would depend on every other unit's, and the gates "
    "could not all be open at once",
    "log_softmax": "log_softmax is negative and normalises across units",
    "tanh": "tanh maps into (-1, 1): a negative gate would flip the sign of the memory it scales",
    "relu": "relu maps into [0, inf): a gate above 1 would amplify the memory without bound",
    "linear": "linear (no activation) is unbounded",
    "elu": "elu maps into (-1, inf)",
    "selu": "selu is unbounded",
    "gelu": "gelu is unbounded",
    "silu": "silu is unbounded",
    "swish": "swish is unbounded",
    "softplus": "softplus maps into (0, inf)",
    "softsign": "softsign maps into (-1, 1)",
    "exponential": "exponential maps into (0, inf)",
    "leaky_relu": "leaky_relu is unbounded",
    "relu6": "relu6 maps into [0, 6]",
    "mish": "mish is unbounded",
    "hard_tanh": "hard_tanh maps into [-1, 1]",
    "hard_silu": "hard_silu is unbounded",
    "hard_swish": "hard_swish is unbounded",
}

# The probe for activations we do not know by name: a grid wide enough to
# reach every saturation region.
_PROBE = np.linspace(-60.0, 60.0, 241, dtype="float32").reshape(1, -1)


def _activation_name(activation):
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", type(activation).__name__)


def check_gate_activation(activation, gate="gate"):
    """Return ``activation`` resolved, or raise if its range is not ``[0, 1]``.

    A gate multiplies a memory element by its value, so the value must be a
    fraction: ``0`` blocks, ``1`` passes, and each unit decides on its own.
    ``sigmoid`` and ``hard_sigmoid`` qualify.  ``softmax`` stays in ``[0, 1]``
    but couples the units (they must sum to 1), so it is refused as well.
    A custom callable is probed on a grid of inputs: it must return values in
    ``[0, 1]`` and act element by element.

    >>> check_gate_activation("sigmoid", "forget_gate").__name__
    'sigmoid'
    >>> check_gate_activation("tanh", "forget_gate")
    Traceback (most recent call last):
    ...
    ValueError: forget_gate: a gate activation must map every unit into [0, 1] ...
    """
    name = _activation_name(activation)
    reason = _KNOWN_OUT_OF_RANGE.get(name)
    if reason is None:
        resolved = activations.get(activation)
        probe = ops.convert_to_numpy(resolved(ops.convert_to_tensor(_PROBE)))
        probe = np.asarray(probe, dtype="float64")
        half = ops.convert_to_numpy(resolved(ops.convert_to_tensor(_PROBE[:, :120])))
        if probe.shape != _PROBE.shape or not np.all(np.isfinite(probe)):
            reason = f"{name} did not return one finite value per unit"
        elif probe.min() < 0.0 or probe.max() > 1.0:
            reason = f"{name} returned values in [{probe.min():.4g}, {probe.max():.4g}]"
        elif not np.allclose(half, probe[:, :120], atol=1e-6):
            reason = f"{name} does not act on each unit independently"
        else:
            return resolved
    raise ValueError(
        f"{gate}: a gate activation must map every unit into [0, 1] "
        "independently (the gate is the fraction of a signal let through). "
        f"Expected 'sigmoid' or 'hard_sigmoid'; received activation={name!r}: "
        f"{reason}."
    )


@register_keras_serializable(package=PACKAGE)
class Gate(Layer):
    """One LSTM part: ``activation(x @ kernel + h @ recurrent_kernel + bias)``.

    Args:
        units: number of LSTM units (the width of this part's output).
        activation: the squashing function.
        use_bias: whether the part has a ``bias`` vector.
        kernel_initializer, recurrent_initializer, bias_initializer:
            initializers of ``kernel`` (input_dim, units), ``recurrent_kernel``
            (units, units) and ``bias`` (units,).
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            regularizers of the same three weights.
        kernel_constraint, recurrent_constraint, bias_constraint:
            constraints of the same three weights.
        peephole: if True the part also owns a ``peephole`` vector (units,)
            that weighs the cell state element-wise (Gers & Schmidhuber 2000).
        recurrent_gate_dim: if positive, the part also owns a
            ``gate_recurrent_kernel`` (recurrent_gate_dim, units) that reads
            the previous step's gate activations (full gate recurrence).

    Call arguments:
        inputs: the step input ``x_t``, shape (batch, input_dim).
        hidden_state: ``h_{t-1}``, shape (batch, units).

    >>> import numpy as np
    >>> gate = CandidateMemory(3)
    >>> tuple(gate(np.ones((2, 5)), np.zeros((2, 3))).shape)
    (2, 3)
    """

    symbol = "a"

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        peephole=False,
        recurrent_gate_dim=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                f"{self.name}: expected `units` to be a positive integer, received units={units!r}."
            )
        self.units = int(units)
        self.activation = self._resolve_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.peephole_enabled = bool(peephole)
        self.recurrent_gate_dim = int(recurrent_gate_dim)

    def _resolve_activation(self, activation):
        return activations.get(activation)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"{self.name}: the last axis of the input (features) must be "
                f"known to build the gate; received input shape {input_shape}."
            )
        self.kernel = self.add_weight(
            shape=(input_dim, self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,),
                name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.peephole = None
        if self.peephole_enabled:
            self.peephole = self.add_weight(
                shape=(self.units,),
                name="peephole",
                initializer="zeros",
            )
        self.gate_recurrent_kernel = None
        if self.recurrent_gate_dim:
            self.gate_recurrent_kernel = self.add_weight(
                shape=(self.recurrent_gate_dim, self.units),
                name="gate_recurrent_kernel",
                initializer=self.recurrent_initializer,
                regularizer=self.recurrent_regularizer,
                constraint=self.recurrent_constraint,
            )

    def load_own_variables(self, store):
        # A file saved from keras.layers.LSTM has no group for this gate: the
        # cell has loaded its block from the fused arrays (saved_parts).
        if getattr(self, "_klg_loaded_from_fused", False):
            self._klg_loaded_from_fused = False
            if not len(store.keys()):
                return
        super().load_own_variables(store)

    def preactivation(self, inputs, hidden_state, cell_state=None, previous_gates=None):
        """The affine part ``x @ kernel + h @ recurrent_kernel + bias`` (plus
        ``peephole * c`` and ``previous_gates @ gate_recurrent_kernel`` when
        this part has them)."""
        z = ops.matmul(inputs, self.kernel) + ops.matmul(hidden_state, self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        if self.peephole is not None and cell_state is not None:
            z = z + self.peephole * cell_state
        if self.gate_recurrent_kernel is not None and previous_gates is not None:
            z = z + ops.matmul(previous_gates, self.gate_recurrent_kernel)
        return z

    def call(self, inputs, hidden_state, cell_state=None, previous_gates=None):
        return self.activation(self.preactivation(inputs, hidden_state, cell_state, previous_gates))

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "peephole": self.peephole_enabled,
                "recurrent_gate_dim": self.recurrent_gate_dim,
            }
        )
        return config


@register_keras_serializable(package=PACKAGE)
class SigmoidGate(Gate):
    """A gate: a part whose activation maps each unit into ``[0, 1]``.

    The activation is checked by :func:`check_gate_activation`; anything whose
    range is not ``[0, 1]`` (tanh, relu, linear, softmax, ...) raises a
    ``ValueError``.

    >>> import numpy as np
    >>> g = ForgetGate(4)(np.zeros((1, 3)), np.zeros((1, 4)))
    >>> [float(v) for v in keras.ops.convert_to_numpy(g)[0]]
    [0.5, 0.5, 0.5, 0.5]
    """

    def __init__(self, units, activation="sigmoid", **kwargs):
        super().__init__(units, activation=activation, **kwargs)

    def _resolve_activation(self, activation):
        return check_gate_activation(activation, self.name)


@register_keras_serializable(package=PACKAGE)
class InputGate(SigmoidGate):
    """Input gate ``i_t = sigma(x_t W_i + h_{t-1} U_i + b_i)``: how much of the
    candidate memory is written into the cell.

    >>> gate = InputGate(8)
    >>> gate.build((None, 3))
    >>> [tuple(w.shape) for w in gate.weights]
    [(3, 8), (8, 8), (8,)]
    """

    symbol = "i"

    def __init__(self, units, name="input_gate", **kwargs):
        super().__init__(units, name=name, **kwargs)


@register_keras_serializable(package=PACKAGE)
class ForgetGate(SigmoidGate):
    """Forget gate ``f_t = sigma(x_t W_f + h_{t-1} U_f + b_f)``: the fraction of
    each element of the previous cell state that is kept.

    >>> gate = ForgetGate(8, bias_initializer="ones")
    >>> gate.build((None, 3))
    >>> float(np.asarray(gate.bias)[0])
    1.0
    """

    symbol = "f"

    def __init__(self, units, name="forget_gate", **kwargs):
        super().__init__(units, name=name, **kwargs)


@register_keras_serializable(package=PACKAGE)
class OutputGate(SigmoidGate):
    """Output gate ``o_t = sigma(x_t W_o + h_{t-1} U_o + b_o)``: how much of the
    squashed cell state is exposed as the hidden state.

    >>> OutputGate(2, activation="hard_sigmoid").activation.__name__
    'hard_sigmoid'
    """

    symbol = "o"

    def __init__(self, units, name="output_gate", **kwargs):
        super().__init__(units, name=name, **kwargs)


@register_keras_serializable(package=PACKAGE)
class CandidateMemory(Gate):
    """Candidate memory (block input) ``C~_t = tanh(x_t W_c + h_{t-1} U_c + b_c)``:
    the new content proposed for the cell state.

    >>> CandidateMemory(2).activation.__name__
    'tanh'
    """

    symbol = "g"

    def __init__(self, units, activation="tanh", name="candidate", **kwargs):
        super().__init__(units, activation=activation, name=name, **kwargs)
