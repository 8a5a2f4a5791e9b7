"""``LSTMCell``: one LSTM step whose four parts are sublayers."""

import numpy as np
from keras import activations, constraints, initializers, ops, regularizers
from keras import random as keras_random
from keras.layers import Layer
from keras.saving import register_keras_serializable

from . import fused_options, recurrence, saved_parts
from .gates import (
    GATE_OPTIONS,
    PACKAGE,
    CandidateMemory,
    ForgetGate,
    InputGate,
    OutputGate,
)
from .initializers import ChronoInitializer, FusedSlice
from .variants import GATE_NAMES, VariantSpec

try:  # DropoutRNNCell holds Keras's per-sequence dropout-mask cache.
    from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell
except ImportError:  # pragma: no cover - older Keras 3 layout
    from keras.layers import DropoutRNNCell  # type: ignore

_GATE_CLASSES = {
    "input_gate": InputGate,
    "forget_gate": ForgetGate,
    "candidate": CandidateMemory,
    "output_gate": OutputGate,
}
# Block index of each part in keras.layers.LSTM's fused (..., 4 * units) weights.
_KERAS_INDEX = {name: k for k, name in enumerate(recurrence.KERAS_ORDER)}


def check_units(units):
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
        raise ValueError(f"Expected `units` to be a positive integer, received units={units!r}.")
    return int(units)


def check_gate_options(gate_options, spec):
    """Validate ``gate_options`` and return a plain ``{gate: {option: value}}``."""
    gate_options = dict(gate_options or {})
    for gate, options in gate_options.items():
        if gate not in GATE_NAMES:
            raise ValueError(f"gate_options: unknown part {gate!r}; expected one of {GATE_NAMES}.")
        if gate not in spec.present_gates:
            raise ValueError(
                f"gate_options: variant {spec.name!r} has no {gate}, so it cannot take options."
            )
        if not isinstance(options, dict):
            raise ValueError(
                f"gate_options[{gate!r}]: expected a dict of options, received {options!r}."
            )
        unknown = sorted(set(options) - set(GATE_OPTIONS))
        if unknown:
            raise ValueError(
                f"gate_options[{gate!r}]: unknown option(s) {unknown}; expected "
                f"some of {GATE_OPTIONS} (use_bias is set for all gates by the cell)."
            )
    return gate_options


@register_keras_serializable(package=PACKAGE)
class LSTMCell(Layer, DropoutRNNCell):
    """One LSTM step, with the four parts as sublayers.

    Equations (``x_t`` the step input, ``h`` and ``c`` the two states)::

        i_t = sigma(x_t W_i + h_{t-1} U_i + b_i)        # cell.input_gate
        f_t = sigma(x_t W_f + h_{t-1} U_f + b_f)        # cell.forget_gate
        g_t = tanh (x_t W_c + h_{t-1} U_c + b_c)        # cell.candidate
        o_t = sigma(x_t W_o + h_{t-1} U_o + b_o)        # cell.output_gate
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)

    Each part owns ``kernel`` (W), ``recurrent_kernel`` (U) and ``bias`` (b).
    The cell takes every argument of ``keras.layers.LSTMCell`` with the same
    defaults and meaning; the cell-level initializers apply to the four parts
    as they apply to the four blocks of Keras's fused weights, and the
    cell-level regularizers and constraints act on the fused matrices, as in
    Keras (one loss per regularizer; see :mod:`keras_lstm_gates.fused_options`).
    Those given per gate through ``gate_options`` act on that gate's block.

    Args:
        units: positive integer, the size of ``h`` and ``c``.
        activation: activation of the candidate and of the cell state on the
            way out (``tanh``).
        recurrent_activation: activation of the three gates; must map into
            ``[0, 1]`` (``sigmoid`` or ``hard_sigmoid``).
        use_bias: whether the parts have biases.
        kernel_initializer, recurrent_initializer, bias_initializer:
            as in ``keras.layers.LSTMCell``.
        unit_forget_bias: if True, the forget gate's bias starts at 1
            (Jozefowicz et al. 2015).
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint: as in Keras.
        dropout: fraction of the inputs dropped (one mask per sequence, or
            one per part; see ``implementation``).
        recurrent_dropout: fraction of ``h_{t-1}`` dropped, one mask per part
            and per sequence (Gal & Ghahramani 2016), as in Keras.
        seed: seed of the dropout masks.  The masks are drawn as
            ``keras.layers.LSTMCell`` draws them, so a layer seeded alike
            drops the same units.
        implementation: ``1`` or ``2`` (default), as in Keras, where it
            selects how the dropout masks are drawn and applied, and nothing
            else: with ``1``, four independent input-dropout masks and four
            recurrent-dropout masks, one per part, each applied before that
            part's matmul; with ``2``, one input-dropout mask shared by the
            four parts.  As in Keras, ``recurrent_dropout > 0`` sets it to
            ``1``.  It does not change the numbers without dropout, nor the
            kernel that runs: the parts' matmuls are fused on either setting
            (per part only while per-part masks apply).
        gate_options: per-part overrides, e.g.
            ``{"forget_gate": {"bias_initializer": "ones"}}``.  Keys are
            ``input_gate``, ``forget_gate``, ``candidate``, ``output_gate``;
            options are the initializer, regularizer and constraint arguments
            above and ``activation``.
        variant: one of ``"vanilla"``, ``"NIG"``, ``"NFG"``, ``"NOG"``,
            ``"NIAF"``, ``"NOAF"``, ``"CIFG"``, ``"FGR"``, ``"NP"`` (Greff et
            al. 2017; see :mod:`keras_lstm_gates.variants`).
        peepholes: add peephole weights p_i, p_f (on c_{t-1}) and p_o (on c_t).
        forget_bias: initial value of the forget gate's bias; overrides
            ``unit_forget_bias`` (which is ``forget_bias=1``, after Jozefowicz
            et al. 2015).
        chrono_t_max: if set, chrono initialisation (Tallec & Ollivier 2018)
            of the forget and input biases for dependencies up to this length:
            ``b_f = log U[1, chrono_t_max - 1]`` and ``b_i = -b_f``
            (see :class:`keras_lstm_gates.ChronoInitializer`).
        chrono_seed: seed of the chrono draw (when not given, drawn from
            NumPy's global generator, which ``keras.utils.set_random_seed``
            seeds, and kept in the config).

    >>> import numpy as np, keras
    >>> cell = LSTMCell(4)
    >>> h, (h2, c) = cell(np.ones((2, 3)), [np.zeros((2, 4)), np.zeros((2, 4))])
    >>> tuple(h.shape), tuple(cell.forget_gate.kernel.shape)
    ((2, 4), (3, 4))
    >>> tuple(keras.layers.RNN(LSTMCell(4))(np.ones((2, 5, 3))).shape)
    (2, 4)
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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        gate_options=None,
        variant="vanilla",
        peepholes=False,
        forget_bias=None,
        chrono_t_max=None,
        chrono_seed=None,
        implementation=2,
        **kwargs,
    ):
        self.units = check_units(units)
        if isinstance(implementation, bool) or implementation not in (1, 2):
            raise ValueError(
                "Expected `implementation` to be 1 (one dropout mask per gate) or 2 "
                f"(one dropout mask shared by the gates), received implementation={implementation!r}."
            )
        super().__init__(**kwargs)
        self.spec = VariantSpec(variant, peepholes)
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        for arg, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"Expected `{arg}` in [0, 1], received {arg}={rate!r}.")
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        # As keras.layers.LSTMCell: recurrent dropout means one mask per gate.
        self.implementation = 1 if self.recurrent_dropout else int(implementation)
        if self.implementation == 1:
            self.dropout_mask_count = 4  # read by DropoutRNNCell, in Keras's gate order
        self.seed = seed
        self.seed_generator = keras_random.SeedGenerator(seed=seed)
        self.gate_options = check_gate_options(gate_options, self.spec)
        self._check_bias_options(forget_bias, chrono_t_max)
        self.forget_bias = None if forget_bias is None else float(forget_bias)
        self.chrono_t_max = None if chrono_t_max is None else float(chrono_t_max)
        if chrono_seed is not None and (
            isinstance(chrono_seed, bool) or not isinstance(chrono_seed, (int, np.integer))
        ):
            raise ValueError(
                f"Expected `chrono_seed` to be an integer or None, received chrono_seed={chrono_seed!r}."
            )
        if chrono_seed is not None and chrono_t_max is None:
            raise ValueError(
                "chrono_seed seeds the chrono initialisation, which is off: pass "
                f"chrono_t_max as well (received chrono_seed={chrono_seed!r}, chrono_t_max=None)."
            )
        self.chrono_seed = None if chrono_seed is None else int(chrono_seed)
        if chrono_t_max is not None and self.chrono_seed is None:
            # NumPy's global generator: keras.utils.set_random_seed seeds it, and
            # keras.distribution.initialize seeds it alike in every process, so
            # that every host of a multi-host run draws the same chrono biases.
            self.chrono_seed = int(np.random.randint(2**31 - 1))

        self.gates = {}
        # One draw per fused weight, sliced by the four parts (see FusedSlice).
        draws = {kind: {} for kind in ("kernel", "recurrent", "bias", "bias_i", "bias_co")}
        for name in GATE_NAMES:
            gate = None
            if name in self.spec.present_gates:
                gate = _GATE_CLASSES[name](
                    self.units, trainable=self.trainable, **self._gate_kwargs(name, draws)
                )
            self.gates[name] = gate
        self.input_gate = self.gates["input_gate"]
        self.forget_gate = self.gates["forget_gate"]
        self.candidate = self.gates["candidate"]
        self.output_gate = self.gates["output_gate"]

        n_states = 3 if self.spec.full_gate_recurrence else 2
        self.state_size = [self.units] * 2 + ([3 * self.units] if n_states == 3 else [])
        self.output_size = self.units

    def _check_bias_options(self, forget_bias, chrono_t_max):
        if (forget_bias is not None or chrono_t_max is not None) and not self.spec.has_forget_gate:
            raise ValueError(
                f"variant {self.spec.name!r} has no forget gate weights, so "
                "forget_bias and chrono_t_max do not apply."
            )
        if forget_bias is not None and chrono_t_max is not None:
            raise ValueError("Pass either forget_bias or chrono_t_max, not both.")
        if chrono_t_max is not None and not self.spec.has_input_gate:
            raise ValueError(
                "chrono_t_max sets b_i = -b_f and needs an input gate; "
                f"variant {self.spec.name!r} has none."
            )
        if chrono_t_max is not None and not self.use_bias:
            raise ValueError("chrono_t_max initialises biases; it needs use_bias=True.")
        if forget_bias is not None:
            if isinstance(forget_bias, bool) or not isinstance(
                forget_bias, (int, float, np.integer, np.floating)
            ):
                raise ValueError(
                    "Expected `forget_bias` to be a real number (the initial "
                    f"forget-gate bias), received forget_bias={forget_bias!r}."
                )
            if not np.isfinite(forget_bias):
                raise ValueError(
                    f"Expected a finite `forget_bias`, received forget_bias={forget_bias!r}."
                )
            if not self.use_bias:
                raise ValueError("forget_bias initialises a bias; it needs use_bias=True.")
        if chrono_t_max is not None:
            ChronoInitializer(chrono_t_max)  # raises on a bad t_max
        # Two sources for one initial value would silently drop one of them.
        claimed = {"forget_gate": forget_bias is not None or chrono_t_max is not None}
        claimed["input_gate"] = chrono_t_max is not None
        for gate, taken in claimed.items():
            if taken and "bias_initializer" in self.gate_options.get(gate, {}):
                option = "forget_bias" if forget_bias is not None else "chrono_t_max"
                raise ValueError(
                    f"{option} sets the initial {gate} bias, and "
                    f"gate_options[{gate!r}]['bias_initializer'] sets it too; pass one of them."
                )

    def _forget_bias_set_apart(self):
        """Whether the forget gate's initial bias comes from its own source
        (``unit_forget_bias``, ``forget_bias`` or chrono) rather than from the
        cell's ``bias_initializer``."""
        if not self.spec.has_forget_gate:
            return False
        return (
            self.unit_forget_bias or self.forget_bias is not None or self.chrono_t_max is not None
        )

    def _bias_initializer(self, name, draws):
        """The cell-level bias initializer of part ``name``, drawn as
        ``keras.layers.LSTMCell`` draws its fused bias.

        Keras draws ``bias_initializer((4H,))``; with ``unit_forget_bias`` it
        draws ``bias_initializer((H,))`` for the input gate, sets the forget
        block to ones, and draws ``bias_initializer((2H,))`` for the
        candidate and output blocks.  Each part takes its block of the same
        draws, so a seeded initializer gives the same biases as Keras.
        """
        if not self._forget_bias_set_apart():
            return FusedSlice(self.bias_initializer, _KERAS_INDEX[name], draws=draws["bias"])
        if name == "input_gate":
            return FusedSlice(self.bias_initializer, 0, count=1, draws=draws["bias_i"])
        index = {"candidate": 0, "output_gate": 1}.get(name)
        if index is None:  # the forget gate: replaced by _gate_kwargs
            return None
        return FusedSlice(self.bias_initializer, index, count=2, draws=draws["bias_co"])

    def _gate_kwargs(self, name, draws):
        index = _KERAS_INDEX[name]
        kwargs = {
            "use_bias": self.use_bias,
            "kernel_initializer": FusedSlice(self.kernel_initializer, index, draws=draws["kernel"]),
            "recurrent_initializer": FusedSlice(
                self.recurrent_initializer, index, draws=draws["recurrent"]
            ),
            "bias_initializer": self._bias_initializer(name, draws),
            # The layer-level regularizers and constraints act on the fused
            # matrices (fused_options), not on the gate variables.
            "dtype": self.dtype_policy,
        }
        if name == "candidate":
            kwargs["activation"] = "linear" if self.spec.candidate_linear else self.activation
        else:
            kwargs["activation"] = self.recurrent_activation
            kwargs["peephole"] = self.spec.peephole_reads(name)
            if self.spec.full_gate_recurrence:
                kwargs["recurrent_gate_dim"] = 3 * self.units
        if name == "forget_gate":
            if self.chrono_t_max is not None:
                kwargs["bias_initializer"] = ChronoInitializer(
                    self.chrono_t_max, seed=self.chrono_seed
                )
            elif self.forget_bias is not None:
                kwargs["bias_initializer"] = initializers.Constant(self.forget_bias)
            elif self.unit_forget_bias:
                kwargs["bias_initializer"] = "ones"
        if name == "input_gate" and self.chrono_t_max is not None:
            kwargs["bias_initializer"] = ChronoInitializer(
                self.chrono_t_max, negate=True, seed=self.chrono_seed
            )
        kwargs.update(self.gate_options.get(name, {}))
        if (
            name == "candidate"
            and self.spec.candidate_linear
            and "activation" in self.gate_options.get(name, {})
        ):
            raise ValueError("variant 'NIAF' fixes the candidate activation to linear.")
        return kwargs

    @property
    def present_gates(self):
        """The parts this cell has, as ``{name: sublayer}``."""
        return {n: g for n, g in self.gates.items() if g is not None}

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "LSTMCell: the feature axis of the input must be known; "
                f"received input shape {input_shape}."
            )
        for gate in self.present_gates.values():
            gate.build((None, input_dim))
        for gate in self.present_gates.values():  # let go of the shared draws
            for init in (gate.kernel_initializer, gate.recurrent_initializer):
                if isinstance(init, FusedSlice) and init.draws:
                    init.draws.clear()
            if isinstance(gate.bias_initializer, FusedSlice) and gate.bias_initializer.draws:
                gate.bias_initializer.draws.clear()
        fused_options.attach_fused_constraints(self)
        self.input_dim = int(input_dim)
        self.built = True

    def save_own_variables(self, store):
        super().save_own_variables(store)
        # Which gates and weights the saved gate groups hold (checked on load).
        store[saved_parts.RECORD_KEY] = saved_parts.encode(saved_parts.record_of(self))

    def load_own_variables(self, store):
        """Check the saved record of parts against this cell (an error, never
        a silent drop, when a saved weight would find no place), or load
        ``keras.layers.LSTM``'s fused arrays into the gates; see
        :mod:`keras_lstm_gates.saved_parts`."""
        saved_parts.load_cell_variables(self, store)

    def set_weights(self, weights):
        """klg's per-gate list, or ``keras.layers.LSTMCell``'s fused arrays."""
        from .interop import set_weights_any_layout

        set_weights_any_layout(self, weights)

    def _get_own_losses(self):
        # Keras collects Layer.losses from each sublayer's own losses and the
        # regularizers of the model's variables; the layer-level regularizers
        # act on the fused matrices, which no single variable holds.
        return super()._get_own_losses() + fused_options.fused_regularization_losses(self)

    def _check_step_input(self, inputs):
        shape = inputs.shape
        if len(shape) != 2:
            raise ValueError(
                f"LSTMCell expects a step input of shape (batch, features), "
                f"received shape {tuple(shape)}."
            )
        if shape[-1] is not None and self.built and shape[-1] != self.input_dim:
            raise ValueError(
                f"LSTMCell was built for {self.input_dim} input features, "
                f"received {shape[-1]} (input shape {tuple(shape)})."
            )

    def call(self, inputs, states, training=False):
        """One fused step: all gates from one matmul over the concatenated
        weights."""
        self._check_step_input(inputs)
        h_prev, c_prev = states[0], states[1]
        dp = rdp = None
        if training and 0.0 < self.dropout < 1.0:
            dp = self.get_dropout_mask(inputs)
        if training and 0.0 < self.recurrent_dropout < 1.0:
            rdp = self.get_recurrent_dropout_mask(h_prev)
        plan = recurrence.StepPlan(self)
        kernel, recurrent_kernel, bias = plan.weights()
        z = recurrence.project(plan, inputs, kernel, dp) + recurrence.project(
            plan, h_prev, recurrent_kernel, rdp, recurrent=True
        )
        if bias is not None:
            z = z + bias
        grk = plan.gate_recurrent_kernel() if self.spec.full_gate_recurrence else None
        h, c, gates = recurrence.step(plan, z, c_prev, states[2] if grk is not None else None, grk)
        new_states = [h, c]
        if grk is not None:
            new_states.append(recurrence.packed_gate_state(gates))
        return h, new_states

    def call_per_gate(self, inputs, states):
        """One step computed part by part, each sublayer on its own.

        Slower than :meth:`call`; it exists to show (and test) that the fused
        step is the same computation as the four sublayers.  Returns
        ``(h, [h, c, ...], gates)``.
        """
        # Not called through Layer.__call__, so numpy arguments arrive as they
        # are; torch cannot multiply its tensors with numpy arrays.
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        states = [ops.convert_to_tensor(s, dtype=self.compute_dtype) for s in states]
        h_prev, c_prev = states[0], states[1]
        previous = states[2] if self.spec.full_gate_recurrence else None
        values = {}
        for name in ("input_gate", "forget_gate"):
            gate = self.gates[name]
            if gate is not None:
                values[name] = gate(inputs, h_prev, c_prev, previous)
        g = self.candidate(inputs, h_prev)
        i = values.get("input_gate", ops.ones_like(g))
        if self.spec.coupled:
            f = 1.0 - i
        else:
            f = values.get("forget_gate", ops.ones_like(g))
        c = f * c_prev + i * g
        o = ops.ones_like(g)
        if self.output_gate is not None:
            o = self.output_gate(inputs, h_prev, c, previous)
        out_act = activations.linear if self.spec.output_linear else self.activation
        h = o * out_act(c)
        gates = {"input_gate": i, "forget_gate": f, "candidate": g, "output_gate": o}
        new_states = [h, c]
        if previous is not None:
            new_states.append(recurrence.packed_gate_state(gates))
        return h, new_states, gates

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, d), dtype=self.compute_dtype) for d in self.state_size]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "gate_options": serialize_gate_options(self.gate_options),
            "variant": self.spec.name,
            "peepholes": self.spec.peepholes,
            "forget_bias": self.forget_bias,
            "chrono_t_max": self.chrono_t_max,
            "chrono_seed": self.chrono_seed,
            "implementation": self.implementation,
        }
        return {**super().get_config(), **config}


_SERIALIZERS = {
    "activation": activations.serialize,
    "initializer": initializers.serialize,
    "regularizer": regularizers.serialize,
    "constraint": constraints.serialize,
}
_GETTERS = {
    "activation": activations.get,
    "initializer": initializers.get,
    "regularizer": regularizers.get,
    "constraint": constraints.get,
}


def _option_kind(option):
    return option.rsplit("_", 1)[-1]


def serialize_gate_options(gate_options):
    return {
        gate: {
            k: _SERIALIZERS[_option_kind(k)](_GETTERS[_option_kind(k)](v)) for k, v in opts.items()
        }
        for gate, opts in gate_options.items()
    }
