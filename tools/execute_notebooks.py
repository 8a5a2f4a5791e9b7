"""Execute the tutorial notebooks once, in fast mode, for the documentation site.

The notebooks in ``notebooks/`` are stored without outputs. The site shows
them with their outputs and plots: the build hook (tools/docs_hooks.py) asks
this module for an executed copy of each, and tests/site/test_notebooks.py
executes them through it as well, so a test run and a site build share one
execution per notebook.

Executed copies are kept in ``build/notebooks/<name>.ipynb``. A copy is reused
while its key matches: the notebook's cells, the package's source files and
the versions of Keras and the backend. Anything else executes again.

    python tools/execute_notebooks.py            # execute what is stale
    python tools/execute_notebooks.py --force    # execute everything
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
CACHE_DIR = ROOT / "build" / "notebooks"
PACKAGE_DIR = ROOT / "keras_lstm_gates"
BACKEND = "tensorflow"
CELL_TIMEOUT_S = 300
# The environment of the kernel: fast mode (the sizes the test suite runs on
# two CPU cores) and a fixed backend.
KERNEL_ENV = {
    "KLG_FAST": "1",
    "KERAS_BACKEND": BACKEND,
    "PYTHONHASHSEED": "0",
}
# What quiets the frameworks' start-up logs. The kernel starts without them,
# as in Colab, so that the notebooks' own setup cell must set them and the
# executed copies show whether it does (tests/site/test_notebooks.py).
QUIETING_ENV = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
META = "klg_execution"


def notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def cache_key(path: Path) -> str:
    """What an executed copy of ``path`` depends on, hashed."""
    digest = hashlib.sha256()
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        digest.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    for source in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(source.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(source.read_bytes())
    for name in ("keras", "tensorflow-cpu", "tensorflow", "matplotlib", "numpy"):
        digest.update(f"{name}={_version(name)}\0".encode())
    digest.update(json.dumps([KERNEL_ENV, QUIETING_ENV], sort_keys=True).encode())
    return digest.hexdigest()[:20]


def cached_copy(path: Path, cache_dir: Path = CACHE_DIR) -> Path:
    return cache_dir / path.name


def fresh(path: Path, cache_dir: Path = CACHE_DIR) -> bool:
    """Whether the executed copy of ``path`` exists and matches its key."""
    copy = cached_copy(path, cache_dir)
    if not copy.is_file():
        return False
    try:
        done = nbformat.read(copy, as_version=4).metadata.get(META, {})
    except Exception:  # a truncated or foreign file: execute again
        return False
    return done.get("key") == cache_key(path) and done.get("ok") is True


def _kernel_manager(kernel_dir: Path):
    """A kernel running this interpreter (the venv with the package),
    whatever kernelspecs the user's Jupyter directories hold."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec = kernel_dir / "klg-notebooks"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "keras_lstm_gates notebooks",
                "language": "python",
                "env": KERNEL_ENV,
            }
        )
    )
    specs = KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name="klg-notebooks", kernel_spec_manager=specs)


def execute(path: Path, cache_dir: Path = CACHE_DIR) -> tuple[nbformat.NotebookNode, float]:
    """Execute ``path`` top to bottom in fast mode; store and return the
    executed notebook and its wall time in seconds.

    A failing cell raises (nbclient's ``CellExecutionError``) and stores
    nothing, so a broken notebook never reaches the site.
    """
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    key = cache_key(path)
    with tempfile.TemporaryDirectory(prefix="klg-nb-") as work:
        km = _kernel_manager(Path(work) / "kernels")
        client = NotebookClient(
            nb, km=km, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": work}}
        )
        # The inline backend draws every figure into the notebook.
        saved = {name: os.environ.pop(name, None) for name in ("MPLBACKEND", *QUIETING_ENV)}
        start = time.perf_counter()
        try:
            client.execute()
        finally:
            wall = time.perf_counter() - start
            os.environ.update({name: value for name, value in saved.items() if value is not None})
            # A kernel manager given to nbclient is the caller's to stop.
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)
    nb.metadata[META] = {
        "key": key,
        "ok": True,
        "wall_s": round(wall, 1),
        "backend": BACKEND,
        "fast": True,
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cached_copy(path, cache_dir)
    partial = target.with_suffix(".partial")
    nbformat.write(nb, partial)
    partial.replace(target)
    return nb, wall


def executed(path: Path, cache_dir: Path = CACHE_DIR) -> tuple[Path, float, bool]:
    """The executed copy of ``path``, executing it only if it is stale.

    Returns ``(copy, wall time of its execution, whether it ran now)``.
    """
    if fresh(path, cache_dir):
        copy = cached_copy(path, cache_dir)
        wall = nbformat.read(copy, as_version=4).metadata[META]["wall_s"]
        return copy, float(wall), False
    _, wall = execute(path, cache_dir)
    return cached_copy(path, cache_dir), wall, True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="execute even fresh copies")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    for path in args.notebooks or notebooks():
        if args.force:
            _, wall = execute(path)
            ran = True
        else:
            _, wall, ran = executed(path)
        print(f"{path.name}: {'executed in' if ran else 'up to date, executed in'} {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
