"""What a saved cell's weights belong to, checked when they are loaded.

A ``.keras`` file or ``.weights.h5`` file stores each gate's weights under
the gate's path.  Keras loads what the configured model asks for and does
not look at the rest, so a configuration edited to another variant (say
``"CIFG"`` on a vanilla model) would load and silently drop the saved forget
gate.  The cell therefore saves a small record of its parts (which gates,
and which weights each gate has) next to them, and checks it on load: a saved
weight that would find no place is an error.  Files without the record
(written by klg before it existed) load as before; for them, a saved gate
group that the configured cell has no gate for is an error (HDF5 stores).

The cell also recognises ``keras.layers.LSTM``'s fused arrays where its own
store would be (``layers/<lstm>/cell/vars/0..2``), so that
``model.load_weights`` takes a weights file saved from the same architecture
built with ``keras.layers.LSTM``.
"""

import json

import numpy as np
from keras.layers import Layer

from . import compat
from .parts import PARTS

# The record's key in the cell's variable store (beside Keras's "0", "1", ...).
RECORD_KEY = "klg_parts"
RECORD_FORMAT = 1


def weight_names(cell):
    """``{gate: [weight names]}`` of a built cell, in Keras's save order."""
    parts = {}
    for name, gate in cell.present_gates.items():
        parts[name] = [v.name for v in compat.own_variables(gate)]
    return parts


def record_of(cell):
    return {
        "format": RECORD_FORMAT,
        "variant": cell.spec.name,
        "peepholes": cell.spec.peepholes,
        "parts": weight_names(cell),
    }


def encode(record):
    """The record as a uint8 array, which every Keras weight store holds."""
    return np.frombuffer(json.dumps(record).encode("utf-8"), dtype="uint8")


def decode(array):
    return json.loads(bytes(np.asarray(array, dtype="uint8")).decode("utf-8"))


def _describe(record):
    parts = ", ".join(f"{g} ({', '.join(w)})" for g, w in record["parts"].items())
    return f"variant {record['variant']!r}, peepholes={record['peepholes']}: {parts}"


def check_record(cell, saved):
    """Raise a ``ValueError`` unless the saved parts are the cell's parts."""
    if not isinstance(saved, dict) or saved.get("format") != RECORD_FORMAT:
        raise ValueError(
            f"{cell.name}: the saved record of parts is not one this version of "
            f"keras_lstm_gates reads (expected format {RECORD_FORMAT}); received {saved!r}."
        )
    configured = record_of(cell)
    if saved["parts"] == configured["parts"]:
        return
    lost = []
    for gate, names in saved["parts"].items():
        have = configured["parts"].get(gate, [])
        lost += [f"{gate}/{n}" for n in names if n not in have]
    missing = []
    for gate, names in configured["parts"].items():
        had = saved["parts"].get(gate, [])
        missing += [f"{gate}/{n}" for n in names if n not in had]
    raise ValueError(
        f"{cell.name}: the saved weights belong to {_describe(saved)}; this cell is "
        f"configured as {_describe(configured)}. "
        + (f"Saved weights with no place here: {lost}. " if lost else "")
        + (f"Weights here with nothing saved: {missing}. " if missing else "")
        + "Load the file into a model configured as it was saved (its variant and "
        "peepholes), or rebuild the model from the file's own configuration."
    )


def load_keras_fused(cell, store, keys):
    """Load keras.layers.LSTM's fused arrays (store keys "0", "1"(, "2")) into
    the gates, or raise an error that names the ways that work."""
    from .interop import fused_layout_shapes, set_gates_from_fused

    arrays = [np.asarray(store[k]) for k in sorted(keys, key=int)]
    received = [tuple(a.shape) for a in arrays]
    if not cell.spec.is_vanilla:
        raise ValueError(
            f"{cell.name}: the file holds keras.layers.LSTM's fused weights "
            f"(shapes {received}) where this cell's weights would be, but variant "
            f"{cell.spec.name!r} (peepholes={cell.spec.peepholes}) does not have Keras's "
            "four gates and nothing else. Build this model with variant='vanilla' and "
            "peepholes=False to load the file, or load it into the keras.layers.LSTM model "
            "it was saved from and convert that with klg.convert(model) or "
            "klg.LSTM.from_keras(keras_layer)."
        )
    expected = fused_layout_shapes(cell)
    if received != expected:
        raise ValueError(
            f"{cell.name}: the file holds {len(arrays)} arrays with shapes {received} where "
            "this cell's weights would be; keras.layers.LSTM's fused layout for this cell is "
            f"{len(expected)} arrays with shapes {expected} (input_dim={cell.input_dim}, "
            f"units={cell.units}, use_bias={cell.use_bias}). Build the model with the "
            "architecture the file was saved from, or load it into a keras.layers.LSTM "
            "model and call klg_layer.set_weights(keras_layer.get_weights())."
        )
    set_gates_from_fused(cell, *arrays)
    # The gates' own groups are absent from such a file; they are loaded.
    for gate in cell.present_gates.values():
        gate._klg_loaded_from_fused = True


def saved_gate_groups(store):
    """The gates that have saved weights under the cell's group of an HDF5
    store (``None`` where the store is not one: a ``.npz`` store)."""
    group = compat.h5_group_of(store)
    if group is None:
        return None
    h5, path = group
    found = set()

    def visit(name, obj):
        parts = name.split("/")
        if len(parts) >= 2 and parts[-1] == "vars" and parts[-2] in PARTS and len(obj):
            found.add(parts[-2])

    h5[path].visititems(visit)
    return found


def check_saved_gates(cell, store):
    """For a file without the record: a saved gate the cell does not have
    would be dropped, so it is an error."""
    saved = saved_gate_groups(store)
    if not saved:
        return
    lost = sorted(saved - set(cell.present_gates), key=PARTS.index)
    if lost:
        raise ValueError(
            f"{cell.name}: the file holds weights of {lost}, which this cell "
            f"(variant {cell.spec.name!r}, peepholes={cell.spec.peepholes}; parts "
            f"{list(cell.present_gates)}) does not have: they would be dropped. Load the "
            "file into a model configured as it was saved, or rebuild the model from the "
            "file's own configuration."
        )


def load_cell_variables(cell, store):
    """``LSTMCell.load_own_variables``: check the record, or load Keras's
    fused arrays, or (a file from before the record) check that every saved
    gate has a place."""
    keys = [str(k) for k in store.keys()]
    own = compat.own_variables(cell)
    if RECORD_KEY in keys:
        check_record(cell, decode(store[RECORD_KEY]))
        keys.remove(RECORD_KEY)
    elif not keys:
        check_saved_gates(cell, store)
    elif not own and all(k.isdigit() for k in keys):
        load_keras_fused(cell, store, keys)
        return
    if keys or own:
        # The cell's own variables, if it has any, by Keras's rule (which
        # also refuses entries that are neither the record nor variables).
        Layer.load_own_variables(cell, {k: store[k] for k in keys})
