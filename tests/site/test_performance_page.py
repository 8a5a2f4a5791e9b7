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

import sitebuild

ROOT = sitebuild.ROOT
RESULTS = ROOT / "docs" / "assets" / "performance"
PAGE = ROOT / "docs" / "performance.md"


def load_run_module():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
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
    expected = load_run_module().markdown(report()) + "\n"
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
    spec = importlib.util.spec_from_file_location(
        "process_memory", ROOT / "benchmarks" / "process_memory.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = json.loads((RESULTS / "process_memory.json").read_text(encoding="utf-8"))
    assert (RESULTS / "process_memory.md").read_text(encoding="utf-8") == module.markdown(data)
    assert {row["shape"]["T"] for row in data["rows"]} == {5000, 20000}
    text = PAGE.read_text(encoding="utf-8")
    assert '--8<-- "assets/performance/process_memory.md"' in text
