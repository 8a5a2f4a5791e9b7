"""The JAX loops: ``jax.lax.scan`` under ``jax.custom_vjp``.

The input projection stays inside the loop and the weight gradients are
accumulated in the backward loop: on a CPU this beats one large matmul before
the loop, because the ``(time, batch, 4 * units)`` buffers that needs cost
more in memory traffic and page faults than the large matmul saves
(measured: matmuls after the loop were 1.08-1.15x slower at 128 and 256
units).  From 512 units on it is the other way round (1.3x faster at 1024
units), and the weight gradients are computed after the backward loop.
"""

from . import common

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
            h, c, s, g = common.forward_step(K, units, z, c_prev)
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
        # Small layers accumulate the weight gradients inside the loop; from
        # 512 units on, the loop only emits dz and the weight gradients are
        # one large matmul each after it (1.3x faster at B=16, H=1024, where
        # the per-step update of the (H, 4H) accumulator is memory-bound).
        after = units >= _JAX_WEIGHT_GRADS_AFTER_LOOP_UNITS
        # Transposed once, so that the weight-gradient matmuls in the loop
        # contract plain (row-major) operands.
        hs_t = None if after else jnp.swapaxes(hs, 1, 2)

        # dz @ U^T and dz @ W^T.  From 512 units on, one contraction over the
        # weights' gate axis, with no transposed copy of the weights: such a copy of U is 16 MiB at 1024 units, held through the
        # backward loop (the training step's XLA scratch at B=1, T=100,
        # H=1024: 34.7 MiB with the copy, 19.5 without).  Smaller layers
        # transpose U and W once: their recurrent matmul, one per step, was
        # 1.3x slower on a transposed operand (B=8, T=500, H=64).
        if after:

            def recurrent(dz):
                return jax.lax.dot_general(dz, u, (((dz.ndim - 1,), (1,)), ((), ())))

            def to_inputs(dz):
                return jax.lax.dot_general(dz, w, (((dz.ndim - 1,), (1,)), ((), ())))

        else:
            u_t, w_t = u.T, w.T

            def recurrent(dz):
                return dz @ u_t

            def to_inputs(dz):
                return dz @ w_t

        def dz_step(dh_next, dc_next, inputs):
            k, dh_out, act, c, *extra = inputs
            c_prev = jnp.where(k == 0, c0, cs[k - 1])
            step = (dh_out, act, c, c_prev, extra)
            return common.backward_through_step(
                K, units, (dh_next, dc_next), step, recurrent, trace, masked
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
            return carry, to_inputs(dz)

        xs = [jnp.arange(x.shape[0]), cts[0], acts, cs]
        if trace:
            xs += [cts[2], cts[3] * common.activation_derivative(K, acts, units)]
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
            dx = to_inputs(dz)
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


def lstm_sequence(x, w, b, u, h0, c0, mask, trace):
    return _jax_kernel(mask is not None, trace)(x, w, b, u, h0, c0, mask)


def scan(fn, carry, xs, num_ys):
    import jax

    def body(c, x):
        new_c, ys = fn(list(c), x)
        return tuple(new_c), tuple(ys)

    final, ys = jax.lax.scan(body, tuple(carry), xs)
    return list(final), list(ys)
