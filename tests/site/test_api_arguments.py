"""The API pages describe every constructor argument, with its default.

The arguments are read from the code (``inspect.signature`` of
``klg.LSTM.__init__``, ``klg.LSTMCell.__init__`` and of every ``klg.Gate``
class the package exports), so an argument added later fails this test
until the page describes it.  A class's section is the heading of an API
page that names it (``klg.LSTM``); an argument's entry is a definition-list
item (a line `` `name` `` and its ``:   `` definition, which says
``default `value` `` or ``required``) or a table row (`` `name` ``, type,
default, effect; after a first "Class" cell where a table covers several
classes).  The cuDNN section lists the conditions the code enforces.
"""

from __future__ import annotations

import inspect
import re

import pytest
import sitebuild

import keras_lstm_gates as klg

API = sitebuild.DOCS / "api"
GATE_CLASSES = [
    getattr(klg, name)
    for name in klg.__all__
    if inspect.isclass(getattr(klg, name)) and issubclass(getattr(klg, name), klg.Gate)
]
CLASSES = [klg.LSTM, klg.LSTMCell, *GATE_CLASSES]


def _shown(default) -> str:
    return f'"{default}"' if isinstance(default, str) else repr(default)


def arguments(cls) -> list[tuple[str, str]]:
    """``(name, default as the page writes it)``; ``required`` when none."""
    found = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        found.append((p.name, "required" if p.default is p.empty else f"`{_shown(p.default)}`"))
    return found


def section(cls) -> tuple[str, str]:
    """The page and the text under the heading that names ``cls``."""
    mark = f"`klg.{cls.__name__}`"
    for page in sorted(API.glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for k, line in enumerate(lines):
            heading = re.match(r"(#+) ", line)
            if heading and mark in line:
                level = len(heading.group(1))
                end = next(
                    (
                        j
                        for j in range(k + 1, len(lines))
                        if re.match(rf"#{{1,{level}}} ", lines[j])
                    ),
                    len(lines),
                )
                return page.name, "\n".join(lines[k:end])
    return "", ""


def inherited(cls, text: str) -> set[str]:
    """The arguments a part class takes from its base unchanged (same name and
    default), where its section says that every other argument is the
    base's (``Every other argument is `Gate`'s``): the base's own section
    describes those, and its own test checks it."""
    base = cls.__mro__[1]
    said = re.search(rf"every other argument is\s+`{base.__name__}`.s", text, re.I)
    if not issubclass(cls, klg.Gate) or cls is klg.Gate or not said:
        return set()
    return set(arguments(cls)) & set(arguments(base))


def entry_problems(cls, text: str) -> list[str]:
    problems = []
    from_base = {name for name, _ in inherited(cls, text)}
    for name, default in arguments(cls):
        if name in from_base:
            continue
        term = re.search(rf"^`{name}`\n((?::   |    ).*\n?)+", text, re.M)
        rows = [
            [c.strip() for c in row.strip().strip("|").split("|")]
            for row in re.findall(rf"^\|(?:[^|\n]*\|)?\s*`{name}`\s*\|.*$", text, re.M)
        ]
        rows = [r for r in rows if r[0] in (f"`{name}`", f"`klg.{cls.__name__}`")]
        if term:
            body = term.group(0)
            ok = "required" in body if default == "required" else f"default {default}" in body
            if not ok:
                problems.append(f"{name}: the entry does not say {default}")
        elif rows:
            cells = rows[0] if rows[0][0] == f"`{name}`" else rows[0][1:]
            if len(cells) < 4 or cells[2] != default or not cells[3]:
                problems.append(f"{name}: the row should read `{name}` | type | {default} | effect")
        else:
            problems.append(f"{name}: not described")
    return problems


def test_entry_check_can_fail():
    rest = "Every other argument is `Gate`'s.\n\n"
    text = rest + '`units`\n:   *int*, required. H.\n\n`activation`\n:   *str*, default `"relu"`.\n'
    problems = entry_problems(klg.SigmoidGate, text)
    assert problems == ['activation: the entry does not say `"sigmoid"`'], problems
    table = '| `units` | int | required | H. |\n| `activation` | str | `"sigmoid"` | checked |'
    assert entry_problems(klg.SigmoidGate, rest + table) == []
    assert entry_problems(klg.SigmoidGate, rest + "| `units` | int | required | H. |") == [
        "activation: not described"
    ]
    # Without the sentence that sends the reader to Gate's section, Gate's
    # arguments are missing here.
    assert "use_bias: not described" in entry_problems(klg.SigmoidGate, table)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_argument_is_described(cls):
    page, text = section(cls)
    assert text, f"no heading of docs/api/*.md names `klg.{cls.__name__}`"
    problems = entry_problems(cls, text)
    assert not problems, f"{page}, klg.{cls.__name__}:\n  " + "\n  ".join(problems)


# Configurations that each break one condition of the cuDNN path, with the
# argument the page's list must name for it.
BREAKS = [
    ({"variant": "CIFG"}, "variant"),
    ({"peepholes": True}, "peepholes"),
    ({"activation": "relu"}, "activation"),
    ({"recurrent_activation": "hard_sigmoid"}, "recurrent_activation"),
    ({"recurrent_dropout": 0.1}, "recurrent_dropout"),
    ({"implementation": 1, "dropout": 0.1}, "implementation"),
    ({"use_bias": False}, "use_bias"),
    ({"unroll": True}, "unroll"),
    ({"return_gates": True}, "return_gates"),
]


def _cudnn_section() -> str:
    text = (API / "layer.md").read_text(encoding="utf-8")
    return text.split("{#cudnn}", 1)[1].split("\n## ", 1)[0]


def test_cudnn_conditions_are_listed():
    assert klg.LSTM(4).cudnn_unsupported_reason() is None
    listed = _cudnn_section()
    numbered = re.split(r"^\s*\d+\. ", listed, flags=re.M)[1:]  # items, with their lines
    for kwargs, argument in BREAKS:
        assert klg.LSTM(4, **kwargs).cudnn_unsupported_reason() is not None, kwargs
        assert any(f"`{argument}" in item for item in numbered), f"no condition names {argument}"
    for backend in ("TensorFlow", "JAX", "PyTorch"):
        part = listed.split(f"**{backend}**", 1)
        assert len(part) == 2, f"no list for {backend}"
        assert re.match(r"\s*\n\s*1\. ", part[1]), f"{backend}: no numbered list"
