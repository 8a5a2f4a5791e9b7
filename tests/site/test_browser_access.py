"""Keyboard and contrast, in headless Chromium at 390 and 1280 px, in the
light and the dark scheme.

* Every control of the explorers and the cell diagram shows a focus ring
  when the keyboard reaches it: an outline at least 1.5 px wide, at least
  3:1 against the page.
* Text has at least 4.5:1 contrast against what is behind it (WCAG's
  relative luminance; translucent colours and backgrounds composited), on
  pages with every kind of content: an explorer, equations, tables, code,
  a notebook's outputs and the API reference.
* "Skip to content" (and every entry of a page's table of contents) lands
  on an element of the page.
"""

# ruff: noqa: F811  (pytest fixtures imported from test_browser are parameters here)
from __future__ import annotations

import re

import pytest
import sitebuild
from test_browser import _visit, browser, server, site  # noqa: F401 (fixtures)

WIDTHS = (1280, 390)
SCHEMES = ("default", "slate")
CONTRAST_PAGES = (
    "",
    "equations/forget-gate/",
    "explanations/forgetting-a-worked-example/",
    "tutorials/01_quickstart/",
    "tutorials/03_parity/",
    "api/layer/",
)

# WCAG 2 contrast of each text element of the article against its
# background, with translucent colours composited over what is behind them.
CONTRAST = r"""
(() => {
  const parse = c => { const m = (c.match(/[\d.]+/g) || [0, 0, 0, 0]).map(Number);
    return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; };
  const lin = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = c => 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
  const over = (fg, bg) => ({r: fg.r * fg.a + bg.r * (1 - fg.a), g: fg.g * fg.a + bg.g * (1 - fg.a),
                             b: fg.b * fg.a + bg.b * (1 - fg.a), a: 1});
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = parse(getComputedStyle(document.documentElement).backgroundColor);
    if (bg.a === 0) bg = {r: 255, g: 255, b: 255, a: 1};
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const low = [], seen = new Set();
  const walker = document.createTreeWalker(document.querySelector('article'), NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement, text = n.textContent.trim();
    if (!text || !el || seen.has(el)) continue;
    seen.add(el);
    if (el.closest('.katex-mathml, .klg-sr-only, script, style')) continue;
    if (!el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const svg = el.closest('svg'), style = getComputedStyle(el);
    const bg = background(svg || el);
    const r = ratio(over(parse(svg ? style.fill : style.color), bg), bg);
    if (r < 4.5) low.push(`${r.toFixed(2)}:1 <${el.tagName.toLowerCase()} class="${
      el.getAttribute('class') || ''}"> in <${el.parentElement.tagName.toLowerCase()}>: ${text.slice(0, 30)}`);
  }
  return low;
})()
"""

CONTROLS = (
    "div.klg-explorer input, div.klg-explorer button, div.klg-explorer summary,"
    " figure.klg-cell-diagram a"
)

# The focus ring of every control, each focused after a key press (so that
# :focus-visible applies, as it does for a reader on the keyboard).
RINGS = r"""
((selector) => {
  const parse = c => (c.match(/[\d.]+/g) || [0, 0, 0]).map(Number);
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const page = parse(getComputedStyle(document.querySelector('.md-main')).backgroundColor || 'rgb(255,255,255)');
  const bg = page.length > 3 && page[3] === 0 ? parse(getComputedStyle(document.body).backgroundColor) : page;
  const out = [];
  document.querySelectorAll(selector).forEach(el => {
    if (!el.checkVisibility()) return;
    el.focus();
    const s = getComputedStyle(el);
    const width = parseFloat(s.outlineWidth), colour = parse(s.outlineColor);
    const x = lum(colour), y = lum(bg);
    const contrast = (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
    out.push({what: el.outerHTML.slice(0, 60), focused: document.activeElement === el,
              style: s.outlineStyle, width, contrast});
  });
  return out;
})
"""


def _press_tab(chromium) -> None:
    for kind in ("keyDown", "keyUp"):
        chromium.send(
            "Input.dispatchKeyEvent",
            {"type": kind, "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9},
        )


def _scheme(chromium, scheme: str) -> None:
    """Switch the colour scheme at once: Material eases colours in, and
    Chromium does not run the transitions of elements out of view."""
    chromium.evaluate(
        "document.getElementById('klg-no-transitions') || document.head.insertAdjacentHTML("
        "'beforeend', '<style id=\"klg-no-transitions\">*, *::before, *::after"
        " { transition: none !important; }</style>');"
        f" document.body.setAttribute('data-md-color-scheme', '{scheme}')"
    )
    chromium.pump(0.2)


def _open(chromium, recorder, url: str, width: int) -> None:
    chromium.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    _visit(chromium, recorder, url)


def _ring_problems(rings) -> list[str]:
    return [
        f"{r['what']}: outline {r['style']} {r['width']} px, {r['contrast']:.1f}:1"
        for r in rings
        if not r["focused"] or r["style"] == "none" or r["width"] < 1.5 or r["contrast"] < 3
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_every_control_shows_a_focus_ring(server, browser, width):
    chromium, recorder = browser
    problems = []
    for path in ("", "equations/forget-gate/"):
        _open(chromium, recorder, server + path, width)
        for scheme in SCHEMES:
            _scheme(chromium, scheme)
            _press_tab(chromium)  # the keyboard is in use: :focus-visible applies
            rings = chromium.evaluate(f"({RINGS})({CONTROLS!r})")
            assert len(rings) >= 8, rings  # sliders, the fold, the button, the diagram
            problems += [f"{path or '/'} {scheme}: {p}" for p in _ring_problems(rings)]
    assert not problems, "\n".join(problems)


def _forget_gate_page_with(browser, server, where: str, html: str):
    """The forget-gate page at 1280 px with ``html`` added to ``where``."""
    chromium, recorder = browser
    _open(chromium, recorder, server + "equations/forget-gate/", 1280)
    chromium.evaluate(
        f"document.querySelector({where!r}).insertAdjacentHTML('beforeend', {html!r})"
    )
    return chromium


def test_focus_ring_check_can_fail(server, browser):
    style = "<style>.klg-explorer input:focus-visible{outline:none !important}</style>"
    chromium = _forget_gate_page_with(browser, server, "head", style)
    _press_tab(chromium)
    rings = chromium.evaluate(f"({RINGS})({CONTROLS!r})")
    assert _ring_problems(rings), rings


@pytest.mark.parametrize("width", WIDTHS)
def test_text_contrast_in_both_schemes(server, browser, width):
    chromium, recorder = browser
    problems = []
    for path in CONTRAST_PAGES:
        _open(chromium, recorder, server + path, width)
        for scheme in SCHEMES:
            _scheme(chromium, scheme)
            low = chromium.evaluate(CONTRAST)
            problems += [f"{path or '/'} {scheme}: {item}" for item in low[:5]]
    assert not problems, "\n".join(problems)


def test_contrast_check_can_fail(server, browser):
    chromium = _forget_gate_page_with(browser, server, "article", '<p style="color:#999">faint</p>')
    assert any("faint" in item for item in chromium.evaluate(CONTRAST))


# -- skip links ------------------------------------------------------------------------

_SKIP = re.compile(r'<a href="#([^"]+)" class="md-skip"')
_TOC = re.compile(r'<a href="#([^"]+)" class="md-nav__link"')


def dead_anchors(html: str) -> list[str]:
    """The skip link's and the contents' targets that are not on the page."""
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    wanted = _SKIP.findall(html) + _TOC.findall(html)
    return sorted({anchor for anchor in wanted if anchor not in ids})


def test_dead_anchor_check_can_fail():
    html = '<a href="#parity-with" class="md-skip">Skip</a><h1 id="parity-with-keras">P</h1>'
    assert dead_anchors(html) == ["parity-with"]


def test_skip_links_and_contents_land_on_the_page(site):
    dead = {}
    for path in sitebuild.site_pages(site):
        html = (site / path / "index.html").read_text(encoding="utf-8")
        if dead_anchors(html):
            dead[path or "/"] = dead_anchors(html)
    assert not dead, dead


# -- the TensorBoard screenshots ------------------------------------------------------

MONITOR = sitebuild.DOCS / "assets" / "monitor"
SCREENSHOTS = ("tensorboard_scalars.png", "tensorboard_images.png")
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:tmp|work|home|root|usr|var|build)\b|[A-Z]:\\")


def _recorded(name: str) -> dict[str, str]:
    """What tools/make_tensorboard_screenshot.py wrote into the PNG's text
    chunks: the CSS width it shows, its smallest text (CSS px), that text."""
    from PIL import Image

    with Image.open(MONITOR / name) as image:
        return dict(image.text)


@pytest.mark.parametrize("name", SCREENSHOTS)
def test_tensorboard_screenshots_are_cropped_sharp_and_neutral(name):
    from PIL import Image

    recorded = _recorded(name)
    assert {"klg-css-width", "klg-min-text-px", "klg-text"} <= set(recorded), recorded
    with Image.open(MONITOR / name) as image:
        width = image.size[0]
    assert width == 2 * int(recorded["klg-css-width"]), "taken at twice the CSS pixel density"
    assert float(recorded["klg-min-text-px"]) >= 11
    assert not ABSOLUTE_PATH.search(recorded["klg-text"]), recorded["klg-text"]
    assert "Toggle all runs".lower() not in recorded["klg-text"].lower()  # no sidebar


def test_tensorboard_text_reads_at_page_width(server, browser):
    """At 1280 px the smallest text of each screenshot renders 11 px or more."""
    chromium, recorder = browser
    _open(chromium, recorder, server + "watching-gates-train/", 1280)
    shown = chromium.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('article img'))"
        ".map(i => [i.getAttribute('src').split('/').pop(), i.getBoundingClientRect().width]))"
    )
    for name in SCREENSHOTS:
        recorded = _recorded(name)
        scale = shown[name] / float(recorded["klg-css-width"])
        assert float(recorded["klg-min-text-px"]) * scale >= 11, (name, shown[name], recorded)
