"""The tutorial pages of the site: executed notebooks with their outputs and
plots, a download link and a Colab badge each, full and distinct nav titles;
and the notebooks pick their sizes from the device they find.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap

import nbformat
import pytest
import sitebuild

ROOT = sitebuild.ROOT
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load("docs_hooks")
badges = _load("notebook_badges")
runner = _load("execute_notebooks")


@pytest.fixture(scope="module")
def site():
    code, output, site_dir = sitebuild.build_site()
    assert code == 0, f"mkdocs build --strict failed:\n{output[-6000:]}"
    return site_dir


def _page(site, path):
    return (site / "tutorials" / path.stem / "index.html").read_text(encoding="utf-8")


def _nav_links(site) -> list[tuple[str, str]]:
    """(href, title) of every link of the home page's primary navigation."""
    text = (site / "index.html").read_text(encoding="utf-8")
    nav = text.split('class="md-nav md-nav--primary"', 1)[1].split(
        'class="md-sidebar md-sidebar--secondary"'
    )[0]
    links = re.findall(
        r'<a href="([^"#]*)" class="md-nav__link[^"]*">\s*(?:<span class="md-ellipsis">)?\s*(.*?)\s*</',
        nav,
        re.S,
    )
    return [(href, html.unescape(re.sub(r"<[^>]+>", "", title)).strip()) for href, title in links]


# -- outputs ---------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_page_shows_outputs_and_plots(site, path):
    page = _page(site, path)
    nb = nbformat.read(path, as_version=4)
    shows = sum("plt.show()" in c.source for c in nb.cells if c.cell_type == "code")
    plots = len(re.findall(r'<img[^>]+src="data:image/png;base64,', page))
    assert plots >= shows > 0, f"{path.name}: {plots} plots on the page, {shows} plt.show() calls"
    assert "CLAIM " in page, f"{path.name}: the page shows no CLAIM line (no outputs?)"
    assert "fast mode: True" in page, f"{path.name}: the outputs are not from a fast-mode run"
    assert "Traceback (most recent call last)" not in page, f"{path.name}: an error in the outputs"


def test_text_about_a_figure_has_the_figure(site):
    """Notebook 02 speaks of "the middle panel": the three-panel figure that
    follows it is on the page."""
    page = _page(site, ROOT / "notebooks" / "02_forget_gate.ipynb")
    after = page.split("middle panel", 1)[1]
    assert re.search(
        r'<img[^>]+src="data:image/png;base64,', after.split("Over all test streams")[0]
    )


# -- download link and badge -------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_page_has_download_link_and_colab_badge(site, path):
    page = _page(site, path)
    links = re.findall(r'<a href="([^"]+)" download>', page)
    assert links == [path.name], f"{path.name}: download links {links}"
    download = site / "tutorials" / path.stem / path.name
    assert download.read_bytes() == path.read_bytes(), "the download is not the stored notebook"
    colab = badges.colab_url(badges.repository_url(), path.name)
    badge = re.search(
        rf'<a href="{re.escape(colab)}"[^>]*>\s*<img alt="Open In Colab" src="([^"]+)"', page
    )
    assert badge, f"{path.name}: no Colab badge linking to {colab}"
    assert badge.group(1) == "../../assets/images/colab-badge.svg", badge.group(1)


# -- nav titles --------------------------------------------------------------


def test_notebook_title_keeps_code_spans(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("[![badge](b.svg)](x)"),
        nbformat.v4.new_markdown_cell("# Parity with `keras.layers.LSTM`\n\ntext"),
    ]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert hooks.notebook_title(path) == "Parity with keras.layers.LSTM"


def test_tutorial_nav_titles_are_full_and_distinct(site):
    links = _nav_links(site)
    titles = [title for _, title in links]
    for path in NOTEBOOKS:
        expected = hooks.notebook_title(path)
        listed = [t for href, t in links if href == f"tutorials/{path.stem}/"]
        assert listed == [expected], f"{path.name}: nav shows {listed}, heading is {expected!r}"
        assert titles.count(expected) == 1, f"{expected!r} appears {titles.count(expected)} times"
    assert "Parity with keras.layers.LSTM" in titles
    assert titles.count("What the forget gate forgets") == 1, titles


# -- sizes by device ---------------------------------------------------------

# Runs each notebook's setup cell (the one that defines accelerator() and
# FAST) in one interpreter, under each setting of KLG_FAST, once as found and
# once with a pretend CUDA device on the torch backend.
PROBE = textwrap.dedent(
    """
    import json, os, sys, types
    import keras

    cells = json.loads(sys.argv[1])
    real_backend = keras.backend.backend
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: True))
    found = {}
    for name, source in cells.items():
        for device in ("found", "gpu"):
            for fast in (None, "0", "1"):
                os.environ.pop("KLG_FAST", None)
                if fast is not None:
                    os.environ["KLG_FAST"] = fast
                saved_torch = sys.modules.get("torch")
                if device == "gpu":
                    keras.backend.backend = lambda: "torch"
                    sys.modules["torch"] = fake_torch
                namespace = {"sys": sys, "print": lambda *a, **k: None}
                try:
                    exec(source, namespace)
                    device_found = namespace["accelerator"]()
                finally:
                    keras.backend.backend = real_backend
                    if saved_torch is None:
                        sys.modules.pop("torch", None)
                    else:
                        sys.modules["torch"] = saved_torch
                found[f"{name} {device} {fast}"] = [device_found, namespace["FAST"]]
    print(json.dumps(found))
    """
)


def test_notebooks_pick_their_sizes_from_the_device():
    cells = {}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        setup = [
            c.source for c in nb.cells if c.cell_type == "code" and "def accelerator" in c.source
        ]
        assert len(setup) == 1, f"{path.name}: expected one cell defining accelerator()"
        assert "FAST = " in setup[0] and 'accelerator() == "CPU"' in setup[0], (
            f"{path.name}: FAST does not depend on the device"
        )
        cells[path.stem] = setup[0]
    env = {k: v for k, v in os.environ.items() if k != "KLG_FAST"}
    env.update(KERAS_BACKEND="numpy", MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(cells)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in cells:
        # On this machine (a CPU): small sizes unless KLG_FAST=0 asks for the full ones.
        assert found[f"{name} found None"] == ["CPU", True], found
        assert found[f"{name} found 0"] == ["CPU", False], found
        assert found[f"{name} found 1"] == ["CPU", True], found
        # With a GPU: full sizes unless KLG_FAST=1.
        assert found[f"{name} gpu None"] == ["GPU", False], found
        assert found[f"{name} gpu 0"] == ["GPU", False], found
        assert found[f"{name} gpu 1"] == ["GPU", True], found


# -- the executed copies -----------------------------------------------------


def test_executed_copy_goes_stale_when_the_notebook_changes(tmp_path):
    source = NOTEBOOKS[0]
    nb = nbformat.read(source, as_version=4)
    copy = tmp_path / source.name
    nbformat.write(nb, copy)
    key = runner.cache_key(copy)
    nb.metadata["something"] = "else"  # metadata alone does not matter
    nbformat.write(nb, copy)
    assert runner.cache_key(copy) == key
    nb.cells[-1].source += "\n"
    nbformat.write(nb, copy)
    assert runner.cache_key(copy) != key
    # A stored copy with the old key is not fresh; with the new key it is.
    cache = tmp_path / "cache"
    cache.mkdir()
    stored = nbformat.read(copy, as_version=4)
    stored.metadata[runner.META] = {"key": key, "ok": True, "wall_s": 1.0}
    nbformat.write(stored, cache / copy.name)
    assert not runner.fresh(copy, cache)
    stored.metadata[runner.META]["key"] = runner.cache_key(copy)
    nbformat.write(stored, cache / copy.name)
    assert runner.fresh(copy, cache)
