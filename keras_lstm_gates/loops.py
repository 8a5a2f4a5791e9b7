"""The time loops under the fused recurrence, one per backend.

Two entry points:

``lstm_sequence(xz, recurrent_kernel, h0, c0, mask=None, trace=False)``
    The vanilla LSTM (sigmoid gates, tanh candidate and output) over
    pre-computed input projections, with a hand-written backward pass.  Each
    forward step is one matmul and a handful of element-wise ops; each
    backward step is one matmul (``dz @ U^T``), and the recurrent kernel's
    gradient is one large matmul after the loop instead of one small matmul
    per step.  This is the fast path of :func:`~keras_lstm_gates.recurrence.run_sequence`.

``scan(fn, carry, xs, num_ys)``
    A generic loop for every other configuration (variants, peepholes, other
    activations, recurrent dropout); it is differentiated by the backend's
    autodiff.

Per backend: JAX uses ``jax.lax.scan`` under ``jax.custom_vjp``; TensorFlow
uses ``tf.while_loop`` under ``tf.custom_gradient``, inside a
``tf.function`` (XLA-compiled when called from a graph, plain when called
eagerly, so that eager calls do not pay a compile per new shape); PyTorch
uses a Python loop inside a ``torch.autograd.Function`` that writes every
step into pre-allocated buffers.

Layout: ``xz`` is time-major ``(time, batch, 4 * units)`` with the gate
blocks in the order input, forget, output, candidate (the sigmoid gates
first) and the bias already added; ``mask`` is ``(time, batch, 1)`` booleans.
"""

from keras import backend, tree

# -- the vanilla kernel --------------------------------------------------------


def lstm_sequence(xz, recurrent_kernel, h0, c0, mask=None, trace=False):
    """Run a vanilla LSTM over time-major pre-activations.

    Args:
        xz: ``(time, batch, 4 * units)``, ``x_t W + b`` for every step, gate
            blocks in the order i, f, o, g.
        recurrent_kernel: ``(units, 4 * units)``, same block order.
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
    >>> T, B, H = 5, 2, 3
    >>> rng = np.random.default_rng(0)
    >>> xz = rng.normal(size=(T, B, 4 * H)).astype("float32")
    >>> u = rng.normal(size=(H, 4 * H)).astype("float32")
    >>> zeros = np.zeros((B, H), "float32")
    >>> hs, c = lstm_sequence(xz, u, zeros, zeros)
    >>> tuple(hs.shape), tuple(c.shape)
    ((5, 2, 3), (2, 3))
    """
    name = backend.backend()
    if name == "jax":
        return _lstm_jax(xz, recurrent_kernel, h0, c0, mask, trace)
    if name == "tensorflow":
        return _lstm_tensorflow(xz, recurrent_kernel, h0, c0, mask, trace)
    if name == "torch":
        return _lstm_torch(xz, recurrent_kernel, h0, c0, mask, trace)
    raise NotImplementedError(f"lstm_sequence: no kernel for backend {name!r}.")


# The step equations, written once against a small namespace ``K`` of array
# functions (``sigmoid``, ``tanh``, ``matmul``, ``split``, ``concat``,
# ``where``) so that all backends run the same arithmetic.


def _forward_step(K, units, z, c_prev):
    """``z = x_t W + h_{t-1} U + b`` (i, f, o, g) -> ``h, c, act``."""
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


def _activation_derivative(K, acts, units):
    """``d act / d z`` for stacked ``acts`` (..., 4 * units): ``s (1 - s)``
    for the sigmoid gates and ``1 - g^2`` for the candidate."""
    s, g = K.split(acts, (3 * units, units))
    return K.concat([s * (1.0 - s), 1.0 - g * g])


def _shift(K, first, seq):
    """``[first, seq[0], ..., seq[-2]]`` along the time axis."""
    return K.concat0([K.expand0(first), seq[:-1]])


def _param_grads(K, dz, hs, h0, units):
    """The recurrent kernel's gradient as one matmul: sum_t h_{t-1}^T dz_t."""
    h_prev = _shift(K, h0, hs)
    flat_h = K.reshape(h_prev, (-1, units))
    flat_dz = K.reshape(dz, (-1, 4 * units))
    return K.matmul(K.transpose2(flat_h), flat_dz)


# -- JAX -----------------------------------------------------------------------

_JAX = {}


class _JaxOps:
    def __init__(self):
        import jax
        import jax.numpy as jnp

        self.jnp = jnp
        self.sigmoid = jax.nn.sigmoid
        self.tanh = jnp.tanh
        self.matmul = jnp.matmul
        self.where = jnp.where
        self.reshape = jnp.reshape

    def split(self, x, sizes):
        bounds, total = [], 0
        for size in sizes[:-1]:
            total += size
            bounds.append(total)
        return self.jnp.split(x, bounds, axis=-1)

    def concat(self, xs):
        return self.jnp.concatenate(xs, axis=-1)

    def concat0(self, xs):
        return self.jnp.concatenate(xs, axis=0)

    def expand0(self, x):
        return x[None]

    def transpose2(self, x):
        return x.T


def _jax_kernel(masked, trace):
    key = (masked, trace)
    if key in _JAX:
        return _JAX[key]
    import jax

    K = _JaxOps()
    jnp = K.jnp

    def forward(xz, u, h0, c0, mask):
        units = u.shape[0]

        def body(carry, inputs):
            h_prev, c_prev = carry
            z_x = inputs[0] if masked else inputs
            h, c, s, g = _forward_step(K, units, z_x + h_prev @ u, c_prev)
            if masked:
                m = inputs[1]
                h = jnp.where(m, h, h_prev)
                c = jnp.where(m, c, c_prev)
            ys = (h, c, K.concat([s, g]))
            if masked and trace:
                ys = (h, c, jnp.where(m, ys[2], 0.0))
            return (h, c), ys

        xs = (xz, mask) if masked else xz
        (_, c_last), (hs, cs, acts) = jax.lax.scan(body, (h0, c0), xs)
        return hs, c_last, cs, acts

    def backward(res, cts):
        dtype = res[0].dtype
        # Half-precision runs keep their gradients in float32 inside the loop.
        work = jnp.promote_types(dtype, jnp.float32)
        res = [r if r is None or r.dtype == bool else r.astype(work) for r in res]
        cts = [ct.astype(work) for ct in cts]
        u, h0, c0, mask, hs, cs, acts = res
        units = u.shape[0]
        dhs, dc_last = cts[0], cts[1]
        dcs = cts[2] if trace else None
        extra = cts[3] * _activation_derivative(K, acts, units) if trace else None
        c_prev_seq = _shift(K, c0, cs)
        u_t = u.T

        def body(carry, inputs):
            dh_next, dc_next = carry
            dh_out, act, c, c_prev = inputs[:4]
            rest = list(inputs[4:])
            dh = dh_next + dh_out
            dc = dc_next + rest.pop(0) if trace else dc_next
            dz, dc_prev = _backward_step(K, units, dh, dc, act, c, c_prev)
            if trace:
                dz = dz + rest.pop(0)
            if masked:
                m = rest.pop(0)
                dz = jnp.where(m, dz, 0.0)
                dh_prev = dz @ u_t + jnp.where(m, 0.0, dh)
                dc_prev = jnp.where(m, dc_prev, dc)
            else:
                dh_prev = dz @ u_t
            return (dh_prev, dc_prev), dz

        xs = [dhs, acts, cs, c_prev_seq]
        if trace:
            xs += [dcs, extra]
        if masked:
            xs.append(mask)
        (dh0, dc0), dz = jax.lax.scan(
            body, (jnp.zeros_like(h0), dc_last), tuple(xs), reverse=True
        )
        du = _param_grads(K, dz, hs, h0, units)
        return tuple(g.astype(dtype) for g in (dz, du, dh0, dc0)) + (None,)

    @jax.custom_vjp
    def kernel(xz, u, h0, c0, mask):
        hs, c_last, cs, acts = forward(xz, u, h0, c0, mask)
        return (hs, c_last, cs, acts) if trace else (hs, c_last)

    def kernel_fwd(xz, u, h0, c0, mask):
        hs, c_last, cs, acts = forward(xz, u, h0, c0, mask)
        out = (hs, c_last, cs, acts) if trace else (hs, c_last)
        return out, (u, h0, c0, mask, hs, cs, acts)

    kernel.defvjp(kernel_fwd, backward)
    _JAX[key] = kernel
    return kernel


def _lstm_jax(xz, u, h0, c0, mask, trace):
    kernel = _jax_kernel(mask is not None, trace)
    return kernel(xz, u, h0, c0, mask)


# -- TensorFlow ----------------------------------------------------------------

_TF = {}


class _TfOps:
    def __init__(self):
        import tensorflow as tf

        self.tf = tf
        self.sigmoid = tf.sigmoid
        self.tanh = tf.tanh
        self.matmul = tf.matmul
        self.where = tf.where
        self.reshape = tf.reshape

    def split(self, x, sizes):
        return self.tf.split(x, list(sizes), axis=-1)

    def concat(self, xs):
        return self.tf.concat(xs, axis=-1)

    def concat0(self, xs):
        return self.tf.concat(xs, axis=0)

    def expand0(self, x):
        return x[None]

    def transpose2(self, x):
        return self.tf.transpose(x)


def _tf_functions(units, masked, trace, jit):
    """The forward and backward loops as ``tf.function``s (one pair per
    flavour; they retrace per new shape and dtype)."""
    key = (units, masked, trace, jit)
    if key in _TF:
        return _TF[key]
    import tensorflow as tf

    K = _TfOps()

    def forward(xz, u, h0, c0, mask):
        steps = tf.shape(xz)[0]
        xs = tf.TensorArray(xz.dtype, size=steps).unstack(xz)
        ms = tf.TensorArray(mask.dtype, size=steps).unstack(mask) if masked else None
        out = [tf.TensorArray(xz.dtype, size=steps) for _ in range(3)]

        def body(t, h_prev, c_prev, hs, cs, acts):
            h, c, s, g = _forward_step(K, units, xs.read(t) + tf.matmul(h_prev, u), c_prev)
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

    def backward(dhs, dc_last, dcs, dacts, u, h0, c0, mask, hs, cs, acts):
        dtype = dhs.dtype
        # Half-precision runs keep their gradients in float32 inside the loop.
        work = tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype
        dhs, dc_last, dcs, dacts, u, h0, c0, hs, cs, acts = [
            tf.cast(v, work) for v in (dhs, dc_last, dcs, dacts, u, h0, c0, hs, cs, acts)
        ]
        steps = tf.shape(dhs)[0]
        c_prev_seq = _shift(K, c0, cs)
        u_t = tf.transpose(u)
        seqs = [dhs, acts, cs, c_prev_seq]
        if trace:
            seqs += [dcs, dacts * _activation_derivative(K, acts, units)]
        if masked:
            seqs.append(mask)
        arrays = [tf.TensorArray(s.dtype, size=steps).unstack(s) for s in seqs]
        dzs = tf.TensorArray(dhs.dtype, size=steps)

        def body(t, dh_next, dc_next, dzs):
            k = steps - 1 - t
            dh_out, act, c, c_prev, *rest = [a.read(k) for a in arrays]
            dh = dh_next + dh_out
            dc = dc_next + rest.pop(0) if trace else dc_next
            dz, dc_prev = _backward_step(K, units, dh, dc, act, c, c_prev)
            if trace:
                dz = dz + rest.pop(0)
            if masked:
                m = rest.pop(0)
                dz = tf.where(m, dz, tf.zeros_like(dz))
                dh_prev = tf.matmul(dz, u_t) + tf.where(m, tf.zeros_like(dh), dh)
                dc_prev = tf.where(m, dc_prev, dc)
            else:
                dh_prev = tf.matmul(dz, u_t)
            return t + 1, dh_prev, dc_prev, dzs.write(k, dz)

        _, dh0, dc0, dzs = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (tf.constant(0), tf.zeros_like(h0), dc_last, dzs),
            maximum_iterations=steps,
        )
        dz = dzs.stack()
        grads = (dz, _param_grads(K, dz, hs, h0, units), dh0, dc0)
        return tuple(tf.cast(g, dtype) for g in grads)

    options = {"reduce_retracing": True, "autograph": False, "jit_compile": jit}
    pair = (tf.function(forward, **options), tf.function(backward, **options))
    _TF[key] = pair
    return pair


def _lstm_tensorflow(xz, u, h0, c0, mask, trace):
    import tensorflow as tf

    masked = mask is not None
    # XLA fuses each step into a few kernels, but compiles once per new
    # shape: worth it inside a graph (fit, predict, tf.function), not for
    # one eager call.
    jit = not tf.executing_eagerly()
    forward, backward = _tf_functions(int(u.shape[0]), masked, trace, jit)
    if not masked:
        mask = tf.zeros((0,), "bool")  # a placeholder the loops never read

    @tf.custom_gradient
    def kernel(xz, u, h0, c0):
        hs, c_last, cs, acts = forward(xz, u, h0, c0, mask)

        def grad(*cts):
            cts = [tf.zeros_like(ref) if ct is None else ct for ct, ref in zip(cts, outputs)]
            dcs = cts[2] if trace else cs[:0]
            dacts = cts[3] if trace else acts[:0]
            return backward(cts[0], cts[1], dcs, dacts, u, h0, c0, mask, hs, cs, acts)

        outputs = (hs, c_last, cs, acts) if trace else (hs, c_last)
        return outputs, grad

    return kernel(xz, u, h0, c0)


# -- PyTorch -------------------------------------------------------------------

_TORCH = {}


class _TorchOps:
    def __init__(self):
        import torch

        self.torch = torch
        self.sigmoid = torch.sigmoid
        self.tanh = torch.tanh
        self.matmul = torch.matmul
        self.where = torch.where
        self.reshape = torch.reshape

    def split(self, x, sizes):
        return self.torch.split(x, list(sizes), dim=-1)

    def concat(self, xs):
        return self.torch.cat(xs, dim=-1)

    def concat0(self, xs):
        return self.torch.cat(xs, dim=0)

    def expand0(self, x):
        return x[None]

    def transpose2(self, x):
        return x.t()


def _torch_function():
    if "fn" in _TORCH:
        return _TORCH["fn"]
    import torch

    K = _TorchOps()

    class LSTMSequence(torch.autograd.Function):
        @staticmethod
        def forward(ctx, xz, u, h0, c0, mask, trace):
            steps, batch, four = xz.shape
            units = four // 4
            hs = xz.new_empty((steps, batch, units))
            cs = xz.new_empty((steps, batch, units))
            acts = xz.new_empty((steps, batch, four))
            h_prev, c_prev = h0, c0
            for t in range(steps):
                z = torch.addmm(xz[t], h_prev, u)
                act = acts[t]
                torch.sigmoid(z[:, : 3 * units], out=act[:, : 3 * units])
                torch.tanh(z[:, 3 * units :], out=act[:, 3 * units :])
                i, f, o, g = act.split(units, dim=1)
                c = torch.addcmul(f * c_prev, i, g, out=cs[t])
                h = torch.mul(o, torch.tanh(c), out=hs[t])
                if mask is not None:
                    m = mask[t]
                    torch.where(m, h, h_prev, out=hs[t])
                    torch.where(m, c, c_prev, out=cs[t])
                    if trace:
                        act.masked_fill_(~m, 0.0)
                h_prev, c_prev = hs[t], cs[t]
            ctx.trace = trace
            ctx.save_for_backward(u, h0, c0, mask, hs, cs, acts)
            ctx.mark_non_differentiable(*(() if trace else (cs, acts)))
            return hs, c_prev.clone(), cs, acts

        @staticmethod
        def backward(ctx, dhs, dc_last, dcs, dacts):
            saved = ctx.saved_tensors
            dtype = saved[0].dtype
            # Half-precision runs keep their gradients in float32 in the loop.
            work = torch.promote_types(dtype, torch.float32)
            u, h0, c0, mask, hs, cs, acts = [
                v if v is None or v.dtype == torch.bool else v.to(work) for v in saved
            ]
            dhs, dc_last, dcs, dacts = [v.to(work) for v in (dhs, dc_last, dcs, dacts)]
            trace = ctx.trace
            steps = hs.shape[0]
            units = u.shape[0]
            c_prev_seq = _shift(K, c0, cs)
            extra = dacts * _activation_derivative(K, acts, units) if trace else None
            dz_all = torch.empty_like(acts)
            u_t = u.t()
            dh_next, dc_next = torch.zeros_like(h0), dc_last
            for t in range(steps - 1, -1, -1):
                dh = dh_next + dhs[t]
                dc = dc_next + dcs[t] if trace else dc_next
                dz, dc_prev = _backward_step(K, units, dh, dc, acts[t], cs[t], c_prev_seq[t])
                if trace:
                    dz = dz + extra[t]
                if mask is not None:
                    m = mask[t]
                    dz = dz.masked_fill(~m, 0.0)
                    dh_next = torch.addmm(dh.masked_fill(m, 0.0), dz, u_t)
                    dc_next = torch.where(m, dc_prev, dc)
                else:
                    dh_next = torch.mm(dz, u_t)
                    dc_next = dc_prev
                dz_all[t] = dz
            du = _param_grads(K, dz_all, hs, h0, units)
            grads = [g.to(dtype) for g in (dz_all, du, dh_next, dc_next)]
            return (*grads, None, None)

    _TORCH["fn"] = LSTMSequence
    return LSTMSequence


def _lstm_torch(xz, u, h0, c0, mask, trace):
    hs, c_last, cs, acts = _torch_function().apply(xz, u, h0, c0, mask, trace)
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
    import torch

    flat_xs = tree.flatten(xs)
    collected = None
    for t in range(flat_xs[0].shape[0]):
        x_t = tree.pack_sequence_as(xs, [x[t] for x in flat_xs])
        carry, ys = fn(carry, x_t)
        if collected is None:
            collected = [[] for _ in ys]
        for bucket, y in zip(collected, ys):
            bucket.append(y)
    return list(carry), [torch.stack(b, dim=0) for b in collected]
