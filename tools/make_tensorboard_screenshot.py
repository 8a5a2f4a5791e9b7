"""The TensorBoard screenshots on the "Watching the gates train" page.

From a real run: trains the demo (``python -m keras_lstm_gates.demo``, with
``klg.GateMonitor`` and ``keras.callbacks.TensorBoard`` writing to one log
folder), serves that folder with TensorBoard on 127.0.0.1, and captures two
of its dashboards with headless Chromium:

- ``docs/assets/monitor/tensorboard_scalars.png``: the forget gate's
  statistics from the monitor's ``gates`` run, and the accuracy from
  Keras's ``train`` and ``validation`` runs;
- ``docs/assets/monitor/tensorboard_images.png``: the forget-gate heatmap
  and the saturation scatter after the last epoch.

    python tools/make_tensorboard_screenshot.py           # train, serve, capture
    python tools/make_tensorboard_screenshot.py --reuse   # capture the last run's logs

Needs ``tensorboard`` (``pip install -e ".[tensorboard]"``) and Chromium
(``apt-get install chromium``).  Nothing is fetched from the network.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# file name: (dashboard URL fragment, browser window width,height)
VIEWS = {
    "tensorboard_scalars.png": (
        "#scalars&_smoothingWeight=0&tagFilter="
        "forget_gate%2F(mean%7Cright_saturated%7Cmostly_right)%7Cepoch_accuracy",
        "1400,1000",
    ),
    "tensorboard_images.png": ("#images&tagFilter=klg_lstm%2F", "1400,480"),
}


def train(log_dir, epochs):
    shutil.rmtree(log_dir, ignore_errors=True)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [
        sys.executable,
        "-m",
        "keras_lstm_gates.demo",
        "--epochs",
        str(epochs),
        "--out",
        str(log_dir.parent),
        "--logdir",
        str(log_dir),
    ]
    subprocess.run(command, env=env, cwd=ROOT, check=True)


def serve(log_dir, port):
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(log_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as r:
                if b"gates" in r.read():
                    time.sleep(3)  # let it finish loading the event files
                    return server
        except OSError:
            pass
        time.sleep(1)
    server.kill()
    raise RuntimeError(f"TensorBoard did not serve {log_dir} on port {port}")


def capture(url, path, size):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("Chromium not found: apt-get install -y chromium")
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--hide-scrollbars",
        f"--window-size={size}",
        "--virtual-time-budget=20000",
        f"--screenshot={path}",
        url,
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=180)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default=str(ROOT / "build" / "tensorboard-shot" / "logs"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "assets" / "monitor"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--port", type=int, default=6199)
    parser.add_argument("--reuse", action="store_true", help="use the logs already in --logdir")
    args = parser.parse_args()
    log_dir, out = Path(args.logdir), Path(args.out)
    if not args.reuse:
        train(log_dir, args.epochs)
    out.mkdir(parents=True, exist_ok=True)
    server = serve(log_dir, args.port)
    try:
        for name, (view, size) in VIEWS.items():
            capture(f"http://127.0.0.1:{args.port}/{view}", out / name, size)
            print(f"wrote {out / name}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
