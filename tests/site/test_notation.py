"""One notation for the weights on every page, tutorial and docstring.

The rule (docs/notation.md, "Which W is which"): $W_f$, $W_i$, $W_C$, $W_o$
mean only Olah's H x (H + D) matrix on [h_{t-1}, x_t]; the per-part arrays of
Keras and klg are written in d2l.ai's row-vector notation,
x_t W_{xf} + h_{t-1} W_{hf} + b_f, with W_{xf} the part's ``kernel`` and
W_{hf} its ``recurrent_kernel``.  No $U_f$ outside a quotation of a source.

``notation_problems(text, where, docstring=False)`` reads any text; the
tests below run it on every page of docs/ and every notebook, and on the
package's docstrings (plain text there: no TeX).
"""

from __future__ import annotations

import inspect
import json
import re

import pytest
import sitebuild

import keras_lstm_gates as klg

PART = r"[fiCcgo]"
OLAH_W = rf"W_(?:{PART}|\{{{PART}\}})(?![\w{{])"  # W_f or W_{f}, not W_{xf}
PREVIOUS_H = r"h_(?:\{t-1\}|\(t-1\)|t-1)"
GAP = r"(?:\s|\\[,;:! ]|\\cdot|[{}])*"
RULES = (
    (re.compile(rf"x_t{GAP}{OLAH_W}"), "x_t times Olah's W: write W_{xf} (the part's kernel)"),
    (re.compile(rf"{PREVIOUS_H}{GAP}{OLAH_W}"), "h_{t-1} times Olah's W: write W_{hf}"),
    (re.compile(rf"{PREVIOUS_H}{GAP}U_"), "U for the recurrent weights: write W_{hf}"),
    (
        re.compile(r"W_(?:g|\{g\})(?![\w{])|U_(?:g|\{g\})(?![\w{])"),
        "W_g: the candidate's are W_{xc}, W_{hc}",
    ),
)
U_LETTER = re.compile(rf"U_(?:{PART}|\{{{PART}\}}|\\bullet)(?![\w{{])")
# A table row whose first cell names Olah's W and whose next cell is a kernel.
TABLE_ROW = re.compile(rf"^\|[^|]*{OLAH_W}[^|]*\|[^|]*kernel", re.M)
TEX = re.compile(r"\\[a-zA-Z]+|_\{|\^\{|\$")


def _unwrap(text: str) -> str:
    """Drop the site's \\sym{id} link macros, keeping the symbol."""
    return re.sub(r"\\sym\{[^{}]*\}", "", text)


def notation_problems(text: str, where: str, docstring: bool = False) -> list[str]:
    """What breaks the site's weight notation in ``text``, as messages that
    name ``where``.  A paragraph that names a source (a quotation of its
    letters) may write U_f.  ``docstring=True`` also refuses TeX markup."""
    problems = []
    for paragraph in re.split(r"\n\s*\n", _unwrap(text)):
        flat = " ".join(paragraph.split())
        for pattern, why in RULES:
            for match in pattern.finditer(flat):
                problems.append(f"{where}: {match.group(0)!r}: {why}")
        if U_LETTER.search(flat) and not re.search(r"\bsource\b|source-\d", flat):
            problems.append(f"{where}: {U_LETTER.search(flat).group(0)!r}: write W_{{h.}}")
        for match in TABLE_ROW.finditer(paragraph):
            problems.append(f"{where}: Olah's W named for a kernel: {match.group(0)[:80]!r}")
        if docstring and TEX.search(flat):
            problems.append(f"{where}: TeX in a docstring: {TEX.search(flat).group(0)!r}")
    return problems


def test_notation_check_can_fail():
    quickstart = r"Its value is $f_t = \sigma(x_t W_f + h_{t-1} U_f + b_f)$."
    assert len(notation_problems(quickstart, "q")) == 3
    assert notation_problems(r"$\sym{x-t}{x_t}\,\sym{kernel}{W_f}$", "eq")
    assert notation_problems("| $W_i$, $W_f$ | `input_gate.kernel` | (D, H) |", "table")
    assert notation_problems(r"g_t = \tanh(x_t W_{xg} + h_{t-1} W_g)", "g")
    assert notation_problems("x_t W_xf + h_{t-1} W_hf + b_f", "doc", docstring=True)
    good = r"$f_t = \sigma(W_f \cdot [h_{t-1}, x_t] + b_f) = \sigma(x_t W_{xf} + h_{t-1} W_{hf} + b_f)$"
    assert notation_problems(good, "good") == []
    assert notation_problems("x_t W_xf + h_(t-1) W_hf + b_f", "doc", docstring=True) == []
    quote = "The article ([source 004](sources.md#source-004)) writes $U_f$ for the input."
    assert notation_problems(quote, "quote") == []


@pytest.mark.parametrize("page", sitebuild.pages(), ids=sitebuild.page_id)
def test_pages_follow_the_notation(page):
    problems = notation_problems(page.read_text(encoding="utf-8"), sitebuild.page_id(page))
    assert not problems, "\n".join(problems)


NOTEBOOKS = sorted((sitebuild.ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_follow_the_notation(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    problems = []
    for k, cell in enumerate(cells):
        problems += notation_problems("".join(cell["source"]), f"{notebook.name} cell {k}")
    assert not problems, "\n".join(problems)


def test_notation_page_states_the_rule():
    text = (sitebuild.DOCS / "notation.md").read_text(encoding="utf-8")
    rule = text.split("{#which-w-is-which}", 1)[1].split("\n## ", 1)[0]
    for needed in ("W_{xf}", "W_{hf}", "`forget_gate.kernel`", "`forget_gate.recurrent_kernel`"):
        assert needed in rule, needed
    assert "d2l.ai" in rule and "Dive into Deep Learning" in rule  # credited
    assert r"W_f = [\,W_{hf}^{\top} \mid W_{xf}^{\top}\,]" in rule


@pytest.mark.parametrize(
    "page, part",
    [("forget-gate", "f"), ("input-gate", "i"), ("candidate-memory", "c"), ("output-gate", "o")],
)
def test_keras_form_of_each_gate_uses_the_row_vector_names(page, part):
    text = (sitebuild.DOCS / "equations" / f"{page}.md").read_text(encoding="utf-8")
    equation = _unwrap(text.split("## Equation\n", 1)[1].split("\n## ", 1)[0])
    keras_form = equation.split("In Keras and klg", 1)[1].split("$$")[1]
    assert f"x_t}}\\,{{W_{{x{part}}}}}" in keras_form, keras_form
    assert f"{{W_{{h{part}}}}}" in keras_form, keras_form


def _docstrings():
    for name in klg.__all__:
        obj = getattr(klg, name)
        for label, target in [(name, obj)] + [
            (f"{name}.{m}", getattr(obj, m))
            for m in ("__init__", "call")
            if inspect.isclass(obj) and m in vars(obj)
        ]:
            doc = inspect.getdoc(target)
            if doc:
                yield f"klg.{label}", doc


def test_docstrings_follow_the_notation():
    problems = []
    for where, doc in _docstrings():
        problems += notation_problems(doc, where, docstring=True)
    assert not problems, "\n".join(problems)
