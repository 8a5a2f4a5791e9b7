"""The site's reading aids, in headless Chromium at 1280 and 390 px wide:
the cell diagram, the gate explorers, the symbol popovers, the layout and
search.

* Diagram: tools/make_cell_diagram.py wrote the committed SVG; every
  equation page shows it with its own part highlighted, the home page and
  the Equations index show it, each part links to its page, and its colours
  follow the light and dark schemes.
* Explorers: the sliders are moved (by keyboard and by setting their value)
  and every number the panel shows is compared with klg's gate sublayer
  computing the same gate with the slider values as its weights.
* Popovers: hover, tap and keyboard each show the symbol's sentence from the
  symbols page (read from that page, not from the script's data); no link
  inside KaTeX's aria-hidden markup takes focus; the symbols page highlights
  the row a link lands on.
* Layout: no displayed equation is wider than its column at 1280 px; no page
  scrolls sideways at 390 px; code in tables breaks between names only.
* Search: previews hold no TeX source; a page whose title is the query is
  the first result.

Screenshots go to build/screenshots/explorers/ for review.
"""

# ruff: noqa: F811  (pytest fixtures imported from test_browser are parameters here)
from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import keras
import numpy as np
import pytest
import sitebuild
from test_browser import _visit, browser, server, site  # noqa: F401 (fixtures)

import keras_lstm_gates as klg

SHOTS = sitebuild.ROOT / "build" / "screenshots" / "explorers"
WIDTHS = (1280, 390)
EQUATION_PAGES = sitebuild.EQUATION_PAGES
# page -> the part its explorer shows ("cell": the whole step)
EXPLORERS = {
    "": "cell",
    "explanations/forgetting-a-worked-example/": "cell",
    "equations/forget-gate/": "forget",
    "equations/input-gate/": "input",
    "equations/candidate-memory/": "candidate",
    "equations/output-gate/": "output",
}
PARTS = {  # the explorer's part -> klg's sublayer and its letter
    "forget": ("forget_gate", "f"),
    "input": ("input_gate", "i"),
    "candidate": ("candidate", "c"),
    "output": ("output_gate", "o"),
}
# What each panel must show, besides z (a part's panel) or z_f ... (the cell's).
SHOWN = {
    "cell": {"z_f", "f_t", "z_i", "i_t", "z_c", "c_tilde", "c_t", "z_o", "o_t", "h_t"},
    "forget": {"z", "f_t", "kept", "percent"},
    "input": {"z", "i_t", "c_tilde", "written"},
    "candidate": {"z", "c_tilde"},
    "output": {"z", "o_t", "c_t", "h_t"},
}
# The worked example's step (source 003 and its series): x_t, h_{t-1}, C_{t-1}
# and (kernel, recurrent_kernel, bias) of each part.
WORKED_START = {"x_t": 1.0, "h_prev": 1.0, "c_prev": 2.0} | {
    f"{w}_{s}": v
    for s, values in {
        "f": (1.63, 2.70, 1.62),
        "i": (1.65, 2.00, 0.62),
        "c": (0.94, 1.41, -0.32),
        "o": (-0.19, 4.38, 0.59),
    }.items()
    for w, v in zip(("kernel", "recurrent_kernel", "bias"), values)
}


def _resize(chromium, width: int) -> None:
    chromium.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def _open(chromium, recorder, url: str, width: int, quiet: bool = True) -> None:
    """Load a page at a width; with ``quiet``, fail on a console error
    (test_browser.py checks every page for those)."""
    _resize(chromium, width)
    _visit(chromium, recorder, url)
    chromium.pump(0.2)
    assert not (quiet and recorder.console), recorder.console


def _shot(chromium, name: str, width: int, height: int | None = None) -> Path:
    """A PNG of the page from its top (``height`` px, or all of it), or of
    what the reader sees now with ``height=0``."""
    if height == 0:
        shot = chromium.send("Page.captureScreenshot", {"format": "png"}, timeout=60)
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / name
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
    if height is None:
        metrics = chromium.send("Page.getLayoutMetrics")
        height = min(int(metrics["cssContentSize"]["height"]) + 1, 9000)
    shot = chromium.send(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
        timeout=60,
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


# -- the diagram ---------------------------------------------------------------------


def test_committed_diagram_is_the_scripts():
    script = sitebuild.ROOT / "tools" / "make_cell_diagram.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


DIAGRAM = r"""
(() => {
  const fig = document.querySelector('figure.klg-cell-diagram');
  if (!fig) return null;
  const svg = fig.querySelector('svg');
  const box = svg.getBoundingClientRect();
  const column = fig.closest('article').getBoundingClientRect();
  const parts = Array.from(svg.querySelectorAll('a')).map(a => ({
    href: new URL(a.getAttribute('href'), location.href).href,
    classes: a.querySelector('g').getAttribute('class')}));
  const shape = svg.querySelector('.klg-frame');
  const text = svg.querySelector('text.klg-io');
  const colours = () => ({box: getComputedStyle(shape).fill, text: getComputedStyle(text).fill});
  const light = colours();
  document.body.setAttribute('data-md-color-scheme', 'slate');
  const dark = colours();
  document.body.setAttribute('data-md-color-scheme', 'default');
  return {highlight: fig.dataset.highlight || null, parts, light, dark,
          width: box.width, column: column.width, right: box.right,
          viewport: document.documentElement.clientWidth};
})()
"""


def _luminance(css: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("width", WIDTHS)
def test_cell_diagram_on_pages(site, server, browser, width):  # noqa: F811
    chromium, recorder = browser
    pages = {f"equations/{p}/": p for p in EQUATION_PAGES} | {"": None, "equations/": None}
    for path, part in pages.items():
        _open(chromium, recorder, server + path, width)
        found = chromium.evaluate(DIAGRAM)
        assert found is not None, f"{path or '/'}: no cell diagram"
        assert found["highlight"] == part, (path, found["highlight"])
        assert found["right"] <= found["viewport"] + 1, (path, width, found)
        targets = {urlsplit(p["href"]).path.rstrip("/").rsplit("/", 1)[-1] for p in found["parts"]}
        assert targets == {
            "forget-gate",
            "input-gate",
            "candidate-memory",
            "cell-state-update",
            "output-gate",
            "hidden-state",
        }, targets
        for link in found["parts"]:
            rel = urlsplit(link["href"]).path[len(urlsplit(server).path) :]
            assert (site / rel / "index.html").is_file(), f"{path}: diagram link {link['href']}"
            highlighted = "klg-hl" in link["classes"].split()
            assert highlighted == (part is not None and f"klg-part-{part}" in link["classes"]), (
                path,
                link,
            )
        if part is not None:
            assert any("klg-hl" in p["classes"] for p in found["parts"]), path
        # a light frame on a light page, a dark one in the slate scheme; text likewise
        assert _luminance(found["light"]["box"]) > 0.7 > 0.35 > _luminance(found["dark"]["box"])
        assert _luminance(found["light"]["text"]) < 0.3 < 0.7 < _luminance(found["dark"]["text"])
    _shot(chromium, f"forget-gate-diagram-{width}.png", width, 1400)


# -- the explorers --------------------------------------------------------------------

READ_PANEL = r"""
((index) => {
  const panel = document.querySelectorAll('div.klg-explorer')[index];
  const sliders = {};
  panel.querySelectorAll('input[type=range]').forEach(s => { sliders[s.name] = s.value; });
  const outputs = {};
  panel.querySelectorAll('output').forEach(o => { outputs[o.name] = o.textContent.trim(); });
  const r = panel.getBoundingClientRect();
  return {part: panel.dataset.part, sliders, outputs, right: r.right,
          viewport: document.documentElement.clientWidth};
})
"""

SET_SLIDER = r"""
((index, name, value) => {
  const panel = document.querySelectorAll('div.klg-explorer')[index];
  const s = panel.querySelector(`input[type=range][name="${name}"]`);
  s.value = value;
  s.dispatchEvent(new Event('input', {bubbles: true}));
  return s.value;
})
"""


def _read(chromium, index=0):
    return chromium.evaluate(f"{READ_PANEL}({index})")


_SUPERSCRIPT = str.maketrans(
    "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079", "-0123456789"
)


def _number(shown: str) -> tuple[float, float]:
    """A number as the explorers write it ("\u22121.98", "6.27 \u00d7 10\u207b\u2076",
    "99.74%") and half a unit of its last shown digit."""
    text = shown.replace("\u2212", "-").rstrip("%").strip()
    mantissa, _, power = text.partition(" \u00d7 10")
    exponent = int(power.translate(_SUPERSCRIPT)) if power else 0
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return float(mantissa) * 10.0**exponent, 0.5 * 10.0 ** (exponent - decimals)


def _shown_matches(shown: str, value: float) -> bool:
    """Within half a unit of the shown last digit (float32 slack added)."""
    number, half_unit = _number(shown)
    return abs(number - value) <= half_unit + 2e-6 * abs(value) + 1e-9


def test_shown_matching_can_fail():
    assert _shown_matches("5.95", 5.9499998) and not _shown_matches("5.96", 5.9499998)
    assert _shown_matches("6.27 \u00d7 10\u207b\u2076", 6.2683e-6)
    assert not _shown_matches("6.30 \u00d7 10\u207b\u2076", 6.2683e-6)
    assert _shown_matches("\u221211.98", -11.98) and _shown_matches("0.000627%", 0.000627)


def _klg_cell(sliders: dict) -> dict[str, float]:
    """What klg computes for a panel's sliders: one step of a one-unit
    klg.LSTMCell whose parts have the slider values as kernel,
    recurrent_kernel and bias."""
    cell = klg.LSTMCell(1)
    cell.build((None, 1))
    for name, s in PARTS.values():
        gate = cell.gates[name]
        gate.kernel.assign([[float(sliders[f"kernel_{s}"])]])
        gate.recurrent_kernel.assign([[float(sliders[f"recurrent_kernel_{s}"])]])
        gate.bias.assign([float(sliders[f"bias_{s}"])])
    x = np.array([[float(sliders["x_t"])]], "float32")
    states = [np.array([[float(sliders[k])]], "float32") for k in ("h_prev", "c_prev")]
    h, (_, c), parts = cell.call_per_gate(x, states)
    value = lambda t: float(keras.ops.convert_to_numpy(t)[0, 0])  # noqa: E731
    out = {
        f"z_{s}": value(cell.gates[name].preactivation(x, states[0])) for name, s in PARTS.values()
    }
    out |= {"f_t": value(parts["forget_gate"]), "i_t": value(parts["input_gate"])}
    out |= {"c_tilde": value(parts["candidate"]), "o_t": value(parts["output_gate"])}
    out |= {"c_t": value(c), "h_t": value(h)}
    out["kept"] = out["f_t"] * float(sliders["c_prev"])
    out["percent"] = 100.0 * out["f_t"]
    out["written"] = out["i_t"] * out["c_tilde"]
    return out


def _check_panel(chromium, index=0) -> dict:
    panel = _read(chromium, index)
    expected = _klg_cell(panel["sliders"])
    if panel["part"] != "cell":
        expected["z"] = expected["z_" + PARTS[panel["part"]][1]]
    assert set(panel["outputs"]) == SHOWN[panel["part"]], panel["outputs"]
    wrong = {
        name: (shown, expected[name])
        for name, shown in panel["outputs"].items()
        if not _shown_matches(shown, expected[name])
    }
    assert not wrong, f"panel shows {wrong} (shown, klg) for sliders {panel['sliders']}"
    assert panel["right"] <= panel["viewport"] + 1, panel
    return panel


def _press(chromium, key: str, code: int) -> None:
    for kind in ("keyDown", "keyUp"):
        chromium.send(
            "Input.dispatchKeyEvent",
            {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code},
        )


def _focus_slider(chromium, name: str) -> None:
    chromium.evaluate(
        f"(s => {{ s.scrollIntoView({{block: 'center'}}); s.focus(); }})"
        f"(document.querySelector('div.klg-explorer input[name={name}]'))"
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_cell_explorer_reproduces_the_worked_example(server, browser, width):  # noqa: F811
    """The whole cell opens on the source's numbers; at x_t = -10 it shows the
    worked example's h_t, 1.16 x 10^-5, and the plot puts each gate's z on
    the sigmoid."""
    chromium, recorder = browser
    _open(chromium, recorder, server + "explanations/forgetting-a-worked-example/", width)
    panel = _check_panel(chromium)
    assert panel["part"] == "cell"
    assert {k: float(v) for k, v in panel["sliders"].items()} == WORKED_START
    assert panel["outputs"]["z_f"] == "5.95" and panel["outputs"]["z_i"] == "4.27"
    assert panel["outputs"]["z_c"] == "2.03"
    # x_t to -10 with the keyboard: Home puts a range input at its minimum.
    _focus_slider(chromium, "x_t")
    _press(chromium, "Home", 36)
    chromium.pump(0.1)
    panel = _check_panel(chromium)
    assert panel["sliders"]["x_t"] == "-10"
    assert panel["outputs"]["h_t"] == "1.16 \u00d7 10\u207b\u2075", panel["outputs"]
    assert panel["outputs"]["z_f"] == "\u221211.98"
    plot = chromium.evaluate(
        "(() => { const svg = document.querySelector('div.klg-explorer svg.klg-explorer__plot');"
        " return {label: svg.getAttribute('aria-label'), points: svg.querySelectorAll("
        "'.klg-explorer__point circle[cx]').length, curve: !!svg.querySelector('path')}; })()"
    )
    assert plot["curve"] and plot["points"] == 3, plot
    assert "f_t at z = \u221211.98" in plot["label"], plot
    _shot(chromium, f"worked-example-explorer-{width}.png", width)
    _press(chromium, "ArrowRight", 39)  # one step up: -9.99
    assert _check_panel(chromium)["sliders"]["x_t"] == "-9.99"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", sorted(EXPLORERS))
def test_explorers_match_klg(server, browser, path, width):  # noqa: F811
    chromium, recorder = browser
    _open(chromium, recorder, server + path, width)
    assert chromium.evaluate("document.querySelectorAll('div.klg-explorer').length") == 1
    panel = _check_panel(chromium)
    assert panel["part"] == EXPLORERS[path]
    assert {k: float(v) for k, v in panel["sliders"].items()} == WORKED_START
    rng = np.random.default_rng(len(path) + width)
    for _ in range(3):
        for name in panel["sliders"]:
            low, high = chromium.evaluate(
                f"(s => [Number(s.min), Number(s.max)])(document.querySelector("
                f"'div.klg-explorer input[name={name}]'))"
            )
            value = round(float(rng.uniform(low, high)), 2)
            chromium.evaluate(f"{SET_SLIDER}(0, {json.dumps(name)}, {json.dumps(str(value))})")
        _check_panel(chromium)
    # the extremes saturate every part without NaN
    for name in ("x_t", "kernel_f", "kernel_i", "kernel_c", "kernel_o"):
        chromium.evaluate(f"{SET_SLIDER}(0, {json.dumps(name)}, '10')")
    _check_panel(chromium)
    chromium.evaluate("document.querySelector('.klg-explorer__reset').click()")
    assert _read(chromium)["sliders"] == panel["sliders"]


def test_part_panels_agree_with_the_cell(server, browser):  # noqa: F811
    """At x_t = -10 the output gate's panel shows the cell's h_t (its C_t is
    the cell's, not a slider of its own), and every number is written as the
    pages write it: minus signs, negative factors in parentheses, n x 10^-k,
    a % sign."""
    chromium, recorder = browser
    _open(chromium, recorder, server + "equations/output-gate/", 1280)
    chromium.evaluate(f"{SET_SLIDER}(0, 'x_t', '-10')")
    assert _read(chromium)["outputs"]["h_t"] == "1.16 \u00d7 10\u207b\u2075"
    _open(chromium, recorder, server + "equations/forget-gate/", 1280)
    chromium.evaluate(f"{SET_SLIDER}(0, 'x_t', '-10')")
    panel = _check_panel(chromium)
    text = chromium.evaluate(
        "Array.from(document.querySelectorAll('div.klg-explorer output,"
        " div.klg-explorer .klg-explorer__sum, div.klg-explorer .klg-explorer__value'))"
        ".map(e => e.textContent).join(' | ')"
    )
    assert "\u00d7 (\u221210.00)" in text, text
    assert not re.search(r"\d-|-\d|\+ [-\u2212]|e-\d", text), text
    assert panel["outputs"]["percent"].endswith("%") and panel["outputs"]["percent"] == "0.000627%"
    assert panel["outputs"]["f_t"] == "6.27 \u00d7 10\u207b\u2076"
    chromium.evaluate(f"{SET_SLIDER}(0, 'bias_f', '-0.32')")
    text = chromium.evaluate("document.querySelector('.klg-explorer__sum').textContent")
    assert text.endswith("+ (\u22120.32)"), text


def test_explorer_reset_restores_the_pages_numbers(server, browser):  # noqa: F811
    chromium, recorder = browser
    _open(chromium, recorder, server + "equations/forget-gate/", 1280)
    start = _read(chromium)
    chromium.evaluate(f"{SET_SLIDER}(0, 'x_t', '-10')")
    assert _read(chromium)["outputs"] != start["outputs"]
    chromium.evaluate("document.querySelector('.klg-explorer__reset').click()")
    assert _read(chromium) == start


SLIDER_WIDTHS = (
    "Array.from(document.querySelectorAll('div.klg-explorer input[type=range]'))"
    ".filter(s => s.checkVisibility()).map(s => s.getBoundingClientRect().width)"
)


@pytest.mark.parametrize("width", WIDTHS)
def test_explorer_sliders_are_usable(server, browser, width):  # noqa: F811
    """Every shown slider keeps a track long enough to drag, at both widths:
    x_t, h_{t-1}, C_{t-1} and the part's three weights (the rest folded)."""
    chromium, recorder = browser
    _open(chromium, recorder, server + "equations/forget-gate/", width)
    widths = chromium.evaluate(SLIDER_WIDTHS)
    assert len(widths) == 6 and min(widths) >= 0.4 * min(width, 700), widths
    chromium.evaluate("document.querySelector('div.klg-explorer details').open = true")
    assert len(chromium.evaluate(SLIDER_WIDTHS)) == 15


# -- symbol popovers -------------------------------------------------------------------

SYMBOL_ROWS = r"""
(() => {
  const rows = {};
  document.querySelectorAll('tr').forEach(tr => {
    const a = tr.querySelector('a[id^="sym-"]');
    if (!a) return;
    const cells = tr.querySelectorAll('td');
    const plain = el => { const c = el.cloneNode(true);
      c.querySelectorAll('.katex').forEach(k => k.replaceWith(
        (k.querySelector('annotation') || {textContent: ''}).textContent));
      return c.textContent.replace(/\s+/g, ' ').trim(); };
    rows[a.id.slice(4)] = {name: plain(cells[1]), meaning: plain(cells[2])};
  });
  return rows;
})()
"""

POPOVER = r"""
(() => {
  const p = document.getElementById('klg-popover');
  if (!p || p.hidden) return null;
  const plain = el => { const c = el.cloneNode(true);
    c.querySelectorAll('.katex').forEach(k => k.replaceWith(
      (k.querySelector('annotation') || {textContent: ''}).textContent));
    return c.textContent.replace(/\s+/g, ' ').trim(); };
  const r = p.getBoundingClientRect();
  return {symbol: p.dataset.symbol, name: p.querySelector('strong').textContent,
          meaning: plain(p.querySelector('.klg-popover__meaning')),
          more: p.querySelector('.klg-popover__more').href,
          left: r.left, right: r.right, top: r.top, bottom: r.bottom,
          viewport: document.documentElement.clientWidth,
          live: (document.getElementById('klg-popover-live') || {}).textContent || ''};
})()
"""

SYMBOL_CENTER = r"""
((selector) => {
  const a = document.querySelector(selector);
  a.scrollIntoView({block: 'center'});
  const r = a.getBoundingClientRect();
  return {x: r.left + r.width / 2, y: r.top + r.height / 2,
          id: a.getAttribute('href').split('#sym-')[1],
          title: a.getAttribute('title')};
})
"""

# a point of the page's text, away from the popover and from any symbol
EMPTY_SPOT = r"""
(() => {
  const popover = document.getElementById('klg-popover');
  for (let y = 120; y < innerHeight - 20; y += 15) {
    for (const x of [40, 120, 200]) {
      const el = document.elementFromPoint(x, y);
      if (el && el.closest('article p') && !el.closest('.katex, .arithmatex, a')
          && !(popover && popover.contains(el))) return {x, y};
    }
  }
  return {x: 40, y: innerHeight - 30};
})()
"""

# no element inside aria-hidden markup may take focus
HIDDEN_FOCUSABLE = r"""
Array.from(document.querySelectorAll('[aria-hidden="true"] a[href], [aria-hidden="true"] [tabindex]'))
  .filter(el => el.tabIndex >= 0).map(el => el.outerHTML.slice(0, 120))
"""


@pytest.fixture(scope="module")
def symbol_rows(server, browser):  # noqa: F811
    chromium, recorder = browser
    _open(chromium, recorder, server + "symbols/", 1280)
    rows = chromium.evaluate(SYMBOL_ROWS)
    assert len(rows) > 20, rows
    return rows


def _mouse(chromium, kind, x, y):
    chromium.send(
        "Input.dispatchMouseEvent",
        {
            "type": kind,
            "x": x,
            "y": y,
            "button": "left" if kind != "mouseMoved" else "none",
            "clickCount": 1 if kind != "mouseMoved" else 0,
        },
    )


def _check_popover(found, rows, symbol_id, server):
    assert found is not None, f"no popover for #sym-{symbol_id}"
    assert found["symbol"] == symbol_id
    row = rows[symbol_id]
    assert found["name"] == row["name"], (found["name"], row)
    assert found["meaning"] == row["meaning"], (found["meaning"], row["meaning"])
    assert found["more"].startswith(server + "symbols/#sym-" + symbol_id)
    assert 0 <= found["left"] and found["right"] <= found["viewport"] + 1, found


@pytest.mark.parametrize("width", WIDTHS)
def test_popover_on_hover(server, browser, symbol_rows, width):  # noqa: F811
    chromium, recorder = browser
    _open(chromium, recorder, server + "equations/forget-gate/", width)
    assert chromium.evaluate("document.querySelectorAll('.katex a.klg-sym[title]').length") == 0
    checked = 0
    for selector in (
        '.katex a.klg-sym[href$="#sym-forget-gate"]',
        '.katex a.klg-sym[href$="#sym-sigmoid"]',
    ):
        target = chromium.evaluate(f"{SYMBOL_CENTER}({json.dumps(selector)})")
        assert target["title"] is None  # no delayed native tooltip
        _mouse(chromium, "mouseMoved", target["x"], target["y"])
        chromium.pump(0.1)
        _check_popover(chromium.evaluate(POPOVER), symbol_rows, target["id"], server)
        checked += 1
        if checked == 1:
            _shot(chromium, f"popover-hover-{width}.png", width, 0)
    _mouse(chromium, "mouseMoved", 5, 5)
    chromium.pump(0.5)
    assert chromium.evaluate(POPOVER) is None  # leaving closes it


@pytest.mark.parametrize("width", WIDTHS)
def test_popover_on_tap(server, browser, symbol_rows, width):  # noqa: F811
    chromium, recorder = browser
    _open(chromium, recorder, server + "equations/input-gate/", width)
    chromium.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    try:
        url = chromium.evaluate("location.href")
        target = chromium.evaluate(
            f"{SYMBOL_CENTER}('.katex a.klg-sym[href$=\"#sym-input-gate\"]')"
        )
        point = [{"x": target["x"], "y": target["y"]}]
        chromium.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": point})
        chromium.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        chromium.pump(0.4)
        assert chromium.evaluate("location.href") == url  # the first tap does not leave
        found = chromium.evaluate(POPOVER)
        _check_popover(found, symbol_rows, "input-gate", server)
        assert found["live"].startswith(symbol_rows["input-gate"]["name"])
        _shot(chromium, f"popover-tap-{width}.png", width, 0)
        # a tap elsewhere closes it
        spot = chromium.evaluate(EMPTY_SPOT)
        chromium.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [spot]})
        chromium.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        chromium.pump(0.3)
        assert chromium.evaluate(POPOVER) is None
    finally:
        chromium.send("Emulation.setTouchEmulationEnabled", {"enabled": False})


@pytest.mark.parametrize("width", WIDTHS)
def test_popover_by_keyboard(server, browser, symbol_rows, width):  # noqa: F811
    """Tab reaches each formula (never a link inside aria-hidden markup); the
    arrow keys walk its symbols; Enter lands on the symbols page's row,
    which is highlighted."""
    chromium, recorder = browser
    _open(chromium, recorder, server + "equations/output-gate/", width)
    assert chromium.evaluate(HIDDEN_FOCUSABLE) == []
    focused = None
    for _ in range(80):
        _press(chromium, "Tab", 9)
        focused = chromium.evaluate(
            "(() => { const e = document.activeElement; return {hidden: !!e.closest('[aria-hidden=\"true\"]'),"
            " formula: e.classList.contains('arithmatex'), symbols: e.querySelectorAll('a.klg-sym').length,"
            " role: e.getAttribute('role')}; })()"
        )
        assert not focused["hidden"], "focus went into aria-hidden markup"
        if focused["formula"] and focused["symbols"]:
            break
    assert focused and focused["formula"], "Tab never reached a formula"
    assert focused["role"] == "group"
    first = chromium.evaluate(POPOVER)
    ids = chromium.evaluate(
        "Array.from(document.activeElement.querySelectorAll('a.klg-sym')).map(a => a.getAttribute('href').split('#sym-')[1])"
    )
    _check_popover(first, symbol_rows, ids[0], server)
    assert first["live"].startswith(symbol_rows[ids[0]]["name"] + ":"), first["live"]
    assert "\\" not in first["live"], first["live"]  # read as math, not TeX source
    _press(chromium, "ArrowRight", 39)
    second = chromium.evaluate(POPOVER)
    _check_popover(second, symbol_rows, ids[1], server)
    _shot(chromium, f"popover-keyboard-{width}.png", width, 0)
    _press(chromium, "Enter", 13)
    recorder.loaded = False
    chromium.wait_for(lambda: recorder.loaded, 30, "the symbols page")
    row_script = (
        "(() => { const t = document.getElementById(location.hash.slice(1)).closest('tr');"
        " const other = t.parentElement.querySelector('tr:not(.klg-target)');"
        " return {hash: location.hash, cls: t.className, bg: getComputedStyle(t).backgroundColor,"
        " other: getComputedStyle(other).backgroundColor, top: t.getBoundingClientRect().top,"
        " height: innerHeight}; })()"
    )
    row = {}

    def highlighted():  # material eases a row's background in (a transition)
        nonlocal row
        row = chromium.evaluate(row_script)
        return row["bg"] != row["other"]

    chromium.wait_for(highlighted, 5, "the target row's highlight")
    assert row["hash"] == f"#sym-{ids[1]}"
    assert "klg-target" in row["cls"] and row["bg"] != row["other"], row
    assert 0 <= row["top"] < row["height"], row  # scrolled into view, below the header
    _shot(chromium, f"symbols-row-target-{width}.png", width, 0)


# -- layout ------------------------------------------------------------------------------

LAYOUT = r"""
(() => {
  const out = {docWidth: document.documentElement.scrollWidth, bodyWidth: document.body.scrollWidth,
               viewport: document.documentElement.clientWidth, wide: [], brokenCode: []};
  document.querySelectorAll('.katex-display').forEach(d => {
    const box = d.closest('.arithmatex') || d;
    if (box.scrollWidth > box.clientWidth + 1)
      out.wide.push([box.scrollWidth, box.clientWidth, d.textContent.slice(0, 50)]);
  });
  // tables: none scrolls sideways, none squeezes a cell of running text
  out.tables = [];
  document.querySelectorAll('article table').forEach(table => {
    const scroller = table.closest('.md-typeset__scrollwrap') || table.parentElement;
    const head = (table.querySelector('th, td') || {textContent: ''}).textContent.trim().slice(0, 30);
    if (scroller.scrollWidth > scroller.clientWidth + 1)
      out.tables.push(`table "${head}" scrolls sideways: ${scroller.scrollWidth} > ${scroller.clientWidth}`);
    table.querySelectorAll('td').forEach(td => {
      const text = td.textContent.trim(), w = td.getBoundingClientRect().width;
      if (text.length > 50 && w < 120) out.tables.push(`a cell of table "${head}" is ${Math.round(w)} px wide: ${text.slice(0, 40)}`);
      if (td.scrollWidth > td.clientWidth + 1) out.tables.push(`a cell of table "${head}" is clipped: ${text.slice(0, 40)}`);
    });
  });
  // figures drawn as SVG: labels at least 11 px, links at least 24 x 24 px
  out.figures = [];
  document.querySelectorAll('article figure svg[viewBox]').forEach(svg => {
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    svg.querySelectorAll('text, tspan').forEach(el => {
      const px = parseFloat(getComputedStyle(el).fontSize) * scale;
      if (el.textContent.trim() && px < 11 - 0.01)
        out.figures.push(`label "${el.textContent.trim().slice(0, 20)}" renders ${px.toFixed(1)} px high`);
    });
    svg.querySelectorAll('a').forEach(a => {
      const r = a.getBoundingClientRect();
      if (r.width < 24 || r.height < 24)
        out.figures.push(`link "${a.getAttribute('aria-label')}" is ${Math.round(r.width)} x ${Math.round(r.height)} px`);
    });
  });
  // figures drawn in HTML (the unrolled cell): the same rules
  document.querySelectorAll('article figure.klg-unrolled').forEach(fig => {
    fig.querySelectorAll('a, .klg-unrolled__in, .klg-unrolled__out').forEach(el => {
      const r = el.getBoundingClientRect(), px = parseFloat(getComputedStyle(el).fontSize);
      if (px < 11) out.figures.push(`label "${el.textContent.trim()}" is ${px} px high`);
      if (el.tagName === 'A' && (r.width < 24 || r.height < 24))
        out.figures.push(`link "${el.getAttribute('aria-label')}" is ${Math.round(r.width)} x ${Math.round(r.height)} px`);
    });
    const box = fig.getBoundingClientRect();
    if (box.right > document.documentElement.clientWidth + 1) out.figures.push('the unrolled cell is wider than the page');
  });
  // code in table cells: every line break must follow ".", "," or a space
  document.querySelectorAll('article td code:not(pre code)').forEach(code => {
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    let prevTop = null, prevChar = '';
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.length; i++) {
        const range = document.createRange();
        range.setStart(node, i); range.setEnd(node, i + 1);
        const rect = range.getBoundingClientRect();
        if (rect.width === 0 && rect.height === 0) continue;
        if (prevTop !== null && rect.top > prevTop + 2 && !/[., ]/.test(prevChar) && node.data[i] !== ' ')
          out.brokenCode.push(code.textContent.slice(0, 60) + ' @' + i);
        prevTop = rect.top; prevChar = node.data[i];
      }
    }
  });
  return out;
})()
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_layout(site, server, browser, width):  # noqa: F811
    """At 1280 and 390 px: no page scrolls sideways; no displayed equation
    is wider than its column; no table scrolls sideways, squeezes a cell of
    running text below 120 px or clips one; the figures' labels render at
    least 11 px high and their links are at least 24 x 24 px; code in tables
    breaks between names only; no link inside KaTeX's aria-hidden markup
    takes keyboard focus."""
    chromium, recorder = browser
    problems = {}
    for path in sitebuild.site_pages(site):
        _open(chromium, recorder, server + path, width, quiet=False)
        found = chromium.evaluate(LAYOUT)
        issues = [f"equation wider than the column: {w}" for w in found["wide"]]
        issues += found["tables"][:3] + found["figures"][:3]
        if max(found["docWidth"], found["bodyWidth"]) > found["viewport"]:
            issues.append(f"page scrolls sideways: {found['docWidth']} > {found['viewport']}")
        issues += [f"code broken inside a name: {c}" for c in found["brokenCode"][:3]]
        hidden = chromium.evaluate(HIDDEN_FOCUSABLE)
        issues += [f"focusable inside aria-hidden markup: {h}" for h in hidden[:3]]
        if issues:
            problems[path or "/"] = issues
        if path in ("notation/", "equations/input-gate/"):
            _shot(chromium, f"{path.strip('/').replace('/', '__')}-{width}.png", width)
    assert not problems, "\n".join(f"{p}: {i}" for p, i in problems.items())


def test_layout_check_can_fail(server, browser):  # noqa: F811
    chromium, recorder = browser
    _open(chromium, recorder, server + "equations/forget-gate/", 1280)
    chromium.evaluate(
        "document.querySelector('article').insertAdjacentHTML('beforeend', '<div class=\"arithmatex\">"
        '<span class="katex-display" style="display:block"><span style="display:inline-block;width:2000px">'
        "x</span></span></div><table><tr><td><code>abcdefgh<br>"
        "ijklmnop</code></td></tr></table>'); document.querySelector('.arithmatex:last-of-type')"
    )
    found = chromium.evaluate(LAYOUT)
    assert found["wide"] and found["brokenCode"], found
    # a wide table and a small diagram label are caught too
    chromium.evaluate(
        "document.querySelector('article').insertAdjacentHTML('beforeend', '<div class=\"md-typeset__scrollwrap\" style=\"overflow:auto\">"
        "<table><tr><td style=\"white-space:nowrap\">' + 'x'.repeat(400) + '</td></tr></table></div>');"
        " document.querySelector('figure.klg-cell-diagram text').style.fontSize = '5px'"
    )
    found = chromium.evaluate(LAYOUT)
    assert found["tables"] and found["figures"], found


# -- search -------------------------------------------------------------------------------

TEX = re.compile(r"\\[a-zA-Z]{2,}|\\[()\[\]]|\$\$")


def _without_code(text: str) -> str:
    return re.sub(r"<pre\b.*?</pre>|<code>.*?</code>", "", text, flags=re.S)


def test_search_index_has_no_tex(site):
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    bad = [
        (doc["location"], TEX.search(_without_code(doc["text"] + doc["title"])).group(0))
        for doc in index["docs"]
        if TEX.search(_without_code(doc["text"] + doc["title"]))
    ]
    assert not bad, bad[:10]
    forget = next(d for d in index["docs"] if d["location"] == "equations/forget-gate/#equation")
    assert "fₜ = σ(W_f · [hₜ₋₁, xₜ] + b_f)" in forget["text"], forget["text"][:400]


def test_tex_to_text():
    sys.path.insert(0, str(sitebuild.ROOT / "tools"))
    try:
        from docs_ui_hooks import tex_to_text
    finally:
        sys.path.pop(0)
    assert tex_to_text(r"\href{../symbols/#sym-forget-gate}{f_t}") == "fₜ"
    assert tex_to_text(r"\tilde C_t = \tanh(z)") == "C̃ₜ = tanh(z)"
    assert tex_to_text(r"\mathtt{recurrent\_kernel}_f^{\top}") == "recurrent_kernel_fᵀ"
    assert tex_to_text(r"g^\text{forget}(n+1)") == "g^forget(n+1)"


SEARCH = r"""
((query) => {
  const input = document.querySelector('.md-search__input');
  input.focus();
  input.value = query;
  input.dispatchEvent(new Event('input', {bubbles: true}));
  input.dispatchEvent(new KeyboardEvent('keyup', {bubbles: true, key: 'e'}));
  return true;
})
"""

RESULTS = r"""
Array.from(document.querySelectorAll('.md-search-result__item > a.md-search-result__link')).map(a => ({
  href: a.href, title: (a.querySelector('h1') || {textContent: ''}).textContent.trim(),
  text: a.textContent}))
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_search_puts_the_titled_page_first(server, browser, width):  # noqa: F811
    chromium, recorder = browser
    _open(chromium, recorder, server + "symbols/", width)
    queries = {
        "forget gate": "equations/forget-gate/",
        "input gate": "equations/input-gate/",
        "output gate": "equations/output-gate/",
        "candidate memory": "equations/candidate-memory/",
        "hidden state": "equations/hidden-state/",
        "cell state update": "equations/cell-state-update/",
        "sigmoid": "equations/sigmoid/",
    }
    if width < 1000:
        chromium.evaluate("document.querySelector('label[for=__search]').click()")
    for query, page in queries.items():
        chromium.evaluate(f"{SEARCH}({json.dumps(query)})")
        results = []

        def ready():
            nonlocal results
            results = chromium.evaluate(RESULTS)
            return bool(results)

        chromium.wait_for(ready, 20, f"search results for {query!r}")
        chromium.pump(0.3)
        results = chromium.evaluate(RESULTS)
        first = results[0]["href"].split("#")[0].split("?")[0]
        assert urljoin(server, page) == first, (query, results[:3])
        leftovers = [r["text"][:120] for r in results if TEX.search(r["text"])]
        assert not leftovers, (query, leftovers)
        if query == "forget gate":
            _shot(chromium, f"search-forget-gate-{width}.png", width, 0)
