"""The TensorBoard screenshots on the "Watching the gates train" page.

From a real run: trains the demo (``python -m keras_lstm_gates.demo``, with
``klg.GateMonitor`` and ``keras.callbacks.TensorBoard`` writing to one log
folder), serves that folder with TensorBoard on 127.0.0.1, and captures the
cards of two of its dashboards with headless Chromium (tests/site/cdp.py):

- ``docs/assets/monitor/tensorboard_scalars.png``: the forget gate's
  statistics from the monitor's ``gates`` run, and the accuracy from
  Keras's ``train`` and ``validation`` runs;
- ``docs/assets/monitor/tensorboard_images.png``: the forget-gate heatmap
  after the last epoch, at its own size.

Each picture is cropped to the dashboard's cards (no sidebar, no header)
and taken at twice the CSS pixel density, so that at the page's width its
text is as large as in the browser.  TensorBoard runs in a temporary
folder on ``--logdir logs``, so the only log path it can show is "logs".
Each PNG records, in text chunks, the CSS width of what it shows, the
smallest text in it (CSS px) and that text itself; tests/site checks them.

    python tools/make_tensorboard_screenshot.py           # train, serve, capture
    python tools/make_tensorboard_screenshot.py --reuse   # capture the last run's logs

Needs ``tensorboard`` and Chromium (``apt-get install chromium``).  Nothing
is fetched from the network.
"""

import argparse
import base64
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "site"))  # the CDP client of the browser tests
DENSITY = 2  # device pixels per CSS pixel
WINDOW = (1000, 1000)  # CSS px: two columns of cards beside TensorBoard's sidebar
# file name: (dashboard URL fragment, card element, cards to keep, set-up script)
VIEWS = {
    "tensorboard_scalars.png": (
        "#scalars&_smoothingWeight=0&tagFilter="
        "forget_gate%2F(mean%7Cright_saturated%7Cmostly_right)%7Cepoch_accuracy",
        "tf-scalar-card",
        4,
        "",
    ),
    "tensorboard_images.png": (
        "#images&tagFilter=klg_lstm%2F",
        "tf-image-loader",
        1,  # the heatmap; the three-panel scatter is wider than the page at its own size
        # "Show actual image size": the monitor's figures at their own pixels
        "deep(document, 'paper-checkbox, input[type=checkbox]', [])"
        ".find(b => /actual image size/i.test(b.textContent || b.parentElement.textContent))"
        ".click()",
    ),
}
# Finds elements through TensorBoard's shadow roots; measures the cards.
MEASURE = r"""
((selector, count) => {
  const deep = (root, sel, out) => { root.querySelectorAll(sel).forEach(e => out.push(e));
    root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) deep(e.shadowRoot, sel, out); }); return out; };
  const cards = deep(document, selector, []).slice(0, count);
  if (cards.length < count) return null;
  const boxes = cards.flatMap(c => [c, ...deep(c.shadowRoot || c, 'img', [])]).map(e => e.getBoundingClientRect());
  const x = Math.min(...boxes.map(b => b.left)), y = Math.min(...boxes.map(b => b.top));
  const right = Math.max(...boxes.map(b => b.right)), bottom = Math.max(...boxes.map(b => b.bottom));
  const texts = [];
  cards.forEach(c => deep(c.shadowRoot || c, '*', [c]).forEach(e => {
    const own = Array.from(e.childNodes).filter(n => n.nodeType === 3 && n.textContent.trim());
    if (own.length && !['STYLE', 'SCRIPT'].includes(e.tagName)) texts.push([parseFloat(getComputedStyle(e).fontSize), own.map(n => n.textContent.trim()).join(' ')]);
  }));
  return {x, y, width: right - x, height: bottom - y,
          minText: Math.min(...texts.map(t => t[0])), text: texts.map(t => t[1]).join(' | ')};
})
"""


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
    """TensorBoard on ``log_dir`` named relatively ("logs"), from its parent."""
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", log_dir.name]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    server = subprocess.Popen(
        command, cwd=log_dir.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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


def capture(browser, url, path, view):
    """The cards of one dashboard, cropped, with what they show in text chunks."""
    from PIL import Image, PngImagePlugin

    fragment, selector, count, setup = view
    browser.send("Page.navigate", {"url": url + fragment})
    found, deadline = None, time.time() + 60
    while found is None and time.time() < deadline:
        browser.pump(1.0)
        found = browser.evaluate(f"({MEASURE})({selector!r}, {count})")
    if found is None:
        raise RuntimeError(f"{url}{fragment}: fewer than {count} {selector} cards")
    if setup:
        deep = MEASURE.split("const cards")[0].split("=> {", 1)[1]
        browser.evaluate(f"(() => {{ {deep} {setup}; }})()")
        browser.pump(4.0)  # charts and images redraw
        found = browser.evaluate(f"({MEASURE})({selector!r}, {count})")
    browser.pump(2.0)
    clip = {k: found[k] for k in ("x", "y", "width", "height")}
    shot = browser.send(
        "Page.captureScreenshot",
        {"format": "png", "clip": {**clip, "scale": 1}, "captureBeyondViewport": True},
        timeout=60,
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    info = PngImagePlugin.PngInfo()
    info.add_text("klg-css-width", f"{found['width']:.0f}")
    info.add_text("klg-min-text-px", f"{found['minText']:g}")
    info.add_text("klg-text", found["text"])
    with Image.open(path) as image:
        image.load()
        image.save(path, pnginfo=info, optimize=True)


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
    from cdp import Chromium, find_chromium

    server = serve(log_dir, args.port)
    browser = Chromium(find_chromium(), lambda message: None)
    try:
        browser.open_page()
        browser.send("Page.enable")
        width, height = WINDOW
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": DENSITY, "mobile": False},
        )
        for name, view in VIEWS.items():
            capture(browser, f"http://127.0.0.1:{args.port}/", out / name, view)
            print(f"wrote {out / name}")
    finally:
        browser.close()
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
