"""The JAX loops: ``jax.lax.scan`` under ``jax.custom_vjp``.

The input projection stays inside the loop: on a CPU this beats one large
matmul before the loop, because the ``(time, batch, 4 * units)`` buffers
that needs cost more in memory traffic than the large matmul saves.

The weights come in as the parts' own arrays, and their gradients go out
the same way.  How a loop multiplies by them depends on the shapes, which
JAX knows when it traces (see :func:`.common.block_count`):

* joined, for one matmul per step, when the sequence has many rows (steps *
  batch) for the size of the weights.  The backward loop then accumulates
  the weight gradients inside it.
* part by part otherwise, so that the step's scratch memory holds no joined
  copy of the weights or of their gradients.  The backward loop then only
  carries ``dh`` and ``dc`` and emits ``dz``, and each weight gradient is one
  large matmul after it.
"""

from .. import compat
from ..parts import PARTS
from . import common

_LOOPS = {}


def _fused_loop(cell, masked, return_gates):
    """The custom-vjp sequence function.  A plain cell's step reads no
    weight and depends on nothing but the activations that
    ``plain_lstm_reason`` fixes, so every plain cell shares one."""
    key = (masked, return_gates)
    if key in _LOOPS:
        return _LOOPS[key]
    import jax
    import jax.numpy as jnp

    def blocks_of(x, us, training):
        # Symbolic dimensions (jax.export, jax2tf in a SavedModel) are not
        # ints; block_count then compares none of them.
        return common.block_count(us[0].shape[0], *x.shape, training=training)

    def forward(x, ws, bs, us, h0, c0, mask, keep, blocks):
        units = us[0].shape[0]
        w, b, u = (common.weight_blocks(p, blocks) for p in (ws, bs, us))

        def body(carry, inputs):
            h_prev, c_prev = carry
            x_t = inputs[0] if masked else inputs
            zs = [x_t @ wj + h_prev @ uj + bj for wj, uj, bj in zip(w, u, b)]
            h, c, values = common.forward_step(cell, zs, c_prev, units)
            if masked:
                m = inputs[1]
                h = jnp.where(m, h, h_prev)
                c = jnp.where(m, c, c_prev)
            if not keep:
                return (h, c), h
            return (h, c), (h, c, tuple(values))

        xs = (x, mask) if masked else x
        (_, c_last), ys = jax.lax.scan(body, (h0, c0), xs)
        return c_last, ys

    @jax.custom_vjp
    def sequence(x, ws, bs, us, h0, c0, mask):
        blocks = blocks_of(x, us, training=False)
        if return_gates:
            c_last, (hs, cs, values) = forward(x, ws, bs, us, h0, c0, mask, True, blocks)
            return hs, c_last, cs, values
        c_last, hs = forward(x, ws, bs, us, h0, c0, mask, False, blocks)
        return hs, c_last

    def sequence_fwd(x, ws, bs, us, h0, c0, mask):
        blocks = blocks_of(x, us, training=True)
        c_last, (hs, cs, values) = forward(x, ws, bs, us, h0, c0, mask, True, blocks)
        out = (hs, c_last, cs, values) if return_gates else (hs, c_last)
        return out, (x, ws, us, h0, c0, mask, hs, cs, values)

    def backward(res, cts):
        x, ws, us, h0, c0, mask, hs, cs, values = res
        dtype = x.dtype
        # Half-precision runs keep their gradients in float32 inside the loop.
        work = jnp.promote_types(dtype, jnp.float32)
        res = jax.tree_util.tree_map(lambda r: r if r.dtype == bool else r.astype(work), res)
        x, ws, us, h0, c0, mask, hs, cs, values = res
        cts = jax.tree_util.tree_map(lambda ct: ct.astype(work), cts)
        units = us[0].shape[0]
        blocks = blocks_of(x, us, training=True)
        w, u = common.weight_blocks(ws, blocks), common.weight_blocks(us, blocks)
        # Joined weights: the weight gradients are accumulated inside the
        # loop.  Part by part: the loop only emits dz, and the weight
        # gradients are one large matmul each after it.
        after = blocks > 1
        # Transposed once, so that the weight-gradient matmuls in the loop
        # contract plain (row-major) operands.
        hs_t = None if after else jnp.swapaxes(hs, 1, 2)

        # dz @ W_h^T and dz @ W_x^T.  Weights taken part by part are
        # contracted over their part axis as they are, with no transposed
        # copy held through the loop; a joined block is transposed once,
        # since its recurrent matmul, one per step, is slower on a
        # transposed operand.
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

        def recurrent(dz):
            return product(common.weight_blocks(dz, blocks), u, u_t)

        def dz_step(dh_next, dc_next, inputs):
            k, dh_out, value, c, *extra = inputs
            c_prev = jnp.where(k == 0, c0, cs[k - 1])
            factors = cell.step_derivatives(dict(zip(PARTS, value)), c, c_prev)
            return common.backward_step(
                cell, (dh_next, dc_next), (dh_out, factors, extra), recurrent, return_gates, masked
            )

        def body_after(carry, inputs):
            dz, dh_prev, dc_prev = dz_step(*carry, inputs)
            return (dh_prev, dc_prev), tuple(common.weight_blocks(dz, blocks))

        def body_inside(carry, inputs):
            # Joined weights only: one block, one dz of width 4 * units.
            dh_next, dc_next, dw, du, db = carry
            x_t, inputs = inputs[0], inputs[1:]
            k = inputs[0]
            h_prev_t = jnp.where(k == 0, h0.T, hs_t[k - 1])
            dz, dh_prev, dc_prev = dz_step(dh_next, dc_next, inputs)
            dz = jnp.concatenate(dz, axis=-1)
            carry = (dh_prev, dc_prev, dw + x_t @ dz, du + h_prev_t @ dz, db + dz.sum(0))
            return carry, dz @ w_t[0]

        xs = [jnp.arange(x.shape[0]), cts[0], values, cs]
        if return_gates:
            derivatives = common.value_derivatives(cell, values)
            xs += [cts[2], tuple(d * a for d, a in zip(cts[3], derivatives))]
        if masked:
            xs.append(mask)
        if after:
            (dh0, dc0), dz = jax.lax.scan(
                body_after, (jnp.zeros_like(h0), cts[1]), tuple(xs), reverse=True
            )
            # sum_t h_(t-1)^T dz_t, with the smaller of two scratch buffers: a
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
        dws, dbs, dus = (tuple(common.per_part(g, units)) for g in (dw, db, du))
        grads = (dx, dws, dbs, dus, dh0, dc0)
        return jax.tree_util.tree_map(lambda g: g.astype(dtype), grads) + (None,)

    sequence.defvjp(sequence_fwd, backward)
    _LOOPS[key] = sequence
    return sequence


def fused_sequence(cell, x, ws, bs, us, h0, c0, mask, return_gates, return_sequences):
    out = _fused_loop(cell, mask is not None, return_gates)(
        x, tuple(ws), tuple(bs), tuple(us), h0, c0, mask
    )
    # The last step's h is a slice: XLA never makes the zero cotangent of the
    # other steps.
    hs = batch_major(out[0]) if return_sequences else out[0][-1]
    return (hs, out[1]) if not return_gates else (hs, out[1], out[2], list(out[3]))


def batch_major(sequence):
    """See :func:`keras_lstm_gates.loops.batch_major`."""
    import jax.numpy as jnp

    if compat.jax2onnx_converting():
        # jax2onnx drops a transpose of a scan's outputs of known length (the
        # file then outputs them time major, or names an output that no node
        # makes); the same transpose written as an einsum stays.
        return jnp.einsum("tb...->bt...", sequence)
    return jnp.swapaxes(sequence, 0, 1)


def scan(fn, carry, xs, num_ys):
    import jax

    def body(c, x):
        new_c, ys = fn(list(c), x)
        return tuple(new_c), tuple(ys)

    final, ys = jax.lax.scan(body, tuple(carry), xs)
    return list(final), list(ys)
