"""MkDocs hooks of the keras_lstm_gates site (see ``hooks:`` in mkdocs.yml).

What they do, in build order:

* ``on_config``: put the notebooks of ``notebooks/`` under *Tutorials* in the
  nav, titled by their first heading (code spans kept), every page of
  ``docs/variants/`` under *Variants*, and an API page for each optional
  module (tracing, plots, torch import) that exists.
* ``on_files``: add to the build, without copying anything into ``docs/``,
  KaTeX's ``dist/`` from ``node_modules/katex`` (the npm package pinned in
  package.json) as ``assets/katex/``, the notebooks as ``tutorials/*.ipynb``
  (executed copies, with outputs and plots: tools/execute_notebooks.py runs
  each once in fast mode and reuses the result while nothing it depends on
  changes), ``CHANGELOG.md`` as ``changelog.md``, the generated API pages,
  and ``assets/javascripts/klg-symbols.js`` (the hover text of every symbol,
  read from ``docs/symbols.md``).
* ``on_page_markdown``: print each checked number ``[[key=value]]`` as its
  value (tests/site/test_docs_numbers.py recomputes it), and turn
  ``\\sym{id}{tex}`` inside math into
  ``\\href{<relative url of symbols page>#sym-id}{tex}``; an ``id`` that is
  not an anchor of the symbols page is a warning, so a strict build fails.
* ``on_page_content``: give every entry of a notebook page's table of contents
  (and Material's "Skip to content") its anchor, drop the network scripts (MathJax, mermaid,
  RequireJS from CDNs) that nbconvert puts into rendered notebooks (the
  site's own KaTeX renders their math), serve the "Open in Colab" badge from
  the site, and show any other remote image as its alt text; open each
  tutorial with a download link for its (output-free) notebook.
* ``on_page_context``: point the edit link of a page made from a file outside
  ``docs/`` (notebooks, changelog, generated API pages) at that file.
* ``on_post_build``: copy each output-free notebook next to its page, for
  the download link.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urljoin

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.klg")

KATEX_VERSION_FILE = "package.json"
KATEX_FILES = ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js")
NOTEBOOK_DIR = "notebooks"
TUTORIALS = "tutorials"
TUTORIALS_TITLE = "Tutorials"
CHANGELOG = ("CHANGELOG.md", "changelog.md")
AUTO_SECTIONS = ("variants/",)
# (page, title, module, source file): API pages made only when the module exists.
OPTIONAL_API = (
    ("api/tracing.md", "Tracing", "keras_lstm_gates.tracing", "keras_lstm_gates/tracing.py"),
    ("api/traces.md", "Gate traces", "keras_lstm_gates.traces", "keras_lstm_gates/traces.py"),
    (
        "api/explore.md",
        "Explore",
        "keras_lstm_gates.explore.explorer",
        "keras_lstm_gates/explore/explorer.py",
    ),
    ("api/lstmvis.md", "LSTMVis export", "keras_lstm_gates.lstmvis", "keras_lstm_gates/lstmvis.py"),
    ("api/parts.md", "Parts", "keras_lstm_gates.parts", "keras_lstm_gates/parts.py"),
    ("api/plots.md", "Plots", "keras_lstm_gates.plots", "keras_lstm_gates/plots.py"),
    ("api/tflite.md", "TensorFlow Lite", "keras_lstm_gates.tflite", "keras_lstm_gates/tflite.py"),
    (
        "api/torch_import.md",
        "PyTorch import",
        "keras_lstm_gates.torch_import",
        "keras_lstm_gates/torch_import.py",
    ),
)
API_SECTION = "API reference"
SYMBOLS_PAGE = "symbols.md"
SYMBOL_ROW = re.compile(r'^\|\s*<a id="sym-([a-z0-9-]+)"></a>.*?\|\s*([^|]+?)\s*\|', re.M)
SYM_MACRO = re.compile(r"\\sym\{([^{}]*)\}")
# A number the tests recompute (tests/site/test_docs_numbers.py): [[key=value]].
NUMBER = re.compile(r"\[\[([a-z0-9_.-]+)=([^\]\s]+)\]\]")

_state: dict = {}


def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def _notebooks(root: Path) -> list[Path]:
    folder = root / NOTEBOOK_DIR
    return sorted(folder.glob("*.ipynb")) if folder.is_dir() else []


def notebook_title(path: Path) -> str:
    """The text of a notebook's first level-1 heading, code spans and
    emphasis kept as plain text; the file's stem if it has none."""
    for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = "".join(cell.get("source", ""))
        heading = re.search(r"^#[ \t]+(.+?)[ \t#]*$", source, re.M)
        if heading:
            return re.sub(r"[`*_]", "", heading.group(1)).strip()
    return path.stem


# -- nav ---------------------------------------------------------------------


def _nav_files(nav) -> set[str]:
    found = set()
    for item in nav or []:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            found |= _nav_files(value)
        elif isinstance(value, str):
            found.add(value)
    return found


def _complete_sections(nav, docs_dir: Path, listed: set[str]) -> None:
    """Append every page under an AUTO_SECTIONS folder to the nav section
    that lists the folder's ``index.md``."""
    for item in nav:
        if not isinstance(item, dict):
            continue
        value = next(iter(item.values()))
        if not isinstance(value, list):
            continue
        for prefix in AUTO_SECTIONS:
            if prefix + "index.md" in _nav_files(value):
                pages = sorted(
                    p.relative_to(docs_dir).as_posix() for p in (docs_dir / prefix).rglob("*.md")
                )
                value.extend(p for p in pages if p not in listed)
        _complete_sections(value, docs_dir, listed)


def on_config(config):
    root = _root(config)
    docs_dir = Path(config.docs_dir)
    nav = config.nav
    if nav is None:
        raise PluginError("mkdocs.yml must have an explicit nav.")
    _complete_sections(nav, docs_dir, _nav_files(nav))

    notebooks = _notebooks(root)
    tutorials = [{notebook_title(nb): f"{TUTORIALS}/{nb.name}"} for nb in notebooks]
    for item in nav:
        if isinstance(item, dict) and TUTORIALS_TITLE in item:
            section = item[TUTORIALS_TITLE]
            if isinstance(section, str):
                section = item[TUTORIALS_TITLE] = [section]
            listed = _nav_files(section)
            section.extend(t for t in tutorials if next(iter(t.values())) not in listed)
            break
    else:
        if tutorials:
            nav.insert(1, {TUTORIALS_TITLE: tutorials})

    generated_api = []
    for page, title, module, source in OPTIONAL_API:
        if (root / source).is_file() and not (docs_dir / page).is_file():
            generated_api.append((page, title, module))
    for item in nav:
        if isinstance(item, dict) and API_SECTION in item and isinstance(item[API_SECTION], list):
            listed = _nav_files(item[API_SECTION])
            item[API_SECTION].extend({t: p} for p, t, _ in generated_api if p not in listed)
    _state.update(root=root, notebooks=notebooks, generated_api=generated_api)
    return config


# -- files -------------------------------------------------------------------


def _katex_dist(root: Path) -> Path:
    dist = root / "node_modules" / "katex" / "dist"
    if not (dist / "katex.min.js").is_file() and shutil.which("npm"):
        log.info("KaTeX is not installed; running `npm install` in %s", root)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=root, check=False
        )
    if not (dist / "katex.min.js").is_file():
        raise PluginError(
            "KaTeX is missing: expected node_modules/katex/dist/katex.min.js. "
            "Run `npm install` in the repository root (package.json pins katex)."
        )
    wanted = json.loads((root / KATEX_VERSION_FILE).read_text())["dependencies"]["katex"]
    installed = json.loads((dist.parent / "package.json").read_text())["version"]
    if installed != wanted:
        raise PluginError(
            f"KaTeX {wanted} is pinned in package.json, but node_modules has {installed}. "
            "Run `npm install`."
        )
    return dist


def _symbol_titles(docs_dir: Path) -> dict[str, str]:
    text = (docs_dir / SYMBOLS_PAGE).read_text(encoding="utf-8")
    titles = {}
    for anchor, read_as in SYMBOL_ROW.findall(text):
        titles[anchor] = re.sub(r"[`*_]", "", read_as).strip()
    if not titles:
        raise PluginError(f"{SYMBOLS_PAGE}: found no symbol rows '| <a id=\"sym-...\"></a>'.")
    return titles


def _executed_notebook(root: Path, notebook: Path) -> Path:
    """The executed copy of ``notebook`` (tools/execute_notebooks.py), made
    now if it is missing or stale; a cell that fails stops the build."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "klg_execute_notebooks", root / "tools" / "execute_notebooks.py"
    )
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    try:
        copy, wall, ran = runner.executed(notebook)
    except Exception as error:  # nbclient's CellExecutionError, a dead kernel
        raise PluginError(f"{notebook.name} failed in fast mode: {error}") from error
    log.info("%s: %s (%.0f s)", notebook.name, "executed" if ran else "executed copy reused", wall)
    _state.setdefault("executed", {})[notebook.name] = wall
    return copy


@event_priority(100)  # before mkdocs-jupyter wraps the notebooks
def on_files(files: Files, config) -> Files:
    root = _state["root"]
    dist = _katex_dist(root)
    for path in sorted(dist.rglob("*")):
        rel = path.relative_to(dist).as_posix()
        if path.is_file() and (rel in KATEX_FILES or rel.startswith("fonts/")):
            files.append(File.generated(config, f"assets/katex/{rel}", abs_src_path=str(path)))
    for nb in _state["notebooks"]:
        rendered = _executed_notebook(root, nb)
        files.append(File.generated(config, f"{TUTORIALS}/{nb.name}", abs_src_path=str(rendered)))
    changelog = root / CHANGELOG[0]
    if changelog.is_file():
        files.append(File.generated(config, CHANGELOG[1], abs_src_path=str(changelog)))
    for page, title, module in _state["generated_api"]:
        content = f"# {title}\n\nGenerated from the docstrings of `{module}`.\n\n::: {module}\n"
        files.append(File.generated(config, page, content=content))
    titles = _symbol_titles(Path(config.docs_dir))
    _state["symbols"] = titles
    script = "window.KLG_SYMBOLS = " + json.dumps(titles, indent=1, sort_keys=True) + ";\n"
    files.append(File.generated(config, "assets/javascripts/klg-symbols.js", content=script))
    return files


def on_nav(nav, config, files):
    # mkdocs-jupyter wraps each notebook File in a NotebookFile that recomputes
    # abs_src_path from src_dir, which a generated File does not have: give the
    # wrapper the real path of the notebook in notebooks/.
    for file in files:
        inner = getattr(file, "__dict__", {}).get("file")
        if inner is not None and file.src_uri.startswith(f"{TUTORIALS}/"):
            file.abs_src_path = inner.abs_src_path
    return nav


# -- pages -------------------------------------------------------------------


def on_page_markdown(markdown, page, config, files):
    markdown = NUMBER.sub(lambda m: m.group(2), markdown)
    if "[[" in markdown and re.search(r"\[\[[a-z0-9_.-]+=", markdown):
        log.warning("%s: a [[key=value]] number marker is malformed", page.file.src_uri)
    if "\\sym{" not in markdown:
        return markdown
    symbols_file = files.get_file_from_path(SYMBOLS_PAGE)
    target = symbols_file.url_relative_to(page.file)
    known = _state["symbols"]

    def link(match):
        ident = match.group(1)
        if ident not in known:
            log.warning(
                "%s: \\sym{%s} names no symbol; expected one of the anchors of %s: %s",
                page.file.src_uri,
                ident,
                SYMBOLS_PAGE,
                ", ".join(sorted(known)),
            )
        return f"\\href{{{target}#sym-{ident}}}"

    return SYM_MACRO.sub(link, markdown)


_NETWORK_SCRIPT = re.compile(
    r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->"
    r"|<script\b[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>"
    r"|<script\b[^>]*>(?:(?!</script>).)*?https?://(?:(?!</script>).)*?</script>",
    re.S,
)
_NETWORK_IMAGE = re.compile(r"<img\b[^>]*\bsrc=\"(https?://[^\"]+)\"[^>]*>")
_ALT = re.compile(r"\balt=\"([^\"]*)\"")
COLAB_BADGE = "assets/images/colab-badge.svg"


def _offline_images(html, page, files):
    """Serve the Colab badge from the site; show any other remote image as its
    alt text, so that no page loads an image from the network."""
    badge = files.get_file_from_path(COLAB_BADGE)

    def replace(match):
        url = match.group(1)
        alt = _ALT.search(match.group(0))
        alt = alt.group(1) if alt else "image"
        if "colab" in url and "badge" in url and badge is not None:
            return f'<img alt="{alt}" src="{badge.url_relative_to(page.file)}"/>'
        log.info("%s: remote image %s shown as its alt text", page.file.src_uri, url)
        return f'<span class="klg-remote-image">{alt}</span>'

    return _NETWORK_IMAGE.sub(replace, html)


def _notebook_links(page) -> str:
    """The line that opens a tutorial page: download link and how the
    outputs below were made."""
    name = Path(page.file.src_uri).name
    _state.setdefault("downloads", {})[name] = Path(page.file.abs_dest_path).parent
    wall = _state.get("executed", {}).get(name)
    ran = f", in {wall:.0f} s" if wall is not None else ""
    return (
        '<p class="klg-notebook-links">'
        f'<a href="{name}" download>Download the notebook ({name})</a>, '
        "stored without outputs, or open it in Colab from the badge below. "
        "The outputs and plots on this page come from running it top to bottom "
        f"in fast mode (<code>KLG_FAST=1</code>) on a CPU with the TensorFlow backend{ran}, "
        "when this site was built.</p>\n"
    )


def _toc_anchors(items) -> list[str]:
    found = []
    for item in items or []:
        if item.url.startswith("#"):
            found.append(item.url[1:])
        found += _toc_anchors(item.children)
    return found


def _anchor_toc(html, page):
    """Give every entry of a notebook page's table of contents its target.

    mkdocs-jupyter slugs the headings for the table of contents (and so for
    Material's "Skip to content" link) without their code spans, while
    nbconvert's heading ids keep them: "Parity with `keras.layers.LSTM`" is
    ``#parity-with`` in the one and ``parity-with-keraslayerslstm`` in the
    other.  A missing anchor is put before the heading whose id starts with
    it (the page's first heading for the first entry)."""
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    for k, anchor in enumerate(_toc_anchors(page.toc)):
        if anchor in ids:
            continue
        heading = re.search(rf'<h[1-6][^>]*\bid="{re.escape(anchor)}[^"]*"', html)
        if heading is None and k == 0:
            heading = re.search(r"<h1\b", html)
        if heading is None:
            log.warning("%s: no heading for the contents entry #%s", page.file.src_uri, anchor)
            continue
        html = html[: heading.start()] + f'<a id="{anchor}"></a>' + html[heading.start() :]
        ids.add(anchor)
    return html


def on_page_content(html, page, config, files):
    if page.file.src_uri.endswith(".ipynb"):
        html = _NETWORK_SCRIPT.sub("", html)
        html = _anchor_toc(html, page)
        html = _notebook_links(page) + html
    html = _offline_images(html, page, files)
    if page.file.src_uri.startswith("api/"):
        # Sphinx roles in docstrings (:class:`X`) read as plain code here.
        html = re.sub(r":(?:class|func|meth|mod|attr|data|exc):(<code>)", r"\1", html)
    return html


def on_page_context(context, page, config, nav):
    """Edit links of pages whose source is not in docs/ (MkDocs gives a
    generated file none): the notebook, the changelog, the module whose
    docstrings make an API page."""
    if not (config.repo_url and config.edit_uri):
        return context
    # edit_uri ends in the docs folder (edit/main/docs/): one level up is the
    # repository's root.
    root = urljoin(urljoin(config.repo_url.rstrip("/") + "/", config.edit_uri), "../")
    src = page.file.src_uri
    if src.startswith(f"{TUTORIALS}/") and src.endswith(".ipynb"):
        page.edit_url = f"{root}{NOTEBOOK_DIR}/{Path(src).name}"
    elif src == CHANGELOG[1]:
        page.edit_url = root + CHANGELOG[0]
    else:
        for api_page, _title, _module, source in OPTIONAL_API:
            if src == api_page and not (Path(config.docs_dir) / api_page).is_file():
                page.edit_url = root + source
    return context


def on_post_build(config):
    """The output-free notebooks, next to their pages, for download."""
    by_name = {nb.name: nb for nb in _state.get("notebooks", [])}
    for name, folder in _state.get("downloads", {}).items():
        if name in by_name:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(by_name[name], folder / name)


def on_serve(server, config, builder):
    root = _state.get("root") or _root(config)
    for extra in (NOTEBOOK_DIR, "keras_lstm_gates", "tools/docs_hooks.py"):
        if (root / extra).exists():
            server.watch(str(root / extra))
    return server
