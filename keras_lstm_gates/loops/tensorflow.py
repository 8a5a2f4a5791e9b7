"""The TensorFlow loops: ``tf.while_loop`` under ``tf.custom_gradient``.

The loops are ``tf.function``s that are XLA-compiled when called from a
graph (``fit``, ``predict``, any ``tf.function``) and plain when called
eagerly, so that an eager call does not pay one compilation per new shape.
Large layers run the forward loop without XLA (see
:data:`XLA_FORWARD_MAX_UNITS`).  With no tape recording (``predict``,
``evaluate``) the forward loop keeps only what the layer returns, and a
layer that returns only its last output keeps no sequence of ``h`` for the
backward loop, which recomputes it.

An XLA-compiled loop multiplies by each part's weights apart from
:data:`~.common.SEPARATE_BLOCKS_MIN_UNITS` on, as the JAX loops do.  A plain
loop, where every op is one dispatch, joins them: four matmuls per step
instead of one cost more there than the joined copy, and that copy does not
raise the training step's peak, since the backward loop holds the weights'
gradients, as large as it, and more.
"""

from keras import tree

from .. import compat, parts
from ..parts import PARTS
from . import common

_LOOPS = {}
# From this size on the forward loop's step is a few large matmuls, which
# TensorFlow's own (oneDNN) kernels run faster than XLA's; the backward
# loop gains from XLA at every size.
XLA_FORWARD_MAX_UNITS = 768


def _length(tf, sequence):
    """The number of steps of a time-major ``sequence``: a Python int when
    the graph knows it, else a tensor.

    A known length enters the loops as a constant of their own: as one
    tensor used both as the trip count and inside the loop's condition,
    tf2onnx gives the ONNX ``Loop`` an int64 constant where its body expects
    int32, and onnxruntime refuses the file.
    """
    steps = sequence.shape[0]
    return int(steps) if steps is not None else tf.shape(sequence)[0]


def forward_loop(cell, x, weights, h0, c0, mask, keep_values, blocks, keep_h, keras_step=False):
    """The forward ``tf.while_loop``: ``(hs, h_last, c_last, cs, values)``.

    ``weights`` is ``(kernels, biases, recurrent_kernels)``, one array per
    part each; ``blocks`` how the loop multiplies by them (see
    :func:`.common.weight_blocks`); ``keras_step`` writes a joined step as
    Keras's LSTM does, for tf2onnx.  ``hs`` is every step's ``h``, batch
    major or time major as ``keep_h`` says (``None`` when ``keep_h`` is
    ``None``); ``cs`` and ``values`` (the list ``[i, f, c~, o]``) are time
    major, or ``None`` unless ``keep_values``.

    Every ``TensorArray`` has its element shape (batch, width) from the
    start: an array of unknown element shape is reserved with an unranked
    shape, which TFLite's tensor-list lowering mis-sizes (the interpreter then
    returns one array's buffer as another's).
    """
    import tensorflow as tf

    steps = _length(tf, x)
    batch = x.shape[1]
    units = h0.shape[-1]
    w, b, u = (common.weight_blocks(p, blocks) for p in weights)
    masked = mask is not None

    def unstack(seq):
        array = tf.TensorArray(seq.dtype, size=steps, element_shape=seq.shape[1:])
        return array.unstack(seq)

    xs = unstack(x)
    ms = unstack(mask) if masked else None
    # h (when kept), then (when kept) c and the four part values.
    count = (keep_h is not None) + (1 + len(PARTS) if keep_values else 0)
    out = [tf.TensorArray(x.dtype, size=steps, element_shape=(batch, units)) for _ in range(count)]

    def body(t, h_prev, c_prev, arrays):
        x_t = xs.read(t)
        if keras_step and len(w) == 1:
            # BiasAdd, then one Split: the step of Keras's LSTM as tf2onnx
            # finds it (rewriter/lstm_tf2_rewriter.py) and makes ONNX's LSTM.
            # (Under XLA, slices run faster at small batches.)
            z = tf.nn.bias_add(tf.matmul(x_t, w[0]) + tf.matmul(h_prev, u[0]), b[0])
            zs = tf.split(z, len(PARTS), axis=-1)
        else:
            zs = [tf.matmul(x_t, wj) + tf.matmul(h_prev, uj) + bj for wj, uj, bj in zip(w, u, b)]
        h, c, values = common.forward_step(cell, zs, c_prev, units)
        if masked:
            m = ms.read(t)
            h = tf.where(m, h, h_prev)
            c = tf.where(m, c, c_prev)
        kept = ([h] if keep_h is not None else []) + ([c, *values] if keep_values else [])
        return t + 1, h, c, [a.write(t, v) for a, v in zip(arrays, kept)]

    _, h_last, c_last, out = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), h0, c0, out),
        maximum_iterations=steps,
    )
    stacked = [a.stack() for a in out]
    hs = None
    if keep_h is not None:
        hs = stacked.pop(0)
        if keep_h == "batch_major":
            hs = tf.transpose(hs, (1, 0, 2))
    if not keep_values:
        return hs, h_last, c_last, None, None
    return hs, h_last, c_last, stacked[0], stacked[1:]


class _FusedLoops:
    """The loops of one configuration, as ``tf.function``s (they retrace
    per new shape and dtype): ``forward`` keeps what the backward loop
    needs, ``infer`` only what the layer returns, ``backward`` is the
    hand-written gradient.

    With ``return_sequences`` the layer outputs every step's ``h``, which
    the forward loop returns batch major and the backward loop takes a
    cotangent of.  Without it only the last ``h`` leaves the loop, and no
    cotangent of the whole sequence is ever made.  Unmasked, the backward
    loop reads no ``h``: it recomputes ``h_(t-1) = o_(t-1) tanh(c_(t-1))``
    from what it reads anyway, so that neither the output nor a copy of it
    is held through the backward pass.  A masked loop reads every ``h`` (a
    masked step carries an older one): the output with
    ``return_sequences``, else a time-major sequence that the forward loop
    keeps.
    """

    def __init__(self, cell, units, masked, return_gates, return_sequences, jit):
        import tensorflow as tf

        self.cell, self.units, self.masked = cell, units, masked
        self.return_gates, self.return_sequences = return_gates, return_sequences
        self.jit_forward = jit and units <= XLA_FORWARD_MAX_UNITS
        self.forward_blocks = common.block_count(units) if self.jit_forward else 1
        self.blocks = common.block_count(units) if jit else 1
        self.keep_h = "batch_major" if return_sequences else ("time_major" if masked else None)
        options = {"reduce_retracing": True, "autograph": False}
        self.forward = tf.function(self._forward, jit_compile=self.jit_forward, **options)
        self.infer = tf.function(self._infer, jit_compile=self.jit_forward, **options)
        self.backward = tf.function(self._backward, jit_compile=jit, **options)
        # Inside a graph, functions traced at each shape they meet (a relaxed
        # trace, with unknown dimensions, makes a slower loop), shared by
        # every call site of that shape.
        exact = {"reduce_retracing": False, "autograph": False}
        self.graph_forward = tf.function(self._forward, jit_compile=self.jit_forward, **exact)
        self.graph_infer = tf.function(self._infer, jit_compile=self.jit_forward, **exact)

    def _forward(self, x, weights, h0, c0, mask):
        return forward_loop(
            self.cell, x, weights, h0, c0, mask, True, self.forward_blocks, self.keep_h
        )

    def _infer(self, x, weights, h0, c0, mask):
        keep_h = "batch_major" if self.return_sequences else None
        return forward_loop(
            self.cell, x, weights, h0, c0, mask, self.return_gates, self.forward_blocks, keep_h
        )

    def _backward(self, cts, x, weights, h0, c0, mask, hs, cs, values):
        """``cts`` is ``(dh_out, dc_last, dcs, dvalues)``: ``dh_out`` the
        cotangent of every ``h`` (batch major) with ``return_sequences``,
        else of the last.  ``hs`` is what the forward loop kept of ``h`` when
        masked, else ``None``.  Returns ``[dx, dw, db, du, dh0, dc0]``, each
        weight gradient as the loop's blocks (see
        :func:`.common.weight_blocks`)."""
        import tensorflow as tf

        cell, blocks, masked = self.cell, self.blocks, self.masked
        return_gates, sequences = self.return_gates, self.return_sequences
        dh_out, dc_last, dcs, dvalues = cts
        dtype = dh_out.dtype
        # Half-precision runs keep their gradients in float32 inside the loop.
        work = tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype

        def cast(v):
            return None if v is None else tf.cast(v, work)

        dh_out, dc_last, dcs, x, h0, c0, hs, cs = map(
            cast, (dh_out, dc_last, dcs, x, h0, c0, hs, cs)
        )
        values, dvalues = [[cast(v) for v in vs] for vs in (values, dvalues)]
        ws, _, us = weights
        w = common.weight_blocks([cast(v) for v in ws], blocks)
        u = common.weight_blocks([cast(v) for v in us], blocks)
        steps = tf.shape(x)[0]
        # Indexed in place (a dynamic slice under XLA), not unstacked into
        # TensorArrays, which would copy every sequence once more.  hs and
        # its cotangent are batch major (the layer's output layout).
        if return_gates:
            derivatives = common.value_derivatives(cell, values)
            dvalues = [d * a for d, a in zip(dvalues, derivatives)]
        dxs = tf.TensorArray(work, size=steps)

        def recurrent(dz):
            dzb = common.weight_blocks(dz, blocks)
            return tf.add_n([tf.matmul(d, m, transpose_b=True) for d, m in zip(dzb, u)])

        def kept_h(prev):
            if hs is None:
                return cell.hidden_state(values[PARTS.index("output_gate")][prev], cs[prev])
            return hs[:, prev] if self.keep_h == "batch_major" else hs[prev]

        def body(t, dh_next, dc_next, dw, du, db, dxs):
            k = steps - 1 - t
            first = k == 0
            prev = tf.maximum(k - 1, 0)
            h_prev = tf.where(first, h0, kept_h(prev))
            c_prev = tf.where(first, c0, cs[prev])
            extra = []
            if return_gates:
                extra += [dcs[k], [d[k] for d in dvalues]]
            if masked:
                extra.append(mask[k])
            factors = cell.step_derivatives({n: v[k] for n, v in zip(PARTS, values)}, cs[k], c_prev)
            dz, dh_prev, dc_prev = common.backward_step(
                cell,
                (dh_next, dc_next),
                (dh_out[:, k] if sequences else 0.0, factors, extra),
                recurrent,
                return_gates,
                masked,
            )
            dzb = common.weight_blocks(dz, blocks)
            dx = tf.add_n([tf.matmul(d, m, transpose_b=True) for d, m in zip(dzb, w)])
            x_t = x[k]
            return (
                t + 1,
                dh_prev,
                dc_prev,
                [a + tf.matmul(x_t, d, transpose_a=True) for a, d in zip(dw, dzb)],
                _accumulate_one_at_a_time(du, h_prev, dzb),
                [a + tf.reduce_sum(d, axis=0) for a, d in zip(db, dzb)],
                dxs.write(k, dx),
            )

        init = (
            tf.constant(0),
            tf.zeros_like(h0) if sequences else dh_out,
            dc_last,
            [tf.zeros_like(a) for a in w],
            [tf.zeros_like(a) for a in u],
            [tf.zeros(tf.shape(a)[-1:], work) for a in w],
            dxs,
        )
        _, dh0, dc0, dw, du, db, dxs = tf.while_loop(
            lambda t, *_: t < steps, body, init, maximum_iterations=steps
        )
        # The weights' gradients leave joined (when the loop joins them) and
        # are split by the caller, outside XLA: a split inside would hold
        # each gradient twice, as the accumulator and as its slices.
        grads = [[tf.cast(g, dtype) for g in gs] for gs in (dw, db, du)]
        return [tf.cast(dxs.stack(), dtype), *grads, tf.cast(dh0, dtype), tf.cast(dc0, dtype)]


def _accumulate_one_at_a_time(accumulators, h_prev, dzb):
    """``acc_j + h_prev^T dz_j`` for every block, one block after another.

    XLA would run the blocks' matmuls first and add afterwards, with every
    (units, units) product alive at once.  Each product's operand takes a
    zero-valued dependency on the previous block's sum (``0 * x`` is not
    simplified away for floats), so that only one product is alive at a
    time.
    """
    import tensorflow as tf

    out = []
    for a, d in zip(accumulators, dzb):
        if out:
            h_prev = h_prev + 0.0 * out[-1][0, 0]
        out.append(a + tf.matmul(h_prev, d, transpose_a=True))
    return out


def _loops(cell, units, masked, return_gates, return_sequences, jit):
    """The :class:`_FusedLoops` of a configuration.  A plain cell's step
    reads no weight and depends on nothing but the activations that
    ``plain_lstm_reason`` fixes, so every plain cell shares them."""
    key = (units, masked, return_gates, return_sequences, jit)
    if key not in _LOOPS:
        _LOOPS[key] = _FusedLoops(cell, units, masked, return_gates, return_sequences, jit)
    return _LOOPS[key]


def check_tflite_batch(batch):
    """Warn, with the options to change, when TensorFlow Lite converts to
    builtin ops a loop over a batch of unknown size.

    TFLite's builtin ops reserve a loop's tensor lists with a known
    element shape, so that conversion fails at ``TensorListReserve``, for
    keras.layers.LSTM as for a klg loop that collects every step, with no
    hint of the cause (the caller checks only such loops: one that keeps
    only its last step reserves no list and converts).  A warning
    rather than an error: the converter catches errors raised while it
    traces and retries another way, which then fails with an unrelated
    ``TypeError``.  With TensorFlow ops allowed (``SELECT_TF_OPS``) the
    conversion works and nothing is said.
    """
    import warnings

    import tensorflow as tf

    if batch is not None or tf.executing_eagerly():
        return
    converter = compat.tflite_converter()
    if converter is None:
        return
    if tf.lite.OpsSet.SELECT_TF_OPS in set(converter.target_spec.supported_ops):
        return
    warnings.warn(
        "klg.LSTM: TensorFlow Lite's builtin ops cannot run this LSTM over a batch of "
        "unknown size, and the conversion will fail at TensorListReserve (as it does for "
        "keras.layers.LSTM). Fix the batch size, e.g. keras.Input((timesteps, features), "
        "batch_size=1), or allow TensorFlow ops: converter.target_spec.supported_ops = "
        "[tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]. (A klg.LSTM with "
        "return_sequences=False and return_gates=False converts with any batch.)",
        stacklevel=2,
    )


def tflite_lstm(cell, x, kernel, recurrent_kernel, bias, h0, c0):
    """The LSTM over a time-major sequence as the composite function that
    TensorFlow Lite's converter replaces by its fused
    ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op: the interface of Keras 2's LSTM,
    which the converter recognises by the function's ``api_implements``
    attribute (``"lstm_<id>"``), with a time-major input, the op's kernel
    (D, 4H), recurrent kernel (H, 4H) and bias (4H,)
    (:func:`keras_lstm_gates.fused_op.op_weights`), and five results.  The
    converter keeps only the first two of them (the last output and every
    output); the body, :func:`forward_loop` of ``cell``, runs wherever the
    function is not replaced.  Returns ``(hs, h_last)``, ``hs`` time major.
    """
    import uuid

    import tensorflow as tf

    units = int(recurrent_kernel.shape[0])

    def lstm(x, h0, c0, kernel, recurrent_kernel, bias):
        weights = tuple(
            list(parts.split(w, units).values()) for w in (kernel, bias, recurrent_kernel)
        )
        hs, h_last, c_last, _, _ = forward_loop(
            cell, x, weights, h0, c0, None, False, 1, "time_major"
        )
        return h_last, hs, h_last, c_last, tf.constant(0.0, x.dtype)

    attributes = {
        "api_implements": f"lstm_{uuid.uuid4()}",
        "api_preferred_device": "CPU",
        "time_major": True,
        "go_backwards": False,
    }
    function = tf.function(lstm, experimental_attributes=attributes, autograph=False)
    h_last, hs, _, _, _ = function(x, h0, c0, kernel, recurrent_kernel, bias)
    return hs, h_last


def fused_sequence(cell, x, ws, bs, us, h0, c0, mask, return_gates, return_sequences):
    import tensorflow as tf

    masked = mask is not None
    # Reads of the variables: a tf.Variable used inside the custom gradient
    # would need a gradient of its own.
    weights = tuple([tf.convert_to_tensor(v) for v in p] for p in (ws, bs, us))
    units = int(weights[2][0].shape[0])
    graph = not tf.executing_eagerly()
    if graph and compat.tf_graph_is_exported():
        # The plain loop, inline in the caller's graph, with no custom
        # gradient: the graph any converter reads and any runtime serves (an
        # XLA-compiled function stays a call that converters cannot read).
        keep_h = "batch_major" if return_sequences else None
        if keep_h is None and compat.tf2onnx_converting():
            # tf2onnx makes ONNX's LSTM of a loop that collects every h, as
            # Keras's does.
            keep_h = "time_major"
        hs, h_last, c_last, cs, values = forward_loop(
            cell, x, weights, h0, c0, mask, return_gates, 1, keep_h, keras_step=True
        )
        first = hs if return_sequences else h_last
        return (first, c_last, cs, values) if return_gates else (first, c_last)
    # XLA fuses each step into a few kernels, but compiles once per new
    # shape: worth it inside a graph, not for one eager call.  A persistent
    # tape, or tapes inside tapes, may take gradients of the gradient:
    # TensorFlow then asks every function traced under them for its
    # intermediates, which an XLA-compiled loop cannot hand out (its
    # TensorLists stay inside XLA), so such calls get the plain loops.  So
    # does a graph traced for a length it does not know (Keras traces its
    # train and predict functions so once lengths vary): XLA would compile
    # again for every length that runs, where the plain loop's graph serves
    # them all (measured on the Performance page, "Sequences of every length").
    jit = (
        graph
        and x.shape[0] is not None
        and not compat.tf_higher_order_possible(x, *weights[0], *weights[2])
    )
    loops = _loops(cell, units, masked, return_gates, return_sequences, jit)
    # One function per configuration, shared by every call site (both
    # directions of a Bidirectional): one trace and one XLA compilation per
    # shape.  Exported graphs, whose converters cannot lower two calls of one
    # function, returned above with the inline loop.
    forward, infer = (
        (loops.graph_forward, loops.graph_infer) if graph else (loops.forward, loops.infer)
    )
    # With no tape recording (predict, evaluate, a call outside any
    # GradientTape) the loop keeps only what the layer returns.  Should a
    # function traced so be differentiated later, its gradient runs the
    # forward loop again, keeping what the backward loop needs.
    recording = compat.tf_tape_recording()
    n = len(PARTS)

    @tf.custom_gradient
    def sequence(x, *args):
        weights = (args[:n], args[n : 2 * n], args[2 * n : 3 * n])
        h0, c0 = args[3 * n :]
        run = forward if recording else infer
        hs, h_last, c_last, cs, values = run(x, weights, h0, c0, mask)
        first = hs if return_sequences else h_last
        outputs = (first, c_last, cs, *values) if return_gates else (first, c_last)

        def grad(*cts):
            kept_hs, kept_cs, kept_values = hs, cs, values
            if not recording:
                kept_hs, _, _, kept_cs, kept_values = forward(x, weights, h0, c0, mask)
            if not masked:
                # Each h_(t-1) is recomputed from what the backward loop reads
                # anyway, so that the sequence of h (the layer's output) is
                # not held through the backward pass.
                kept_hs = None
            cts = [tf.zeros_like(ref) if ct is None else ct for ct, ref in zip(cts, outputs)]
            dcs = cts[2] if return_gates else kept_cs[:0]
            dvalues = cts[3:] if return_gates else [v[:0] for v in kept_values]
            dx, *blocks, dh0, dc0 = loops.backward(
                (cts[0], cts[1], dcs, dvalues),
                x,
                weights,
                h0,
                c0,
                mask,
                kept_hs,
                kept_cs,
                kept_values,
            )
            dws, dbs, dus = (common.per_part(list(g), units) for g in blocks)
            return [dx, *dws, *dbs, *dus, dh0, dc0]

        return outputs, grad

    out = sequence(x, *weights[0], *weights[1], *weights[2], h0, c0)
    return (*out[:3], list(out[3:])) if return_gates else tuple(out)


def scan(fn, carry, xs, num_ys):
    import tensorflow as tf

    flat_xs = tree.flatten(xs)
    steps = _length(tf, flat_xs[0])
    dtype = carry[0].dtype
    shapes = [c.shape for c in carry]
    if tf.executing_eagerly():
        y_shapes = [None] * num_ys
    else:
        # The outputs' element shapes, from one step on zeros that the graph
        # never runs (as keras.layers.RNN does): a TensorArray of unknown
        # element shape is what TFLite's tensor-list lowering mis-sizes.
        probe = tree.pack_sequence_as(xs, [tf.zeros(tf.shape(x)[1:], x.dtype) for x in flat_xs])
        for x, p in zip(flat_xs, tree.flatten(probe)):
            p.set_shape(x.shape[1:])
        y_shapes = [y.shape for y in fn(list(carry), probe)[1]]
    arrays = [tf.TensorArray(dtype, size=steps, element_shape=s) for s in y_shapes]

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
        maximum_iterations=steps,
    )
    return list(final), [a.stack() for a in arrays]
