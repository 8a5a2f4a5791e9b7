"""Corrections to what the pages say, checked against klg and the sources.

* The forget- and input-gate pages say what the source claims (the sigmoid
  only) and what klg enforces: ``sigmoid``, ``hard_sigmoid`` and any
  element-wise function into [0, 1] are accepted, the rest refused. The
  activations the pages name are tried on klg here; the pages' snippets
  (run by test_docs_snippets.py) try them as well.
* A softmax forget gate shrinks the memory by a factor of H per step only in
  the mean over units: the page says so, and its snippet checks it.
* Source 002 writes the candidate memory as bar C, the site as tilde C: the
  notation page says so.
"""

from __future__ import annotations

import re

import keras
import pytest
import sitebuild

import keras_lstm_gates as klg

DOCS = sitebuild.DOCS
SEEDS = sitebuild.ROOT.parent / "shared" / "seeds"


def _section(page: str, heading: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _plain(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("page", ["equations/forget-gate.md", "equations/input-gate.md"])
def test_gate_pages_say_what_klg_enforces(page):
    derivation = _plain(_section(page, "Derivation"))
    assert (
        "source page" in derivation
        and "sigmoid only" in derivation
        or ("strictly sigmoid" in derivation)
    ), "the page should say what the source claims"
    for wrong in ("Nothing else is allowed", "refuses any other kind of activation"):
        assert wrong not in derivation, f"{page} still says: {wrong!r}"
    for accepted in ("`sigmoid`", "`hard_sigmoid`", "element by element"):
        assert accepted in derivation, f"{page}: the Derivation does not mention {accepted}"
    code = _section(page, "In the code")
    row = next(line for line in code.splitlines() if line.startswith("| $\\sym{sigmoid}"))
    assert "`hard_sigmoid`" in row and "[0, 1]" in row, row
    # What the page says, on klg itself.
    gate = klg.ForgetGate if "forget" in page else klg.InputGate
    for name in re.findall(r"accepts `(\w+)`, `(\w+)`", derivation)[0]:
        gate(2, activation=name)
    gate(2, activation=lambda z: 0.5 * (1.0 + keras.ops.tanh(z)))
    after = derivation.split("refuse", 1)[1].split(".")[0]
    refused = [name for name in re.findall(r"`(\w+)`", after) if name != "ValueError"]
    assert {"tanh", "relu"} <= set(refused), refused
    for name in refused:
        with pytest.raises(ValueError, match="gate activation must map every unit into"):
            gate(2, activation=name)


def test_source_000_does_say_strictly_sigmoid():
    source = SEEDS / "000_3db4313345af06f6.txt"
    if not source.is_file():
        pytest.skip(f"the source texts are not next to the repository ({SEEDS})")
    text = source.read_text(encoding="utf-8")
    assert "strictly sigmoid" in text and "No other activations can be used" in text


def test_softmax_factor_of_h_is_the_mean_retention():
    text = _plain(_section("explanations/why-sigmoid-not-softmax.md", "What a gate needs"))
    assert "shrink by a factor of $H$ per step on average" not in text
    assert "mean retention" in text and "$1/H$" in text
    assert "not about every unit" in text
    blocks = sitebuild.python_blocks(DOCS / "explanations" / "why-sigmoid-not-softmax.md")
    assert any("mean_retention" in block for block in blocks), "no snippet checks the claim"


def test_notation_says_source_002_writes_bar_c():
    text = (DOCS / "notation.md").read_text(encoding="utf-8")
    note = text.split('<a id="candidate-bar"></a>', 1)[1].split("\n## ", 1)[0]
    assert "\\bar{C}_t" in note and "\\tilde C_t" in note and "source-002" in note
    sources = (DOCS / "sources.md").read_text(encoding="utf-8")
    row = next(line for line in sources.splitlines() if 'id="source-002"' in line)
    assert "\\bar C_t" in row and "notation.md#candidate-bar" in row, row
    seed = SEEDS / "002_999e41fbc8146cc9.txt"
    if seed.is_file():
        assert "\\bar{C}_{t}" in seed.read_text(encoding="utf-8")
