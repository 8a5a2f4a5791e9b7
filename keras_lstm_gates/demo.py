"""The main demo: train klg.LSTM on a task that needs long memory.

Run it with ``bash tasks.sh demo`` (or ``python -m keras_lstm_gates.demo``).

The task ("remember the first symbol"): each sequence starts with one of
``n_classes`` one-hot symbols and a start flag, followed by ``length - 1``
steps of noise on a separate channel.
The label is the first symbol, so the network must carry it across the
whole sequence.  The demo prints the test accuracy, the parity of the trained
layer with ``keras.layers.LSTM`` holding the same weights, writes a picture
of the forget gate over time and prints the gate saturation summary.

While it trains, ``klg.GateMonitor`` watches the gates on 64 test sequences:
the demo prints how the forget gate's saturation changed epoch by epoch and,
with ``tensorboard`` installed, writes TensorBoard logs (the monitor's
``gates`` run beside Keras's ``train`` and ``validation`` runs) to
``build/demo/tensorboard``.
"""

import argparse
import importlib.util
import os
import time
import warnings

import numpy as np


def make_task(n, length, n_classes, seed):
    """Sequences whose label is their first symbol; noise elsewhere."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    x = np.zeros((n, length, n_classes + 2), dtype="float32")
    x[np.arange(n), 0, labels] = 1.0
    x[:, 0, n_classes] = 1.0  # the "start" flag
    x[:, 1:, n_classes + 1] = rng.normal(size=(n, length - 1))  # distractor noise
    return x, labels.astype("int32")


def build_model(length, features, n_classes, units, seed, chrono=True):
    import keras

    import keras_lstm_gates as klg

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((length, features))
    # Chrono initialisation spreads the forget gates' memory times up to the
    # sequence length, so the first symbol survives the noise from the start.
    # (--no-chrono keeps Keras's default unit forget bias: within the same budget
    # it stays near chance on this task.)
    init = {"chrono_t_max": length, "chrono_seed": seed} if chrono else {}
    hidden = klg.LSTM(units, name="klg_lstm", **init)(inputs)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=60, help="timesteps per sequence")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--units", type=int, default=24)
    parser.add_argument("--train", type=int, default=3000, help="training sequences")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--no-chrono",
        action="store_true",
        help="use Keras's default unit forget bias instead of chrono initialisation",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="build/demo", help="where the figures go")
    parser.add_argument(
        "--logdir",
        default=None,
        help="TensorBoard log folder (default OUT/tensorboard; needs the tensorboard package)",
    )
    args = parser.parse_args(argv)

    # No TensorFlow/XLA log lines on the first screen needs TF_CPP_MIN_LOG_LEVEL=3
    # and TF_ENABLE_ONEDNN_OPTS=0 in the environment that starts the demo:
    # TensorFlow reads them once, when the package's import loads it, before
    # this function runs.
    import keras

    start = time.perf_counter()
    features = args.classes + 2
    x_train, y_train = make_task(args.train, args.length, args.classes, args.seed)
    x_test, y_test = make_task(1000, args.length, args.classes, args.seed + 1)
    print(
        f"keras_lstm_gates demo on the {keras.backend.backend()} backend: remember the first of "
        f"{args.length} steps ({args.classes} classes, chance = {1 / args.classes:.0%})"
    )
    model = build_model(
        args.length, features, args.classes, args.units, args.seed, chrono=not args.no_chrono
    )
    from .monitor import GateSaturationWarning

    callbacks, monitor = monitor_callbacks(x_test[:64], args)
    with warnings.catch_warnings(record=True) as alerts:
        warnings.simplefilter("always", GateSaturationWarning)
        model.fit(
            x_train,
            y_train,
            batch_size=64,
            epochs=args.epochs,
            verbose=2,
            validation_split=0.1,
            callbacks=callbacks,
        )
    print_monitor(monitor, [a for a in alerts if issubclass(a.category, GateSaturationWarning)])
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy: {accuracy:.3f}")

    layer = model.get_layer("klg_lstm")
    reference = layer.to_keras()
    ours = keras.ops.convert_to_numpy(layer(x_test[:256]))
    theirs = keras.ops.convert_to_numpy(reference(x_test[:256]))
    print(
        "parity with keras.layers.LSTM (same weights): max |difference| = "
        f"{np.abs(ours - theirs).max():.2e}"
    )

    try:
        from .demo_report import gate_report
    except ImportError:  # tracing report not available
        gate_report = None
    if gate_report is not None:
        os.makedirs(args.out, exist_ok=True)
        gate_report(model, x_test[:64], args.out)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return accuracy


def monitor_callbacks(x_probe, args):
    """klg.GateMonitor on ``x_probe`` and, when ``tensorboard`` is installed,
    TensorBoard logs from it and from ``keras.callbacks.TensorBoard``."""
    import keras

    from .monitor import GateMonitor

    log_dir = None
    if importlib.util.find_spec("tensorboard") is not None:
        log_dir = args.logdir or os.path.join(args.out, "tensorboard")
    monitor = GateMonitor(x_probe, log_dir=log_dir)
    callbacks = [monitor]
    if log_dir is not None and importlib.util.find_spec("tensorflow") is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False))
    return callbacks, monitor


def print_monitor(monitor, alerts):
    """The forget gate of each layer, epoch by epoch, from the monitor."""
    layers = sorted(
        {k.split("/forget_gate/")[0] for k in monitor.history[0] if "/forget_gate/" in k}
    )
    print(
        f"Forget gate during training (klg.GateMonitor on {monitor.traces[layers[0]].batch_size} "
        f"test sequences; saturated: f < {monitor.left:g} or f > {monitor.right:g}):"
    )
    print("layer      epoch  mean f  f > 0.9  units mostly f > 0.9")
    for layer in layers:
        for h in monitor.history:
            mean, right, units = (
                h[f"{layer}/forget_gate/{s}"] for s in ("mean", "right_saturated", "mostly_right")
            )
            print(f"{layer:<10} {h['epoch'] + 1:>5}  {mean:>6.3f}  {right:>7.1%}  {units:>20.0%}")
    for alert in alerts:
        print(f"note: {alert.message}")
    if monitor.log_dir is not None:
        print(f"TensorBoard logs: tensorboard --logdir {monitor.log_dir}")
    print(f"(the monitor took {monitor.seconds:.1f} s of the training time)")


if __name__ == "__main__":
    main()
