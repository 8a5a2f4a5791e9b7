"""Export to LSTMVis (Strobelt, Gehrmann, Pfister & Rush): the files its
README asks for, from a Keras model in one call.

LSTMVis reads a project folder holding

* an HDF5 file of states, one (tokens, units) table per state set;
* an HDF5 file with the word id of each token;
* a ``.dict`` file, one ``word id`` pair a line (split on white space, ids
  from 1);
* ``lstm.yml``, the configuration that names them.

:func:`export_lstmvis` writes all four.  Each LSTM layer ``k`` (1, 2, ... in
the order :func:`keras_lstm_gates.trace` lists them; a Bidirectional layer
gives two) gets its cell state as ``states{k}`` (type ``state``), its
output ``h`` as ``output{k}`` (type ``output``), and, as extra state sets,
its gates ``forget_gate{k}``, ``input_gate{k}``, ``output_gate{k}`` (in
[0, 1]: ``unsigned``, no ``tanh``) and ``candidate{k}`` (in [-1, 1]: no
``tanh``).  A batch becomes one long sequence, as LSTMVis wants it: the
unmasked steps of sample 0, then of sample 1, and so on (``sample`` and
``step`` in the word file say where each token came from).
"""

from pathlib import Path

import numpy as np

# (dataset prefix, explorer track, LSTMVis type, options written in lstm.yml)
STATE_SETS = (
    ("states", "c", "state", ""),
    ("output", "h", "output", ", transform: none"),
    ("forget_gate", "f", "state", ", unsigned: true, transform: none"),
    ("input_gate", "i", "state", ", unsigned: true, transform: none"),
    ("candidate", "g", "state", ", transform: none"),
    ("output_gate", "o", "state", ", unsigned: true, transform: none"),
)
# LSTMVis splits each dict line on white space: these stand in for it.
_VISIBLE = {" ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d"}


def dict_word(token):
    """A token as LSTMVis's dictionary can hold it: no white space, not empty.

    >>> dict_word("a b"), dict_word("\\n"), dict_word("")
    ('a\u2423b', '\u23ce', '<empty>')
    """
    if token == "":
        return "<empty>"
    return "".join(_VISIBLE.get(ch, "\u2423" if ch.isspace() else ch) for ch in token)


def _yaml_text(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_dict(path, words):
    with open(path, "w", encoding="utf-8") as f:
        for ident, word in enumerate(words, start=1):
            f.write(f"{word} {ident}\n")


def export_lstmvis(
    model,
    inputs,
    tokens,
    path,
    *,
    labels=None,
    mask=None,
    layers=None,
    name=None,
    description=None,
):
    """Write an LSTMVis project for ``model`` on ``inputs`` into the folder
    ``path``: ``states.h5``, ``words.h5``, ``words.dict`` and ``lstm.yml``
    (see the module's text for what each holds).

    ``tokens``, ``labels``, ``mask`` and ``layers`` are those of
    :func:`keras_lstm_gates.explore`.  A numeric label track becomes a
    ``scalar`` annotation of LSTMVis's match view, a categorical one a
    ``discrete`` annotation with its own ``.dict``.  Needs ``h5py``.

    Returns ``{"states", "words", "dict", "config"}``: the paths written.

    >>> import numpy as np, keras, keras_lstm_gates as klg, tempfile, h5py
    >>> model = keras.Sequential([keras.Input((5, 2)),
    ...                           klg.LSTM(3, return_sequences=True, name="lstm")])
    >>> x = np.zeros((1, 5, 2), "float32")
    >>> out = klg.export_lstmvis(model, x, "hello", tempfile.mkdtemp())
    >>> with h5py.File(out["states"]) as f:
    ...     sorted(f), f["forget_gate1"].shape
    (['candidate1', 'forget_gate1', 'input_gate1', 'output1', 'output_gate1', 'states1'], (5, 3))
    """
    try:
        import h5py
    except ImportError as error:  # pragma: no cover - h5py is in the test extras
        raise ImportError(
            "export_lstmvis writes HDF5 files and needs h5py: pip install h5py"
        ) from error
    from .explore import explore

    if tokens is None:
        raise ValueError(
            "export_lstmvis needs the tokens (LSTMVis shows words, not step numbers); "
            "received tokens=None."
        )
    explorer = explore(model, inputs, tokens, labels, mask=mask, layers=layers, connectivity=False)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "states": folder / "states.h5",
        "words": folder / "words.h5",
        "dict": folder / "words.dict",
        "config": folder / "lstm.yml",
    }
    vocabulary = {}
    ids = np.array(
        [vocabulary.setdefault(t, len(vocabulary) + 1) for t in explorer.tokens], np.int64
    )
    _write_dict(paths["dict"], [dict_word(t) for t in vocabulary])
    with h5py.File(paths["words"], "w") as f:
        f["word_ids"] = ids
        f["sample"] = explorer.sample.astype(np.int64)
        f["step"] = explorer.step.astype(np.int64)
    types = []
    with h5py.File(paths["states"], "w") as f:
        for k, layer in enumerate(explorer.layers, start=1):
            for prefix, track, kind, options in STATE_SETS:
                data = f.create_dataset(f"{prefix}{k}", data=explorer.values(track, layer))
                data.attrs["layer"] = layer
                data.attrs["track"] = prefix
                types.append(f"    {{type: {kind}, layer: {k}, path: {prefix}{k}{options}}}")
    meta = []
    files = [
        "  states: states.h5",
        "  words: words.h5",
        "  words_dict: words.dict",
    ]
    for label, (kind, values) in explorer.labels.items():
        stem = "label_" + "".join(ch if ch.isalnum() else "_" for ch in label)
        if kind == "numeric":
            with h5py.File(folder / f"{stem}.h5", "w") as f:
                f["values"] = values
            files.append(f"  {stem}: {stem}.h5")
            low, high = float(np.min(values)), float(np.max(values))
            meta.append(
                f"  {_yaml_text(label)}:\n    file: {stem}\n    path: values\n"
                f"    vis:\n      type: scalar\n      range: [{low!r}, {high!r}]"
            )
        else:
            categories = sorted(set(values))
            index = {c: k for k, c in enumerate(categories, start=1)}
            with h5py.File(folder / f"{stem}.h5", "w") as f:
                f["values"] = np.array([index[v] for v in values], np.int64)
            _write_dict(folder / f"{stem}.dict", [dict_word(c) for c in categories])
            files += [f"  {stem}: {stem}.h5", f"  {stem}_dict: {stem}.dict"]
            meta.append(
                f"  {_yaml_text(label)}:\n    file: {stem}\n    path: values\n"
                f"    dict: {stem}_dict\n    vis:\n      type: discrete\n      range: dict"
            )
    title = name or f"klg: {model.name}"
    about = description or (
        f"{len(explorer.tokens)} tokens; LSTM layers "
        + ", ".join(f"{k}: {layer}" for k, layer in enumerate(explorer.layers, start=1))
    )
    config = [
        f"name: {_yaml_text(title)}",
        f"description: {_yaml_text(about)}",
        "",
        "files:",
        *files,
        "",
        "word_sequence:",
        "  file: words",
        "  path: word_ids",
        "  dict_file: words_dict",
        "",
        "states:",
        "  file: states",
        "  types: [",
        ",\n".join(types),
        "  ]",
    ]
    if meta:
        config += ["", "meta:", *meta]
    paths["config"].write_text("\n".join(config) + "\n", encoding="utf-8")
    return paths
