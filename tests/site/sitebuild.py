"""Helpers shared by the documentation tests: the repository's pages, their
```python blocks and number markers, and one strict build of the site per
test session."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# A number stated on a page and checked by tests/site/test_docs_numbers.py:
# written [[key=value]] in the Markdown; the build hook prints just the value.
NUMBER = re.compile(r"\[\[([a-z0-9_.-]+)=([^\]\s]+)\]\]")
PYTHON_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)


EQUATION_PAGES = (
    "activation-of-a-layer",
    "sigmoid",
    "forget-gate",
    "input-gate",
    "candidate-memory",
    "cell-state-update",
    "output-gate",
    "hidden-state",
)


def site_pages(site: Path) -> list[str]:
    """Every page of a built site as a URL path below its root ('' is the home page)."""
    found = []
    for index in sorted(site.rglob("index.html")):
        rel = index.parent.relative_to(site).as_posix()
        if not rel.startswith(("assets", "search")):
            found.append("" if rel == "." else rel + "/")
    return found


def pages() -> list[Path]:
    """Every Markdown page of the site, sorted."""
    return sorted(DOCS.rglob("*.md"))


def page_id(path: Path) -> str:
    return path.relative_to(DOCS).as_posix()


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a page, in order, dedented."""
    blocks = []
    for match in PYTHON_BLOCK.finditer(path.read_text(encoding="utf-8")):
        indent = match.group("indent")
        body = match.group("body")
        lines = [
            line[len(indent) :] if line.startswith(indent) else line for line in body.split("\n")
        ]
        blocks.append("\n".join(lines))
    return blocks


# What a page shows a ```python block printing: a ```text block titled
# "Output" right after it (matched from the end of the python block).
OUTPUT_BLOCK = re.compile(
    r'[ \t]*\n\s*?(?P<indent>[ \t]*)```text title="Output"\n(?P<body>.*?)^(?P=indent)```',
    re.M | re.S,
)


def output_blocks(path: Path) -> list[str | None]:
    """For each ```python block of a page, the output shown under it (dedented),
    or None."""
    text = path.read_text(encoding="utf-8")
    shown = []
    for match in PYTHON_BLOCK.finditer(text):
        after = OUTPUT_BLOCK.match(text, match.end())
        if after is None:
            shown.append(None)
            continue
        indent = after.group("indent")
        lines = after.group("body").split("\n")
        shown.append("\n".join(line[len(indent) :] for line in lines))
    return shown


def numbers(path: Path) -> list[tuple[str, str]]:
    """The ``[[key=value]]`` markers of a page as (key, value) pairs."""
    return NUMBER.findall(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def build_site() -> tuple[int, str, Path]:
    """Run ``mkdocs build --strict`` once into a temporary folder.

    Returns ``(returncode, output, site_dir)``.
    """
    site = Path(tempfile.mkdtemp(prefix="klg-site-"))
    atexit.register(shutil.rmtree, site, ignore_errors=True)
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        # The build executes the tutorial notebooks in fast mode unless
        # build/notebooks holds fresh copies (tools/execute_notebooks.py).
        timeout=1500,
    )
    return proc.returncode, proc.stdout + proc.stderr, site
