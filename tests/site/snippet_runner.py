"""Run the ```python blocks of documentation pages; used by test_docs_snippets.py.

    python tests/site/snippet_runner.py docs/a.md docs/b.md ...

Each page's blocks run in order in one fresh namespace (a later block may use
an earlier block's names, as a reader would), with the working directory set
to a temporary folder. Prints one JSON object: for each page, whether it
passed, how many blocks ran, the seconds it took, its printed output (the
last 2000 characters, and each block's own in ``printed``) and, on failure,
the traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sitebuild  # noqa: E402


def run_page(path: Path) -> dict:
    import keras

    keras.utils.clear_session()
    keras.config.set_dtype_policy("float32")
    blocks = sitebuild.python_blocks(path)
    namespace = {"__name__": "__main__"}
    output = io.StringIO()
    start = time.perf_counter()
    result = {"blocks": len(blocks), "ran": 0, "ok": True, "error": None, "printed": []}
    with contextlib.redirect_stdout(output):
        for k, block in enumerate(blocks, start=1):
            before = len(output.getvalue())
            try:
                code = compile(block, f"{sitebuild.page_id(path)} (python block {k})", "exec")
                exec(code, namespace)
            except BaseException:  # noqa: BLE001 - reported, not raised
                result.update(ok=False, error=traceback.format_exc(limit=8), failed_block=k)
                break
            result["ran"] = k
            result["printed"].append(output.getvalue()[before:])  # what this block printed
    result["seconds"] = round(time.perf_counter() - start, 2)
    result["output"] = output.getvalue()[-2000:]
    return result


def main(argv: list[str]) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    paths = [Path(p).resolve() for p in argv]
    results = {}
    with tempfile.TemporaryDirectory(prefix="klg-snippets-") as work:
        os.chdir(work)
        for path in paths:
            results[sitebuild.page_id(path)] = run_page(path)
    sys.stdout.write("\n" + json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
