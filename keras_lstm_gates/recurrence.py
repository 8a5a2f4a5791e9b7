"""The fused LSTM computation: the gates' matmuls run together, over a whole sequence.

The gate sublayers hold the only copy of the weights.  The vanilla LSTM runs
in :mod:`keras_lstm_gates.loops`, which takes each gate's weights as they are
and joins them for one matmul per step only where that copy is small next to
the rest of the step (a joined copy of a large layer's weights would cost
memory that keras.layers.LSTM, whose variables are joined already, never
spends; see :func:`keras_lstm_gates.loops.common.block_count`).  Every other
configuration runs here: :meth:`StepPlan.weights` concatenates the gates'
weights along the gate axis at call time, so that:

* the input projection of every timestep is one matmul outside the loop;
* each step does one recurrent matmul for every gate;
* the sigmoid gates are laid out first, so one activation call serves them all.

The step equations (vanilla LSTM, Hochreiter & Schmidhuber 1997 with the
forget gate of Gers et al. 2000)::

    z_t = x_t W + h_{t-1} U + b            # all gates at once
    i_t, f_t, o_t = sigma(z_t^{i,f,o})
    g_t = tanh(z_t^g)                      # candidate memory C~_t
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)
"""

from keras import activations, backend, ops

from .variants import SIGMOID_GATES

# The layout of the fused weights inside klg: sigmoid gates first.
COMPUTE_ORDER = ("input_gate", "forget_gate", "output_gate", "candidate")
# The layout of keras.layers.LSTM's fused weights.
KERAS_ORDER = ("input_gate", "forget_gate", "candidate", "output_gate")


class StepPlan:
    """The Python-level layout of one cell's fused computation.

    Built once per call from the cell's configuration; it reads no tensor.
    """

    def __init__(self, cell):
        self.cell = cell
        self.spec = cell.spec
        self.units = cell.units
        self.order = tuple(n for n in COMPUTE_ORDER if n in self.spec.present_gates)
        self.sigmoid_order = tuple(n for n in self.order if n in SIGMOID_GATES)
        gates = [cell.gates[n] for n in self.sigmoid_order]
        shared = {id(g.activation) for g in gates}
        # One activation call can serve every sigmoid gate only when they share
        # one function and no peephole needs the new cell state first.
        self.shared_sigmoid = (
            len(shared) == 1 and not self.spec.peepholes and not self.spec.full_gate_recurrence
        )
        self.output_activation = activations.linear if self.spec.output_linear else cell.activation

    def weights(self, order=None):
        """Concatenated ``(kernel, recurrent_kernel, bias)`` of the present gates."""
        order = self.order if order is None else order
        gates = [self.cell.gates[n] for n in order]
        kernel = _concat([g.kernel for g in gates])
        recurrent_kernel = _concat([g.recurrent_kernel for g in gates])
        bias = _concat([g.bias for g in gates]) if self.cell.use_bias else None
        return kernel, recurrent_kernel, bias

    def gate_recurrent_kernel(self):
        gates = [self.cell.gates[n] for n in self.sigmoid_order]
        return _concat([g.gate_recurrent_kernel for g in gates])


def per_gate_masks(masks):
    """Whether ``masks`` holds one dropout mask per gate (a list, in Keras's
    gate order i, f, c, o) rather than one mask shared by the gates."""
    return isinstance(masks, (list, tuple))


def project(plan, x, fused, masks=None, recurrent=False):
    """``x @ fused`` with dropout ``masks`` applied to ``x`` first.

    ``x`` is (..., batch, features) and ``fused`` the concatenated kernel
    (or recurrent kernel, with ``recurrent``) of ``plan``'s gates.  A
    shared mask multiplies ``x`` once; per-gate masks (``implementation=1``)
    give each gate its own masked copy of ``x`` and its own matmul, as
    ``keras.layers.LSTMCell`` does.
    """
    if masks is None:
        return ops.matmul(x, fused)
    if not per_gate_masks(masks):
        return ops.matmul(x * ops.cast(masks, x.dtype), fused)
    blocks = []
    for name in plan.order:
        gate = plan.cell.gates[name]
        weight = gate.recurrent_kernel if recurrent else gate.kernel
        mask = ops.cast(masks[KERAS_ORDER.index(name)], x.dtype)
        blocks.append(ops.matmul(x * mask, ops.cast(weight, x.dtype)))
    return _concat(blocks)


def _concat(tensors):
    tensors = [ops.convert_to_tensor(t) for t in tensors]
    return tensors[0] if len(tensors) == 1 else ops.concatenate(tensors, axis=-1)


def step(plan, z, c_prev, previous_gates=None, gate_recurrent_kernel=None):
    """One step from the fused pre-activation ``z`` (batch, n_gates * units).

    ``z`` already holds ``x_t W + h_{t-1} U + b``.  Returns ``(h, c, gates)``
    where ``gates`` maps ``input_gate``, ``forget_gate``, ``candidate`` and
    ``output_gate`` to their activations; a gate the variant removes is
    reported with the constant it stands for.
    """
    cell, spec, units = plan.cell, plan.spec, plan.units
    n_sig = len(plan.sigmoid_order)
    candidate = cell.candidate.activation(z[:, n_sig * units :])
    if plan.shared_sigmoid:
        first = cell.gates[plan.sigmoid_order[0]].activation
        sig = first(z[:, : n_sig * units])
        values = {
            name: sig[:, k * units : (k + 1) * units] for k, name in enumerate(plan.sigmoid_order)
        }
    else:
        pre = {name: z[:, k * units : (k + 1) * units] for k, name in enumerate(plan.sigmoid_order)}
        if gate_recurrent_kernel is not None:
            extra = ops.matmul(previous_gates, gate_recurrent_kernel)
            for k, name in enumerate(plan.sigmoid_order):
                pre[name] = pre[name] + extra[:, k * units : (k + 1) * units]
        values = {}
        for name in plan.sigmoid_order:
            gate = cell.gates[name]
            if name == "output_gate":
                continue
            if gate.peephole is not None:
                pre[name] = pre[name] + gate.peephole * c_prev
            values[name] = gate.activation(pre[name])
    i = values.get("input_gate")
    if spec.coupled:
        f = 1.0 - i
    else:
        f = values.get("forget_gate")
    # A removed gate is the constant 1: NIG writes g whole, NFG keeps c whole.
    written = candidate if i is None else i * candidate
    c = c_prev + written if f is None else f * c_prev + written
    if spec.has_output_gate and "output_gate" not in values:
        gate = cell.output_gate
        pre_o = pre["output_gate"]
        if gate.peephole is not None:
            pre_o = pre_o + gate.peephole * c
        values["output_gate"] = gate.activation(pre_o)
    o = values.get("output_gate")
    squashed = plan.output_activation(c)
    h = squashed if o is None else o * squashed
    ones = None
    gates = {}
    for name, value in (
        ("input_gate", i),
        ("forget_gate", f),
        ("candidate", candidate),
        ("output_gate", o),
    ):
        if value is None:
            ones = ops.ones_like(c) if ones is None else ones
            value = ones
        gates[name] = value
    return h, c, gates


def packed_gate_state(gates):
    """The FGR carry: the previous step's i, f, o side by side."""
    return ops.concatenate(
        [gates["input_gate"], gates["forget_gate"], gates["output_gate"]], axis=-1
    )


def run_sequence(
    cell,
    inputs,
    initial_state,
    mask=None,
    go_backwards=False,
    unroll=False,
    zero_output_for_mask=False,
    return_sequences=True,
    return_gates=False,
    input_dropout_mask=None,
    recurrent_dropout_mask=None,
):
    """Run ``cell`` over ``inputs`` (batch, time, features) with the fused path.

    Returns ``(last_output, outputs, states, trace)``: ``outputs`` is
    (batch, time, units) when ``return_sequences`` else ``last_output`` with a
    time axis of 1, ``states`` is ``[h, c]`` (plus the gate carry for FGR), and
    ``trace`` is ``None`` or a dict of (batch, time, units) arrays for
    ``input_gate``, ``forget_gate``, ``candidate``, ``output_gate`` and
    ``cell_state``.  Masked steps keep the state and repeat the previous
    output (or output zeros with ``zero_output_for_mask``), as
    ``keras.layers.RNN`` does; in the trace they are zero.  Before a row's
    first unmasked step the "previous output" is the one
    :func:`keras_starts_output_at_zero` says Keras uses on this backend and
    ``unroll`` setting.  ``mask`` is (batch, time) or (batch, time, 1).
    """
    plan = StepPlan(cell)
    dtype = ops.convert_to_tensor(cell.gates[plan.order[0]].kernel).dtype
    # A shared input-dropout mask is applied to x below; per-gate masks
    # need the generic loop.
    vanilla = (
        not unroll
        and recurrent_dropout_mask is None
        and (input_dropout_mask is None or not per_gate_masks(input_dropout_mask))
        and uses_vanilla_kernel(plan)
    )
    if backend.backend() == "tensorflow" and (return_sequences or return_gates or not vanilla):
        # Only a loop that collects every step reserves tensor lists, which
        # TFLite's builtin ops need a known batch for.
        from .loops import tensorflow as tf_loops

        tf_loops.check_tflite_batch(inputs.shape[0])
    x = ops.cast(inputs, dtype)
    if input_dropout_mask is not None and not per_gate_masks(input_dropout_mask):
        x = x * ops.expand_dims(ops.cast(input_dropout_mask, dtype), 1)
        input_dropout_mask = None
    x = ops.transpose(x, (1, 0, 2))  # time major
    mask = check_mask(mask, inputs.shape)
    if mask is not None:
        mask = ops.transpose(ops.cast(mask, "bool"), (1, 0))
        mask = ops.expand_dims(mask, -1)
    if go_backwards:
        x = ops.flip(x, axis=0)
        if mask is not None:
            mask = ops.flip(mask, axis=0)

    if vanilla:
        return _run_vanilla_kernel(
            plan,
            x,
            initial_state,
            mask,
            zero_output_for_mask,
            return_sequences,
            return_gates,
            unroll,
        )

    kernel, recurrent_kernel, bias = plan.weights()
    grk = plan.gate_recurrent_kernel() if plan.spec.full_gate_recurrence else None
    # The input projection of every step in one matmul (one per gate with
    # per-gate dropout masks).
    xz = project(plan, x, kernel, input_dropout_mask)
    if bias is not None:
        xz = xz + bias

    h0 = ops.cast(initial_state[0], dtype)
    c0 = ops.cast(initial_state[1], dtype)
    carry0 = [h0, c0]
    if grk is not None:
        carry0.append(ops.cast(initial_state[2], dtype))

    def one_step(carry, xs):
        h_prev, c_prev = carry[0], carry[1]
        gate_prev = carry[2] if grk is not None else None
        if mask is not None:
            xz_t, m_t = xs
        else:
            xz_t, m_t = xs, None
        z = xz_t + project(plan, h_prev, recurrent_kernel, recurrent_dropout_mask, True)
        h, c, gates = step(plan, z, c_prev, gate_prev, grk)
        new_carry = [h, c]
        if grk is not None:
            new_carry.append(packed_gate_state(gates))
        if m_t is not None:
            new_carry = [ops.where(m_t, n, o) for n, o in zip(new_carry, carry)]
            if zero_output_for_mask:
                out = ops.where(m_t, h, ops.zeros_like(h))
            else:
                out = new_carry[0]
        else:
            out = h
        ys = [out]
        if return_gates:
            traced = [
                gates[k] for k in ("input_gate", "forget_gate", "candidate", "output_gate")
            ] + [c]
            if m_t is not None:
                traced = [ops.where(m_t, t, ops.zeros_like(t)) for t in traced]
            ys.extend(traced)
        return new_carry, ys

    xs = (xz, mask) if mask is not None else xz
    timesteps = xz.shape[0]
    if unroll:
        if timesteps is None:
            raise ValueError("unroll=True needs a known number of timesteps.")
        carry, collected = carry0, []
        for t in range(timesteps):
            x_t = (xz[t], mask[t]) if mask is not None else xz[t]
            carry, ys = one_step(carry, x_t)
            collected.append(ys)
        final = carry
        ys_all = [ops.stack([c[k] for c in collected], axis=0) for k in range(len(collected[0]))]
    else:
        final, ys_all = scan(one_step, carry0, xs, 6 if return_gates else 1)

    outputs_tm = ys_all[0]
    if mask is not None and not zero_output_for_mask and keras_starts_output_at_zero(unroll):
        outputs_tm = ops.where(steps_seen(mask), outputs_tm, ops.zeros_like(outputs_tm))
    last_output = outputs_tm[-1]
    if return_sequences:
        outputs = ops.transpose(outputs_tm, (1, 0, 2))
    else:
        outputs = ops.expand_dims(last_output, 1)
    trace = None
    if return_gates:
        names = ("input_gate", "forget_gate", "candidate", "output_gate", "cell_state")
        trace = {n: ops.transpose(v, (1, 0, 2)) for n, v in zip(names, ys_all[1:])}
    return last_output, outputs, list(final), trace


def check_mask(mask, sequences_shape):
    """The (batch, time) form of a ``mask`` given as (batch, time) or
    (batch, time, 1), as ``keras.layers.RNN`` accepts; ``None`` stays ``None``.

    >>> import numpy as np
    >>> tuple(check_mask(np.ones((2, 5, 1), bool), (2, 5, 3)).shape)
    (2, 5)
    >>> check_mask(np.ones((2, 5, 4), bool), (2, 5, 3))
    Traceback (most recent call last):
    ...
    ValueError: Expected a mask of shape (batch, time) = (2, 5) or (batch, time, 1), received a mask of shape (2, 5, 4).
    """
    if mask is None:
        return None
    shape = tuple(mask.shape)
    expected = tuple(sequences_shape[:2])
    if len(shape) == 3 and shape[-1] == 1:
        mask = mask[:, :, 0]
        shape = shape[:2]
    ok = len(shape) == 2 and all(a is None or b is None or a == b for a, b in zip(shape, expected))
    if not ok:
        raise ValueError(
            f"Expected a mask of shape (batch, time) = {expected} or (batch, time, 1), "
            f"received a mask of shape {tuple(mask.shape)}."
        )
    return mask


def keras_starts_output_at_zero(unroll):
    """Whether ``keras.layers.LSTM`` outputs zeros, rather than the carried
    ``h``, at masked steps before a row's first unmasked step.

    Keras's ``backend.rnn`` repeats the previous *output* at a masked step.
    Its TensorFlow and PyTorch loops, and every unrolled loop, start that
    previous output at zeros; its JAX (and numpy) ``lax.scan`` path repeats
    ``states[0]``, the carried ``h``, which is the initial state until a
    step is taken.  The two differ only with a non-zero initial state.
    """
    return bool(unroll) or backend.backend() not in ("jax", "numpy")


def steps_seen(mask):
    """For a time-major (time, batch, 1) boolean ``mask`` in processing order,
    whether each row has taken an unmasked step at or before each step."""
    taken = ops.cumsum(ops.cast(mask, "int32"), axis=0)
    return ops.greater(taken, 0)


def scan(fn, carry, xs, num_ys):
    """``keras.ops.scan`` with list carries and ``num_ys`` list outputs."""
    from . import loops

    return loops.scan(fn, carry, xs, num_ys)


def uses_vanilla_kernel(plan):
    """Whether ``plan`` is the vanilla LSTM that :func:`loops.lstm_sequence`
    runs (with its hand-written backward pass): every gate present, no
    peepholes, sigmoid gates, tanh candidate and output activation.

    >>> from keras_lstm_gates import LSTMCell
    >>> uses_vanilla_kernel(StepPlan(LSTMCell(3)))
    True
    >>> uses_vanilla_kernel(StepPlan(LSTMCell(3, recurrent_activation="hard_sigmoid")))
    False
    """
    cell = plan.cell
    if backend.backend() not in ("jax", "tensorflow", "torch"):
        return False  # e.g. Keras's numpy backend: the generic scan serves it
    if not plan.spec.is_vanilla or plan.order != COMPUTE_ORDER:
        return False
    if cell.activation is not activations.tanh:
        return False
    if cell.candidate.activation is not activations.tanh:
        return False
    return all(cell.gates[n].activation is activations.sigmoid for n in SIGMOID_GATES)


def _run_vanilla_kernel(
    plan,
    x,
    initial_state,
    mask,
    zero_output_for_mask,
    return_sequences,
    return_gates,
    unroll=False,
):
    """The fast path of :func:`run_sequence` (see :func:`uses_vanilla_kernel`)."""
    from . import loops

    dtype = x.dtype
    # The gates' own weights: the loops join them only where that pays.
    gates = [plan.cell.gates[n] for n in COMPUTE_ORDER]
    kernels = [ops.convert_to_tensor(g.kernel) for g in gates]
    recurrent_kernels = [ops.convert_to_tensor(g.recurrent_kernel) for g in gates]
    if plan.cell.use_bias:
        biases = [ops.convert_to_tensor(g.bias) for g in gates]
    else:
        biases = [ops.zeros((plan.units,), dtype) for _ in gates]
    h0 = ops.cast(initial_state[0], dtype)
    c0 = ops.cast(initial_state[1], dtype)
    result = loops.lstm_sequence(
        x,
        kernels,
        biases,
        recurrent_kernels,
        h0,
        c0,
        mask=mask,
        trace=return_gates,
        return_sequences=return_sequences,
    )
    # hs is batch major; without return_sequences, only the last h.
    hs, c_last = result[0], result[1]
    last_state = hs[:, -1] if return_sequences else hs
    # Which steps output the carried h; the others output zeros.
    keep = None
    if mask is not None and zero_output_for_mask:
        keep = mask
    elif mask is not None and keras_starts_output_at_zero(unroll):
        keep = steps_seen(mask)
    if return_sequences:
        outputs = hs
        if keep is not None:
            outputs = ops.where(ops.transpose(keep, (1, 0, 2)), hs, ops.zeros_like(hs))
        last_output = outputs[:, -1]
    else:
        last_output = last_state
        if keep is not None:
            last_output = ops.where(keep[-1], last_output, ops.zeros_like(last_output))
        outputs = ops.expand_dims(last_output, 1)
    trace = None
    if return_gates:
        cs, acts = result[2], result[3]
        if mask is not None:
            cs = ops.where(mask, cs, ops.zeros_like(cs))
        trace = {name: ops.transpose(a, (1, 0, 2)) for name, a in zip(COMPUTE_ORDER, acts)}
        trace["cell_state"] = ops.transpose(cs, (1, 0, 2))
    return last_output, outputs, [last_state, c_last], trace
