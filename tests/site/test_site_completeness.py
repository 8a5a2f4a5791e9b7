"""Landing pages that list every page of their section, one install story,
and search terms readers use.

* The Tutorials landing page links every tutorial (one per notebook in
  ``notebooks/``) and the API index links every API page the build makes,
  the optional modules' pages included.
* Every ``pip install`` of the package on the site, in the README and in the
  notebooks installs it from the repository; the Python Package Index form
  appears only where the text says "once released".
* Searching "TFLite" finds the TensorFlow Lite section.
* The home page opens with why an LSTM has gates (the plain RNN's vanishing
  gradient, with numbers test_docs_numbers.py recomputes) and the cell
  unrolled through three steps, each part a link to its page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import sitebuild

ROOT = sitebuild.ROOT


@pytest.fixture(scope="module")
def site():
    code, output, site_dir = sitebuild.build_site()
    assert code == 0, f"mkdocs build --strict failed:\n{output[-4000:]}"
    return site_dir


def _links(site: Path, page: str) -> set[str]:
    """The pages a built page links to, as paths below the site root."""
    html = (site / page / "index.html").read_text(encoding="utf-8")
    article = html.split("<article", 1)[1].split("</article>", 1)[0]
    found = set()
    for href in re.findall(r'href="([^"#]+)', article):
        if "://" in href:
            continue
        target = urlsplit(urljoin(f"http://x/{page}", href)).path.lstrip("/")
        found.add(target if target.endswith("/") else target + "/")
    return found


def _section_pages(site: Path, section: str) -> set[str]:
    return {p for p in sitebuild.site_pages(site) if p.startswith(section) and p != section}


def test_tutorials_landing_links_every_tutorial(site):
    tutorials = _section_pages(site, "tutorials/")
    notebooks = {f"tutorials/{nb.stem}/" for nb in (ROOT / "notebooks").glob("*.ipynb")}
    assert tutorials == notebooks  # one page per notebook
    missing = tutorials - _links(site, "tutorials/")
    assert not missing, f"the Tutorials page does not link: {sorted(missing)}"


def test_api_index_links_every_api_page(site):
    pages = _section_pages(site, "api/")
    assert {"api/tracing/", "api/plots/", "api/torch_import/"} <= pages, pages
    missing = pages - _links(site, "api/")
    assert not missing, f"the API index does not link: {sorted(missing)}"


# -- one install story ------------------------------------------------------------------

# pip install of this package: "keras-lstm-gates" (extras allowed), then either
# " @ git+..." (the repository) or nothing (the package index).
_INSTALL = re.compile(r"pip install\b[^\n`]*?\bkeras[-_]lstm[-_]gates(\[[\w,]+\])?(?P<at>\s*@)?")


def _texts() -> dict[str, str]:
    texts = {sitebuild.page_id(p): p.read_text(encoding="utf-8") for p in sitebuild.pages()}
    texts["README.md"] = (ROOT / "README.md").read_text(encoding="utf-8")
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        texts[nb.name] = "\n\n".join("".join(c["source"]) for c in cells)
    return texts


def index_installs(text: str) -> list[str]:
    """The paragraphs that install the package from the package index without
    saying that this is for once it is released."""
    wrong = []
    for paragraph in re.split(r"\n\s*\n", text):
        for match in _INSTALL.finditer(paragraph):
            if match.group("at"):
                continue
            if not re.search(r"\bonce\b[^.]*\breleased\b", paragraph, re.I):
                wrong.append(" ".join(paragraph.split())[:160])
    return wrong


def test_install_check_can_fail():
    assert index_installs('pip install "keras-lstm-gates[export]"\n')
    assert not index_installs('pip install "keras-lstm-gates[export] @ git+https://x/y"')
    assert not index_installs("Once it is released, `pip install keras-lstm-gates` will do.")


def test_one_install_story():
    texts = _texts()
    wrong = {name: index_installs(text) for name, text in texts.items()}
    wrong = {name: found for name, found in wrong.items() if found}
    assert not wrong, wrong
    install = texts["install.md"]
    assert "@ git+https://github.com/" in install and index_installs(install) == []
    assert re.search(r"[Oo]nce it is released, `pip install keras-lstm-gates`", install)


# -- search --------------------------------------------------------------------------------


def _tokens(text: str) -> set[str]:
    """Words as lunr indexes them (split on white space and hyphens, trimmed
    of non-word characters at both ends), lower case."""
    plain = re.sub(r"<[^>]+>", " ", text)
    words = (re.sub(r"^\W+|\W+$", "", w) for w in re.split(r"[\s\-]+", plain))
    return {w.lower() for w in words if w}


def test_search_finds_the_tflite_section(site):
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    sections = [d for d in index["docs"] if d["title"].startswith("TensorFlow Lite")]
    assert sections, "no TensorFlow Lite section in the search index"
    assert any("tflite" in _tokens(d["title"] + " " + d["text"]) for d in sections), sections


# -- the home page ----------------------------------------------------------------------

GATE_PAGES = {"forget-gate", "input-gate", "candidate-memory", "output-gate"}


def test_home_page_says_why_gates(site):
    text = (sitebuild.DOCS / "index.md").read_text(encoding="utf-8")
    why = text.split("## Why gates\n", 1)[1].split("\n## ", 1)[0]
    keys = {key for key, _ in sitebuild.NUMBER.findall(why)}
    assert {"why.rnn50", "why.lstm50"} <= keys, keys  # a number, recomputed
    assert "vanishing gradient" in why
    html = (site / "index.html").read_text(encoding="utf-8")
    figure = html.split('<figure class="klg-unrolled"', 1)[1].split("</figure>", 1)[0]
    steps = figure.split('<li class="klg-unrolled__step">')[1:]
    assert len(steps) == 3, "three time steps"
    for step in steps:
        targets = re.findall(r'href="equations/([a-z-]+)/"', step)
        assert set(targets) == GATE_PAGES, targets
    for page in GATE_PAGES:
        assert (site / "equations" / page / "index.html").is_file()
