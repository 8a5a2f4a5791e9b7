"""The documentation site builds with ``mkdocs build --strict``, is complete,
and loads nothing from the network."""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sitebuild

ROOT = sitebuild.ROOT
EQUATION_PAGES = sitebuild.EQUATION_PAGES
EQUATION_SECTIONS = [
    "Prerequisites",
    "Description",
    "Equation",
    "Symbols Used",
    "Derivation",
    "In the code",
    "References",
]
EXPLANATION_PAGES = (
    "what-the-forget-gate-forgets",
    "forgetting-a-worked-example",
    "why-sigmoid-not-softmax",
)
REFERENCES = ("Jaeger", "Hochreiter", "Gers", "Olah", "sources.md#source-")


@pytest.fixture(scope="module")
def site():
    code, output, site_dir = sitebuild.build_site()
    assert code == 0, f"mkdocs build --strict failed:\n{output[-6000:]}"
    return site_dir


def test_strict_build_succeeds(site):
    assert (site / "index.html").is_file()
    for name in EQUATION_PAGES:
        assert (site / "equations" / name / "index.html").is_file(), name


# -- offline -----------------------------------------------------------------


class _AssetCollector(HTMLParser):
    """Every URL an HTML page would load by itself (not links it shows)."""

    LOADING = {
        "script": ("src",),
        "img": ("src", "srcset"),
        "iframe": ("src",),
        "source": ("src", "srcset"),
        "video": ("src", "poster"),
        "audio": ("src",),
        "embed": ("src",),
        "object": ("data",),
        "track": ("src",),
        "input": ("src",),
    }

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in self.LOADING.get(tag, ()):
            if attrs.get(name):
                self.urls.extend(u.strip().split(" ")[0] for u in attrs[name].split(","))
        if tag == "link" and attrs.get("href"):
            rel = (attrs.get("rel") or "").lower()
            if any(
                r in rel
                for r in ("stylesheet", "preload", "icon", "modulepreload", "manifest", "prefetch")
            ):
                self.urls.append(attrs["href"])
        if attrs.get("style"):
            self.styles.append(attrs["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")


def _remote(url: str) -> bool:
    parts = urlsplit(url.strip())
    if parts.scheme in ("data", "blob", "about", "javascript"):
        return False
    return bool(parts.scheme or parts.netloc or url.strip().startswith("//"))


def _css_urls(css: str) -> list[str]:
    return [a or b for a, b in CSS_URL.findall(css)]


def test_remote_detection_can_fail():
    parser = _AssetCollector()
    parser.feed(
        '<script src="https://cdn.example/x.js"></script><link rel="stylesheet" '
        'href="//fonts.example/a.css"><img src="i.png"><style>a{background:url(http://x/y.png)}</style>'
    )
    remote = [u for u in parser.urls + _css_urls(" ".join(parser.styles)) if _remote(u)]
    assert remote == ["https://cdn.example/x.js", "//fonts.example/a.css", "http://x/y.png"]


def test_site_loads_nothing_from_the_network(site):
    remote = []
    for page in site.rglob("*.html"):
        parser = _AssetCollector()
        parser.feed(page.read_text(encoding="utf-8"))
        for url in parser.urls + _css_urls(" ".join(parser.styles)):
            if _remote(url):
                remote.append(f"{page.relative_to(site)}: {url}")
    for sheet in site.rglob("*.css"):
        for url in _css_urls(sheet.read_text(encoding="utf-8", errors="replace")):
            if _remote(url):
                remote.append(f"{sheet.relative_to(site)}: {url}")
    assert not remote, "\n".join(remote)


def test_katex_is_served_from_the_site(site):
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["katex"]
    katex = site / "assets" / "katex"
    script = (katex / "katex.min.js").read_text(encoding="utf-8")
    assert f'"{pinned}"' in script or f"'{pinned}'" in script, (
        "katex.min.js is not the pinned version"
    )
    assert (katex / "katex.min.css").is_file() and (
        katex / "contrib" / "auto-render.min.js"
    ).is_file()
    fonts = {p.name for p in (katex / "fonts").glob("*.woff2")}
    assert "KaTeX_Main-Regular.woff2" in fonts and "KaTeX_Math-Italic.woff2" in fonts
    for name in re.findall(r"fonts/([\w-]+\.woff2)", (katex / "katex.min.css").read_text()):
        assert name in fonts, f"katex.min.css needs fonts/{name}"
    page = (site / "equations" / "forget-gate" / "index.html").read_text(encoding="utf-8")
    for asset in ("assets/katex/katex.min.js", "assets/katex/katex.min.css", "katex-render.js"):
        assert asset in page


def test_markers_and_macros_are_replaced(site):
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not sitebuild.NUMBER.search(text), f"{page}: a [[key=value]] marker was not replaced"
        assert "\\sym{" not in text, f"{page}: a \\sym{{...}} macro was not replaced"
    forget = (site / "equations" / "forget-gate" / "index.html").read_text(encoding="utf-8")
    assert "\\href{../../symbols/#sym-forget-gate}" in forget
    symbols = (site / "assets" / "javascripts" / "klg-symbols.js").read_text(encoding="utf-8")
    assert '"forget-gate": "forget gate"' in symbols


# -- the pages and their sections -------------------------------------------


def _h2(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return re.findall(r"^## (.+?)\s*$", text, flags=re.M)


@pytest.mark.parametrize("name", EQUATION_PAGES)
def test_equation_page_has_the_sections_in_order(name):
    path = sitebuild.DOCS / "equations" / f"{name}.md"
    assert _h2(path) == EQUATION_SECTIONS
    text = path.read_text(encoding="utf-8")
    for ref in REFERENCES:
        assert ref in text, f"{name}: References should cite {ref}"
    assert "\\sym{" in text, f"{name}: symbols in equations should link to the symbols page"


def test_gate_pages_give_three_forms():
    for name, letter in (("forget-gate", "f"), ("input-gate", "i"), ("output-gate", "o")):
        text = (sitebuild.DOCS / "equations" / f"{name}.md").read_text(encoding="utf-8")
        equation = text.split("## Equation")[1].split("## Symbols Used")[0]
        assert "[\\sym{bias-unit}{1};" in equation  # the source's folded form
        assert f"\\sym{{olah-weights}}{{W_{letter}}}" in equation  # Olah's form
        assert (
            f"\\sym{{recurrent-weights}}{{W_{{h{letter}}}}}" in equation
        )  # Keras / klg (d2l names)


def test_forget_gate_page_corrects_the_source():
    text = (sitebuild.DOCS / "equations" / "forget-gate.md").read_text(encoding="utf-8")
    assert '!!! note "The source page says “output gate”"' in text


@pytest.mark.parametrize("name", EXPLANATION_PAGES)
def test_explanation_page_is_complete(name):
    sections = _h2(sitebuild.DOCS / "explanations" / f"{name}.md")
    assert "In the code" in sections and sections[-1] == "References", sections


# -- the build hooks ---------------------------------------------------------


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docstring_extension_doctests():
    module = _load(ROOT / "tools" / "griffe_docstrings.py")
    result = doctest.testmod(module)
    assert result.attempted >= 3 and result.failed == 0


def test_hook_lists_every_variants_page(tmp_path):
    hooks = _load(ROOT / "tools" / "docs_hooks.py")
    (tmp_path / "variants" / "deep").mkdir(parents=True)
    for name in ("index.md", "peepholes.md", "deep/cifg.md"):
        (tmp_path / "variants" / name).write_text("# x\n")
    nav = [{"Home": "index.md"}, {"Variants": ["variants/index.md", "variants/peepholes.md"]}]
    hooks._complete_sections(nav, tmp_path, hooks._nav_files(nav))
    assert nav[1]["Variants"] == [
        "variants/index.md",
        "variants/peepholes.md",
        "variants/deep/cifg.md",
    ]


def test_strict_build_fails_on_a_dead_anchor_or_unknown_symbol(tmp_path):
    """The validation is switched on: a broken anchor and an unknown \\sym id
    each abort a strict build."""
    if not (ROOT / "node_modules" / "katex" / "dist" / "katex.min.js").is_file():
        pytest.skip("KaTeX is not installed (npm install)")
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(sitebuild.DOCS / "symbols.md", docs / "symbols.md")
    (docs / "equations").mkdir()
    shutil.copy(sitebuild.DOCS / "equations" / "sigmoid.md", docs / "equations" / "sigmoid.md")
    (docs / "index.md").write_text(
        "# Home\n\n[gone](symbols.md#sym-no-such-symbol)\n\n$\\sym{no-such-id}{x}$\n"
    )
    shutil.copy(ROOT / "package.json", tmp_path / "package.json")
    os.symlink(ROOT / "node_modules", tmp_path / "node_modules")
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: t\nstrict: true\n"
        "nav: [index.md, symbols.md, equations/sigmoid.md]\n"
        "validation: {omitted_files: warn, absolute_links: warn, unrecognized_links: warn, anchors: warn}\n"
        f"hooks: [{ROOT / 'tools' / 'docs_hooks.py'}]\n"
        "markdown_extensions: [tables, attr_list, admonition, {pymdownx.arithmatex: {generic: true}}]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log
    assert "does not contain an anchor '#sym-no-such-symbol'" in log, log
    assert "\\sym{no-such-id} names no symbol" in log, log
