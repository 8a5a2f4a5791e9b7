"""A griffe extension (see mkdocstrings' ``extensions:`` in mkdocs.yml) that
lets the package's docstrings read well on the API pages without changing
them.

The docstrings follow the Google style with two habits that the Google parser
does not know:

* bare doctests (``>>>`` lines and their output, outside an ``Examples:``
  section) -- Markdown would read ``>>>`` as nested quotes and ``[0.5, 0.5]``
  as a link, so each doctest block becomes a fenced ``pycon`` code block;
* reST's ``::`` before a literal block;
* one ``Args:`` entry naming several parameters over several lines
  (``units, activation,`` / ``use_bias: as in Keras``) -- the lines of names
  are joined into one entry.

It also shows the signatures that ``keras_lstm_gates.options.takes`` builds
from the declared arguments (the source reads ``__init__(self, given,
**kwargs)``): a class whose ``__init__`` carries a ``__signature__`` gets the
parameters of that signature, read from the imported class.
"""

from __future__ import annotations

import importlib
import inspect
import re

from griffe import Extension, Function, Parameter, ParameterKind, Parameters

_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Attributes):\s*$")
_NAMES_ONLY = re.compile(r"^\s*[A-Za-z_][\w]*(\s*,\s*[A-Za-z_][\w]*)*\s*,\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def join_grouped_names(text: str) -> str:
    """Join ``a, b,`` / ``c: text`` entries of Args-like sections into one line.

    >>> join_grouped_names("Args:\\n    a, b,\\n    c: the three.\\n")
    'Args:\\n    a, b, c: the three.\\n'
    """
    lines = text.split("\n")
    out: list[str] = []
    section_indent = None
    k = 0
    while k < len(lines):
        line = lines[k]
        match = _SECTION.match(line)
        if match:
            section_indent = len(match.group(1))
            out.append(line)
            k += 1
            continue
        if section_indent is not None and line.strip() and _indent(line) <= section_indent:
            section_indent = None
        if section_indent is not None and _NAMES_ONLY.match(line):
            merged = line.rstrip()
            item_indent = _indent(line)
            k += 1
            while k < len(lines) and _indent(lines[k]) == item_indent and lines[k].strip():
                merged += " " + lines[k].strip()
                k += 1
                if ":" in merged:
                    break
            out.append(merged)
            continue
        out.append(line)
        k += 1
    return "\n".join(out)


def drop_literal_markers(text: str) -> str:
    r"""End a paragraph with ``:`` where reST would write ``::`` (a literal
    block follows; Markdown shows the indented block as code anyway).

    >>> drop_literal_markers("For every step::\n\n    h = o * tanh(c)")
    'For every step:\n\n    h = o * tanh(c)'
    """
    return re.sub(r"\s*::$", ":", text, flags=re.M)


def fence_doctests(text: str) -> str:
    r"""Wrap each bare doctest block in a fenced ``pycon`` block.

    >>> fence_doctests("Text.\n\n" + ">" * 3 + " 1 + 1\n2\n").split("\n")
    ['Text.', '', '```pycon', '>>> 1 + 1', '2', '```', '']
    """
    lines = text.split("\n")
    out: list[str] = []
    k = 0
    in_fence = False
    while k < len(lines):
        line = lines[k]
        stripped = line.lstrip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if not in_fence and stripped.startswith(">>>"):
            pad = " " * _indent(line)
            out.append(pad + "```pycon")
            while k < len(lines) and lines[k].strip():
                out.append(lines[k])
                k += 1
            out.append(pad + "```")
            continue
        out.append(line)
        k += 1
    return "\n".join(out)


_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: ParameterKind.positional_only,
    inspect.Parameter.POSITIONAL_OR_KEYWORD: ParameterKind.positional_or_keyword,
    inspect.Parameter.VAR_POSITIONAL: ParameterKind.var_positional,
    inspect.Parameter.KEYWORD_ONLY: ParameterKind.keyword_only,
    inspect.Parameter.VAR_KEYWORD: ParameterKind.var_keyword,
}


def declared_parameters(module: str, name: str) -> Parameters | None:
    """The parameters of ``module.name``'s ``__init__.__signature__`` (set by
    ``options.takes``), or ``None`` when it has none."""
    try:
        runtime = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    signature = getattr(getattr(runtime, "__init__", None), "__signature__", None)
    if signature is None:
        return None
    return Parameters(
        *(
            Parameter(
                p.name,
                kind=_KINDS[p.kind],
                default=None if p.default is inspect.Parameter.empty else repr(p.default),
            )
            for p in signature.parameters.values()
        )
    )


class DocstringHabits(Extension):
    """Rewrite each docstring with :func:`join_grouped_names`,
    :func:`drop_literal_markers` and :func:`fence_doctests` before it is
    parsed."""

    def on_object(self, *, obj, **kwargs) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is None or not docstring.value:
            return
        value = drop_literal_markers(join_grouped_names(docstring.value))
        if "Examples:" not in value:  # the Google parser reads those itself
            value = fence_doctests(value)
        docstring.value = value

    def on_class_members(self, *, cls, **kwargs) -> None:
        parameters = declared_parameters(cls.module.path, cls.name)
        if parameters is None:
            return
        init = cls.members.get("__init__")
        if isinstance(init, Function):
            init.parameters = parameters
        else:
            cls.set_member(
                "__init__", Function("__init__", parameters=parameters, lineno=cls.lineno)
            )
