"""Does klg.explore's page stay usable at 50,000 tokens x 256 units x the six
tracks (h, C, f, i, C-tilde, o)?  Measures, on this machine:

* the size of the saved HTML file (target: under 20 MB),
* its load time in headless Chromium: from navigation to the explorer
  drawn and ready, read from the page's own clock (target: under 3 s),
* the time a selection takes to answer: a range set as a click sets it,
  through the ranked units, the match over all tokens and the redrawn
  lists (target: under 200 ms), over ranges spread through the text.

The model is a character-level klg.LSTM(256) reading Python source from the
standard library (the corpus of tutorial 06), untrained: size and speed do
not depend on training, only the compression of the values does, a little.
It has two annotation tracks and 500 connectivity rows.

    python benchmarks/explore_scale.py                      # writes docs/assets/explore/scale.json
    python benchmarks/explore_scale.py --tokens 5000 --out /tmp/scale.json   # a quick run
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "site"))


def corpus(chars):
    """Python source from the standard library, and its two annotations:
    inside a one-line string literal, and bracket depth."""
    import io
    import tokenize

    import numpy as np

    text, strings = [], []
    for path in sorted(pathlib.Path(os.__file__).parent.glob("*.py")):
        try:
            source = path.read_text(encoding="utf-8")
            inside = np.zeros(len(source), np.float32)
            lines = source.splitlines(keepends=True)
            starts = np.cumsum([0] + [len(line) for line in lines])
            for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                if tok.type == tokenize.STRING and tok.start[0] == tok.end[0]:
                    a = starts[tok.start[0] - 1] + tok.start[1]
                    inside[a : a + len(tok.string)] = 1
        except (SyntaxError, UnicodeDecodeError, tokenize.TokenError):
            continue
        text.append(source)
        strings.append(inside)
        if sum(map(len, text)) >= chars:
            break
    text = "".join(text)[:chars]
    inside = np.concatenate(strings)[:chars]
    depth, d = np.zeros(chars, np.float32), 0
    for k, ch in enumerate(text):
        if not inside[k] and ch in "([{":
            d += 1
        depth[k] = d
        if not inside[k] and ch in ")]}":
            d = max(0, d - 1)
    return text, inside, depth


def build(args):
    import keras
    import numpy as np

    import keras_lstm_gates as klg

    text, inside, depth = corpus(args.tokens)
    chars = sorted(set(text))
    ids = np.array([chars.index(c) + 1 for c in text], "int32")
    rows = args.tokens // args.length
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            # Wide embeddings: an untrained model's states then span a range
            # like a trained one's (with the default, |h| stays near 0.005).
            keras.layers.Embedding(
                len(chars) + 1, 32, embeddings_initializer=keras.initializers.RandomNormal(0, 1)
            ),
            klg.LSTM(args.units, return_sequences=True, name="lstm"),
            keras.layers.Dense(len(chars) + 1),
        ]
    )
    shape = (rows, args.length)
    tokens = np.array(list(text[: rows * args.length]), dtype=object).reshape(shape)
    labels = {
        "in_string": inside[: rows * args.length].reshape(shape),
        "bracket_depth": depth[: rows * args.length].reshape(shape),
    }
    start = time.perf_counter()
    explorer = klg.explore(
        model,
        ids[: rows * args.length].reshape(shape),
        tokens,
        labels,
        connectivity=args.connectivity,
        connectivity_window=64,
    )
    explore_s = time.perf_counter() - start
    start = time.perf_counter()
    html = explorer.to_html()
    page_s = time.perf_counter() - start
    return explorer, html, explore_s, page_s


READY = (
    "(() => { const r = document.getElementById('klg-explore');"
    " return !!(r && r.dataset.ready === 'true'); })()"
)
# A low threshold, "either sign" and no "off around" steps select many units
# over every range, so that each answer includes the match of all of them
# over every token: a heavy selection, not a typical one.
SELECT = """
(async () => {
  const api = window.klgExplorer, N = %d, count = %d, out = [];
  const set = (role, value) => {
    const box = document.querySelector('[data-role=' + role + ']');
    box.value = value; box.dispatchEvent(new Event('change'));
  };
  set('threshold', '%s'); set('sign', 'both'); set('context', '0');
  for (let k = 0; k < count; k++) {
    const a = Math.floor((k + 0.5) * N / count);
    api.setRange(a, a + 3);
    out.push({ms: api.timings.selectionMs, units: api.state.selected.length,
              spans: api.state.matches ? api.state.matches.total : 0});
  }
  return out;
})()
"""


def measure_in_chromium(path, tokens, ranges, threshold):
    import siteserver
    from test_browser import open_browser

    with siteserver.serve(path.parent, prefix="/") as base:
        opened = open_browser(base)
        chromium, recorder = next(opened)
        loads = []
        for _ in range(3):
            recorder.reset()
            chromium.send("Page.navigate", {"url": base + path.name})
            chromium.wait_for(lambda: recorder.loaded, 120, "load")
            chromium.wait_for(lambda: chromium.evaluate(READY), 120, "the explorer")
            loads.append(chromium.evaluate("klgExplorer.timings.readyMs"))
        problems = recorder.console + recorder.blocked + recorder.failed
        selections = chromium.evaluate(SELECT % (tokens, ranges, threshold), await_promise=True)
        version = chromium.send("Browser.getVersion", session=False)["product"]
        opened.close()
    return loads, selections, problems, version


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--length", type=int, default=500, help="steps per sequence")
    parser.add_argument("--connectivity", type=int, default=500)
    parser.add_argument("--ranges", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.1)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs/assets/explore/scale.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    explorer, html, explore_s, page_s = build(args)
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "explore.html"
        path.write_text(html, encoding="utf-8")
        size = path.stat().st_size
        loads, selections, problems, version = measure_in_chromium(
            path, len(explorer.tokens), args.ranges, args.threshold
        )
    import keras

    note = json.loads(html.split("id='klg-explore-data'>", 1)[1].split("</script>", 1)[0])["note"]
    result = {
        "tokens": len(explorer.tokens),
        "units": args.units,
        "tracks": 6,
        "labels": 2,
        "connectivity_rows": args.connectivity,
        "kept": note.split("The page holds ", 1)[1].rstrip("."),
        "file_mb": round(size / 1e6, 2),
        "load_s_median": round(statistics.median(loads) / 1000, 2),
        "load_s_runs": [round(v / 1000, 2) for v in loads],
        "selection_ms_median": round(statistics.median(s["ms"] for s in selections), 1),
        "selection_ms_max": round(max(s["ms"] for s in selections), 1),
        "selection_ranges": len(selections),
        "selection_threshold": args.threshold,
        "selected_units_median": statistics.median(s["units"] for s in selections),
        "matched_spans_median": statistics.median(s["spans"] for s in selections),
        "explore_s": round(explore_s, 1),
        "page_s": round(page_s, 1),
        "console_errors_or_requests": problems,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "chromium": version,
        "backend": keras.backend.backend(),
        "command": "python benchmarks/explore_scale.py",
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
