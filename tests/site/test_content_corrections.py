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
import numpy as np
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


# -- issue 25: statements checked against computed values ------------------------------


def _paragraphs(page: str) -> list[str]:
    return [_plain(p) for p in (DOCS / page).read_text(encoding="utf-8").split("\n\n")]


def test_pages_quoting_the_worked_example_use_its_numbers():
    """A page that cites the worked example's input of -10 with a number states the z and
    the fraction kept that the example computes (their markers are checked by
    test_docs_numbers.py), not the sigmoid of -10."""
    quoted = 0
    for page in sitebuild.pages():
        name = sitebuild.page_id(page)
        if name == "explanations/forgetting-a-worked-example.md":
            continue
        for paragraph in _paragraphs(name):
            cites = "forgetting-a-worked-example.md" in paragraph and "-10" in paragraph
            if not (cites and ("[[" in paragraph or "%" in paragraph)):
                continue  # no number stated
            quoted += 1
            keys = {key for key, _ in sitebuild.NUMBER.findall(paragraph)}
            keys = {key.removesuffix(".again") for key in keys}
            assert {"worked.xm10.z", "worked.xm10.pct"} <= keys, (name, paragraph)
    assert quoted, "the sigmoid page should relate its table to the worked example"


_COUNT = {"two": 2, "three": 3, "four": 4}
_FRACTION = {"a half": 1 / 2, "a third": 1 / 3, "a quarter": 1 / 4}
_BOUND = re.compile(
    r"no (two|three|four) (?:units )?can (?:both|all) keep more than (a half|a third|a quarter)"
)
_EXAMPLE = re.compile(r"(two|three|four) units (?:can still keep )?\$(0\.\d+)\$ each")


def _softmax(z):
    return keras.ops.convert_to_numpy(keras.activations.softmax(np.asarray(z, "float32")))


def _bound_holds(k: int, bound: float, units: int = 8) -> bool:
    """Whether no k of ``units`` softmax values ever all exceed ``bound``: on
    random pre-activations, and on k equal ones far above the rest (which
    come as close to 1/k as float32 allows)."""
    rng = np.random.default_rng(0)
    z = rng.normal(scale=4.0, size=(5000, units))
    tight = np.full((1, units), -30.0)
    tight[0, :k] = 30.0
    values = _softmax(np.concatenate([z, tight]))
    kth_largest = np.sort(values, axis=1)[:, -k]
    return bool((kth_largest <= bound).all())


def test_bound_check_can_fail():
    assert _bound_holds(2, 1 / 2) and not _bound_holds(2, 1 / 3)


def test_softmax_bounds_on_the_page_are_right():
    text = _plain(_section("explanations/why-sigmoid-not-softmax.md", "What a gate needs"))
    claims = _BOUND.findall(text)
    assert claims, "the page should spell out what no k units can keep"
    for count, fraction in claims:
        k, bound = _COUNT[count], _FRACTION[fraction]
        assert _bound_holds(k, bound), f"'no {count} ... more than {fraction}' is false"
        # and the bound is the rule's 1/k, not a looser or a wrong one
        assert abs(bound - 1 / k) < 1e-12, (count, fraction)
    for count, value in _EXAMPLE.findall(text):
        k, v = _COUNT[count], float(value)
        rest = (1 - k * v) / (8 - k)
        z = np.log([v] * k + [rest] * (8 - k))
        shown = _softmax(z[None, :])[0, :k]
        np.testing.assert_allclose(shown, v, rtol=1e-5)
        assert 1 / (k + 1) < v < 1 / k, (count, value)  # above the next rule's bound


def test_worked_example_credits_its_stage_two_weights():
    stage_two = _plain(
        _section(
            "explanations/forgetting-a-worked-example.md", "Stage two: what is written instead"
        )
    )
    assert not re.search(r"\bchoos|\bchose", stage_two), "the weights are the source series'"
    assert "series' own" in stage_two, stage_two
    keys = {key for key, _ in sitebuild.NUMBER.findall(stage_two)}
    assert {"worked.cell.x1.zi", "worked.cell.x1.zc"} <= keys, keys
    references = _section("explanations/forgetting-a-worked-example.md", "References")
    assert "Part 5" in references and "Starmer" in references, references
