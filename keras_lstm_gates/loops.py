"""The time loops under the fused recurrence, one per backend.

Two entry points:

``lstm_sequence(x, kernel, bias, recurrent_kernel, h0, c0, mask=None, trace=False)``
    The vanilla LSTM (sigmoid gates, tanh candidate and output) over a
    time-major sequence, with a hand-written backward pass: no autodiff
    bookkeeping, no stored pre-activations, a few element-wise ops and the
    gates' matmuls per step.  This is the fast path of
    :func:`~keras_lstm_gates.recurrence.run_sequence`.

``scan(fn, carry, xs, num_ys)``
    A generic loop for every other configuration (variants, peepholes, other
    activations, recurrent dropout); it is differentiated by the backend's
    autodiff.

Per backend:

* JAX: ``jax.lax.scan`` under ``jax.custom_vjp``.  The input projection
  stays inside the loop and the weight gradients are accumulated in the
  backward loop: on a CPU this beats one large matmul before the loop,
  because the ``(time, batch, 4 * units)`` buffers that needs cost more in
  memory traffic and page faults than the large matmul saves (measured:
  matmuls after the loop were 1.08-1.15x slower at 128 and 256 units).
  From 512 units on it is the other way round (1.3x faster at 1024 units),
  and the weight gradients are computed after the backward loop.
* TensorFlow: ``tf.while_loop`` under ``tf.custom_gradient``, inside
  ``tf.function``s that are XLA-compiled when called from a graph (``fit``,
  ``predict``, any ``tf.function``) and plain when called eagerly, so that an
  eager call does not pay one compilation per new shape.  From 768 units up
  the forward loop stays plain (TensorFlow's own matmul beats XLA's on one
  large matmul per step).  Same layout as JAX.
* PyTorch: a Python loop inside a ``torch.autograd.Function``.  There every
  op costs microseconds of dispatch, so the input projection is one matmul
  before the loop (each step is then 7 ops writing into pre-allocated
  buffers), the backward loop does only what depends on the recursion, and
  the weight gradients are one matmul each after it.

Layout: ``x`` is time-major ``(time, batch, features)``; the fused weights
have their gate blocks in the order input, forget, output, candidate (the
sigmoid gates first); ``mask`` is ``(time, batch, 1)`` booleans.
"""

from keras import backend, tree

# -- the vanilla kernel --------------------------------------------------------


def lstm_sequence(x, kernel, bias, recurrent_kernel, h0, c0, mask=None, trace=False):
    """Run a vanilla LSTM over a time-major sequence.

    Args:
        x: ``(time, batch, features)``.
        kernel: ``(features, 4 * units)``, gate blocks in the order i, f, o, g.
        bias: ``(4 * units,)`` in the same order.
        recurrent_kernel: ``(units, 4 * units)``, same order.
        h0, c0: ``(batch, units)`` initial states.
        mask: ``None`` or ``(time, batch, 1)`` booleans; a masked step keeps
            ``h`` and ``c`` (its output is the carried ``h``).
        trace: if True also return the carried cell states and the gate
            activations of every step.

    Returns:
        ``(hs, c_last)``: ``hs`` ``(time, batch, units)`` holds the carried
        ``h`` of every step and ``c_last`` the final cell state.  With
        ``trace=True``, ``(hs, c_last, cs, acts)`` where ``cs`` is
        ``(time, batch, units)`` and ``acts`` ``(time, batch, 4 * units)``
        holds ``i, f, o, g`` (zero on masked steps).

    >>> import numpy as np
    >>> T, B, D, H = 5, 2, 3, 4
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(T, B, D)).astype("float32")
    >>> w = rng.normal(size=(D, 4 * H)).astype("float32")
    >>> u = rng.normal(size=(H, 4 * H)).astype("float32")
    >>> b = np.zeros(4 * H, "float32")
    >>> zeros = np.zeros((B, H), "float32")
    >>> x, w, b, u, zeros = (keras.ops.convert_to_tensor(a) for a in (x, w, b, u, zeros))
    >>> hs, c = lstm_sequence(x, w, b, u, zeros, zeros)
    >>> tuple(hs.shape), tuple(c.shape)
    ((5, 2, 4), (2, 4))
    """
    name = backend.backend()
    if name == "jax":
        return _lstm_jax(x, kernel, bias, recurrent_kernel, h0, c0, mask, trace)
    if name == "tensorflow":
        return _lstm_tensorflow(x, kernel, bias, recurrent_kernel, h0, c0, mask, trace)
    if name == "torch":
        return _lstm_torch(x, kernel, bias, recurrent_kernel, h0, c0, mask, trace)
    raise NotImplementedError(f"lstm_sequence: no kernel for backend {name!r}.")


# The step equations, written once against a small namespace ``K`` of array
# functions (``sigmoid``, ``tanh``, ``split``, ``concat``) so that the JAX
# and TensorFlow kernels run the same arithmetic.


def _forward_step(K, units, z, c_prev):
    """``z = x_t W + h_{t-1} U + b`` (i, f, o, g) -> ``h, c, s, g``."""
    zs, zg = K.split(z, (3 * units, units))
    s = K.sigmoid(zs)
    g = K.tanh(zg)
    i, f, o = K.split(s, (units, units, units))
    c = f * c_prev + i * g
    h = o * K.tanh(c)
    return h, c, s, g


def _backward_step(K, units, dh, dc, act, c, c_prev):
    """Gradients at one step: from ``dh``, ``dc`` (w.r.t. ``h_t``, ``c_t``) to
    ``dz`` (w.r.t. the pre-activations) and ``dc`` w.r.t. ``c_{t-1}``.

    ``dh_{t-1}`` is ``dz @ U^T``, taken by the caller.
    """
    i, f, o, g = K.split(act, (units, units, units, units))
    tc = K.tanh(c)
    dc = dc + dh * o * (1.0 - tc * tc)
    di = dc * g * i * (1.0 - i)
    df = dc * c_prev * f * (1.0 - f)
    do = dh * tc * o * (1.0 - o)
    dg = dc * i * (1.0 - g * g)
    return K.concat([di, df, do, dg]), dc * f


def _backward_through_step(K, units, carry, step, recurrent, trace, masked):
    """One step of the backward loop, shared by the JAX and TensorFlow loops.

    ``carry`` is ``(dh, dc)`` from step ``t + 1``; ``step`` is
    ``(dh_out, act, c, c_prev, extra)`` at ``t``: the output's cotangent,
    the gate activations, the cell states, and ``extra`` (consumed in
    order), which holds, when present, the traced cell state's and gate
    activations' cotangents and the mask.  ``recurrent(dz)`` is
    ``dz @ U^T``.  Returns ``dz``, ``dh_{t-1}`` and ``dc_{t-1}``.
    """
    dh_next, dc_next = carry
    dh_out, act, c, c_prev, extra = step
    dh = dh_next + dh_out
    dc = dc_next + extra.pop(0) if trace else dc_next
    dz, dc_prev = _backward_step(K, units, dh, dc, act, c, c_prev)
    if trace:
        dz = dz + extra.pop(0)
    if not masked:
        return dz, recurrent(dz), dc_prev
    m = extra.pop(0)
    dz = K.where(m, dz, K.zeros_like(dz))
    dh_prev = recurrent(dz) + K.where(m, K.zeros_like(dh), dh)
    return dz, dh_prev, K.where(m, dc_prev, dc)


def _activation_derivative(K, acts, units):
    """``d act / d z`` for stacked ``acts`` (..., 4 * units): ``s (1 - s)``
    for the sigmoid gates and ``1 - g^2`` for the candidate."""
    s, g = K.split(acts, (3 * units, units))
    return K.concat([s * (1.0 - s), 1.0 - g * g])


# -- JAX -----------------------------------------------------------------------

_JAX = {}


class _JaxOps:
    def __init__(self):
        import jax
        import jax.numpy as jnp

        self.jnp = jnp
        self.sigmoid = jax.nn.sigmoid
        self.tanh = jnp.tanh
        self.where = jnp.where
        self.zeros_like = jnp.zeros_like

    def split(self, x, sizes):
        bounds, total = [], 0
        for size in sizes[:-1]:
            total += size
            bounds.append(total)
        return self.jnp.split(x, bounds, axis=-1)

    def concat(self, xs):
        return self.jnp.concatenate(xs, axis=-1)


_JAX_WEIGHT_GRADS_AFTER_LOOP_UNITS = 512


def _jax_kernel(masked, trace):
    key = (masked, trace)
    if key in _JAX:
        return _JAX[key]
    import jax

    K = _JaxOps()
    jnp = K.jnp

    def forward(x, w, b, u, h0, c0, mask, save):
        units = u.shape[0]

        def body(carry, inputs):
            h_prev, c_prev = carry
            x_t = inputs[0] if masked else inputs
            z = x_t @ w + h_prev @ u + b
            h, c, s, g = _forward_step(K, units, z, c_prev)
            if masked:
                m = inputs[1]
                h = jnp.where(m, h, h_prev)
                c = jnp.where(m, c, c_prev)
            if not save:
                return (h, c), h
            # i, f, o, g leave the loop as four arrays and are joined below:
            # XLA folds the per-gate slices of a return_gates trace into that
            # join, where slicing one joined loop output costs a copy pass.
            parts = (*K.split(s, (units, units, units)), g)
            if masked and trace:
                parts = tuple(jnp.where(m, p, 0.0) for p in parts)
            return (h, c), (h, c, *parts)

        xs = (x, mask) if masked else x
        (_, c_last), ys = jax.lax.scan(body, (h0, c0), xs)
        if save:
            ys = (ys[0], ys[1], K.concat(ys[2:]))
        return c_last, ys

    @jax.custom_vjp
    def kernel(x, w, b, u, h0, c0, mask):
        if trace:
            c_last, (hs, cs, acts) = forward(x, w, b, u, h0, c0, mask, True)
            return hs, c_last, cs, acts
        c_last, hs = forward(x, w, b, u, h0, c0, mask, False)
        return hs, c_last

    def kernel_fwd(x, w, b, u, h0, c0, mask):
        c_last, (hs, cs, acts) = forward(x, w, b, u, h0, c0, mask, True)
        out = (hs, c_last, cs, acts) if trace else (hs, c_last)
        return out, (x, w, u, h0, c0, mask, hs, cs, acts)

    def backward(res, cts):
        dtype = res[0].dtype
        # Half-precision runs keep their gradients in float32 inside the loop.
        work = jnp.promote_types(dtype, jnp.float32)
        res = [r if r is None or r.dtype == bool else r.astype(work) for r in res]
        cts = [ct.astype(work) for ct in cts]
        x, w, u, h0, c0, mask, hs, cs, acts = res
        units = u.shape[0]
        u_t, w_t = u.T, w.T
        # Small layers accumulate the weight gradients inside the loop; from
        # 512 units on, the loop only emits dz and the weight gradients are
        # one large matmul each after it (1.3x faster at B=16, H=1024, where
        # the per-step update of the (H, 4H) accumulator is memory-bound).
        after = units >= _JAX_WEIGHT_GRADS_AFTER_LOOP_UNITS
        # Transposed once, so that the weight-gradient matmuls in the loop
        # contract plain (row-major) operands.
        hs_t = None if after else jnp.swapaxes(hs, 1, 2)

        def dz_step(dh_next, dc_next, inputs):
            k, dh_out, act, c, *extra = inputs
            c_prev = jnp.where(k == 0, c0, cs[k - 1])
            step = (dh_out, act, c, c_prev, extra)
            return _backward_through_step(
                K, units, (dh_next, dc_next), step, lambda dz: dz @ u_t, trace, masked
            )

        def body_after(carry, inputs):
            dz, dh_prev, dc_prev = dz_step(*carry, inputs)
            return (dh_prev, dc_prev), dz

        def body_inside(carry, inputs):
            dh_next, dc_next, dw, du, db = carry
            x_t, inputs = inputs[0], inputs[1:]
            k = inputs[0]
            h_prev_t = jnp.where(k == 0, h0.T, hs_t[k - 1])
            dz, dh_prev, dc_prev = dz_step(dh_next, dc_next, inputs)
            carry = (dh_prev, dc_prev, dw + x_t @ dz, du + h_prev_t @ dz, db + dz.sum(0))
            return carry, dz @ w_t

        xs = [jnp.arange(x.shape[0]), cts[0], acts, cs]
        if trace:
            xs += [cts[2], cts[3] * _activation_derivative(K, acts, units)]
        if masked:
            xs.append(mask)
        if after:
            (dh0, dc0), dz = jax.lax.scan(
                body_after, (jnp.zeros_like(h0), cts[1]), tuple(xs), reverse=True
            )
            # sum_t h_{t-1}^T dz_t, without a shifted copy of hs.
            du = h0.T @ dz[0] + jnp.einsum("tbh,tbg->hg", hs[:-1], dz[1:])
            dw = jnp.einsum("tbd,tbg->dg", x, dz)
            db = dz.sum((0, 1))
            dx = dz @ w_t
        else:
            init = (
                jnp.zeros_like(h0),
                cts[1],
                jnp.zeros_like(w),
                jnp.zeros_like(u),
                jnp.zeros(w.shape[-1:], work),
            )
            xs = [jnp.swapaxes(x, 1, 2), *xs]
            (dh0, dc0, dw, du, db), dx = jax.lax.scan(body_inside, init, tuple(xs), reverse=True)
        return tuple(g.astype(dtype) for g in (dx, dw, db, du, dh0, dc0)) + (None,)

    kernel.defvjp(kernel_fwd, backward)
    _JAX[key] = kernel
    return kernel


def _lstm_jax(x, w, b, u, h0, c0, mask, trace):
    return _jax_kernel(mask is not None, trace)(x, w, b, u, h0, c0, mask)


# -- TensorFlow ----------------------------------------------------------------

_TF = {}
# Above this many units the TensorFlow forward loop runs without XLA.
_TF_XLA_FORWARD_MAX_UNITS = 768


class _TfOps:
    def __init__(self):
        import tensorflow as tf

        self.tf = tf
        self.sigmoid = tf.sigmoid
        self.tanh = tf.tanh
        self.where = tf.where
        self.zeros_like = tf.zeros_like

    def split(self, x, sizes):
        return self.tf.split(x, list(sizes), axis=-1)

    def concat(self, xs):
        return self.tf.concat(xs, axis=-1)


def _tf_functions(units, masked, trace, jit_forward, jit_backward):
    """The forward and backward loops as ``tf.function``s (one pair per
    flavour; they retrace per new shape and dtype)."""
    key = (units, masked, trace, jit_forward, jit_backward)
    if key in _TF:
        return _TF[key]
    import tensorflow as tf

    K = _TfOps()

    def unstack(seq):
        return tf.TensorArray(seq.dtype, size=tf.shape(seq)[0]).unstack(seq)

    def forward(x, w, b, u, h0, c0, mask):
        steps = tf.shape(x)[0]
        xs = unstack(x)
        ms = unstack(mask) if masked else None
        out = [tf.TensorArray(x.dtype, size=steps) for _ in range(3)]

        def body(t, h_prev, c_prev, hs, cs, acts):
            z = tf.matmul(xs.read(t), w) + tf.matmul(h_prev, u) + b
            h, c, s, g = _forward_step(K, units, z, c_prev)
            act = tf.concat([s, g], axis=-1)
            if masked:
                m = ms.read(t)
                h = tf.where(m, h, h_prev)
                c = tf.where(m, c, c_prev)
                if trace:
                    act = tf.where(m, act, tf.zeros_like(act))
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), acts.write(t, act)

        _, _, c_last, hs, cs, acts = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (tf.constant(0), h0, c0, *out),
            maximum_iterations=steps,
        )
        return hs.stack(), c_last, cs.stack(), acts.stack()

    def backward(dhs, dc_last, dcs, dacts, x, w, u, h0, c0, mask, hs, cs, acts):
        dtype = dhs.dtype
        # Half-precision runs keep their gradients in float32 inside the loop.
        work = tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype
        values = (dhs, dc_last, dcs, dacts, x, w, u, h0, c0, hs, cs, acts)
        dhs, dc_last, dcs, dacts, x, w, u, h0, c0, hs, cs, acts = [tf.cast(v, work) for v in values]
        steps = tf.shape(dhs)[0]
        seqs = [x, dhs, acts, cs, hs]
        if trace:
            seqs += [dcs, dacts * _activation_derivative(K, acts, units)]
        if masked:
            seqs.append(mask)
        # Indexed in place (a dynamic slice under XLA), not unstacked into
        # TensorArrays, which would copy every sequence once more.
        dxs = tf.TensorArray(work, size=steps)

        def body(t, dh_next, dc_next, dw, du, db, dxs):
            k = steps - 1 - t
            x_t, dh_out, act, c = [a[k] for a in seqs[:4]]
            rest = [a[k] for a in seqs[5:]]
            first = k == 0
            prev = tf.maximum(k - 1, 0)
            h_prev = tf.where(first, h0, seqs[4][prev])
            c_prev = tf.where(first, c0, seqs[3][prev])
            dz, dh_prev, dc_prev = _backward_through_step(
                K,
                units,
                (dh_next, dc_next),
                (dh_out, act, c, c_prev, rest),
                lambda dz: tf.matmul(dz, u, transpose_b=True),
                trace,
                masked,
            )
            return (
                t + 1,
                dh_prev,
                dc_prev,
                dw + tf.matmul(x_t, dz, transpose_a=True),
                du + tf.matmul(h_prev, dz, transpose_a=True),
                db + tf.reduce_sum(dz, axis=0),
                dxs.write(k, tf.matmul(dz, w, transpose_b=True)),
            )

        init = (
            tf.constant(0),
            tf.zeros_like(h0),
            dc_last,
            tf.zeros_like(w),
            tf.zeros_like(u),
            tf.zeros(tf.shape(w)[-1:], work),
            dxs,
        )
        _, dh0, dc0, dw, du, db, dxs = tf.while_loop(
            lambda t, *_: t < steps, body, init, maximum_iterations=steps
        )
        return tuple(tf.cast(g, dtype) for g in (dxs.stack(), dw, db, du, dh0, dc0))

    options = {"reduce_retracing": True, "autograph": False}
    pair = (
        tf.function(forward, jit_compile=jit_forward, **options),
        tf.function(backward, jit_compile=jit_backward, **options),
    )
    _TF[key] = pair
    return pair


def _lstm_tensorflow(x, w, b, u, h0, c0, mask, trace):
    import tensorflow as tf

    masked = mask is not None
    # XLA fuses each step into a few kernels, but compiles once per new
    # shape: worth it inside a graph (fit, predict, tf.function), not for
    # one eager call.  From about 1024 units on, the forward step is one
    # large matmul, which TensorFlow's own (oneDNN) kernel does faster than
    # XLA's: measured 1.6x at B=16, H=1024, while XLA still wins 1.3-1.5x at
    # H=512.  The backward loop gains from XLA at every size measured.
    units = int(u.shape[0])
    graph = not tf.executing_eagerly()
    forward, backward = _tf_functions(
        units, masked, trace, graph and units <= _TF_XLA_FORWARD_MAX_UNITS, graph
    )
    if not masked:
        mask = tf.zeros((0,), "bool")  # a placeholder the loops never read

    @tf.custom_gradient
    def kernel(x, w, b, u, h0, c0):
        hs, c_last, cs, acts = forward(x, w, b, u, h0, c0, mask)
        outputs = (hs, c_last, cs, acts) if trace else (hs, c_last)

        def grad(*cts):
            cts = [tf.zeros_like(ref) if ct is None else ct for ct, ref in zip(cts, outputs)]
            dcs = cts[2] if trace else cs[:0]
            dacts = cts[3] if trace else acts[:0]
            return backward(cts[0], cts[1], dcs, dacts, x, w, u, h0, c0, mask, hs, cs, acts)

        return outputs, grad

    return kernel(x, w, b, u, h0, c0)


# -- PyTorch -------------------------------------------------------------------

_TORCH = {}


def _torch_function():
    if "fn" in _TORCH:
        return _TORCH["fn"]
    import torch

    class LSTMSequence(torch.autograd.Function):
        """The vanilla LSTM over a sequence, forward and backward by hand."""

        @staticmethod
        def forward(ctx, x, w, b, u, h0, c0, mask, trace):
            steps, batch, features = x.shape
            units = u.shape[0]
            # The input projection of every step: one matmul.
            xz = torch.addmm(b, x.reshape(steps * batch, features), w).view(steps, batch, -1)
            hs = x.new_empty((steps, batch, units))
            cs = x.new_empty((steps, batch, units))
            acts = x.new_empty((steps, batch, 4 * units))
            z = x.new_empty((batch, 4 * units))
            tc = x.new_empty((batch, units))
            # Views made once, so that the loop runs no indexing.
            xz_t, hs_t, cs_t = xz.unbind(0), hs.unbind(0), cs.unbind(0)
            sig_t = acts[:, :, : 3 * units].unbind(0)
            cand_t = acts[:, :, 3 * units :].unbind(0)
            gates = [v.unbind(0) for v in acts.split(units, dim=2)]
            z_sig, z_cand = z[:, : 3 * units], z[:, 3 * units :]
            masks = mask.unbind(0) if mask is not None else None
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
                        acts[t].masked_fill_(~m, 0.0)
                h_prev, c_prev = h, c
            ctx.trace = trace
            ctx.save_for_backward(x, w, u, h0, c0, mask, hs, cs, acts)
            if not trace:
                ctx.mark_non_differentiable(cs, acts)
            return hs, c_prev.clone(), cs, acts

        @staticmethod
        def backward(ctx, dhs, dc_last, dcs, dacts):
            saved = ctx.saved_tensors
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
            flat_dz = dz.view(steps * batch, -1)
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


def _lstm_torch(x, w, b, u, h0, c0, mask, trace):
    if "call" not in _TORCH:
        import torch

        function = _torch_function()

        # torch.compile (Keras's jit_compile=True on torch) would trace the
        # Python loop step by step, for minutes; the loop runs as it is.
        @torch.compiler.disable
        def call(*args):
            return function.apply(*args)

        _TORCH["call"] = call
    hs, c_last, cs, acts = _TORCH["call"](x, w, b, u, h0, c0, mask, trace)
    return (hs, c_last, cs, acts) if trace else (hs, c_last)


# -- the generic loop ------------------------------------------------------------


def scan(fn, carry, xs, num_ys):
    """Run ``fn(carry, x_t) -> (carry, ys_t)`` over the leading (time) axis.

    ``carry`` and ``ys_t`` are lists of tensors (``ys_t`` has ``num_ys``
    entries); ``xs`` is a tensor or a tuple of tensors.  Returns
    ``(final_carry, ys)`` with every entry of ``ys`` stacked over time.

    >>> import numpy as np
    >>> from keras import ops
    >>> def add(carry, x):
    ...     total = carry[0] + x
    ...     return [total], [total]
    >>> final, (sums,) = scan(add, [ops.zeros((2,))], ops.ones((3, 2)), num_ys=1)
    >>> ops.convert_to_numpy(sums)[:, 0].tolist()
    [1.0, 2.0, 3.0]
    """
    name = backend.backend()
    if name == "jax":
        return _scan_jax(fn, carry, xs)
    if name == "tensorflow":
        return _scan_tensorflow(fn, carry, xs, num_ys)
    return _scan_python(fn, carry, xs)


def _scan_jax(fn, carry, xs):
    import jax

    def body(c, x):
        new_c, ys = fn(list(c), x)
        return tuple(new_c), tuple(ys)

    final, ys = jax.lax.scan(body, tuple(carry), xs)
    return list(final), list(ys)


def _scan_tensorflow(fn, carry, xs, num_ys):
    import tensorflow as tf

    flat_xs = tree.flatten(xs)
    steps = tf.shape(flat_xs[0])[0]
    static_steps = flat_xs[0].shape[0]
    dtype = carry[0].dtype
    arrays = [tf.TensorArray(dtype, size=steps) for _ in range(num_ys)]
    shapes = [c.shape for c in carry]

    def body(t, c, arrs):
        x_t = tree.pack_sequence_as(xs, [x[t] for x in flat_xs])
        new_c, ys = fn(list(c), x_t)
        arrs = [a.write(t, y) for a, y in zip(arrs, ys)]
        new_c = [tf.ensure_shape(n, s) for n, s in zip(new_c, shapes)]
        return t + 1, new_c, arrs

    _, final, arrays = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), list(carry), arrays),
        maximum_iterations=static_steps,
    )
    return list(final), [a.stack() for a in arrays]


def _scan_python(fn, carry, xs):
    from keras import ops

    flat_xs = tree.flatten(xs)
    collected = None
    for t in range(flat_xs[0].shape[0]):
        x_t = tree.pack_sequence_as(xs, [x[t] for x in flat_xs])
        carry, ys = fn(carry, x_t)
        if collected is None:
            collected = [[] for _ in ys]
        for bucket, y in zip(collected, ys):
            bucket.append(y)
    return list(carry), [ops.stack(b, axis=0) for b in collected]
