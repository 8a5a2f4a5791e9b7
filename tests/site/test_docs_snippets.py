"""Every ```python block of every documentation page runs.

All pages run in one subprocess with KERAS_BACKEND=tensorflow (one import of
Keras), each page in a fresh namespace, its blocks in order; see
snippet_runner.py. A page whose block raises fails its test with the
traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sitebuild

RUNNER = Path(__file__).with_name("snippet_runner.py")
PAGES = [p for p in sitebuild.pages() if sitebuild.python_blocks(p)]
# Pages that must show their code: every equation and explanation page.
MUST_HAVE_CODE = ("equations/", "explanations/")


@pytest.fixture(scope="module")
def results():
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(RUNNER), *map(str, PAGES)],
        cwd=sitebuild.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_blocks_are_found():
    """The extractor finds fenced blocks, including indented ones."""
    text = (
        "a\n\n```python\nx = 1\n```\n\n    ```python\n    y = x + 1\n    ```\n\n```bash\nls\n```\n"
    )
    blocks = [m.group("body") for m in sitebuild.PYTHON_BLOCK.finditer(text)]
    assert [b.strip() for b in blocks] == ["x = 1", "y = x + 1"]


@pytest.mark.parametrize("page", sitebuild.pages(), ids=sitebuild.page_id)
def test_pages_that_must_show_code_do(page):
    name = sitebuild.page_id(page)
    if name.startswith(MUST_HAVE_CODE) and not name.endswith("index.md"):
        assert sitebuild.python_blocks(page), f"{name} has no ```python block"


@pytest.mark.parametrize("page", PAGES, ids=sitebuild.page_id)
def test_snippets_run(page, results):
    result = results[sitebuild.page_id(page)]
    assert result["ok"], (
        f"python block {result.get('failed_block')} of {sitebuild.page_id(page)} failed:\n"
        f"{result['error']}\noutput:\n{result['output']}"
    )
    assert result["ran"] == result["blocks"] > 0


_TOKEN = re.compile(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?|[^\s\d\[\](),]+", re.I)


def same_output(shown: str, printed: str) -> bool:
    """Whether a page's output block reads as the code printed: the same words,
    and numbers equal to 1e-4 relative (float32 round-off across machines)."""
    a, b = _TOKEN.findall(shown), _TOKEN.findall(printed)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            if x != y:
                return False
            continue
        if abs(fx - fy) > 1e-4 * max(abs(fx), abs(fy)) + 1e-6:
            return False
    return True


def test_output_matching_can_fail():
    assert same_output("[0.5919501  0.19587922]", "[0.59195  0.1958792]\n")
    assert not same_output("[0.59  0.19]", "[0.5919501  0.19587922]")
    assert not same_output("refused: tanh", "refused: relu")


SHOW_OUTPUT = [p for p in PAGES if sitebuild.page_id(p).startswith("equations/")]


@pytest.mark.parametrize("page", SHOW_OUTPUT, ids=sitebuild.page_id)
def test_equation_snippets_show_their_output(page, results):
    """Every block that prints is followed by an "Output" block with what it
    printed when the test ran it; a block that prints nothing has none."""
    printed = results[sitebuild.page_id(page)]["printed"]
    shown = sitebuild.output_blocks(page)
    for k, (out, block) in enumerate(zip(printed, shown), start=1):
        if not out.strip():
            assert block is None, f"python block {k} prints nothing but shows an output"
            continue
        assert block is not None, f"python block {k} prints, and the page does not show it:\n{out}"
        assert same_output(block, out), f"python block {k} shows\n{block}\nbut printed\n{out}"
