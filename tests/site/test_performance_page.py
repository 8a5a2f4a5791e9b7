"""The Performance page shows the benchmark's committed results, unedited.

``docs/assets/performance/`` holds what ``benchmarks/run.py`` wrote
(results.json, results.md, performance.png); the page includes results.md.
These tests check that the tables are what the script renders from the JSON
(so nobody hand-edits a number), that the run is a real one (both Keras
backends, at least 7 rounds, not the CI-sized grid) and that the built page
carries the tables and the plot.  They never judge the timings themselves.
"""

import importlib.util
import json
import re

import pytest
import sitebuild

ROOT = sitebuild.ROOT
RESULTS = ROOT / "docs" / "assets" / "performance"
PAGE = ROOT / "docs" / "performance.md"


def _benchmark_module(name):
    """The script ``benchmarks/<name>.py``, imported as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report():
    return json.loads((RESULTS / "results.json").read_text(encoding="utf-8"))


def test_results_come_from_a_real_run():
    data = report()
    assert data["grid"] != "quick", "the committed results are the CI-sized grid"
    assert data["repeats"] >= 7
    assert set(data["summary"]) >= {"tensorflow", "jax"}
    shapes = {(r["B"], r["T"], r["D"], r["H"]) for r in data["summary"]["tensorflow"]}
    assert (64, 100, 32, 128) in shapes
    for rows in data["summary"].values():
        for r in rows:
            # Same weights, same outputs: a benchmark of equal computations.
            assert r["parity"] < 1e-5, r


def test_tables_are_what_the_script_renders():
    expected = _benchmark_module("run").markdown(report()) + "\n"
    assert (RESULTS / "results.md").read_text(encoding="utf-8") == expected


def test_plot_is_a_png():
    data = (RESULTS / "performance.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_includes_the_tables_and_plot():
    text = PAGE.read_text(encoding="utf-8")
    assert '--8<-- "assets/performance/results.md"' in text
    assert "assets/performance/performance.png" in text
    assert "bash tasks.sh bench" in text


def test_built_page_shows_them():
    code, output, site = sitebuild.build_site()
    assert code == 0, output[-3000:]
    html = (site / "performance" / "index.html").read_text(encoding="utf-8")
    assert "keras.layers.LSTM" in html and "klg / keras" in html
    assert "--8&lt;--" not in html and "--8<--" not in html
    assert re.search(r'<img[^>]+src="[^"]*assets/performance/performance\.png"', html)
    assert (site / "assets" / "performance" / "performance.png").is_file()
    machine = report()["environment"]
    assert f"{machine['cpu_count']} CPU cores" in html


def test_readme_quotes_the_committed_ranges():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme = " ".join(readme.split())
    summary = report()["summary"]

    def span(backend, key):
        values = [r[key] for r in summary[backend]]
        return f"{min(values):.2f} to {max(values):.2f}"

    expected = (
        f"a training step took {span('tensorflow', 'train_vs_keras')} of "
        f"`keras.layers.LSTM`'s time on TensorFlow and {span('jax', 'train_vs_keras')} on JAX; "
        f"the forward pass took {span('tensorflow', 'fwd_vs_keras')} on TensorFlow and "
        f"{span('jax', 'fwd_vs_keras')} on JAX"
    )
    assert expected in readme


def test_process_memory_table_is_what_the_script_renders():
    module = _benchmark_module("process_memory")
    data = json.loads((RESULTS / "process_memory.json").read_text(encoding="utf-8"))
    assert (RESULTS / "process_memory.md").read_text(encoding="utf-8") == module.markdown(data)
    assert {row["shape"]["T"] for row in data["rows"]} == {5000, 20000}
    text = PAGE.read_text(encoding="utf-8")
    assert '--8<-- "assets/performance/process_memory.md"' in text


# -- the page for readers ----------------------------------------------------------------

ANCHORS = {  # row of the page's tables -> the benchmark's ratio keys
    "`keras.layers.LSTM`": ("fwd_vs_keras", "train_vs_keras"),
    "`keras.layers.RNN(LSTMCell)`": ("fwd_vs_cell", "train_vs_cell"),
    "`torch.nn.LSTM`": ("fwd_vs_torch", "train_vs_torch"),
}
BACKENDS = {"tensorflow": "TensorFlow backend", "jax": "JAX backend"}


def _section(text: str, heading: str) -> str:
    return text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def _range(rows, key) -> str:
    values = [r[key] for r in rows]
    faster = sum(v < 1 for v in values)
    return f"{min(values):.2f} to {max(values):.2f}, faster at {faster} of {len(values)}"


def test_page_opens_with_one_table_per_backend():
    text = PAGE.read_text(encoding="utf-8")
    short = _section(text, "## In short")
    data = report()
    env = data["environment"]
    assert f"{env['cpu_count']} CPU cores ({env['cpu_model']})" in short
    assert f"Keras\n{env['keras']}" in short or f"Keras {env['keras']}" in short
    for moment in data["measured_at"].values():
        assert moment.split()[0] in short, moment  # the date of every part of the run
    headings = re.findall(r"^### (.+)$", short, re.M)
    assert headings[: len(BACKENDS)] == list(BACKENDS.values()), headings
    for backend, heading in BACKENDS.items():
        part = short.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
        rows = data["summary"][backend]
        assert (
            f"{backend.replace('tensorflow', 'TensorFlow').replace('jax', 'JAX')} {env[backend]}"
            in part
        )
        table = [line for line in part.splitlines() if line.startswith("| `")][1:]  # no header
        assert [line.split("|")[1].strip() for line in table] == list(ANCHORS), table
        for line in table:
            cells = [c.strip() for c in line.strip("|").split("|")]
            forward, train = ANCHORS[cells[0]]
            assert cells[1:] == [_range(rows, forward), _range(rows, train)], (backend, cells)
        peak = [r["klg_peak_mb"] / r["keras_peak_mb"] for r in rows]
        below = sum(v < 1 for v in peak)
        memory = f"{min(peak):.2f} to {max(peak):.2f} of\n`keras.layers.LSTM`'s, below it at all"
        if below == len(peak):
            assert " ".join(memory.split()) in " ".join(part.split()), backend
        else:
            assert f"below it at {below} of {len(peak)}" in part, backend


def _prose(text: str) -> str:
    """The page without code blocks and code spans (command names stay out)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def test_page_speaks_to_readers():
    prose = _prose(PAGE.read_text(encoding="utf-8"))
    assert not re.search(r"\bissues?\b", prose, re.I), re.search(r".{60}\bissues?\b.{20}", prose)
    history = (
        r"went from|before these changes|in the run before|\bbecame\b|before this (?:rule|change)"
    )
    found = re.findall(rf".{{0,60}}(?:{history}).{{0,40}}", prose)
    assert not found, f"change history belongs in CHANGELOG.md: {found}"


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_anchor_tables_are_what_the_script_renders(backend):
    data = json.loads((RESULTS / f"anchors_{backend}.json").read_text(encoding="utf-8"))
    rendered = _benchmark_module("anchors").render(data)
    assert (RESULTS / f"anchors_{backend}.md").read_text(encoding="utf-8") == rendered


def test_torch_call_cost_table_is_what_the_script_renders():
    data = json.loads((RESULTS / "torch_call_cost.json").read_text(encoding="utf-8"))
    rendered = _benchmark_module("torch_call_cost").render(data)
    assert (RESULTS / "torch_call_cost.md").read_text(encoding="utf-8") == rendered


def test_readme_quotes_the_torch_anchors():
    data = json.loads((RESULTS / "anchors_torch.json").read_text(encoding="utf-8"))
    rows = [r[f"forward_{r['default_threads']}_threads"] for r in data["rows"]]
    over_keras = [r["klg"] / r["keras"] for r in rows]
    over_torch = [r["klg"] / r["torch.nn.LSTM"] for r in rows]
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert (
        f"{min(over_keras):.2f} to {max(over_keras):.2f} of `keras.layers.LSTM`'s forward time"
        in readme
    )
    assert f"{min(over_torch):.1f} to {max(over_torch):.1f}x `torch.nn.LSTM`'s" in readme
