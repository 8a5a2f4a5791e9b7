"""The PyTorch loop: a Python loop inside a ``torch.autograd.Function``.

There every op costs microseconds of dispatch, so the input projection is one
matmul before the loop, the step's results go into buffers allocated once,
the backward loop does only what depends on the recursion (the step's
derivative factors are computed for every step at once before it), and the
weight gradients are one matmul each after it.  With no gradient to come
(``torch.no_grad()``, ``predict``) the same forward loop runs outside the
Function and keeps only what it returns.  A gradient of the gradient
differentiates the forward loop run again in plain differentiable ops
instead of the hand-written backward.
"""

from .. import compat, parts
from ..parts import PARTS
from . import common

_TORCH = {}


def _forward_loop(cell, x, w, b, u, h0, c0, mask, keep, return_sequences=True):
    """The forward loop: ``(hs, h_last, c_last, cs, values)``, with the
    weights joined (``w``, ``b``, ``u``).

    With ``keep`` it stores every step's ``h``, ``c`` and part values (time
    major, the values side by side in PARTS order) for the backward pass;
    without it (inference) ``h`` is stored only with ``return_sequences``,
    and ``cs`` and ``values`` are ``None``.
    """
    import torch

    steps, batch, features = x.shape
    units = u.shape[0]
    # The input projection of every step: one matmul.
    xz = torch.addmm(b, x.reshape(steps * batch, features), w)
    xz = xz.view(steps, batch, len(PARTS) * units)
    hs = x.new_empty((steps, batch, units)) if keep or return_sequences else None
    cs = x.new_empty((steps, batch, units)) if keep else None
    values = x.new_empty((steps, batch, len(PARTS) * units)) if keep else None
    z = x.new_empty((batch, len(PARTS) * units))
    # Views made once, so that the loop runs no indexing.
    xz_t = xz.unbind(0)
    hs_t = hs.unbind(0) if hs is not None else None
    cs_t = cs.unbind(0) if cs is not None else None
    values_t = [list(parts.split(v, units).values()) for v in values.unbind(0)] if keep else None
    masks = mask.unbind(0) if mask is not None else None
    h_prev, c_prev = h0, c0
    for t in range(steps):
        torch.addmm(xz_t[t], h_prev, u, out=z)
        h, c, step_values = cell.step(z, c_prev)
        if masks is not None:
            m = masks[t]
            h = torch.where(m, h, h_prev)
            c = torch.where(m, c, c_prev)
        if hs_t is not None:
            h = hs_t[t].copy_(h)
        if keep:
            c = cs_t[t].copy_(c)
            for buffer, name in zip(values_t[t], PARTS):
                buffer.copy_(step_values[name])
        h_prev, c_prev = h, c
    return hs, h_prev, c_prev, cs, values


def _torch_function():
    if "fn" in _TORCH:
        return _TORCH["fn"]
    import torch

    class FusedSequence(torch.autograd.Function):
        """The plain LSTM over a sequence, forward and backward by hand."""

        @staticmethod
        def forward(ctx, cell, x, w, b, u, h0, c0, mask, return_gates):
            hs, _, c_last, cs, values = _forward_loop(cell, x, w, b, u, h0, c0, mask, keep=True)
            ctx.cell, ctx.return_gates = cell, return_gates
            ctx.save_for_backward(x, w, u, h0, c0, mask, hs, cs, values, b)
            if not return_gates:
                ctx.mark_non_differentiable(cs, values)
            return hs, c_last.clone(), cs, values

        @staticmethod
        def backward(ctx, dhs, dc_last, dcs, dvalues):
            if torch.is_grad_enabled():
                return _differentiable_backward(ctx, dhs, dc_last, dcs, dvalues)
            cell, return_gates = ctx.cell, ctx.return_gates
            saved = ctx.saved_tensors[:-1]
            dtype = saved[0].dtype
            # Half-precision runs keep their gradients in float32 in the loop.
            work = torch.promote_types(dtype, torch.float32)
            x, w, u, h0, c0, mask, hs, cs, values = [
                v if v is None or v.dtype == torch.bool else v.to(work) for v in saved
            ]
            steps, batch, features = x.shape
            units = u.shape[0]
            by_part = parts.split(values, units)
            c_prev = torch.cat([c0[None], cs[:-1]], 0)
            # The factors of every step at once: none depends on the recursion.
            factors = cell.step_derivatives(by_part, cs, c_prev)
            factors_t = [
                dict(zip(factors, f)) for f in zip(*(v.unbind(0) for v in factors.values()))
            ]
            dhs = dhs.to(work).unbind(0)
            extra_t = [[] for _ in range(steps)]
            if return_gates:
                derivatives = common.value_derivatives(cell, list(by_part.values()))
                recorded = parts.split(dvalues.to(work), units)
                recorded = [r * d for r, d in zip(recorded.values(), derivatives)]
                for t, (dc_t, *dv_t) in enumerate(zip(dcs.to(work), *recorded)):
                    extra_t[t] += [dc_t, dv_t]
            if mask is not None:
                for t, m in enumerate(mask.unbind(0)):
                    extra_t[t].append(m)
            dz = torch.empty_like(values)
            dz_t = dz.unbind(0)
            u_t = u.t()
            carry = (torch.zeros_like(h0), dc_last.to(work))
            for t in range(steps - 1, -1, -1):
                target = dz_t[t]

                def recurrent(dz_parts, target=target):
                    # Step t's dz goes into its buffer, once, on its way to
                    # the matmul.
                    return torch.mm(torch.cat(dz_parts, 1, out=target), u_t)

                step = (dhs[t], factors_t[t], extra_t[t])
                _, dh_prev, dc_prev = common.backward_step(
                    cell, carry, step, recurrent, return_gates, mask is not None, torch.where
                )
                carry = (dh_prev, dc_prev)
            flat_dz = dz.view(steps * batch, len(PARTS) * units)
            h_prev = torch.cat([h0[None], hs[:-1]], 0).view(steps * batch, units)
            need = ctx.needs_input_grad
            dx = flat_dz.mm(w.t()).view(steps, batch, features) if need[1] else None
            dw = x.reshape(steps * batch, features).t().mm(flat_dz) if need[2] else None
            db = flat_dz.sum(0) if need[3] else None
            du = h_prev.t().mm(flat_dz)
            grads = [None if g is None else g.to(dtype) for g in (dx, dw, db, du, *carry)]
            return (None, *grads, None, None)

    _TORCH["fn"] = FusedSequence
    return FusedSequence


def _differentiable_backward(ctx, dhs, dc_last, dcs, dvalues):
    """The backward pass as a graph of its own, for a gradient of the
    gradient (``create_graph=True``, as a gradient penalty takes it).

    The hand-written backward reads what the forward stored, which no graph
    connects to the weights, and writes into buffers: differentiated again it
    would be wrong or fail.  This one runs the forward loop again in plain
    differentiable ops and differentiates it, slower but exact to any order.
    """
    import torch

    x, w, u, h0, c0, mask, *_, b = ctx.saved_tensors
    inputs = [x, w, b, u, h0, c0]
    need = ctx.needs_input_grad[1:7]
    wanted = [k for k, v in enumerate(inputs) if need[k] and v.requires_grad]
    grads = [None] * len(inputs)
    if wanted:
        out = plain_sequence(ctx.cell, x, w, b, u, h0, c0, mask, ctx.return_gates)
        cotangents = [dhs, dc_last, dcs, dvalues][: len(out)]
        found = torch.autograd.grad(
            out, [inputs[k] for k in wanted], cotangents, create_graph=True, allow_unused=True
        )
        for k, g in zip(wanted, found):
            grads[k] = g
    return (None, *grads, None, None)


def warn_if_one_step(steps):
    """Warn when an exporter traces a one-step sequence.

    The exported loop is unrolled over the traced length; Keras traces a
    ``None`` sequence length as 1, and that graph computes one step whatever
    its input.  keras.layers.LSTM exports the same way, silently.
    """
    if int(steps) == 1:
        import warnings

        warnings.warn(
            "klg.LSTM is being exported on the PyTorch backend with a sequence "
            "length of 1: the exported graph will run exactly 1 step whatever its "
            "input. Declare the length in keras.Input((timesteps, features)) or "
            "in the export's input_signature.",
            stacklevel=2,
        )


def plain_sequence(cell, x, w, b, u, h0, c0, mask, return_gates):
    """The forward loop in plain differentiable ops, for exporters and for
    a gradient of the gradient: ``(hs, c_last)``, and with ``return_gates``
    also ``cs`` and the part values side by side.

    An exporter records the ops it sees; the ``autograd.Function`` writes
    into pre-allocated buffers and reads shapes as Python numbers, which
    the ONNX exporter refuses (``aten::size``).  The loop is unrolled over the
    traced sequence length, as keras.layers.LSTM's is on this backend.
    """
    import torch

    xz = torch.matmul(x, w) + b
    h, c = h0, c0
    hs, cs, values = [], [], []
    for t in range(x.shape[0]):
        h_new, c_new, step_values = cell.step(xz[t] + torch.matmul(h, u), c)
        if mask is not None:
            h_new = torch.where(mask[t], h_new, h)
            c_new = torch.where(mask[t], c_new, c)
        h, c = h_new, c_new
        hs.append(h)
        if return_gates:
            cs.append(c)
            values.append(torch.cat([step_values[n] for n in PARTS], -1))
    if not return_gates:
        return torch.stack(hs), c
    return torch.stack(hs), c, torch.stack(cs), torch.stack(values)


def _differentiated(*tensors):
    """Whether autograd records a graph through any of ``tensors``."""
    import torch

    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _callers():
    """The training loop (the autograd Function) and the inference loop, out
    of torch.compile's reach: Keras's ``jit_compile=True`` on torch would trace
    the Python loop step by step, for minutes; the loops run as they are."""
    if not _TORCH.get("callers"):
        import torch

        function = _torch_function()
        _TORCH["callers"] = {
            "apply": torch.compiler.disable(function.apply),
            "infer": torch.compiler.disable(_forward_loop),
            # Dynamo cannot trace PyTorch's oneDNN LSTM op (mkldnn_rnn_layer).
            "native": torch.compiler.disable(_native_sequence),
        }
    return _TORCH["callers"]


def fused_sequence(cell, x, ws, bs, us, h0, c0, mask, return_gates, return_sequences):
    import torch

    # One matmul per step for every part: the parts' weights are joined
    # (autograd splits the gradient back into them).
    w, b, u = (torch.cat(list(p), dim=-1) for p in (ws, bs, us))
    if compat.torch_exporting():
        warn_if_one_step(x.shape[0])
        out = plain_sequence(cell, x, w, b, u, h0, c0, mask, return_gates)
    elif not return_gates and not _differentiated(x, w, b, u, h0, c0):
        # No gradient will be asked for: a loop that keeps only the output.
        hs, h_last, c_last, _, _ = _callers()["infer"](
            cell, x, w, b, u, h0, c0, mask, keep=False, return_sequences=return_sequences
        )
        return (hs.transpose(0, 1) if return_sequences else h_last.clone()), c_last.clone()
    else:
        out = _callers()["apply"](cell, x, w, b, u, h0, c0, mask, return_gates)
    hs = out[0].transpose(0, 1) if return_sequences else out[0][-1]
    if not return_gates:
        return hs, out[1]
    _, c_last, cs, values = out
    return hs, c_last, cs, list(values.split(int(u.shape[0]), dim=-1))


def native_available(x):
    """Whether PyTorch's own LSTM kernel runs ``x`` fast: on CUDA (cuDNN), or
    a float32 or bfloat16 CPU tensor with oneDNN."""
    import torch

    if x.is_cuda:
        return True
    return compat.torch_onednn_available() and x.dtype in (torch.float32, torch.bfloat16)


def right_padded_lengths(mask):
    """The length of each row of a time-major ``(time, batch, 1)`` mask
    whose every row is right-padded (its steps first, then only padding)
    and not empty, else ``None``."""
    import torch

    steps = mask[..., 0]
    lengths = steps.sum(0)
    if bool((lengths == 0).any()):
        return None
    expected = torch.arange(steps.shape[0], device=steps.device)[:, None] < lengths[None]
    return lengths if bool(torch.equal(expected, steps)) else None


def native_sequence(x, ws, bs, us, h0, c0, lengths, training, return_sequences):
    """See :func:`_native_sequence`; out of torch.compile's reach except when
    a graph is exported, where it is what the exporter writes as ONNX's LSTM
    operator."""
    if compat.torch_exporting():
        return _native_sequence(x, ws, bs, us, h0, c0, lengths, training, return_sequences)
    return _callers()["native"](x, ws, bs, us, h0, c0, lengths, training, return_sequences)


def _native_sequence(x, ws, bs, us, h0, c0, lengths, training, return_sequences):
    """PyTorch's own LSTM kernel (``torch.nn.LSTM``'s: oneDNN on a CPU, cuDNN
    on CUDA) over a time-major sequence, with the parts' weights joined at
    call time in its layout (rows in :data:`~keras_lstm_gates.parts.PARTS`
    order); autograd splits the gradients back into the parts.  It computes
    the plain LSTM, whose step is :meth:`~keras_lstm_gates.LSTMCell.step` of
    a cell with no ``plain_lstm_reason``, in C++.

    With ``lengths`` (a right-padded mask, see :func:`right_padded_lengths`)
    the rows are packed, so that each stops at its length, and the carried
    ``h`` repeats its last value over the padding.  Returns ``(hs, c_last)``
    as :func:`fused_sequence` does.
    """
    import torch
    from torch.nn.utils import rnn

    lstm = compat.torch_lstm()
    # Each part's (D, H) block transposed, then stacked: (4H, D), contiguous
    # as PyTorch's kernel wants it (a transposed view costs it a reorder of
    # the weights at every call).
    params = [
        torch.cat([w.t() for w in ws], dim=0),
        torch.cat([u.t() for u in us], dim=0),
        torch.cat(list(bs), dim=-1),
    ]
    params.append(torch.zeros_like(params[2]))  # PyTorch's second bias
    state = (h0[None], c0[None])
    training = bool(training)  # Keras passes None outside fit
    if lengths is None:
        out, _, c_last = lstm(x, state, params, True, 1, 0.0, training, False, False)
        c_last = c_last[0]
        h_last = out[-1]
    else:
        packed = rnn.pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        order, back = packed.sorted_indices, packed.unsorted_indices
        state = tuple(s.index_select(1, order) for s in state)
        data, h_n, c_n = lstm(
            packed.data, packed.batch_sizes, state, params, True, 1, 0.0, training, False
        )
        out, _ = rnn.pad_packed_sequence(
            rnn.PackedSequence(data, packed.batch_sizes, order, back), total_length=x.shape[0]
        )
        h_last, c_last = h_n[0].index_select(0, back), c_n[0].index_select(0, back)
        # The carried h over the padding is the last step's.
        steps = torch.arange(x.shape[0], device=x.device)[:, None, None]
        out = torch.where(steps < lengths.to(x.device)[None, :, None], out, h_last[None])
    hs = out.transpose(0, 1) if return_sequences else h_last
    return hs, c_last


def onnx_lstm_sequence(cell, x, op_parts, peepholes, h0, c0, compute):
    """The LSTM over a time-major sequence as what PyTorch's ONNX exporter
    (TorchScript route) writes as one ONNX ``LSTM`` node: for the cells that
    :mod:`keras_lstm_gates.fused_op` maps onto that op (CIFG and peepholes
    included), from the op's weights (``op_parts``, ``op_peepholes``).
    Run, it is ``compute(x, h0, c0)``, the cell's step over the sequence.
    Returns ``(hs, h_last, c_last)``, ``hs`` time major."""
    import torch

    order = ("input_gate", "output_gate", "forget_gate", "candidate")  # ONNX's
    w = torch.cat([op_parts[n][0].t() for n in order])[None]  # (1, 4H, D)
    r = torch.cat([op_parts[n][1].t() for n in order])[None]  # (1, 4H, H)
    b = torch.cat([op_parts[n][2] for n in order])
    b = torch.cat([b, torch.zeros_like(b)])[None]  # ONNX's input and recurrent biases
    p = torch.zeros((1, 3 * cell.units), dtype=x.dtype, device=x.device)
    if peepholes:
        p = torch.cat([peepholes[n] for n in ("input_gate", "output_gate", "forget_gate")])[None]
    # The cell's variables go in as inputs too: the forward reads them
    # (through cell.step), and TorchScript's tracer must know every tensor
    # that a Function's forward touches.
    variables = [v.value for v in cell.weights]
    function = _onnx_lstm_function(cell, compute)
    return function.apply(x, w, r, b, p, h0[None], c0[None], *variables)


def _onnx_lstm_function(cell, compute):
    # A class per export, holding the cell: an argument that is not a tensor
    # or a number stops TorchScript's tracer.
    import torch

    class OnnxLSTM(torch.autograd.Function):
        """Forward: ``cell.step`` over the steps; exported: ONNX's LSTM."""

        @staticmethod
        def forward(ctx, x, w, r, b, p, h0, c0, *variables):
            return compute(x, h0[0], c0[0])

        @staticmethod
        def symbolic(g, x, w, r, b, p, h0, c0, *variables):
            y, y_h, y_c = g.op(
                "LSTM",
                x,
                w,
                r,
                b,
                compat.onnx_absent_input(g),
                h0,
                c0,
                p,
                hidden_size_i=cell.units,
                outputs=3,
            )

            def squeeze(value, axis):
                return g.op("Squeeze", value, g.op("Constant", value_t=torch.tensor([axis])))

            return squeeze(y, 1), squeeze(y_h, 0), squeeze(y_c, 0)

    return OnnxLSTM


def scan(fn, carry, xs, num_ys):
    """The generic loop: a Python loop over the leading axis."""
    from keras import tree

    if compat.torch_exporting():
        warn_if_one_step(tree.flatten(xs)[0].shape[0])
    return common.python_scan(fn, carry, xs)
