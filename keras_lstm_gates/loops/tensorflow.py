"""The TensorFlow loops: ``tf.while_loop`` under ``tf.custom_gradient``.

The loops are ``tf.function``s that are XLA-compiled when called from a
graph (``fit``, ``predict``, any ``tf.function``) and plain when called
eagerly, so that an eager call does not pay one compilation per new shape.
From 768 units up the forward loop stays plain (TensorFlow's own matmul beats
XLA's on one large matmul per step).  Same layout as the JAX loops.
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


def _tf_functions(units, masked, trace, jit_forward, jit_backward):
    """The forward and backward loops as ``tf.function``s (one pair per
    flavour; they retrace per new shape and dtype)."""
    key = (units, masked, trace, jit_forward, jit_backward)
    if key in _TF:
        return _TF[key]
    import tensorflow as tf

    K = _TfOps()

    def forward(x, w, b, u, h0, c0, mask):
        return _forward_loop(K, units, masked, trace, True, x, w, b, u, h0, c0, mask)

    def backward(dhs, dc_last, dcs, dacts, x, w, u, h0, c0, mask, hs, cs, acts):
        dtype = dhs.dtype
        # Half-precision runs keep their gradients in float32 inside the loop.
        work = tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype
        values = (dhs, dc_last, dcs, dacts, x, w, u, h0, c0, hs, cs, acts)
        dhs, dc_last, dcs, dacts, x, w, u, h0, c0, hs, cs, acts = [tf.cast(v, work) for v in values]
        steps = tf.shape(dhs)[0]
        seqs = [x, dhs, acts, cs, hs]
        if trace:
            seqs += [dcs, dacts * common.activation_derivative(K, acts, units)]
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
            dz, dh_prev, dc_prev = common.backward_through_step(
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


def _forward_loop(K, units, masked, trace, save, x, w, b, u, h0, c0, mask):
    """The forward ``tf.while_loop``: ``(hs, c_last, cs, acts)``, where
    ``cs`` and ``acts`` are ``None`` unless ``save``.

    Every ``TensorArray`` has its element shape (batch, width) from the
    start: an array of unknown element shape is reserved with an unranked
    shape, which TFLite's tensor-list lowering mis-sizes (the interpreter then
    returns one array's buffer as another's: (2, 16) for (2, 4)).
    """
    tf = K.tf
    steps = tf.shape(x)[0]
    batch = x.shape[1]

    def unstack(seq):
        array = tf.TensorArray(seq.dtype, size=steps, element_shape=seq.shape[1:])
        return array.unstack(seq)

    xs = unstack(x)
    ms = unstack(mask) if masked else None
    widths = (units, units, 4 * units) if save else (units,)
    out = [tf.TensorArray(x.dtype, size=steps, element_shape=(batch, n)) for n in widths]

    def body(t, h_prev, c_prev, arrays):
        z = tf.matmul(xs.read(t), w) + tf.matmul(h_prev, u) + b
        h, c, s, g = common.forward_step(K, units, z, c_prev)
        if masked:
            m = ms.read(t)
            h = tf.where(m, h, h_prev)
            c = tf.where(m, c, c_prev)
        if not save:
            return t + 1, h, c, [arrays[0].write(t, h)]
        act = tf.concat([s, g], axis=-1)
        if masked and trace:
            act = tf.where(m, act, tf.zeros_like(act))
        values = (h, c, act)
        return t + 1, h, c, [a.write(t, v) for a, v in zip(arrays, values)]

    _, _, c_last, out = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), h0, c0, out),
        maximum_iterations=steps,
    )
    if not save:
        return out[0].stack(), c_last, None, None
    return out[0].stack(), c_last, out[1].stack(), out[2].stack()


# Python modules whose calls trace a graph to be written out: Keras's export
# (SavedModel, ONNX through tf2onnx, LiteRT), TensorFlow Lite's converter,
# tf2onnx itself, and tf.saved_model.save (by its save context).
_EXPORT_MODULES = ("keras.src.export", "tensorflow.lite.python", "tf2onnx")


def exporting():
    """Whether the graph being traced is for an exported artifact.

    A graph that is run in this process gets the forward loop as an
    XLA-compiled function (3-5x faster on a CPU); a graph that is written
    out gets the plain loop inline: grappler does not inline an XLA-compiled
    function, so tf2onnx leaves it as a ``PartitionedCall`` that no ONNX
    runtime accepts, and a SavedModel with one needs XLA where it is served.
    """
    import sys

    from tensorflow.python.saved_model import save_context

    if save_context.in_save_context():
        return True
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(_EXPORT_MODULES):
            return True
        frame = frame.f_back
    return False


def lstm_sequence(x, w, b, u, h0, c0, mask, trace):
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
    if graph and exporting():
        # The plain loop, inline in the caller's graph, with no custom
        # gradient: the graph any converter reads and any runtime serves.
        hs, c_last, cs, acts = _forward_loop(
            _TfOps(), units, masked, trace, trace, x, w, b, u, h0, c0, mask
        )
        return (hs, c_last, cs, acts) if trace else (hs, c_last)
    jit_forward = graph and units <= _TF_XLA_FORWARD_MAX_UNITS
    forward, backward = _tf_functions(units, masked, trace, jit_forward, graph)
    if graph:
        # A graph gets a forward function of its own at every call site.
        # Two call sites of one function (Bidirectional's two directions, two
        # equal layers) make TFLite's tensor-list lowering fail on the loop.
        forward = tf.function(
            forward.python_function,
            jit_compile=jit_forward,
            reduce_retracing=True,
            autograph=False,
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


def scan(fn, carry, xs, num_ys):
    import tensorflow as tf

    flat_xs = tree.flatten(xs)
    steps = tf.shape(flat_xs[0])[0]
    static_steps = flat_xs[0].shape[0]
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
        maximum_iterations=static_steps,
    )
    return list(final), [a.stack() for a in arrays]
