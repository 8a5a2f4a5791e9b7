"""The fused LSTM ops of TensorFlow Lite (``UNIDIRECTIONAL_SEQUENCE_LSTM``)
and ONNX (``LSTM``): which cells they compute, and the cell's weights in
them.

Both ops compute the vanilla LSTM, with or without peepholes (Gers et al.:
``p_i``, ``p_f`` read ``c_(t-1)``, ``p_o`` reads ``c_t``), with sigmoid
gates and tanh for the candidate and the output.  The coupled input-forget
variant (CIFG, ``f = 1 - i``) is that LSTM with the forget gate's weights
set to minus the input gate's, since ``1 - sigmoid(z) = sigmoid(-z)``:
:func:`op_weights` and :func:`op_peepholes` write it so.
"""

from keras import activations, backend, ops

from . import parts
from .parts import PARTS

# The variants the fused ops compute: the vanilla LSTM and, with the forget
# gate's weights negated, the coupled input-forget gate.
FUSED_VARIANTS = ("vanilla", "NP", "CIFG")
PEEPHOLE_GATES = ("input_gate", "forget_gate", "output_gate")


def cell_reason(cell):
    """Why the fused LSTM ops cannot compute ``cell``'s equations, or ``None``."""
    spec = cell.spec
    if spec.layer_norm:
        return (
            "the fused LSTM ops normalise otherwise than variant='LN' (not the cell state "
            "that the output gate shows)"
        )
    if spec.name not in FUSED_VARIANTS:
        return f"the fused LSTM ops have no form of variant={spec.name!r}"
    for name in spec.present_gates:
        gate = cell.gates[name]
        expected = activations.tanh if name == "candidate" else activations.sigmoid
        if gate.activation is not expected:
            return f"the fused LSTM ops' {name} activation is {expected.__name__}"
    if cell.output_activation is not activations.tanh:
        return "the fused LSTM ops' output activation is tanh"
    if not cell.use_bias:
        return "the fused LSTM ops' interface needs a bias"
    return None


def call_reason(layer, mask, return_gates, dtype):
    """Why a call of ``layer`` cannot be one fused LSTM op, or ``None``."""
    reason = cell_reason(layer.cell)
    if reason is not None:
        return reason
    if mask is not None:
        return "the fused LSTM ops take no mask"
    if return_gates:
        return "return_gates needs the per-step gate values"
    if backend.standardize_dtype(dtype) != "float32":
        return f"the fused LSTM ops' interface is float32, this call is {dtype}"
    return None


def op_parts(cell):
    """``{part: (kernel, recurrent_kernel, bias)}`` of the fused ops for
    ``cell``, in :data:`~keras_lstm_gates.parts.PARTS` order, read from the
    parts' own variables.  CIFG's forget gate ``1 - i`` is
    ``sigmoid(-z_i)``: its weights are minus the input gate's."""
    weights = {}
    for part in PARTS:
        gate, sign = _source(cell, part)
        weights[part] = tuple(
            sign * ops.convert_to_tensor(getattr(gate, name))
            for name in ("kernel", "recurrent_kernel", "projection_bias")
        )
    return weights


def op_weights(cell):
    """The fused ops' ``(kernel, recurrent_kernel, bias)`` for ``cell``:
    (D, 4H), (H, 4H), (4H,), :func:`op_parts` side by side."""
    per_part = list(op_parts(cell).values())
    return tuple(parts.join([p[k] for p in per_part]) for k in range(3))


def _source(cell, part):
    """The gate whose weights give ``part``'s in the op, and their sign."""
    if cell.spec.coupled and part == "forget_gate":
        return cell.gates["input_gate"], -1.0
    return cell.gates[part], 1.0


def op_peepholes(cell):
    """``{gate: p}`` for the ops' peephole inputs, in
    :data:`PEEPHOLE_GATES` order, or ``{}`` without peepholes; CIFG's
    forget gate reads ``c_(t-1)`` through ``-p_i``."""
    if not cell.spec.peepholes:
        return {}
    values = {}
    for part in PEEPHOLE_GATES:
        gate, sign = _source(cell, part)
        values[part] = sign * ops.convert_to_tensor(gate.peephole)
    return values
