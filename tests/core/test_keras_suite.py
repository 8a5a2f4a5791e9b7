"""Keras's own LSTM, Bidirectional and StackedRNNCells tests, run against klg.

At test time this module reads Keras's installed ``lstm_test.py``,
``bidirectional_test.py`` and ``stacked_rnn_cells_test.py``, applies the
rewrite rules below (and nothing else), writes the results into pytest's
temporary directory and runs them with pytest in a subprocess on the
current backend.  Each Keras test method becomes one test here, which
passes when every case Keras generates from it passes.  Keras's code is not
copied into this repository.

The rules, each a literal or a narrow pattern that must match exactly as
many times as stated (so that a change in Keras's files is noticed, never
silently skipped):

* ``layers.LSTM`` -> ``klg.LSTM`` and ``layers.LSTMCell`` -> ``klg.LSTMCell``
  where Keras's test builds one;
* expected trainable-weight counts of LSTMs: 3 per LSTM (Keras's fused
  kernel, recurrent kernel, bias) -> 12 (three per gate, four gates);
* nothing else: loss counts stay Keras's (the layer-level regularizers act on
  the fused matrices, one loss each, as in Keras).

Skipped, with the reason: tests of Keras-internal dispatch that only a
``keras.layers.LSTM`` can take (see ``SKIPS``).
"""

import ast
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import keras
import pytest

KERAS_RNN_TESTS = Path(keras.__file__).parent / "src" / "layers" / "rnn"
BACKEND = keras.backend.backend()

# (old, new, times): `old` is a literal, or a compiled regex for rules that
# must see their context to stay narrow.
RULES = {
    "lstm_test.py": [
        (
            "from keras.src import testing\n",
            "from keras.src import testing\n\nimport keras_lstm_gates as klg\n",
            1,
        ),
        ("layers.LSTM,", "klg.LSTM,", 3),  # run_layer_test(layers.LSTM, ...)
        ("layers.LSTM(", "klg.LSTM(", 12),
        # One LSTM: Keras's 3 fused weights are klg's 4 gates x 3.
        ("expected_num_trainable_weights=3,", "expected_num_trainable_weights=12,", 3),
    ],
    "bidirectional_test.py": [
        (
            "from keras.src import testing\n",
            "from keras.src import testing\n\nimport keras_lstm_gates as klg\n",
            1,
        ),
        ("layers.LSTM(", "klg.LSTM(", 12),
        ("[layers.GRU, layers.LSTM]", "[layers.GRU, klg.LSTM]", 1),
    ],
    "stacked_rnn_cells_test.py": [
        (
            "from keras.src import testing\n",
            "from keras.src import testing\n\nimport keras_lstm_gates as klg\n",
            1,
        ),
        ("layers.LSTMCell(", "klg.LSTMCell(", 6),
        # The stack of three LSTM cells: 3 x 3 fused weights -> 3 x 12.
        (
            re.compile(
                r"(klg\.LSTMCell\(5, dropout=0\.1, recurrent_dropout=0\.1\),\s*\],"
                r"(?:(?!run_layer_test).)*?expected_num_trainable_weights=)9,",
                re.DOTALL,
            ),
            r"\g<1>36,",
            1,
        ),
    ],
}

SKIPS = {
    (
        "bidirectional_test.py",
        "test_fused_lstm_eligibility",
    ): "Bidirectional's fused cuDNN dispatch takes only a keras.layers.LSTM "
    "(an isinstance check) and runs only on a GPU; klg.LSTM takes the "
    "two-layer path, each direction on cuDNN when a GPU allows",
}


def rewrite(name):
    """Keras's test file ``name`` with ``RULES[name]`` applied."""
    source = (KERAS_RNN_TESTS / name).read_text()
    for old, new, times in RULES[name]:
        if isinstance(old, re.Pattern):
            source, found = old.subn(new, source)
        else:
            found = source.count(old)
            source = source.replace(old, new)
        assert found == times, (
            f"{name}: rewrite rule {getattr(old, 'pattern', old)!r} matched {found} "
            f"times, expected {times}; Keras's test file changed, review the rules"
        )
    return source


def _test_methods(source):
    """``(class, method, uses_klg)`` of every test method."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name.startswith("test"):
                    uses = "klg." in ast.get_source_segment(source, item)
                    found.append((node.name, item.name, uses))
    return found


def _cases_of(results, cls, method, methods):
    """The results of the cases Keras generates from ``method``: the method
    itself, or ``method0``, ``method1``, ... / ``method_name`` from
    parameterized, but never another method's own name."""
    pattern = re.escape(method) + r"(\d+|_\w+)?"
    return [
        r
        for r in results
        if re.fullmatch(pattern, r[0]) and (r[0] == method or r[0] not in methods)
    ]


def _cases():
    cases = []
    for name in RULES:
        if not (KERAS_RNN_TESTS / name).exists():
            continue
        found = _test_methods(rewrite(name))
        for cls, method, uses_klg in found:
            if not uses_klg:  # a SimpleRNN or GRU test: not klg's
                continue
            marks = []
            reason = SKIPS.get((name, method))
            if reason:
                marks.append(pytest.mark.skip(reason=reason))
            methods = frozenset(m for c, m, _ in found if c == cls)
            cases.append(
                pytest.param(name, cls, method, methods, id=f"{name[:-3]}::{method}", marks=marks)
            )
    return cases


@pytest.fixture(scope="module")
def keras_suite_results(tmp_path_factory):
    """Run the rewritten files once; ``{(file, class): [(name, outcome, text)]}``."""
    folder = tmp_path_factory.mktemp("keras_suite")
    for name in RULES:
        (folder / name).write_text(rewrite(name))
    report = folder / "report.xml"
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    # Only the tests that use klg (a -k substring may take in a few more).
    wanted = sorted({c.values[2] for c in _cases()})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "-k",
            " or ".join(wanted),
            "--rootdir",
            str(folder),
            *RULES,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if not report.exists():
        pytest.fail(f"Keras's suite did not run:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        outcome, text = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
                text = (child.get("message") or "") + "\n" + (child.text or "")
        file_ = case.get("classname", "").split(".")[0] + ".py"
        cls = case.get("classname", "").split(".")[-1]
        results.setdefault((file_, cls), []).append((case.get("name"), outcome, text))
    return results


@pytest.mark.parametrize("name, cls, method, methods", _cases())
def test_keras_suite(keras_suite_results, name, cls, method, methods):
    cases = _cases_of(keras_suite_results.get((name, cls), []), cls, method, methods)
    assert cases, f"{name}::{cls}::{method} did not run"
    bad = [(n, o, t) for n, o, t in cases if o in ("failure", "error")]
    assert not bad, "\n\n".join(f"{n}: {o}\n{t[-3000:]}" for n, o, t in bad)
