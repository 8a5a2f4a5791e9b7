"""Open the built site in headless Chromium, offline, and check every page.

The site is served on 127.0.0.1 from a thread, under the project path of
site_url as on GitHub Pages (siteserver.py); Chromium resolves no other
host (``--host-resolver-rules``) and every request that is not for the local
server is failed through CDP's Fetch domain and reported.  For each page the
test waits for the math to render (``<body data-klg-math>``, set by
docs/assets/javascripts/katex-render.js, and the KaTeX fonts), then fails on

* a KaTeX error (``.katex-error``) or a formula left unrendered,
* TeX source left in the text (``\\(``, ``$$``, ``\\sigma`` ... outside code),
* a console error or an uncaught exception,
* a failed, blocked or non-local request, or an HTTP error status,
* a symbol link whose target is not an anchor of the symbols page, or that
  has no hover text.

A screenshot of each page goes to build/screenshots/ for review.  Without
Chromium the test skips, unless CI=true, where it fails.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import sitebuild
import siteserver
from cdp import BrowserError, Chromium, find_chromium

SCREENSHOTS = sitebuild.ROOT / "build" / "screenshots"
# Pages that must have rendered math (at least one formula).
MATH_PAGES = (
    "equations/",
    "explanations/",
    "symbols/",
    "notation/",
)

CHECK_PAGE = r"""
(() => {
  const out = {};
  out.title = document.title;
  out.math = document.querySelectorAll('.arithmatex').length;
  out.unrendered = Array.from(document.querySelectorAll('.arithmatex'))
    .filter(e => !e.querySelector('.katex')).map(e => e.textContent.slice(0, 80));
  out.katexErrors = Array.from(document.querySelectorAll('.katex-error'))
    .map(e => (e.getAttribute('title') || e.textContent).slice(0, 200));
  const skip = 'script,style,pre,code,textarea,noscript,.katex,.md-search,template';
  const tex = /\\[()\[\]]|\$\$|\\(?:[a-zA-Z]{2,})\b/;
  const leftovers = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    if (tex.test(node.textContent)) leftovers.push(node.textContent.trim().slice(0, 120));
  }
  out.texLeftovers = leftovers;
  out.symbolLinks = Array.from(document.querySelectorAll('.katex a[href]'))
    .map(a => ({href: a.href, title: a.getAttribute('title') || a.dataset.klgTitle || ''}));
  out.ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);
  return out;
})()
"""


@pytest.fixture(scope="module")
def site():
    code, output, site_dir = sitebuild.build_site()
    assert code == 0, f"mkdocs build --strict failed:\n{output[-4000:]}"
    return site_dir


@pytest.fixture(scope="module")
def server(site):
    # Under the project path of site_url, as GitHub Pages serves it: a request
    # outside it is not local to the site and fails the page (siteserver.py).
    with siteserver.serve(site) as base:
        yield base


class Recorder:
    """Collects what a page did: requests, failures and console errors."""

    def __init__(self, base: str):
        self.base = base
        self.browser: Chromium | None = None
        self.reset()

    def reset(self):
        self.blocked: list[str] = []
        self.failed: list[str] = []
        self.console: list[str] = []
        self.requests: list[str] = []
        self.loaded = False

    def __call__(self, message):
        method = message.get("method")
        params = message.get("params", {})
        if method == "Fetch.requestPaused":
            url = params["request"]["url"]
            self.requests.append(url)
            if url.startswith(self.base) or url.startswith("data:") or url == "about:blank":
                self.browser.send(
                    "Fetch.continueRequest", {"requestId": params["requestId"]}, wait=False
                )
            else:
                self.blocked.append(url)
                self.browser.send(
                    "Fetch.failRequest",
                    {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
                    wait=False,
                )
        elif method == "Network.loadingFailed":
            self.failed.append(f"{params.get('errorText')} ({params.get('type')})")
        elif method == "Network.responseReceived":
            response = params["response"]
            if response.get("status", 200) >= 400:
                self.failed.append(f"HTTP {response['status']} {response['url']}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(text)
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console.append(
                details.get("exception", {}).get("description") or details.get("text", "")
            )
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.console.append(f"{entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Page.loadEventFired":
            self.loaded = True


def open_browser(server: str):
    """A headless Chromium page at 1280 x 900 whose requests ``Recorder``
    watches, allowed to reach ``server`` only; yields ``(chromium, recorder)``."""
    executable = find_chromium()
    if executable is None:
        message = "Chromium is not installed (apt-get install chromium; tasks.sh does it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " and CI=true, so the browser test cannot be skipped.")
        pytest.skip(message)
    recorder = Recorder(server)
    chromium = Chromium(executable, recorder)
    recorder.browser = chromium
    try:
        chromium.open_page()
        for domain in ("Page", "Runtime", "Log", "Network"):
            chromium.send(f"{domain}.enable")
        chromium.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})
        chromium.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        yield chromium, recorder
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def browser(server):
    yield from open_browser(server)


def _visit(chromium: Chromium, recorder: Recorder, url: str) -> dict:
    recorder.reset()
    chromium.send("Page.navigate", {"url": url})
    chromium.wait_for(lambda: recorder.loaded, 30, f"the load event of {url}")
    chromium.wait_for(
        lambda: chromium.evaluate("document.body && document.body.dataset.klgMath !== undefined"),
        30,
        f"the math of {url} to render",
    )
    chromium.evaluate("document.fonts.ready.then(() => true)", await_promise=True)
    chromium.pump(0.2)  # late console messages and requests
    return chromium.evaluate(CHECK_PAGE)


def _screenshot(chromium: Chromium, name: str) -> Path:
    metrics = chromium.send("Page.getLayoutMetrics")
    height = min(int(metrics["cssContentSize"]["height"]) + 1, 12000)
    shot = chromium.send(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1},
        },
        timeout=60,
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_every_page_renders_offline(site, server, browser):
    chromium, recorder = browser
    pages = sitebuild.site_pages(site)
    assert "symbols/" in pages and "equations/forget-gate/" in pages, pages
    symbols = _visit(chromium, recorder, server + "symbols/")
    symbol_ids = set(symbols["ids"])
    symbols_url = server + "symbols/"

    problems: dict[str, list[str]] = {}
    visited = 0
    for path in pages:
        url = server + path
        try:
            report = _visit(chromium, recorder, url)
        except BrowserError as error:
            problems[path or "/"] = [str(error)]
            continue
        visited += 1
        name = (path.strip("/").replace("/", "__") or "index") + ".png"
        _screenshot(chromium, name)
        found = []
        if path.startswith(MATH_PAGES) and report["math"] == 0:
            found.append("no formula on a page that should have math")
        found += [f"unrendered formula: {t}" for t in report["unrendered"]]
        found += [f"KaTeX error: {t}" for t in report["katexErrors"]]
        found += [f"TeX source left in the text: {t!r}" for t in report["texLeftovers"]]
        found += [f"console error: {t}" for t in recorder.console]
        found += [f"blocked non-local request: {u}" for u in recorder.blocked]
        found += [f"failed request: {t}" for t in recorder.failed]
        for link in report["symbolLinks"]:
            href = urljoin(url, link["href"])
            target = href.split("#", 1)
            if target[0] != symbols_url or len(target) == 1:
                found.append(f"symbol link does not point into the symbols page: {href}")
            elif target[1] not in symbol_ids:
                found.append(f"symbol link to a missing anchor: #{target[1]}")
            elif not link["title"]:
                found.append(f"symbol link without hover text: #{target[1]}")
        if path.startswith("equations/") and path != "equations/" and not report["symbolLinks"]:
            found.append("an equation page without symbol links")
        nonlocal_requests = [u for u in recorder.requests if urlsplit(u).hostname != "127.0.0.1"]
        found += [f"non-local request: {u}" for u in nonlocal_requests if u not in recorder.blocked]
        if found:
            problems[path or "/"] = found
    assert visited == len(pages), problems
    assert not problems, "\n".join(
        f"{page}:\n  " + "\n  ".join(items) for page, items in problems.items()
    )


def test_blocking_catches_a_network_request(server, browser):
    """The checks can fail: a script that fetches from the network is caught."""
    chromium, recorder = browser
    _visit(chromium, recorder, server + "symbols/")
    chromium.evaluate("fetch('https://example.com/x.js').catch(() => null)", await_promise=True)
    chromium.pump(0.5)
    assert any("example.com" in u for u in recorder.blocked), recorder.requests


def test_page_checks_can_fail(server, browser):
    """Injected TeX source, a KaTeX error and a console error are all caught."""
    chromium, recorder = browser
    _visit(chromium, recorder, server + "symbols/")
    chromium.evaluate(
        "document.querySelector('article').insertAdjacentHTML('beforeend',"
        ' \'<p>left over: \\\\(\\\\sigma(z)\\\\) <span class="katex-error" title="bad">x</span></p>\');'
        " console.error('boom');"
    )
    chromium.pump(0.3)
    report = chromium.evaluate(CHECK_PAGE)
    assert any("\\sigma" in t for t in report["texLeftovers"]), report["texLeftovers"]
    assert report["katexErrors"] == ["bad"]
    assert any("boom" in t for t in recorder.console), recorder.console
