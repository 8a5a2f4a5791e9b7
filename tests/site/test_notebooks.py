"""The tutorial notebooks: stored clean, badges in step with pyproject.toml,
and every notebook executed top to bottom in fast mode.

Each notebook asserts its own key claim in code, so executing it is the test
of its lesson; the lines it prints starting with ``CLAIM`` are echoed here,
with the wall time of the run.
"""

import os
import pathlib
import re
import subprocess
import sys

import nbformat
import pytest
from framework_logs import framework_lines

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
# The budget is two minutes per notebook on two CPU cores; the cell
# timeout is looser so that a slow machine reports a time instead of a hang.
BUDGET_S = float(os.environ.get("KLG_NOTEBOOK_BUDGET_S", "120"))


def repository_url():
    with open(ROOT / "pyproject.toml", "rb") as f:
        urls = tomllib.load(f)["project"]["urls"]
    return urls["Repository"].rstrip("/")


def read(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_the_four_tutorials():
    stems = {p.stem for p in NOTEBOOKS}
    for expected in ("01_quickstart", "02_forget_gate", "03_parity", "04_variants"):
        assert expected in stems, f"missing notebooks/{expected}.ipynb; found {sorted(stems)}"


def test_repository_url_is_a_github_repository():
    url = repository_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_first_cell_is_a_colab_badge_for_this_notebook(path):
    owner_repo = repository_url().removeprefix("https://github.com/")
    expected = (
        f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{path.name}"
    )
    first = read(path).cells[0]
    assert first.cell_type == "markdown", "the first cell must be the Colab badge (markdown)"
    # [![alt](…colab-badge.svg)](<link>): the link around the badge image.
    links = re.findall(r"\[!\[[^\]]*\]\([^)\s]*colab-badge\.svg\)\]\(([^)\s]+)\)", first.source)
    assert links == [expected], (
        f"{path.name}: badge link should be {expected}, found {links}. "
        "Run `python tools/notebook_badges.py --fix` after changing [project.urls]."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_first_code_cell_installs_only_inside_colab(path):
    source = code_cells(read(path))[0].source
    lines = source.splitlines()
    guard = 'if "google.colab" in sys.modules:'
    assert guard in lines, f"{path.name}: the first code cell must start with the Colab guard"
    installs = [k for k, line in enumerate(lines) if "pip install" in line]
    assert installs, f"{path.name}: the first code cell must install the package in Colab"
    start = lines.index(guard)
    for k in installs:
        assert k > start and lines[k].startswith((" ", "\t")), (
            f"{path.name}: `{lines[k].strip()}` runs outside the Colab guard"
        )
    expected = f'"keras-lstm-gates @ git+{repository_url()}"'
    assert expected in source, f"{path.name}: install line should install {expected}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_without_outputs(path):
    nb = read(path)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], (
            f"{path.name}: cell {k} has committed outputs; strip them "
            "(`python tools/notebook_badges.py --fix` or nbstripout)"
        )
        assert cell.execution_count is None, f"{path.name}: cell {k} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_self_contained_and_checked(path):
    code = "\n".join(c.source for c in code_cells(read(path)))
    for marker in ("get_file(", "urlopen(", "requests.", "keras.datasets", "load_dataset("):
        assert marker not in code, f"{path.name}: downloads at run time ({marker})"
    assert 'os.environ.get("KLG_FAST")' in code, f"{path.name}: no fast mode"
    assert "set_random_seed(" in code, f"{path.name}: no fixed seed"
    assert "accelerator()" in code, f"{path.name}: does not print its accelerator"
    assert re.search(r"^assert ", code, re.M), f"{path.name}: asserts no claim"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_markdown_has_no_raw_html(path):
    # The docs site renders the notebooks (mkdocs --strict): keep markdown plain.
    for k, cell in enumerate(read(path).cells):
        if cell.cell_type == "markdown":
            tags = re.findall(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>", cell.source)
            assert not tags, f"{path.name}: cell {k} has raw HTML {tags}"


def run_badge_tool(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "notebook_badges.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_badge_tool_finds_nothing_to_fix():
    result = run_badge_tool("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_badge_tool_repairs_a_stale_notebook(tmp_path):
    stale = tmp_path / NOTEBOOKS[0].name
    nb = read(NOTEBOOKS[0])
    nb.cells[0].source = nb.cells[0].source.replace("/blob/main/", "/blob/old-branch/")
    first_code = code_cells(nb)[0]
    first_code.source = first_code.source.replace(repository_url(), "https://github.com/old/repo")
    first_code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    first_code.execution_count = 3
    nbformat.write(nb, stale)

    checked = run_badge_tool("--check", stale)
    assert checked.returncode == 1
    for problem in ("badge", "install", "outputs"):
        assert problem in checked.stdout, checked.stdout

    assert run_badge_tool("--fix", stale).returncode == 0
    fixed = read(stale)
    owner_repo = repository_url().removeprefix("https://github.com/")
    assert f"github/{owner_repo}/blob/main/notebooks/{stale.name})" in fixed.cells[0].source
    assert f"git+{repository_url()}" in code_cells(fixed)[0].source
    assert all(c.outputs == [] and c.execution_count is None for c in code_cells(fixed))
    assert run_badge_tool("--check", stale).returncode == 0


def _runner():
    """tools/execute_notebooks.py: one fast-mode execution per notebook,
    shared with the site build, which shows the executed copies."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "klg_execute_notebooks", ROOT / "tools" / "execute_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_fast_mode(path, capsys):
    """Executes the notebook in fast mode on TensorFlow, with the inline
    backend drawing every figure (so a bad label fails here too). The site
    build executes the same notebooks through the same runner; whichever
    comes first runs them, the other reuses the copy, whose key covers the
    notebook's cells, the package's source and the library versions."""
    runner = _runner()
    assert runner.KERNEL_ENV["KLG_FAST"] == "1" and runner.BACKEND == "tensorflow"
    copy, wall, ran = runner.executed(path)
    nb = read(copy)
    claims = [
        line
        for cell in code_cells(nb)
        for output in cell.outputs
        if output.get("output_type") == "stream"
        for line in output.get("text", "").splitlines()
        if line.startswith("CLAIM")
    ]
    with capsys.disabled():
        how = "executed now" if ran else "executed copy of this code"
        print(f"\n[notebook] {path.name}: {wall:.1f} s in fast mode ({how})")
        for line in claims:
            print(f"[notebook]   {line}")
    errors = [o for c in code_cells(nb) for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert claims, f"{path.name}: printed no CLAIM line"
    assert wall <= BUDGET_S, (
        f"{path.name} took {wall:.0f} s; the fast-mode budget is {BUDGET_S:.0f} s"
    )


def test_framework_log_lines_are_recognised():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796654514.890441    7494 port.cc:153] oneDNN custom operations are on.\n"
        "accelerator: CPU, fast mode: True\n"
    )
    assert len(framework_lines(text)) == 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_executed_notebook_shows_no_framework_logs(path):
    """The setup cell quiets TensorFlow before Keras is imported; the kernel
    starts without those variables (tools/execute_notebooks.py), as in Colab."""
    copy, _, _ = _runner().executed(path)
    found = [
        f"cell {k} ({output.get('name')}): {line}"
        for k, cell in enumerate(read(copy).cells)
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
        for line in framework_lines(output.get("text", ""))
    ]
    assert not found, "\n".join(found)
