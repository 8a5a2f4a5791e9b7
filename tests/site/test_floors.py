"""What pyproject.toml declares is tested: the lowest version of the package's
dependencies, backend extras and the plot and tensorboard extras is the one
tools/requirements-floor.txt installs, and .ci/run runs the tests there
(``bash tasks.sh floor``).  The export extra is not among them: TensorFlow
2.16's TFLite converter aborts on Keras 3's LSTM (keras.layers.LSTM's too),
which the Export page says."""

import pathlib
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The floor file installs TensorFlow's CPU build, the same release.
SAME_PROJECT = {"tensorflow": "tensorflow-cpu"}


def declared_floors():
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    requirements = list(project["dependencies"])
    extras = project["optional-dependencies"]
    for extra in ("tensorflow", "jax", "torch", "plot", "tensorboard"):
        requirements += extras[extra]
    requirements += [r for r in extras["test"] if r.startswith("pytest>")]
    floors = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)", requirement)
        assert match, f"{requirement!r} declares no lower bound (or more than one)"
        floors[match.group(1).lower()] = match.group(2)
    return floors


def pinned():
    pins = {}
    for line in (ROOT / "tools" / "requirements-floor.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def release(version):
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def test_every_declared_floor_is_pinned_in_the_floor_environment():
    floors, pins = declared_floors(), pinned()
    for name, floor in floors.items():
        pin = pins.get(SAME_PROJECT.get(name, name))
        assert pin is not None, f"{name}>={floor} is declared but not installed at its floor"
        assert release(pin) == release(floor), f"{name}: declared >={floor}, floor run pins {pin}"


def test_ci_runs_the_floor_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash tasks.sh test" in ci and "bash tasks.sh floor" in ci
    assert "run_floor_tests.sh" in (ROOT / "tasks.sh").read_text()
