"""The gate part of the demo: a picture of the forget gate and the
saturation summary of a trained model."""

import os

from .tracing import trace

FIGURE_NAME = "forget_gate.png"


def gate_report(model, x, out_dir, sample=0, left=0.1, right=0.9, verbose=True):
    """Trace ``model`` on ``x``, save the forget gate over time, print the
    saturation summary.

    Writes ``out_dir/forget_gate.png``: one heatmap panel per klg LSTM layer
    (the forget gate of sequence ``sample``, units by time).

    Args:
        model: a Keras model (or layer) holding klg LSTM layers.
        x: the inputs to trace, e.g. a (batch, time, features) array.
        out_dir: folder for the picture (created if missing).
        sample: which sequence of the batch to draw.
        left, right: saturation thresholds (Karpathy et al. 2015: 0.1, 0.9).
        verbose: print the table and the picture's path.

    Returns:
        ``{"figure": path of the PNG, "summary": {layer: {gate: stats}},
        "table": the summary as text}``.

    >>> import os, tempfile, numpy as np, keras_lstm_gates as klg
    >>> from keras_lstm_gates.demo_report import gate_report
    >>> x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype("float32")
    >>> out = tempfile.mkdtemp()
    >>> report = gate_report(klg.LSTM(4, name="lstm"), x, out, verbose=False)
    >>> os.path.basename(report["figure"]), sorted(report["summary"]["lstm"])
    ('forget_gate.png', ['forget_gate', 'input_gate', 'output_gate'])
    """
    from .plots import plot_gate

    traces = trace(model, x)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, FIGURE_NAME)
    plot_gate(traces, "forget_gate", sample=sample).savefig(path, dpi=110)
    table = traces.summary_table(left, right)
    if verbose:
        print(f"Gate saturation (left < {left:g}, right > {right:g}; Karpathy et al. 2015):")
        print(table)
        print(f"Forget gate over time: {path}")
    return {"figure": path, "summary": traces.summary(left, right), "table": table}
