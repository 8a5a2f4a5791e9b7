"""Layer-level regularizers and constraints, applied to the fused matrices.

``keras.layers.LSTM`` stores one ``kernel`` (input_dim, 4 * units), one
``recurrent_kernel`` (units, 4 * units) and one ``bias`` (4 * units,), and its
``kernel_regularizer=``, ``kernel_constraint=``, ... act on those whole
matrices.  klg stores the same numbers in the four gates, so a regularizer or
constraint that does not split by block (``OrthogonalRegularizer``,
``UnitNorm(axis=1)``, ``MaxNorm(axis=1)``) would give other numbers if it
acted on each gate's block on its own.  This module makes the layer-level
arguments act on the fused matrix, as Keras does:

* a layer-level **regularizer** gives one loss per weight (kernel,
  recurrent kernel, bias), computed on the gates' blocks concatenated in
  Keras's order i, f, c, o (:func:`fused_regularization_losses`, added to
  the cell's losses); the gate variables themselves carry no regularizer;
* a layer-level **constraint** is computed on the fused matrix of the
  current (updated, not yet constrained) values by the first trainable gate
  whose constraint the optimizer calls; it writes the other gates' blocks
  and returns its own.  The other gates' constraints return their values
  unchanged (:class:`FusedBlockConstraint`).

Per-gate regularizers and constraints given through ``gate_options`` stay on
their gate's variables and act on that block alone.  A gate with its own
option for a weight (even ``None``) leaves the layer-level fused matrix of
that weight: the layer-level one acts on the fused matrix of the other gates.
A variant without some gates fuses the gates it has, in Keras's order.  The
``gate_recurrent_kernel`` of the full-gate-recurrence variant (FGR, no Keras
counterpart) is fused the same way, (3 * units, 3 * units) in order i, f, o,
under the recurrent regularizer and constraint.
"""

from keras import ops
from keras.constraints import Constraint

from . import parts
from .compat import current_value
from .parts import PARTS

# Each weight of a gate, and the stem of the layer-level options acting on it.
WEIGHT_OPTIONS = {
    "kernel": "kernel",
    "recurrent_kernel": "recurrent",
    "bias": "bias",
    "gate_recurrent_kernel": "recurrent",
}


def option_name(weight, kind):
    """``option_name("recurrent_kernel", "constraint") == "recurrent_constraint"``."""
    return f"{WEIGHT_OPTIONS[weight]}_{kind}"


def fused_gates(cell, weight, kind):
    """The names of the gates whose ``weight`` the layer-level ``kind``
    (``"regularizer"`` or ``"constraint"``) covers, in Keras's order: the
    present gates that have that weight and no option of their own for it."""
    option = option_name(weight, kind)
    names = []
    for name in PARTS:
        gate = cell.gates[name]
        if gate is None or getattr(gate, weight, None) is None:
            continue
        if option in cell.gate_options.get(name, {}):
            continue
        names.append(name)
    return names


def is_trainable(cell, name, weight):
    """Whether the optimizer updates this gate's ``weight`` (Keras's rule: the
    variable and every layer holding it are trainable)."""
    gate = cell.gates[name]
    return bool(cell.trainable and gate.trainable and getattr(gate, weight).trainable)


def _concat(values):
    return parts.join([ops.convert_to_tensor(v) for v in values])


def fused_regularization_losses(cell):
    """One loss per layer-level regularizer, on the fused matrix of the gates
    it covers; none when no gate of that matrix is trainable (as Keras counts
    only trainable weights)."""
    if not cell.built:
        return []
    losses = []
    for weight in WEIGHT_OPTIONS:
        regularizer = getattr(cell, option_name(weight, "regularizer"))
        if regularizer is None:
            continue
        names = fused_gates(cell, weight, "regularizer")
        if not any(is_trainable(cell, n, weight) for n in names):
            continue
        values = [current_value(getattr(cell.gates[n], weight)) for n in names]
        losses.append(regularizer(_concat(values)))
    return losses


class FusedBlockConstraint(Constraint):
    """One gate's share of a layer-level constraint on a fused matrix.

    Keras's optimizer assigns ``variable.constraint(variable)`` to each
    variable after all gradient updates, one variable after another.  The
    first trainable gate of the fused matrix (the *leader*) computes the
    constraint on the concatenation of every covered gate's current value,
    assigns the other trainable gates their blocks and returns its own; the
    others return their value as it is (already constrained).  The result
    does not depend on the order in which the optimizer visits the gates and
    keeps no state between calls, so it is the same under ``tf.function``,
    XLA, JAX's stateless apply and torch.
    """

    def __init__(self, cell, weight, gate_name):
        self.cell = cell
        self.weight = weight
        self.gate_name = gate_name

    @property
    def constraint(self):
        return getattr(self.cell, option_name(self.weight, "constraint"))

    def __call__(self, w):
        cell, weight = self.cell, self.weight
        names = fused_gates(cell, weight, "constraint")
        trainable = [n for n in names if is_trainable(cell, n, weight)]
        leader = trainable[0] if trainable else names[0]
        if self.gate_name != leader:
            return w
        values = [
            w if n == self.gate_name else current_value(getattr(cell.gates[n], weight))
            for n in names
        ]
        fused = self.constraint(_concat(values))
        units = cell.units
        own = None
        for k, name in enumerate(names):
            block = fused[..., k * units : (k + 1) * units]
            if name == self.gate_name:
                own = block
            elif name in trainable:
                getattr(cell.gates[name], weight).assign(block)
        return own

    def get_config(self):
        return {"weight": self.weight, "gate": self.gate_name}


def attach_fused_constraints(cell):
    """Give every covered gate variable its :class:`FusedBlockConstraint`
    (called by ``LSTMCell.build`` once the gates exist)."""
    for weight in WEIGHT_OPTIONS:
        if getattr(cell, option_name(weight, "constraint")) is None:
            continue
        for name in fused_gates(cell, weight, "constraint"):
            variable = getattr(cell.gates[name], weight)
            variable.constraint = FusedBlockConstraint(cell, weight, name)
