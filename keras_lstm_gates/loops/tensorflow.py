"""The TensorFlow loops: ``tf.while_loop`` under ``tf.custom_gradient``.

The loops are ``tf.function``s that are XLA-compiled when called from a
graph (``fit``, ``predict``, any ``tf.function``) and plain when called
eagerly, so that an eager call does not pay one compilation per new shape.
From 768 units up the forward loop stays plain (TensorFlow's own matmul beats
XLA's on one large matmul per step).  Same layout as the JAX loops.  With
no tape recording (``predict``, ``evaluate``) the forward loop keeps only
what the layer returns, and a layer that returns only its last output keeps
no sequence of ``h`` for the backward loop, which recomputes it.

An XLA-compiled loop multiplies by each gate's weights apart from
:data:`~.common.SEPARATE_BLOCKS_MIN_UNITS` on, as the JAX loops do.  A plain
loop, where every op is one dispatch, joins them: four matmuls per step
instead of one made the forward loop 1.6x slower at B=1, T=100, H=1024.  Its
joined copy does not raise the training step's peak: the backward loop holds
the weights' gradients, as large as that copy, and more.
"""

from keras import tree

from . import common

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


def _tf_functions(units, masked, trace, sequences, jit_forward, jit_backward):
    """The forward and backward loops, and a forward loop that keeps nothing
    for a backward pass (``infer``), as ``tf.function``s (one triple per
    flavour; they retrace per new shape and dtype).

    With ``sequences`` the layer outputs every step's ``h``, which the
    forward loop returns batch major and the backward loop takes a
    cotangent of.  Without it only the last ``h`` leaves the loop, and no
    cotangent of the whole sequence is ever made.  Unmasked, the backward
    loop reads no ``h``: it recomputes ``h_{t-1} = o_{t-1} tanh(c_{t-1})``
    from what it reads anyway, so that neither the output nor a copy of it
    is held through the backward pass.  A masked loop reads every ``h``
    (a masked step carries an older one): the output with ``sequences``,
    else a time-major sequence that the forward loop keeps.
    """
    key = (units, masked, trace, sequences, jit_forward, jit_backward)
    if key in _TF:
        return _TF[key]
    import tensorflow as tf

    K = _TfOps()
    forward_blocks = common.block_count(units) if jit_forward else 1
    blocks = common.block_count(units) if jit_backward else 1

    keep_h = "batch_major" if sequences else ("time_major" if masked else None)

    def forward(x, ws, bs, us, h0, c0, mask):
        return _forward_loop(
            K, units, masked, trace, True, forward_blocks, x, ws, bs, us, h0, c0, mask, keep_h
        )

    def infer(x, ws, bs, us, h0, c0, mask):
        out_h = "batch_major" if sequences else None
        return _forward_loop(
            K, units, masked, trace, trace, forward_blocks, x, ws, bs, us, h0, c0, mask, out_h
        )

    def backward(dh_out, dc_last, dcs, dacts, x, ws, us, h0, c0, mask, hs, cs, acts):
        """``dh_out`` is the cotangent of every ``h`` (batch major) with
        ``sequences``, else of the last; ``hs`` is what the forward loop kept
        of ``h`` when masked, else ``None``.  Returns
        ``[dx, dw, db, du, dh0, dc0]``, each weight gradient as the loop's
        blocks (see :func:`.common.weight_blocks`)."""
        dtype = dh_out.dtype
        # Half-precision runs keep their gradients in float32 inside the loop.
        work = tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype
        cast = [
            None if v is None else tf.cast(v, work)
            for v in (dh_out, dc_last, dcs, x, h0, c0, hs, cs)
        ]
        dh_out, dc_last, dcs, x, h0, c0, hs, cs = cast
        acts, dacts = [[tf.cast(v, work) for v in vs] for vs in (acts, dacts)]
        w = common.weight_blocks(K, [tf.cast(v, work) for v in ws], blocks)
        u = common.weight_blocks(K, [tf.cast(v, work) for v in us], blocks)
        steps = tf.shape(x)[0]
        # Indexed in place (a dynamic slice under XLA), not unstacked into
        # TensorArrays, which would copy every sequence once more.  hs and
        # its gradient dhs are batch major (the layer's output layout).
        seqs = {"x": x, "c": cs}
        if trace:
            seqs["dc_traced"] = dcs
            derivatives = common.activation_derivatives(acts)
            dacts = [d * a for d, a in zip(dacts, derivatives)]
        dxs = tf.TensorArray(work, size=steps)

        def recurrent(dzs):
            dzb = common.weight_blocks(K, dzs, blocks)
            return tf.add_n([tf.matmul(d, m, transpose_b=True) for d, m in zip(dzb, u)])

        def kept_h(prev):
            if hs is None:
                return acts[2][prev] * tf.tanh(seqs["c"][prev])
            if keep_h == "batch_major":
                return hs[:, prev]
            return hs[prev]

        def body(t, dh_next, dc_next, dw, du, db, dxs):
            k = steps - 1 - t
            first = k == 0
            prev = tf.maximum(k - 1, 0)
            h_prev = tf.where(first, h0, kept_h(prev))
            c_prev = tf.where(first, c0, seqs["c"][prev])
            x_t = seqs["x"][k]
            extra = []
            if trace:
                extra += [seqs["dc_traced"][k], [d[k] for d in dacts]]
            if masked:
                extra.append(mask[k])
            dzs, dh_prev, dc_prev = common.backward_through_step(
                K,
                (dh_next, dc_next),
                (
                    dh_out[:, k] if sequences else 0.0,
                    [a[k] for a in acts],
                    seqs["c"][k],
                    c_prev,
                    extra,
                ),
                recurrent,
                trace,
                masked,
            )
            dzb = common.weight_blocks(K, dzs, blocks)
            dx = tf.add_n([tf.matmul(d, m, transpose_b=True) for d, m in zip(dzb, w)])
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
        # each gradient twice, as the accumulator and as its slices, on top
        # of the loop's scratch (0.07 MiB of a 0.7 MiB step at 16,10,32,64).
        cast = [[tf.cast(g, dtype) for g in gs] for gs in (dw, db, du)]
        return [tf.cast(dxs.stack(), dtype), *cast, tf.cast(dh0, dtype), tf.cast(dc0, dtype)]

    def _accumulate_one_at_a_time(accumulators, h_prev, dzb):
        """``acc_j + h_prev^T dz_j`` for every block, one block after another.

        XLA would run the blocks' matmuls first and add afterwards, with
        every (units, units) product alive at once: 4 MiB each at 1024
        units.  Each product's operand takes a zero-valued dependency on the
        previous block's sum (``0 * x`` is not simplified away for floats),
        so that only one product is alive at a time.
        """
        out = []
        for a, d in zip(accumulators, dzb):
            if out:
                h_prev = h_prev + 0.0 * out[-1][0, 0]
            out.append(a + tf.matmul(h_prev, d, transpose_a=True))
        return out

    options = {"reduce_retracing": True, "autograph": False}
    functions = (
        tf.function(forward, jit_compile=jit_forward, **options),
        tf.function(backward, jit_compile=jit_backward, **options),
        tf.function(infer, jit_compile=jit_forward, **options),
    )
    _TF[key] = functions
    return functions


def _length(tf, sequence):
    """The number of steps of a time-major ``sequence``: a Python int when
    the graph knows it, else a tensor.

    A known length enters the loops as a constant of their own.  As one
    tensor used both as the trip count and inside the loop's condition,
    tf2onnx gives the ONNX ``Loop`` an int64 constant where its body expects
    int32, and onnxruntime refuses the file.
    """
    steps = sequence.shape[0]
    return int(steps) if steps is not None else tf.shape(sequence)[0]


def _forward_loop(
    K, units, masked, trace, save, blocks, x, ws, bs, us, h0, c0, mask, keep_h="batch_major"
):
    """The forward ``tf.while_loop``: ``(hs, h_last, c_last, cs, acts)``,
    where ``hs`` is every step's ``h``, batch major or time major as
    ``keep_h`` says (``None`` when ``keep_h`` is ``None``), and ``cs`` and
    ``acts`` (the list ``[i, f, o, g]``) are time major, or ``None`` unless
    ``save``.  ``blocks`` is how the loop multiplies by the weights (see
    :func:`.common.weight_blocks`).

    Every ``TensorArray`` has its element shape (batch, width) from the
    start: an array of unknown element shape is reserved with an unranked
    shape, which TFLite's tensor-list lowering mis-sizes (the interpreter then
    returns one array's buffer as another's: (2, 16) for (2, 4)).
    """
    tf = K.tf
    steps = _length(tf, x)
    batch = x.shape[1]
    w, b, u = (common.weight_blocks(K, p, blocks) for p in (ws, bs, us))

    def unstack(seq):
        array = tf.TensorArray(seq.dtype, size=steps, element_shape=seq.shape[1:])
        return array.unstack(seq)

    xs = unstack(x)
    ms = unstack(mask) if masked else None
    # h (when kept), then (when saved) c and the four activations.
    count = (keep_h is not None) + (1 + common.PARTS if save else 0)
    out = [tf.TensorArray(x.dtype, size=steps, element_shape=(batch, units)) for _ in range(count)]

    def body(t, h_prev, c_prev, arrays):
        x_t = xs.read(t)
        zs = [tf.matmul(x_t, wj) + tf.matmul(h_prev, uj) + bj for wj, uj, bj in zip(w, u, b)]
        h, c, acts = common.forward_step(K, common.parts_of(K, zs, units), c_prev)
        if masked:
            m = ms.read(t)
            h = tf.where(m, h, h_prev)
            c = tf.where(m, c, c_prev)
        if masked and trace:
            acts = [tf.where(m, a, tf.zeros_like(a)) for a in acts]
        values = ([h] if keep_h is not None else []) + ([c, *acts] if save else [])
        return t + 1, h, c, [a.write(t, v) for a, v in zip(arrays, values)]

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
    if not save:
        return hs, h_last, c_last, None, None
    return hs, h_last, c_last, stacked[0], stacked[1:]


# Python modules whose calls trace a graph to be written out: Keras's export
# (SavedModel, ONNX through tf2onnx, LiteRT), TensorFlow Lite's converter,
# tf2onnx itself, and tf.saved_model.save (by its save context).
_EXPORT_MODULES = ("keras.src.export", "tensorflow.lite.python", "tf2onnx")


def _callers(modules):
    """The frames of the current call stack whose module name starts with
    one of ``modules``, innermost first."""
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(modules):
            yield frame
        frame = frame.f_back


def exporting():
    """Whether the graph being traced is for an exported artifact.

    A graph that is run in this process gets the forward loop as an
    XLA-compiled function (3-5x faster on a CPU); a graph that is written
    out gets the plain loop inline: grappler does not inline an XLA-compiled
    function, so tf2onnx leaves it as a ``PartitionedCall`` that no ONNX
    runtime accepts, and a SavedModel with one needs XLA where it is served.
    """
    from tensorflow.python.saved_model import save_context

    if save_context.in_save_context():
        return True
    return next(_callers(_EXPORT_MODULES), None) is not None


def _tflite_converter():
    """The ``tf.lite.TFLiteConverter`` whose conversion is tracing this
    graph, or ``None``."""
    for frame in _callers(("tensorflow.lite.python",)):
        converter = frame.f_locals.get("self")
        if hasattr(converter, "target_spec"):
            return converter
    return None


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
    converter = _tflite_converter()
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


def _higher_order_possible(*tensors):
    """Whether the tapes now recording could differentiate ``tensors``
    twice (a persistent tape, or more than one tape)."""
    from tensorflow.python.ops import gradients_util

    try:
        kind = gradients_util.PossibleTapeGradientTypes(tensors)
        return kind == gradients_util.POSSIBLE_GRADIENT_TYPES_HIGHER_ORDER
    except AttributeError:  # a TensorFlow without this internal API
        return False


def lstm_sequence(x, ws, bs, us, h0, c0, mask, trace, sequences=True):
    import tensorflow as tf
    from tensorflow.python.eager import record

    masked = mask is not None
    # XLA fuses each step into a few kernels, but compiles once per new
    # shape: worth it inside a graph (fit, predict, tf.function), not for
    # one eager call.  From about 1024 units on, the forward step is
    # large matmuls, which TensorFlow's own (oneDNN) kernel does faster than
    # XLA's: measured 1.6x at B=16, H=1024, while XLA still wins 1.3-1.5x at
    # H=512.  The backward loop gains from XLA at every size measured.
    # Reads of the variables: a tf.Variable used inside the custom gradient
    # would need a gradient of its own.
    ws, bs, us = ([tf.convert_to_tensor(v) for v in p] for p in (ws, bs, us))
    units = int(us[0].shape[0])
    graph = not tf.executing_eagerly()
    if graph and exporting():
        # The plain loop, inline in the caller's graph, with no custom
        # gradient: the graph any converter reads and any runtime serves.
        keep_h = "batch_major" if sequences else None
        hs, h_last, c_last, cs, acts = _forward_loop(
            _TfOps(), units, masked, trace, trace, 1, x, ws, bs, us, h0, c0, mask, keep_h
        )
        first = hs if sequences else h_last
        return (first, c_last, cs, acts) if trace else (first, c_last)
    # A persistent tape, or tapes inside tapes, may take gradients of the
    # gradient: TensorFlow then asks every function traced under them for
    # its intermediates, which an XLA-compiled loop cannot hand out
    # (its TensorLists stay inside XLA).  Such calls get the plain loops.
    jit = graph and not _higher_order_possible(x, *ws, *us)
    jit_forward = jit and units <= _TF_XLA_FORWARD_MAX_UNITS
    forward, backward, infer = _tf_functions(units, masked, trace, sequences, jit_forward, jit)
    # With no tape recording (predict, evaluate, a call outside any
    # GradientTape) the loop keeps only what the layer returns.  Should a
    # function traced so be differentiated later, its gradient runs the
    # forward loop again, keeping what the backward loop needs.
    recording = record.could_possibly_record()
    if graph:
        # A graph gets a forward function of its own at every call site.
        # Two call sites of one function (Bidirectional's two directions, two
        # equal layers) make TFLite's tensor-list lowering fail on the loop.
        forward, infer = (
            tf.function(
                f.python_function, jit_compile=jit_forward, reduce_retracing=True, autograph=False
            )
            for f in (forward, infer)
        )
    if not masked:
        mask = tf.zeros((0,), "bool")  # a placeholder the loops never read
    n = common.PARTS
    K = _TfOps()

    @tf.custom_gradient
    def kernel(x, *args):
        ws, bs, us = args[:n], args[n : 2 * n], args[2 * n : 3 * n]
        h0, c0 = args[3 * n :]
        hs, h_last, c_last, cs, acts = (forward if recording else infer)(
            x, ws, bs, us, h0, c0, mask
        )
        first = hs if sequences else h_last
        outputs = (first, c_last, cs, *acts) if trace else (first, c_last)

        def grad(*cts):
            kept_hs, kept_cs, kept_acts = hs, cs, acts
            if not recording:
                kept_hs, _, _, kept_cs, kept_acts = forward(x, ws, bs, us, h0, c0, mask)
            if not masked:
                # Each h_{t-1} = o_{t-1} tanh(c_{t-1}) is recomputed from what
                # the backward loop reads anyway, so that the sequence of h
                # (the layer's output) is not held through the backward pass.
                kept_hs = None
            cts = [tf.zeros_like(ref) if ct is None else ct for ct, ref in zip(cts, outputs)]
            dcs = cts[2] if trace else kept_cs[:0]
            dacts = cts[3:] if trace else [a[:0] for a in kept_acts]
            dx, *blocks, dh0, dc0 = backward(
                cts[0], cts[1], dcs, dacts, x, ws, us, h0, c0, mask, kept_hs, kept_cs, kept_acts
            )
            dws, dbs, dus = (common.parts_of(K, list(g), units) for g in blocks)
            return [dx, *dws, *dbs, *dus, dh0, dc0]

        return outputs, grad

    out = kernel(x, *ws, *bs, *us, h0, c0)
    return (*out[:3], list(out[3:])) if trace else tuple(out)


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
