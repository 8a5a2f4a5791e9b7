"""Draw the figures of docs/tracing.md.

Trains two small two-layer klg LSTMs (default and chrono initialisation)
on a latch task (a "flip-flop"): each
step carries a value in [-1, 1] and a marker bit, and the target at every
step is the value seen at the most recent marker (0 before the first).
Solving it takes gating: write the cell at a marker, hold it everywhere
else.  Sequences have different lengths (the padding is masked), so the
pictures show masked steps too.  Then it traces the model with
``klg.trace`` and writes, under docs/assets/tracing/:

* heatmap.png               all five traces of layer 1 for one sample
* forget_gate.png           the forget gate of both layers (the demo's picture,
                            drawn by keras_lstm_gates.demo_report.gate_report)
* forget_gate_chrono.png    the same for a model trained from chrono initialisation
* saturation.png            the saturation scatter of both trained models
* saturation_untrained.png  the scatter before training

and prints the saturation tables.  It takes a minute or two on a CPU:

    KERAS_BACKEND=jax python tools/make_tracing_figures.py
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lstm_gates as klg  # noqa: E402
from keras_lstm_gates import plots  # noqa: E402
from keras_lstm_gates.demo_report import gate_report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "assets", "tracing")
T_MAX, T_MIN = 100, 60


def latch_task(n, rng, marker_rate=0.03):
    """``x`` (n, T_MAX, 2) zero-padded after each sequence's length and
    ``y`` (n, T_MAX, 1): the value at the latest marker, step by step."""
    x = np.zeros((n, T_MAX, 2), "float32")
    y = np.zeros((n, T_MAX, 1), "float32")
    lengths = rng.integers(T_MIN, T_MAX + 1, size=n)
    for k, length in enumerate(lengths):
        values = rng.uniform(-1, 1, size=length)
        values[values == 0] = 0.5  # a real step is never all zeros
        markers = rng.random(length) < marker_rate
        held = 0.0
        for t in range(length):
            if markers[t]:
                held = values[t]
            y[k, t, 0] = held
        x[k, :length, 0] = values
        x[k, :length, 1] = markers
    return x, y


def build_model(**lstm_options):
    inputs = keras.Input((T_MAX, 2))
    masked = keras.layers.Masking(mask_value=0.0)(inputs)
    h = klg.LSTM(16, return_sequences=True, name="lstm_1", **lstm_options)(masked)
    h = klg.LSTM(16, return_sequences=True, name="lstm_2", **lstm_options)(h)
    return keras.Model(inputs, keras.layers.Dense(1, name="latched")(h), name="latch")


def train(model, x, y, epochs):
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return model


def renamed(traces, prefix):
    """The same traces, their names prefixed (to tell two models apart)."""
    for t in traces.values():
        t.name = f"{prefix}{t.name}"
    return list(traces.values())


def mark_markers(fig, x_sample, n_panels):
    """A small triangle above each panel at the marked steps of the sample."""
    for step in np.flatnonzero(x_sample[:, 1]):
        for ax in fig.axes[:n_panels]:
            ax.plot(
                step,
                1.0,
                marker="v",
                color="crimson",
                markersize=6,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
            )


def save(fig, name):
    path = os.path.join(OUT, name)
    fig.savefig(path, dpi=100)
    print("wrote", os.path.relpath(path, ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--train", type=int, default=6000, help="training sequences")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = latch_task(args.train, rng)
    x_test, y_test = latch_task(256, rng)
    lengths = (x_test[:, :, 0] != 0).sum(axis=1)
    markers = x_test[:, :, 1].sum(axis=1)
    # A sample with some padding and three markers or more to look at.
    sample = int(np.flatnonzero((lengths < 0.9 * T_MAX) & (markers >= 3))[0])
    baseline = float(np.mean(y_test**2))
    print(
        f"drawn sample {sample}: {lengths[sample]} steps, markers at {np.flatnonzero(x_test[sample, :, 1])}"
    )

    model = build_model()
    before = klg.trace(model, x_test)
    print("Default initialisation, before training:\n" + before.summary_table())
    fig = before.plot_saturation()
    fig.suptitle("Before training: the gates sit near 0.5, none saturated")
    save(fig, "saturation_untrained.png")

    train(model, x_train, y_train, args.epochs)
    print(
        f"test MSE {model.evaluate(x_test, y_test, verbose=0):.4f} (zero predictor {baseline:.4f})"
    )
    traces = klg.trace(model, x_test)
    print("Default initialisation, trained:\n" + traces.summary_table())

    f = np.concatenate([t.forget_gate[t.mask] for t in traces.values()])
    print(
        f"forget gate values: 1% quantile {np.quantile(f, 0.01):.2f}, 99% {np.quantile(f, 0.99):.2f}"
    )

    chrono = train(build_model(chrono_t_max=T_MAX, chrono_seed=0), x_train, y_train, args.epochs)
    print(f"test MSE {chrono.evaluate(x_test, y_test, verbose=0):.4f} (chrono initialisation)")
    chrono_traces = klg.trace(chrono, x_test)
    print("Chrono initialisation, trained:\n" + chrono_traces.summary_table())

    fig = traces["lstm_1"].plot_heatmap(sample=sample)
    mark_markers(fig, x_test[sample], 5)
    save(fig, "heatmap.png")
    report = gate_report(model, x_test, OUT, sample=sample, verbose=False)
    print("wrote", os.path.relpath(report["figure"], ROOT))
    fig = plots.plot_gate(chrono_traces, "forget_gate", sample=sample)
    mark_markers(fig, x_test[sample], 2)
    save(fig, "forget_gate_chrono.png")
    both = renamed(traces, "default: ") + renamed(chrono_traces, "chrono: ")
    fig = plots.plot_saturation(both)
    fig.suptitle("Trained on the latch task: default vs chrono initialisation")
    save(fig, "saturation.png")


if __name__ == "__main__":
    main()
