"""The four parts of an LSTM cell, each a Keras layer that owns its weights
and its math.

A part computes an affine map of the step input ``x_t`` and the previous
hidden state ``h_(t-1)``, then its activation (the d2l.ai notation of the
site: ``W_x`` is the part's ``kernel``, ``W_h`` its ``recurrent_kernel``)::

    z   = x_t W_x + h_(t-1) W_h + b        # Gate.preactivation
    a_t = activation(z + p * c)            # Gate.activate (p: the peephole)

With ``layer_norm`` (the ``"LN"`` variant, Ba, Kiros & Hinton 2016) the
part normalises its summed input over the units before adding its bias,
``z = g * (a - mean(a)) / sqrt(var(a) + eps) + b`` with ``a = x_t W_x +
h_(t-1) W_h`` and a learnable gain ``g`` (``norm_gain``); the output gate
also normalises the cell state it shows, ``h_t = o_t * tanh(g_c * (c_t -
mean) / std + b_c)``.

This is the ``g(n+1) = sigma(W [1; x])`` of the equation pages with ``W``
split into its bias, input and recurrent parts.  :meth:`Gate.activate` is
the only code that turns a pre-activation into the part's value: the
per-part call, the cell's fused step (which computes every part's ``z``
with one matmul over the joined weights), every sequence loop, exported
graphs and tracing all run it.  The three gates (:class:`InputGate`,
:class:`ForgetGate`, :class:`OutputGate`) must squash into ``[0, 1]``;
:class:`CandidateMemory` (the block input ``C~_t``) uses ``tanh`` by
default and may use any activation.
"""

import numpy as np
from keras import activations, ops
from keras.layers import Layer
from keras.saving import register_keras_serializable

from .options import Option, assign, config_of, takes

PACKAGE = "keras_lstm_gates"

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


def native(activation):
    """The running backend's own function for Keras's ``sigmoid`` and
    ``tanh`` (Keras calls it and returns its result), else ``activation``
    itself.  Inside a Python loop Keras's dispatch costs more than the op;
    in a compiled graph the two are the same op."""
    import keras

    name = keras.backend.backend()
    if activation not in (activations.sigmoid, activations.tanh) or name not in _NATIVE:
        return activation
    return _NATIVE[name](activation is activations.sigmoid)


def _torch_activation(sigmoid):
    import torch

    return torch.sigmoid if sigmoid else torch.tanh


def _jax_activation(sigmoid):
    import jax

    return jax.nn.sigmoid if sigmoid else jax.numpy.tanh


def _tf_activation(sigmoid):
    import tensorflow as tf

    return tf.sigmoid if sigmoid else tf.tanh


_NATIVE = {"torch": _torch_activation, "jax": _jax_activation, "tensorflow": _tf_activation}


def derivative_from_value(activation):
    """``d activation / dz`` as a function of the activation's value, for
    the activations whose derivative is one (sigmoid, tanh), else ``None``."""
    if activation is activations.sigmoid:
        return lambda value: value * (1.0 - value)
    if activation is activations.tanh:
        return lambda value: 1.0 - value * value
    return None


#: The epsilon of the layer-normalised parts (that of ``keras.layers.LayerNormalization``).
LAYER_NORM_EPSILON = 1e-3


def _layer_normalized(z, gain, epsilon=LAYER_NORM_EPSILON):
    """``gain * (z - mean(z)) / sqrt(var(z) + epsilon)`` over the units."""
    mean = ops.mean(z, axis=-1, keepdims=True)
    centred = z - mean
    variance = ops.mean(centred * centred, axis=-1, keepdims=True)
    return gain * centred * ops.rsqrt(variance + epsilon)


#: The per-part options, also given per gate through ``gate_options``.
PART_OPTIONS = (
    Option("activation", "tanh", "the part's activation", kind="activation"),
    Option("kernel_initializer", "glorot_uniform", "initializer of W_x", kind="initializer"),
    Option("recurrent_initializer", "orthogonal", "initializer of W_h", kind="initializer"),
    Option("bias_initializer", "zeros", "initializer of b", kind="initializer"),
    Option("kernel_regularizer", None, "regularizer of W_x", kind="regularizer"),
    Option("recurrent_regularizer", None, "regularizer of W_h", kind="regularizer"),
    Option("bias_regularizer", None, "regularizer of b", kind="regularizer"),
    Option("kernel_constraint", None, "constraint of W_x", kind="constraint"),
    Option("recurrent_constraint", None, "constraint of W_h", kind="constraint"),
    Option("bias_constraint", None, "constraint of b", kind="constraint"),
)
#: What a variant sets on each part (see :mod:`keras_lstm_gates.variants`).
STRUCTURE_OPTIONS = (
    Option("use_bias", True, "whether the part has a bias b", kind="bool"),
    Option(
        "peephole",
        False,
        "whether the part reads the cell state (weight p)",
        kind="bool",
        attribute="peephole_enabled",
    ),
    Option(
        "recurrent_gate_dim",
        0,
        "width of the previous step's gate values the part reads (full gate recurrence)",
        kind="int",
    ),
    Option(
        "layer_norm",
        False,
        "normalise the summed input over the units before the bias (weight norm_gain)",
        kind="bool",
    ),
)
UNITS = Option("units", None, "number of units, the width of the part's output", kind="units")


def _options(activation):
    first = Option("activation", activation, PART_OPTIONS[0].doc, kind="activation")
    return (UNITS, first, *PART_OPTIONS[1:], *STRUCTURE_OPTIONS)


def _init(activation):
    """The ``__init__`` of a part class whose activation defaults to
    ``activation`` (each class has its own signature)."""
    options = _options(activation)

    @takes(options)
    def __init__(self, given, **kwargs):
        kwargs.setdefault("name", self.default_name)
        Layer.__init__(self, **kwargs)
        self._options = options
        assign(self, options, given, self.name)
        self.activation = self.check_activation(self.activation)
        self._native_activation = native(self.activation)

    return __init__


@register_keras_serializable(package=PACKAGE)
class Gate(Layer):
    """One LSTM part: ``activation(x W_x + h W_h + b)``.

    Args:
        units: number of LSTM units (the width of this part's output).
        activation: the squashing function.
        kernel_initializer, recurrent_initializer, bias_initializer:
            initializers of ``kernel`` (input_dim, units), ``recurrent_kernel``
            (units, units) and ``bias`` (units,).
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            regularizers of the same three weights.
        kernel_constraint, recurrent_constraint, bias_constraint:
            constraints of the same three weights.
        use_bias: whether the part has a ``bias`` vector.
        peephole: if True the part also owns a ``peephole`` vector (units,)
            that weighs the cell state element-wise (Gers & Schmidhuber 2000).
        recurrent_gate_dim: if positive, the part also owns a
            ``gate_recurrent_kernel`` (recurrent_gate_dim, units) that reads
            the previous step's gate activations (full gate recurrence).
        layer_norm: if True the part normalises ``x W_x + h W_h`` over the
            units, scales it by its own ``norm_gain`` (units,) and then adds
            its bias (Ba, Kiros & Hinton 2016); an output gate also owns
            ``state_norm_gain`` and ``state_norm_bias`` for the cell state it
            shows.

    Call arguments:
        inputs: the step input ``x_t``, shape (batch, input_dim).
        hidden_state: ``h_(t-1)``, shape (batch, units).
        cell_state: the cell state a peephole reads (``c_(t-1)`` for the
            input and forget gates, ``c_t`` for the output gate).
        previous_gates: the previous step's ``[i, f, o]`` (full gate
            recurrence).

    >>> import numpy as np
    >>> gate = CandidateMemory(3)
    >>> tuple(gate(np.ones((2, 5)), np.zeros((2, 3))).shape)
    (2, 3)
    """

    symbol = "a"
    default_name = "gate"
    __init__ = _init("tanh")

    def check_activation(self, activation):
        return activation

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
                shape=(self.units,), name="peephole", initializer="zeros"
            )
        self.norm_gain = None
        if self.layer_norm:
            self.norm_gain = self.add_weight(
                shape=(self.units,), name="norm_gain", initializer="ones"
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

    # -- the part's math -------------------------------------------------

    @property
    def projection_bias(self):
        """The bias added with the matmuls (``None`` without one): the
        fused path joins it with the other parts' into one vector.  A
        layer-normalised part adds its bias after the normalisation."""
        return None if self.layer_norm else self.bias

    def preactivation(self, inputs, hidden_state):
        """``x W_x + h W_h + b``: the matmuls, with the bias
        (:attr:`projection_bias`)."""
        z = ops.matmul(inputs, self.kernel) + ops.matmul(hidden_state, self.recurrent_kernel)
        if self.projection_bias is not None:
            z = z + self.projection_bias
        return z

    @property
    def reads_only_its_preactivation(self):
        """Whether :meth:`activate` is the activation of ``z`` and nothing
        else (no peephole, no gate recurrence): then the sequence loops may
        differentiate it by hand (:meth:`derivative`)."""
        return not (self.peephole_enabled or self.recurrent_gate_dim or self.layer_norm)

    def activate(self, z, cell_state=None, previous_gates=None):
        """The part's value from its pre-activation ``z`` (see
        :meth:`preactivation`): the peephole term ``p * c`` and the gate
        recurrence ``previous_gates @ W_g`` when the part has them, then its
        activation.  A layer-normalised part first normalises ``z``, scales
        it by ``norm_gain`` and adds its bias."""
        if self.layer_norm:
            z = _layer_normalized(z, self.norm_gain)
            if self.use_bias:
                z = z + self.bias
        if self.peephole_enabled:
            z = z + self.peephole * cell_state
        if self.recurrent_gate_dim:
            z = z + ops.matmul(previous_gates, self.gate_recurrent_kernel)
        return self._native_activation(z)

    def derivative(self, value):
        """``d activate / dz`` at an output ``value`` of :meth:`activate`,
        for a part that :attr:`reads_only_its_preactivation` with a sigmoid
        or tanh activation; ``None`` otherwise."""
        if not self.reads_only_its_preactivation:
            return None
        derivative = derivative_from_value(self.activation)
        return None if derivative is None else derivative(value)

    def call(self, inputs, hidden_state, cell_state=None, previous_gates=None):
        return self.activate(self.preactivation(inputs, hidden_state), cell_state, previous_gates)

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), **config_of(self, self._options)}


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

    __init__ = _init("sigmoid")

    def check_activation(self, activation):
        return check_gate_activation(activation, self.name)


@register_keras_serializable(package=PACKAGE)
class InputGate(SigmoidGate):
    """Input gate ``i_t = sigmoid(x_t W_xi + h_(t-1) W_hi + b_i)``: how much
    of the candidate memory is written into the cell.

    >>> gate = InputGate(8)
    >>> gate.build((None, 3))
    >>> [tuple(w.shape) for w in gate.weights]
    [(3, 8), (8, 8), (8,)]
    """

    symbol = "i"
    default_name = "input_gate"


@register_keras_serializable(package=PACKAGE)
class ForgetGate(SigmoidGate):
    """Forget gate ``f_t = sigmoid(x_t W_xf + h_(t-1) W_hf + b_f)``: the
    fraction of each element of the previous cell state that is kept.

    >>> gate = ForgetGate(8, bias_initializer="ones")
    >>> gate.build((None, 3))
    >>> float(np.asarray(gate.bias)[0])
    1.0
    """

    symbol = "f"
    default_name = "forget_gate"


@register_keras_serializable(package=PACKAGE)
class OutputGate(SigmoidGate):
    """Output gate ``o_t = sigmoid(x_t W_xo + h_(t-1) W_ho + b_o)``: how much
    of the squashed cell state is exposed as the hidden state.

    >>> OutputGate(2, activation="hard_sigmoid").activation.__name__
    'hard_sigmoid'
    """

    symbol = "o"
    default_name = "output_gate"

    def build(self, input_shape):
        super().build(input_shape)
        if self.layer_norm:
            self.state_norm_gain = self.add_weight(
                shape=(self.units,), name="state_norm_gain", initializer="ones"
            )
            self.state_norm_bias = self.add_weight(
                shape=(self.units,), name="state_norm_bias", initializer="zeros"
            )

    def state_shown(self, cell_state):
        """The cell state as this gate exposes it, before the cell's output
        activation: ``h_t = o_t * tanh(state_shown(c_t))``; layer-normalised
        with ``state_norm_gain`` and ``state_norm_bias`` in the ``"LN"``
        variant."""
        if not self.layer_norm:
            return cell_state
        return _layer_normalized(cell_state, self.state_norm_gain) + self.state_norm_bias


@register_keras_serializable(package=PACKAGE)
class CandidateMemory(Gate):
    """Candidate memory (block input)
    ``C~_t = tanh(x_t W_xc + h_(t-1) W_hc + b_c)``: the new content proposed
    for the cell state.

    >>> CandidateMemory(2).activation.__name__
    'tanh'
    """

    symbol = "g"
    default_name = "candidate"


#: The class of each part.
PART_CLASSES = {
    "input_gate": InputGate,
    "forget_gate": ForgetGate,
    "candidate": CandidateMemory,
    "output_gate": OutputGate,
}
