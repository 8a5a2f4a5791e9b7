"""The JAX loops: ``jax.lax.scan`` under ``jax.custom_vjp``.

The input projection stays inside the loop: on a CPU this beats one large
matmul before the loop, because the ``(time, batch, 4 * units)`` buffers
that needs cost more in memory traffic and page faults than the large matmul
saves.

The weights come in as the gates' own arrays, and their gradients go out the
same way.  How a loop multiplies by them depends on the shapes, which JAX
knows when it traces (see :func:`.common.block_count`):

* joined, for one matmul per step, when the sequence has many rows (steps *
  batch) for the size of the weights.  The backward loop then accumulates
  the weight gradients inside it (matmuls after the loop were 1.08-1.15x
  slower there).
* gate by gate otherwise, so that the step's scratch memory holds no joined
  copy of the weights or of their gradients (16 MiB each at 1024 units).
  The backward loop then only carries ``dh`` and ``dc`` and emits ``dz``,
  and each weight gradient is one large matmul after it: with four gates,
  accumulating inside took 1.6-2.4x as long at B = 1 and 16, H = 256.
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


def _jax_kernel(masked, trace):
    key = (masked, trace)
    if key in _JAX:
        return _JAX[key]
    import jax

    K = _JaxOps()
    jnp = K.jnp

    def blocks_of(x, us, training):
        # Symbolic dimensions (jax.export, jax2tf in a SavedModel) are not
        # ints; block_count then needs no comparison of them.
        return common.block_count(us[0].shape[0], *x.shape, training=training)

    def forward(x, ws, bs, us, h0, c0, mask, save, blocks):
        units = us[0].shape[0]
        w, b, u = (common.weight_blocks(K, p, blocks) for p in (ws, bs, us))

        def body(carry, inputs):
            h_prev, c_prev = carry
            x_t = inputs[0] if masked else inputs
            zs = [x_t @ wj + h_prev @ uj + bj for wj, uj, bj in zip(w, u, b)]
            h, c, acts = common.forward_step(K, common.parts_of(K, zs, units), c_prev)
            if masked:
                m = inputs[1]
                h = jnp.where(m, h, h_prev)
                c = jnp.where(m, c, c_prev)
            if not save:
                return (h, c), h
            if masked and trace:
                acts = [jnp.where(m, a, 0.0) for a in acts]
            return (h, c), (h, c, tuple(acts))

        xs = (x, mask) if masked else x
        (_, c_last), ys = jax.lax.scan(body, (h0, c0), xs)
        return c_last, ys

    @jax.custom_vjp
    def kernel(x, ws, bs, us, h0, c0, mask):
        blocks = blocks_of(x, us, training=False)
        if trace:
            c_last, (hs, cs, acts) = forward(x, ws, bs, us, h0, c0, mask, True, blocks)
            return hs, c_last, cs, acts
        c_last, hs = forward(x, ws, bs, us, h0, c0, mask, False, blocks)
        return hs, c_last

    def kernel_fwd(x, ws, bs, us, h0, c0, mask):
        blocks = blocks_of(x, us, training=True)
        c_last, (hs, cs, acts) = forward(x, ws, bs, us, h0, c0, mask, True, blocks)
        out = (hs, c_last, cs, acts) if trace else (hs, c_last)
        return out, (x, ws, us, h0, c0, mask, hs, cs, acts)

    def backward(res, cts):
        x, ws, us, h0, c0, mask, hs, cs, acts = res
        dtype = x.dtype
        # Half-precision runs keep their gradients in float32 inside the loop.
        work = jnp.promote_types(dtype, jnp.float32)
        res = jax.tree_util.tree_map(lambda r: r if r.dtype == bool else r.astype(work), res)
        x, ws, us, h0, c0, mask, hs, cs, acts = res
        cts = jax.tree_util.tree_map(lambda ct: ct.astype(work), cts)
        units = us[0].shape[0]
        blocks = blocks_of(x, us, training=True)
        w, u = common.weight_blocks(K, ws, blocks), common.weight_blocks(K, us, blocks)
        # Joined weights: the weight gradients are accumulated inside the
        # loop.  Gate by gate: the loop only emits dz, and the weight
        # gradients are one large matmul each after it.
        after = blocks > 1
        # Transposed once, so that the weight-gradient matmuls in the loop
        # contract plain (row-major) operands.
        hs_t = None if after else jnp.swapaxes(hs, 1, 2)

        # dz @ U^T and dz @ W^T.  Weights multiplied gate by gate are
        # contracted over their gate axis as they are, with no transposed
        # copy (one of U is 16 MiB at 1024 units, held through the backward
        # loop).  A joined block is transposed once: its recurrent matmul,
        # one per step, was 1.3x slower on a transposed operand (B=8, T=500,
        # H=64).
        if blocks == 1:
            u_t, w_t = [u[0].T], [w[0].T]

            def times_transposed(dzb, _, transposed):
                return dzb @ transposed

        else:
            u_t = w_t = [None] * blocks

            def times_transposed(dzb, weight, _):
                return jax.lax.dot_general(dzb, weight, (((dzb.ndim - 1,), (1,)), ((), ())))

        def product(dzb, weights, transposed):
            """``sum_j dz_j W_j^T`` over the blocks ``dzb`` of dz."""
            terms = [times_transposed(d, m, t) for d, m, t in zip(dzb, weights, transposed)]
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            return total

        def recurrent(dzs):
            return product(common.weight_blocks(K, dzs, blocks), u, u_t)

        def dz_step(dh_next, dc_next, inputs):
            k, dh_out, act, c, *extra = inputs
            c_prev = jnp.where(k == 0, c0, cs[k - 1])
            step = (dh_out, list(act), c, c_prev, extra)
            return common.backward_through_step(
                K, (dh_next, dc_next), step, recurrent, trace, masked
            )

        def body_after(carry, inputs):
            dzs, dh_prev, dc_prev = dz_step(*carry, inputs)
            return (dh_prev, dc_prev), tuple(common.weight_blocks(K, dzs, blocks))

        def body_inside(carry, inputs):
            # Joined weights only: one block, one dz of width 4 * units.
            dh_next, dc_next, dw, du, db = carry
            x_t, inputs = inputs[0], inputs[1:]
            k = inputs[0]
            h_prev_t = jnp.where(k == 0, h0.T, hs_t[k - 1])
            dzs, dh_prev, dc_prev = dz_step(dh_next, dc_next, inputs)
            dz = K.concat(dzs)
            carry = (dh_prev, dc_prev, dw + x_t @ dz, du + h_prev_t @ dz, db + dz.sum(0))
            return carry, dz @ w_t[0]

        xs = [jnp.arange(x.shape[0]), cts[0], acts, cs]
        if trace:
            xs += [
                cts[2],
                tuple(d * a for d, a in zip(cts[3], common.activation_derivatives(acts))),
            ]
        if masked:
            xs.append(mask)
        if after:
            (dh0, dc0), dz = jax.lax.scan(
                body_after, (jnp.zeros_like(h0), cts[1]), tuple(xs), reverse=True
            )
            # sum_t h_{t-1}^T dz_t, with the smaller of two scratch buffers: a
            # copy of the previous states shifted by one step (time * batch
            # * units), or an (units, units) term for h0 added to the rest.
            rows = x.shape[0] * x.shape[1]
            if isinstance(rows, int) and rows <= units:
                h_prev = jnp.concatenate([h0[None], hs[:-1]])
                du = [jnp.einsum("tbh,tbg->hg", h_prev, d) for d in dz]
            else:
                du = [h0.T @ d[0] + jnp.einsum("tbh,tbg->hg", hs[:-1], d[1:]) for d in dz]
            dw = [jnp.einsum("tbd,tbg->dg", x, d) for d in dz]
            db = [d.sum((0, 1)) for d in dz]
            dx = product(dz, w, w_t)
        else:
            init = (
                jnp.zeros_like(h0),
                cts[1],
                jnp.zeros_like(w[0]),
                jnp.zeros_like(u[0]),
                jnp.zeros(w[0].shape[-1:], work),
            )
            xs = [jnp.swapaxes(x, 1, 2), *xs]
            (dh0, dc0, *joined), dx = jax.lax.scan(body_inside, init, tuple(xs), reverse=True)
            dw, du, db = ([g] for g in joined)
        dws, dbs, dus = (tuple(common.parts_of(K, g, units)) for g in (dw, db, du))
        grads = (dx, dws, dbs, dus, dh0, dc0)
        return jax.tree_util.tree_map(lambda g: g.astype(dtype), grads) + (None,)

    kernel.defvjp(kernel_fwd, backward)
    _JAX[key] = kernel
    return kernel


def lstm_sequence(x, ws, bs, us, h0, c0, mask, trace, sequences=True):
    out = _jax_kernel(mask is not None, trace)(x, tuple(ws), tuple(bs), tuple(us), h0, c0, mask)
    # The last step's h is a slice: XLA never makes the zero cotangent of the
    # other steps, as TensorFlow would.
    hs = out[0].swapaxes(0, 1) if sequences else out[0][-1]
    return (hs, out[1]) if not trace else (hs, *out[1:3], list(out[3]))


def scan(fn, carry, xs, num_ys):
    import jax

    def body(c, x):
        new_c, ys = fn(list(c), x)
        return tuple(new_c), tuple(ys)

    final, ys = jax.lax.scan(body, tuple(carry), xs)
    return list(final), list(ys)
