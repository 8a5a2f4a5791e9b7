"""Keep the tutorial notebooks' Colab badges and install lines in step with
the repository URL in ``pyproject.toml`` (``[project.urls] Repository``), and
keep the notebooks stored without outputs.

    python tools/notebook_badges.py --check   # exit 1 and list what is out of step
    python tools/notebook_badges.py --fix     # rewrite badges and install lines, strip outputs

Every notebook in ``notebooks/`` starts with a markdown cell holding the badge
``[![Open In Colab](…colab-badge.svg)](https://colab.research.google.com/github/
<owner>/<repo>/blob/main/notebooks/<name>.ipynb)``, and its first code cell
installs ``keras-lstm-gates @ git+<repository URL>`` inside Colab only.
"""

import argparse
import pathlib
import re
import sys

import nbformat

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
INSTALL = re.compile(r'"keras-lstm-gates @ git\+[^"]*"')


def repository_url(pyproject=ROOT / "pyproject.toml"):
    """The ``Repository`` URL of ``[project.urls]``, without a trailing slash."""
    with open(pyproject, "rb") as f:
        urls = tomllib.load(f)["project"].get("urls", {})
    url = urls.get("Repository", "").rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(
            f"{pyproject}: expected [project.urls] Repository = "
            f"'https://github.com/<owner>/<repo>', received {url!r}."
        )
    return url.removesuffix(".git")


def colab_url(repo_url, notebook_name, branch="main"):
    """The Colab link that opens ``notebooks/<notebook_name>`` of ``repo_url``.

    >>> colab_url("https://github.com/me/proj", "01_quickstart.ipynb")
    'https://colab.research.google.com/github/me/proj/blob/main/notebooks/01_quickstart.ipynb'
    """
    owner_repo = repo_url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/notebooks/{notebook_name}"


def badge_markdown(repo_url, notebook_name):
    """The badge cell's markdown."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(repo_url, notebook_name)})"


def install_spec(repo_url):
    """The quoted pip requirement the first code cell installs in Colab.

    >>> install_spec("https://github.com/me/proj")
    '"keras-lstm-gates @ git+https://github.com/me/proj"'
    """
    return f'"keras-lstm-gates @ git+{repo_url}"'


def problems(path, repo_url):
    """What is out of step in one notebook, as a list of sentences."""
    nb = nbformat.read(path, as_version=4)
    found = []
    first = nb.cells[0] if nb.cells else None
    if (
        first is None
        or first.cell_type != "markdown"
        or first.source != badge_markdown(repo_url, path.name)
    ):
        found.append(f"first cell is not the badge {badge_markdown(repo_url, path.name)}")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or install_spec(repo_url) not in code[0].source:
        found.append(f"first code cell does not install {install_spec(repo_url)}")
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            found.append(f"cell {k} has outputs or an execution count")
    return found


def fix(path, repo_url):
    """Rewrite the badge and install line, strip outputs; True if the file changed."""
    before = path.read_text()
    nb = nbformat.read(path, as_version=4)
    badge = badge_markdown(repo_url, path.name)
    first = nb.cells[0] if nb.cells else None
    if first is not None and first.cell_type == "markdown" and "colab-badge.svg" in first.source:
        first.source = badge
    else:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(badge))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.source = INSTALL.sub(install_spec(repo_url), cell.source)
    nbformat.write(nb, path)
    return path.read_text() != before


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="report notebooks out of step")
    mode.add_argument("--fix", action="store_true", help="rewrite them in place")
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    args = parser.parse_args(argv)
    repo_url = repository_url()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    status = 0
    for path in paths:
        if args.fix:
            if fix(path, repo_url):
                print(f"fixed {path}")
        else:
            for problem in problems(path, repo_url):
                print(f"{path}: {problem}")
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
