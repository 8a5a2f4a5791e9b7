"""An independent numpy LSTM, written from the equations (not from klg or Keras).

Weights are plain numpy arrays per part, in the notation of the equation
pages: ``W[name]`` (input_dim, units), ``U[name]`` (units, units), ``b[name]``
(units,) for ``name`` in ``i``, ``f``, ``g`` (candidate) and ``o``; optional
peepholes ``p[name]`` (units,) for ``i``, ``f``, ``o``; optional full gate
recurrence ``R[name]`` (3 * units, units) reading the previous step's
``[i, f, o]``.  Every variant of Greff et al. (2017) is one flag.  The
layer-normalised LSTM (Ba, Kiros & Hinton 2016, section 3.1, one normalisation
per part) takes ``norm``: a gain per part (``norm[name]``) and the gain and
bias of the cell state before the output tanh (``norm["c_gain"]``,
``norm["c_bias"]``).

Masks follow keras.layers.RNN: a masked step keeps ``h`` and ``c`` and
outputs the previous output (or zeros with ``zero_output_for_mask``).
Before a row's first unmasked step that previous output is the initial
``h`` in Keras's JAX scan (``first_output="carried"``) and zeros in its
TensorFlow and PyTorch loops and every unrolled loop (``"zeros"``).
"""

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def hard_sigmoid(z):
    # Keras 3's hard_sigmoid: relu6(z + 3) / 6
    return np.clip(z / 6.0 + 0.5, 0.0, 1.0)


LN_EPSILON = 1e-3


def layer_norm(a, gain, bias=0.0, epsilon=LN_EPSILON):
    """``gain * (a - mean) / sqrt(var + epsilon) + bias``, the statistics over
    the units of each row (Ba et al. 2016, eq. 4 and section 3.1)."""
    mean = a.mean(axis=-1, keepdims=True)
    var = ((a - mean) ** 2).mean(axis=-1, keepdims=True)
    return gain * (a - mean) / np.sqrt(var + epsilon) + bias


def lstm_step(
    x, h, c, W, U, b, variant="vanilla", p=None, R=None, prev=None, gate_act=sigmoid, norm=None
):
    """One step; returns ``h, c, gates`` with gates ``{"i","f","g","o"}``."""
    p = p or {}

    def summed(name):
        a = x @ W[name] + h @ U[name]
        bias = b[name] if b is not None else 0.0
        if norm is not None:
            return layer_norm(a, norm[name], bias)
        return a + bias

    def pre(name, cell_state=None):
        z = summed(name)
        if name in p and cell_state is not None:
            z = z + p[name] * cell_state
        if R is not None and prev is not None:
            z = z + prev @ R[name]
        return z

    ones = np.ones_like(c)
    i = ones if variant == "NIG" else gate_act(pre("i", c))
    if variant == "CIFG":
        f = 1.0 - i
    elif variant == "NFG":
        f = ones
    else:
        f = gate_act(pre("f", c))
    zg = summed("g")
    g = zg if variant == "NIAF" else np.tanh(zg)
    c_new = f * c + i * g
    o = ones if variant == "NOG" else gate_act(pre("o", c_new))
    shown = c_new if norm is None else layer_norm(c_new, norm["c_gain"], norm["c_bias"])
    h_new = o * (shown if variant == "NOAF" else np.tanh(shown))
    return h_new, c_new, {"i": i, "f": f, "g": g, "o": o}


def lstm_sequence(
    x,
    W,
    U,
    b,
    h0=None,
    c0=None,
    mask=None,
    go_backwards=False,
    zero_output_for_mask=False,
    variant="vanilla",
    p=None,
    R=None,
    gate_act=sigmoid,
    first_output="carried",
    norm=None,
):
    """Run over ``x`` (batch, time, features).

    Returns ``outputs`` (batch, time, units) in processing order, the final
    ``h`` and ``c``, and ``trace``: a dict of (batch, time, units) arrays
    ``i``, ``f``, ``g``, ``o``, ``c`` (zero at masked steps).
    """
    x = np.asarray(x, dtype=np.float64)
    batch, steps, _ = x.shape
    units = U["g"].shape[0]
    h = np.zeros((batch, units)) if h0 is None else np.asarray(h0, np.float64)
    c = np.zeros((batch, units)) if c0 is None else np.asarray(c0, np.float64)
    prev = np.zeros((batch, 3 * units)) if R is not None else None
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    if first_output not in ("carried", "zeros"):
        raise ValueError(f"first_output must be 'carried' or 'zeros', got {first_output!r}")
    previous_output = h if first_output == "carried" else np.zeros_like(h)
    outputs, trace = [], {k: [] for k in "ifgoc"}
    for t in order:
        h_new, c_new, gates = lstm_step(x[:, t], h, c, W, U, b, variant, p, R, prev, gate_act, norm)
        keep = np.ones((batch, 1), bool) if mask is None else np.asarray(mask)[:, t][:, None]
        out = np.where(keep, h_new, 0.0 if zero_output_for_mask else previous_output)
        previous_output = np.where(keep, h_new, previous_output)
        h = np.where(keep, h_new, h)
        c = np.where(keep, c_new, c)
        if prev is not None:
            prev = np.where(keep, np.concatenate([gates["i"], gates["f"], gates["o"]], -1), prev)
        outputs.append(out)
        for k in "ifgo":
            trace[k].append(np.where(keep, gates[k], 0.0))
        trace["c"].append(np.where(keep, c_new, 0.0))
    stack = lambda seq: np.stack(seq, axis=1)  # noqa: E731
    return stack(outputs), h, c, {k: stack(v) for k, v in trace.items()}


def weights_from_keras_fused(kernel, recurrent_kernel, bias=None):
    """Per-part dicts from Keras's fused arrays (blocks i, f, c, o)."""
    units = recurrent_kernel.shape[0]
    names = ("i", "f", "g", "o")
    W = {n: kernel[:, k * units : (k + 1) * units] for k, n in enumerate(names)}
    U = {n: recurrent_kernel[:, k * units : (k + 1) * units] for k, n in enumerate(names)}
    b = (
        None
        if bias is None
        else {n: bias[k * units : (k + 1) * units] for k, n in enumerate(names)}
    )
    return W, U, b
