"""``LSTMCell``: one LSTM step whose four parts are sublayers.

:meth:`LSTMCell.step` is the cell's equations, written once: every path
(the per-part call, Keras's cell API, the sequence loops of every backend,
exported graphs, tracing) computes the parts' pre-activations its own way
(one matmul over the joined weights, or one per part) and hands them to it.
:meth:`LSTMCell.step_derivatives` and :meth:`LSTMCell.step_backward`, next
to it, are its derivative, written by hand for the cells whose parts read
only their pre-activations through a sigmoid or tanh (the LSTM of Keras and
PyTorch); the loops that differentiate by hand use them, the others
differentiate :meth:`~LSTMCell.step` with the backend's autodiff.
"""

import numpy as np
from keras import activations, initializers, ops
from keras import random as keras_random
from keras.layers import Layer
from keras.saving import register_keras_serializable

from . import compat, fused_options, parts, saved_parts
from .gates import PACKAGE, PART_CLASSES, PART_OPTIONS, derivative_from_value, native
from .initializers import ChronoInitializer, FusedSlice
from .options import Option, assign, config_of, takes
from .parts import GATES, PARTS
from .variants import VariantSpec


def _check_gate_options(gate_options, owner):
    gate_options = dict(gate_options or {})
    known = [o.name for o in PART_OPTIONS]
    for gate, options in gate_options.items():
        parts.check_part(gate, "gate_options")
        if not isinstance(options, dict):
            raise ValueError(
                f"gate_options[{gate!r}]: expected a dict of options, received {options!r}."
            )
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(
                f"gate_options[{gate!r}]: unknown option(s) {unknown}; expected "
                f"some of {tuple(known)} (use_bias is set for all gates by the cell)."
            )
    return gate_options


def _serialize_gate_options(gate_options):
    by_name = {o.name: o for o in PART_OPTIONS}
    return {
        gate: {k: by_name[k].config_value(by_name[k].resolve(v, gate)) for k, v in opts.items()}
        for gate, opts in gate_options.items()
    }


def _check_chrono_t_max(t_max, owner):
    if t_max is None:
        return None
    return ChronoInitializer(t_max).t_max  # raises, naming what it expects


def _check_implementation(implementation, owner):
    if isinstance(implementation, bool) or implementation not in (1, 2):
        raise ValueError(
            "Expected `implementation` to be 1 (one dropout mask per gate) or 2 "
            "(one dropout mask shared by the gates), received "
            f"implementation={implementation!r}."
        )
    return int(implementation)


def _check_variant(variant, owner):
    return VariantSpec(variant).name  # raises, naming the variants


def _check_chrono_seed(seed, owner):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(
            f"Expected `chrono_seed` to be an integer or None, received chrono_seed={seed!r}."
        )
    return None if seed is None else int(seed)


#: The cell's arguments, in the order of its signature.
CELL_OPTIONS = (
    Option("units", None, "size of h and c", kind="units"),
    Option("activation", "tanh", "candidate and cell-output activation", kind="activation"),
    Option("recurrent_activation", "sigmoid", "activation of the three gates", kind="activation"),
    Option("use_bias", True, "whether the parts have biases", kind="bool"),
    *(o for o in PART_OPTIONS if o.name.endswith("initializer")),
    Option("unit_forget_bias", True, "forget-gate bias starts at 1", kind="bool"),
    *(o for o in PART_OPTIONS if o.name.endswith("regularizer")),
    *(o for o in PART_OPTIONS if o.name.endswith("constraint")),
    Option("dropout", 0.0, "fraction of the inputs dropped", kind="fraction"),
    Option("recurrent_dropout", 0.0, "fraction of h_(t-1) dropped", kind="fraction"),
    Option("seed", None, "seed of the dropout masks"),
    Option(
        "gate_options",
        None,
        "per-part options",
        check=_check_gate_options,
        serialize=_serialize_gate_options,
    ),
    Option("variant", "vanilla", "Greff et al.'s variant", check=_check_variant),
    Option("peepholes", False, "peephole weights p_i, p_f, p_o", kind="bool"),
    Option("forget_bias", None, "initial forget-gate bias", kind="number"),
    Option(
        "chrono_t_max", None, "chrono initialisation up to this length", check=_check_chrono_t_max
    ),
    Option("chrono_seed", None, "seed of the chrono draw", check=_check_chrono_seed),
    Option("implementation", 2, "how the dropout masks are drawn", check=_check_implementation),
)


@register_keras_serializable(package=PACKAGE)
class LSTMCell(compat.ExtraLosses, Layer, compat.dropout_rnn_cell()):
    """One LSTM step, with the four parts as sublayers.

    Equations (``x_t`` the step input, ``h`` and ``c`` the two states; the
    d2l.ai notation of the site: ``W_xf`` is ``forget_gate.kernel``,
    ``W_hf`` its ``recurrent_kernel``)::

        i_t  = sigmoid(x_t W_xi + h_(t-1) W_hi + b_i)    # cell.input_gate
        f_t  = sigmoid(x_t W_xf + h_(t-1) W_hf + b_f)    # cell.forget_gate
        C~_t = tanh   (x_t W_xc + h_(t-1) W_hc + b_c)    # cell.candidate
        o_t  = sigmoid(x_t W_xo + h_(t-1) W_ho + b_o)    # cell.output_gate
        c_t  = f_t * c_(t-1) + i_t * C~_t                # LSTMCell.step
        h_t  = o_t * tanh(c_t)                           # LSTMCell.step

    Each part owns ``kernel`` (W_x), ``recurrent_kernel`` (W_h) and ``bias``
    (b).  The cell takes every argument of ``keras.layers.LSTMCell`` with the
    same defaults and meaning; the cell-level initializers apply to the four
    parts as they apply to the four blocks of Keras's fused weights, and the
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
        recurrent_dropout: fraction of ``h_(t-1)`` dropped, one mask per part
            and per sequence (Gal & Ghahramani 2016), as in Keras.
        seed: seed of the dropout masks.  The masks are drawn as
            ``keras.layers.LSTMCell`` draws them, so a layer seeded alike
            drops the same units.
        gate_options: per-part overrides, e.g.
            ``{"forget_gate": {"bias_initializer": "ones"}}``.  Keys are
            ``input_gate``, ``forget_gate``, ``candidate``, ``output_gate``;
            options are the initializer, regularizer and constraint arguments
            above and ``activation``.
        variant: one of :data:`keras_lstm_gates.variants.VARIANTS`: the
            variants of Greff et al. (2017) and the others listed in
            :mod:`keras_lstm_gates.variants`.
        peepholes: add peephole weights p_i, p_f (on c_(t-1)) and p_o (on c_t).
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
        implementation: ``1`` or ``2`` (default), as in Keras, where it
            selects how the dropout masks are drawn and applied, and nothing
            else: with ``1``, four independent input-dropout masks and four
            recurrent-dropout masks, one per part, each applied before that
            part's matmul; with ``2``, one input-dropout mask shared by the
            four parts.  As in Keras, ``recurrent_dropout > 0`` sets it to
            ``1``.  It does not change the numbers without dropout.

    >>> import numpy as np, keras
    >>> cell = LSTMCell(4)
    >>> h, (h2, c) = cell(np.ones((2, 3)), [np.zeros((2, 4)), np.zeros((2, 4))])
    >>> tuple(h.shape), tuple(cell.forget_gate.kernel.shape)
    ((2, 4), (3, 4))
    >>> tuple(keras.layers.RNN(LSTMCell(4))(np.ones((2, 5, 3))).shape)
    (2, 4)
    """

    @takes(CELL_OPTIONS)
    def __init__(self, given, **kwargs):
        super().__init__(**kwargs)
        assign(self, CELL_OPTIONS, given, self.name)
        self.spec = VariantSpec(self.variant, self.peepholes)
        for gate in self.gate_options:
            if gate not in self.spec.present_gates:
                raise ValueError(
                    f"gate_options: variant {self.spec.name!r} has no {gate}, so it cannot "
                    "take options."
                )
        # As keras.layers.LSTMCell: where Keras draws one mask per gate,
        # recurrent dropout means one mask per gate.
        per_part = compat.per_part_dropout_masks()
        if self.recurrent_dropout and per_part:
            self.implementation = 1
        if self.implementation == 1 and per_part:
            self.dropout_mask_count = len(PARTS)  # read by DropoutRNNCell, in PARTS order
        self.seed_generator = keras_random.SeedGenerator(seed=self.seed)
        self._check_bias_options()
        if self.chrono_t_max is not None and self.chrono_seed is None:
            # NumPy's global generator: keras.utils.set_random_seed seeds it, and
            # keras.distribution.initialize seeds it alike in every process, so
            # that every host of a multi-host run draws the same chrono biases.
            self.chrono_seed = int(np.random.randint(2**31 - 1))

        self.gates = {}
        # One draw per fused weight, sliced by the four parts (see FusedSlice).
        draws = {kind: {} for kind in ("kernel", "recurrent", "bias", "bias_i", "bias_co")}
        for name in PARTS:
            gate = None
            if name in self.spec.present_gates:
                gate = PART_CLASSES[name](
                    self.units, trainable=self.trainable, **self._part_arguments(name, draws)
                )
            self.gates[name] = gate
        self.input_gate = self.gates["input_gate"]
        self.forget_gate = self.gates["forget_gate"]
        self.candidate = self.gates["candidate"]
        self.output_gate = self.gates["output_gate"]
        self.output_activation = activations.linear if self.spec.output_linear else self.activation
        self._native_output_activation = native(self.output_activation)
        carried = self.spec.carried_gate_units
        self.state_size = [self.units] * 2 + ([carried * self.units] if carried else [])
        self.output_size = self.units

    def _check_bias_options(self):
        forget_bias, chrono_t_max = self.forget_bias, self.chrono_t_max
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
        if forget_bias is not None and not self.use_bias:
            raise ValueError("forget_bias initialises a bias; it needs use_bias=True.")
        if chrono_t_max is not None:
            ChronoInitializer(chrono_t_max)  # raises on a bad t_max
        if self.chrono_seed is not None and chrono_t_max is None:
            raise ValueError(
                "chrono_seed seeds the chrono initialisation, which is off: pass "
                f"chrono_t_max as well (received chrono_seed={self.chrono_seed!r}, "
                "chrono_t_max=None)."
            )
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
        if name == "forget_gate" and self.chrono_t_max is not None:
            return ChronoInitializer(self.chrono_t_max, seed=self.chrono_seed)
        if name == "input_gate" and self.chrono_t_max is not None:
            return ChronoInitializer(self.chrono_t_max, negate=True, seed=self.chrono_seed)
        if name == "forget_gate" and self.forget_bias is not None:
            return initializers.Constant(self.forget_bias)
        if not self._forget_bias_set_apart():
            return FusedSlice(self.bias_initializer, PARTS.index(name), draws=draws["bias"])
        if name == "forget_gate":
            return "ones"
        if name == "input_gate":
            return FusedSlice(self.bias_initializer, 0, count=1, draws=draws["bias_i"])
        index = {"candidate": 0, "output_gate": 1}[name]
        return FusedSlice(self.bias_initializer, index, count=2, draws=draws["bias_co"])

    def _part_arguments(self, name, draws):
        index = PARTS.index(name)
        own = self.gate_options.get(name, {})
        arguments = {
            "use_bias": self.use_bias,
            "kernel_initializer": FusedSlice(self.kernel_initializer, index, draws=draws["kernel"]),
            "recurrent_initializer": FusedSlice(
                self.recurrent_initializer, index, draws=draws["recurrent"]
            ),
            "bias_initializer": self._bias_initializer(name, draws),
            # The layer-level regularizers and constraints act on the fused
            # matrices (fused_options), not on the gate variables.
            "activation": self.activation if name == "candidate" else self.recurrent_activation,
            "dtype": self.dtype_policy,
        }
        arguments.update(self.spec.part_arguments(name, self.units, own))
        arguments.update(own)
        return arguments

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
            for init in (
                gate.kernel_initializer,
                gate.recurrent_initializer,
                gate.bias_initializer,
            ):
                if isinstance(init, FusedSlice) and init.draws:
                    init.draws.clear()
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

    def extra_losses(self):
        # The layer-level regularizers act on the fused matrices, which no
        # single variable holds.
        return fused_options.fused_regularization_losses(self)

    # -- the fused weights ---------------------------------------------------

    def part_weights(self, names=None):
        """Each present part's ``(kernel, recurrent_kernel, bias)``, as three
        lists in :data:`~keras_lstm_gates.parts.PARTS` order: the values of
        the parts' own variables (``bias`` is ``None`` when no part adds one
        with its matmuls, else zeros for a part that adds none).  A value is
        a tensor, or on TensorFlow the ``tf.Variable``, read where it is
        used."""
        gates = [self.gates[n] for n in (names or self.spec.present_gates)]
        # A variable's value (autocast and stateless scopes applied), as
        # ops.convert_to_tensor reads it, without its checks at every call.
        kernels = [g.kernel.value for g in gates]
        recurrent_kernels = [g.recurrent_kernel.value for g in gates]
        biases = None
        if any(g.projection_bias is not None for g in gates):
            biases = [
                g.projection_bias.value
                if g.projection_bias is not None
                else ops.zeros((self.units,), kernels[0].dtype)
                for g in gates
            ]
        return kernels, recurrent_kernels, biases

    def joined_weights(self, names=None):
        """The present parts' ``(kernel, recurrent_kernel, bias)`` side by
        side in :data:`~keras_lstm_gates.parts.PARTS` order (``bias`` is
        ``None`` when no part adds one with its matmuls): the weights of one
        matmul for every part, made at call time from the parts' own
        variables (:meth:`part_weights`), never stored."""
        kernels, recurrent_kernels, biases = self.part_weights(names)
        bias = None if biases is None else parts.join(biases)
        return parts.join(kernels), parts.join(recurrent_kernels), bias

    def project(self, x, joined, masks=None, recurrent=False):
        """``x`` times the joined ``kernel`` (or ``recurrent_kernel``) of
        :meth:`joined_weights`, with dropout ``masks`` applied to ``x``
        first: one mask shared by the parts, or (``implementation=1``) one
        per part, in :data:`~keras_lstm_gates.parts.PARTS` order, when each
        part multiplies its own masked copy of ``x``, as
        ``keras.layers.LSTMCell`` does."""
        if masks is None:
            return ops.matmul(x, joined)
        if not isinstance(masks, (list, tuple)):
            return ops.matmul(x * ops.cast(masks, x.dtype), joined)
        blocks = []
        for name in self.spec.present_gates:
            gate = self.gates[name]
            weight = gate.recurrent_kernel if recurrent else gate.kernel
            mask = ops.cast(masks[PARTS.index(name)], x.dtype)
            blocks.append(ops.matmul(x * mask, ops.cast(weight, x.dtype)))
        return parts.join(blocks)

    # -- the step ------------------------------------------------------------

    def step(self, z, c_prev, previous_gates=None):
        """One step of the cell from its parts' pre-activations.

        ``z`` maps each present part to ``x_t W_x + h_(t-1) W_h + b``
        (:meth:`~keras_lstm_gates.Gate.preactivation`), or holds them side by
        side (batch, parts * units).  Each gate turns its own into its value
        (:meth:`~keras_lstm_gates.Gate.activate`); a gate the variant removes
        is the constant 1 (CIFG's forget gate is ``1 - i``).  Then::

            c_t = f_t * c_(t-1) + i_t * C~_t
            h_t = o_t * tanh(c_t)

        ``previous_gates`` is the previous step's ``[i, f, o]`` (the full
        gate recurrence).  Returns ``(h, c, values)``, ``values`` mapping
        every part to its value (ones for a removed gate).
        """
        spec, gates = self.spec, self.gates
        if not isinstance(z, dict):
            z = parts.split(z, self.units, spec.present_gates)

        def gate(name, cell_state):
            part = gates[name]
            return None if part is None else part.activate(z[name], cell_state, previous_gates)

        i = gate("input_gate", c_prev)
        f = 1.0 - i if spec.coupled else gate("forget_gate", c_prev)
        g = gates["candidate"].activate(z["candidate"])
        written = g if i is None else i * g
        c = c_prev + written if f is None else f * c_prev + written
        o = gate("output_gate", c)
        h = self.hidden_state(o, c)
        values = {"input_gate": i, "forget_gate": f, "candidate": g, "output_gate": o}
        ones = None
        for name, value in values.items():
            if value is None:
                ones = ops.ones_like(c) if ones is None else ones
                values[name] = ones
        return h, c, values

    def hidden_state(self, o, c):
        """``h_t = o_t * tanh(c_t)``: the cell state as the output gate
        shows it, squashed by the output activation, times the output gate
        (``o`` is ``None`` without one)."""
        shown = c if self.output_gate is None else self.output_gate.state_shown(c)
        squashed = self._native_output_activation(shown)
        return squashed if o is None else o * squashed

    def carried_gates(self, values):
        """The gate values a step hands to the next one besides ``h`` and
        ``c`` (FGR's ``[i, f, o]``), or ``None``."""
        if not self.spec.carried_gate_units:
            return None
        return ops.concatenate([values[n] for n in GATES], -1)

    def plain_lstm_reason(self):
        """Why this cell is not the LSTM of ``keras.layers.LSTM`` and
        ``torch.nn.LSTM`` with their default activations (every gate, no
        weight beyond theirs, sigmoid gates, tanh candidate and output), or
        ``None`` when it is.  Only such a cell has a cuDNN or PyTorch
        counterpart and a hand-written derivative
        (:meth:`step_derivatives`)."""
        if not self.spec.is_vanilla:
            return f"variant={self.spec.name!r}, peepholes={self.spec.peepholes}"
        for name, gate in self.present_gates.items():
            expected = activations.tanh if name == "candidate" else activations.sigmoid
            if gate.activation is not expected:
                return f"the {name} activation must be {expected.__name__}"
            if not gate.reads_only_its_preactivation:
                return f"the {name} reads more than its pre-activation"
        if self.output_activation is not activations.tanh:
            return "the output activation must be tanh"
        return None

    def step_derivatives(self, values, c, c_prev):
        """The factors of :meth:`step_backward` at one step (or at every
        step at once: all of it is element-wise), from the part values and
        cell states the step computed; for a cell with no
        :meth:`plain_lstm_reason`.

        With ``s = tanh(c_t)``: ``dz_i = dc * C~ * i'``, ``dz_f = dc * c_(t-1)
        * f'``, ``dz_c = dc * i * C~'``, ``dz_o = dh * s * o'``, where ``dc``
        has taken ``dh * o * s'``, and ``dc_(t-1) = dc * f``; each ``a'`` is
        the part's own :meth:`~keras_lstm_gates.Gate.derivative`.
        """
        i, f, g, o = (values[n] for n in PARTS)
        squashed = self._native_output_activation(c)
        return {
            "input_gate": g * self.input_gate.derivative(i),
            "forget_gate": c_prev * self.forget_gate.derivative(f),
            "candidate": i * self.candidate.derivative(g),
            "output_gate": squashed * self.output_gate.derivative(o),
            "state": o * derivative_from_value(self.output_activation)(squashed),
            "carry": f,
        }

    @staticmethod
    def step_backward(dh, dc, factors):
        """Back through one step: from the cotangents ``dh``, ``dc`` of
        ``h_t``, ``c_t`` to ``{part: dz}`` and the cotangent of ``c_(t-1)``
        (that of ``h_(t-1)`` is ``sum dz W_h^T``, the caller's matmul)."""
        dc = dc + dh * factors["state"]
        dz = {name: dc * factors[name] for name in PARTS if name != "output_gate"}
        dz["output_gate"] = dh * factors["output_gate"]
        return {n: dz[n] for n in PARTS}, dc * factors["carry"]

    # -- Keras's cell API ------------------------------------------------------

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

    def _new_states(self, h, c, values):
        carried = self.carried_gates(values)
        return [h, c] + ([] if carried is None else [carried])

    def call(self, inputs, states, training=False):
        """One step, its parts' matmuls joined into one."""
        self._check_step_input(inputs)
        h_prev, c_prev = states[0], states[1]
        dp = rdp = None
        if training and 0.0 < self.dropout < 1.0:
            dp = self.get_dropout_mask(inputs)
        if training and 0.0 < self.recurrent_dropout < 1.0:
            rdp = self.get_recurrent_dropout_mask(h_prev)
        kernel, recurrent_kernel, bias = self.joined_weights()
        z = self.project(inputs, kernel, dp) + self.project(h_prev, recurrent_kernel, rdp, True)
        if bias is not None:
            z = z + bias
        previous = states[2] if self.spec.carried_gate_units else None
        h, c, values = self.step(z, c_prev, previous)
        return h, self._new_states(h, c, values)

    def call_per_gate(self, inputs, states):
        """One step computed part by part: each sublayer's own matmuls
        (:meth:`~keras_lstm_gates.Gate.preactivation`), then the same
        :meth:`step`.  Slower than :meth:`call`; it shows (and the tests
        check) that the joined matmul is the same computation.  Returns
        ``(h, [h, c, ...], values)``.
        """
        # Not called through Layer.__call__, so numpy arguments arrive as they
        # are; torch cannot multiply its tensors with numpy arrays.
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        states = [ops.convert_to_tensor(s, dtype=self.compute_dtype) for s in states]
        h_prev, c_prev = states[0], states[1]
        z = {n: g.preactivation(inputs, h_prev) for n, g in self.present_gates.items()}
        previous = states[2] if self.spec.carried_gate_units else None
        h, c, values = self.step(z, c_prev, previous)
        return h, self._new_states(h, c, values), values

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, d), dtype=self.compute_dtype) for d in self.state_size]

    def get_config(self):
        return {**super().get_config(), **config_of(self, CELL_OPTIONS)}
