"""The PyTorch loop: a Python loop inside a ``torch.autograd.Function``.

There every op costs microseconds of dispatch, so the input projection is one
matmul before the loop (each step is then 7 ops writing into pre-allocated
buffers), the backward loop does only what depends on the recursion, and the
weight gradients are one matmul each after it.  With no gradient to come
(``torch.no_grad()``, ``predict``) the same forward loop runs outside the
Function and keeps only what it returns.  A gradient of the gradient
differentiates a plain forward loop instead of the hand-written backward.
"""

from . import common

_TORCH = {}


def _forward_loop(x, w, b, u, h0, c0, mask, trace, keep, sequences=True):
    """The forward loop: ``(hs, h_last, c_last, cs, acts)``.

    With ``keep`` it stores every step's ``h``, ``c`` and activations (time
    major) for the backward pass; without it (inference) the cell states and
    activations live in buffers of one or two steps, reused, and ``hs`` is
    ``None`` unless ``sequences``.
    """
    import torch

    steps, batch, features = x.shape
    units = u.shape[0]
    # The input projection of every step: one matmul.
    xz = torch.addmm(b, x.reshape(steps * batch, features), w)
    xz = xz.view(steps, batch, 4 * units)
    # Two-step buffers alternate, so that a step never writes over the
    # state it reads (a masked step carries it).
    hs = x.new_empty((steps if keep or sequences else 2, batch, units))
    cs = x.new_empty((steps if keep else 2, batch, units))
    acts = x.new_empty((steps if keep else 1, batch, 4 * units))
    z = x.new_empty((batch, 4 * units))
    tc = x.new_empty((batch, units))
    # Views made once, so that the loop runs no indexing.
    xz_t, hs_t, cs_t = xz.unbind(0), hs.unbind(0), cs.unbind(0)
    sig_t = acts[:, :, : 3 * units].unbind(0)
    cand_t = acts[:, :, 3 * units :].unbind(0)
    gates = [v.unbind(0) for v in acts.split(units, dim=2)]
    z_sig, z_cand = z[:, : 3 * units], z[:, 3 * units :]
    masks = mask.unbind(0) if mask is not None else None

    def per_step(views):
        # Step t's view of a buffer of len(views) steps.
        return views if len(views) == steps else [views[t % len(views)] for t in range(steps)]

    hs_t, cs_t, sig_t, cand_t, acts_t = map(per_step, (hs_t, cs_t, sig_t, cand_t, acts.unbind(0)))
    gates = [per_step(v) for v in gates]
    h_prev, c_prev = h0, c0
    for t in range(steps):
        i, f, o, g = gates[0][t], gates[1][t], gates[2][t], gates[3][t]
        torch.addmm(xz_t[t], h_prev, u, out=z)
        torch.sigmoid(z_sig, out=sig_t[t])
        torch.tanh(z_cand, out=cand_t[t])
        c = torch.mul(f, c_prev, out=cs_t[t]).addcmul_(i, g)
        h = torch.mul(o, torch.tanh(c, out=tc), out=hs_t[t])
        if masks is not None:
            m = masks[t]
            torch.where(m, h, h_prev, out=h)
            torch.where(m, c, c_prev, out=c)
            if trace:
                acts_t[t].masked_fill_(~m, 0.0)
        h_prev, c_prev = h, c
    if not keep:
        return (hs if sequences else None), h_prev.clone(), c_prev.clone(), None, None
    return hs, h_prev, c_prev.clone(), cs, acts


def _torch_function():
    if "fn" in _TORCH:
        return _TORCH["fn"]
    import torch

    class LSTMSequence(torch.autograd.Function):
        """The vanilla LSTM over a sequence, forward and backward by hand."""

        @staticmethod
        def forward(ctx, x, w, b, u, h0, c0, mask, trace):
            hs, _, c_last, cs, acts = _forward_loop(x, w, b, u, h0, c0, mask, trace, keep=True)
            ctx.trace = trace
            ctx.save_for_backward(x, w, u, h0, c0, mask, hs, cs, acts, b)
            if not trace:
                ctx.mark_non_differentiable(cs, acts)
            return hs, c_last, cs, acts

        @staticmethod
        def backward(ctx, dhs, dc_last, dcs, dacts):
            if torch.is_grad_enabled():
                return _differentiable_backward(ctx, dhs, dc_last, dcs, dacts)
            saved = ctx.saved_tensors[:-1]
            dtype = saved[0].dtype
            # Half-precision runs keep their gradients in float32 in the loop.
            work = torch.promote_types(dtype, torch.float32)
            x, w, u, h0, c0, mask, hs, cs, acts = [
                v if v is None or v.dtype == torch.bool else v.to(work) for v in saved
            ]
            trace = ctx.trace
            steps, batch, features = x.shape
            units = u.shape[0]
            i, f, o, g = acts.split(units, dim=2)
            tc = torch.tanh(cs)
            c_prev = torch.cat([c0[None], cs[:-1]], 0)
            # Everything that does not depend on the recursion, for all steps
            # at once: dz = dc * a + dh * b, dc += dh * o (1 - tanh(c)^2).
            a = torch.cat(
                [g * i * (1 - i), c_prev * f * (1 - f), torch.zeros_like(o), i * (1 - g * g)], 2
            ).view(steps, batch, 4, units)
            b_o = tc * o * (1 - o)
            p = o * (1 - tc * tc)
            if trace:
                extra = dacts.to(work) * torch.cat(
                    [acts[..., : 3 * units] * (1 - acts[..., : 3 * units]), 1 - g * g], 2
                )
                dcs = dcs.to(work)
            dhs = dhs.to(work)
            dz = torch.empty_like(acts)
            dz4 = dz.view(steps, batch, 4, units)
            dz_o = dz[:, :, 2 * units : 3 * units]
            u_t = u.t()
            dh_next = torch.zeros_like(h0)
            dc_next = dc_last.to(work)
            masks = mask.unbind(0) if mask is not None else None
            for t in range(steps - 1, -1, -1):
                dh = dhs[t] + dh_next
                dc_in = dc_next + dcs[t] if trace else dc_next
                dc = torch.addcmul(dc_in, dh, p[t])
                torch.mul(dc.unsqueeze(1), a[t], out=dz4[t])
                torch.mul(dh, b_o[t], out=dz_o[t])
                if trace:
                    dz[t] += extra[t]
                if masks is not None:
                    m = masks[t]
                    dz[t].masked_fill_(~m, 0.0)
                    dh_next = torch.addmm(dh.masked_fill(m, 0.0), dz[t], u_t)
                    dc_next = torch.where(m, dc * f[t], dc_in)
                else:
                    dh_next = torch.mm(dz[t], u_t)
                    dc_next = dc * f[t]
            flat_dz = dz.view(steps * batch, 4 * units)
            h_prev = torch.cat([h0[None], hs[:-1]], 0).view(steps * batch, units)
            need = ctx.needs_input_grad
            dx = flat_dz.mm(w.t()).view(steps, batch, features) if need[0] else None
            dw = x.reshape(steps * batch, features).t().mm(flat_dz) if need[1] else None
            db = flat_dz.sum(0) if need[2] else None
            du = h_prev.t().mm(flat_dz)
            grads = [
                None if gr is None else gr.to(dtype) for gr in (dx, dw, db, du, dh_next, dc_next)
            ]
            return (*grads, None, None)

    _TORCH["fn"] = LSTMSequence
    return LSTMSequence


def _differentiable_backward(ctx, dhs, dc_last, dcs, dacts):
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
    wanted = [k for k, v in enumerate(inputs) if ctx.needs_input_grad[k] and v.requires_grad]
    grads = [None] * len(inputs)
    if wanted:
        out = plain_sequence(x, w, b, u, h0, c0, mask, ctx.trace)
        cotangents = [dhs, dc_last, dcs, dacts][: len(out)]
        found = torch.autograd.grad(
            out, [inputs[k] for k in wanted], cotangents, create_graph=True, allow_unused=True
        )
        for k, g in zip(wanted, found):
            grads[k] = g
    return (*grads, None, None)


class _TorchOps:
    def __init__(self):
        import torch

        self.torch = torch
        self.sigmoid = torch.sigmoid
        self.tanh = torch.tanh
        self.where = torch.where
        self.zeros_like = torch.zeros_like

    def split(self, x, sizes):
        return self.torch.split(x, list(sizes), dim=-1)

    def concat(self, xs):
        return self.torch.cat(xs, dim=-1)


def tracing():
    """Whether a graph is being recorded for export: TorchScript tracing
    (``torch.onnx.export``'s default route, and the one Keras takes for a
    dynamic batch), the ONNX exporter, or ``torch.export`` (the dynamo route).
    """
    import torch

    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


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


def plain_sequence(x, w, b, u, h0, c0, mask, trace):
    """The forward loop in plain differentiable ops, for exporters and for
    a gradient of the gradient.

    An exporter records the ops it sees; the ``autograd.Function`` writes
    into pre-allocated buffers and reads shapes as Python numbers, which
    the ONNX exporter refuses (``aten::size``).  The loop is unrolled over the
    traced sequence length, as keras.layers.LSTM's is on this backend.
    """
    K = _TorchOps()
    torch = K.torch
    units = u.shape[0]
    xz = torch.matmul(x, w) + b
    h, c = h0, c0
    hs, cs, acts = [], [], []
    for t in range(x.shape[0]):
        z = xz[t] + torch.matmul(h, u)
        h_new, c_new, parts = common.forward_step(K, common.parts_of(K, [z], units), c)
        act = K.concat(parts) if trace else None
        if mask is not None:
            m = mask[t]
            h_new = torch.where(m, h_new, h)
            c_new = torch.where(m, c_new, c)
            if trace:
                act = torch.where(m, act, torch.zeros_like(act))
        h, c = h_new, c_new
        hs.append(h)
        if trace:
            cs.append(c)
            acts.append(act)
    if not trace:
        return torch.stack(hs), c
    return torch.stack(hs), c, torch.stack(cs), torch.stack(acts)


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
        }
    return _TORCH["callers"]


def lstm_sequence(x, ws, bs, us, h0, c0, mask, trace, sequences=True):
    import torch

    # One matmul per step for every gate: the gates' weights are joined
    # (autograd splits the gradient back into them).
    w, b, u = (torch.cat(list(p), dim=-1) for p in (ws, bs, us))
    if tracing():
        warn_if_one_step(x.shape[0])
        out = plain_sequence(x, w, b, u, h0, c0, mask, trace)
    elif not trace and not _differentiated(x, w, b, u, h0, c0):
        # No gradient will be asked for: a loop that keeps only the output.
        hs, h_last, c_last, _, _ = _callers()["infer"](
            x, w, b, u, h0, c0, mask, False, keep=False, sequences=sequences
        )
        return (hs.transpose(0, 1) if sequences else h_last), c_last
    else:
        out = _callers()["apply"](x, w, b, u, h0, c0, mask, trace)
    hs = out[0].transpose(0, 1) if sequences else out[0][-1]
    if not trace:
        return hs, out[1]
    _, c_last, cs, acts = out
    return hs, c_last, cs, list(acts.split(int(u.shape[0]), dim=-1))


def scan(fn, carry, xs, num_ys):
    """The generic loop: a Python loop over the leading axis."""
    from keras import tree

    if tracing():
        warn_if_one_step(tree.flatten(xs)[0].shape[0])
    return common.python_scan(fn, carry, xs)
