"""Finding layers in a model: every layer under a root, with its path.

One walk serves the package: :func:`keras_lstm_gates.trace` and
:class:`keras_lstm_gates.GateMonitor` (which LSTMs to record),
:func:`keras_lstm_gates.convert` (which LSTMs to replace, and what a
subclassed model holds) and the device check.  It goes into nested models,
``Bidirectional`` (both directions), ``TimeDistributed`` and the layers a
custom layer holds, but not into an LSTM (its cell and gates are its own).
"""

import keras

from . import compat


def children(layer):
    """The layers ``layer`` holds, one level down."""
    from .layer import LSTM

    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    if isinstance(layer, (keras.layers.LSTM, LSTM)):
        return []
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    if isinstance(layer, keras.layers.TimeDistributed):
        return [layer.layer]
    return compat.direct_sublayers(layer)


def layer_paths(root):
    """``{id(layer): (layer, path)}`` for every layer under ``root``.

    Paths leave a model's own name out (``"lstm"``, ``"encoder/lstm"``,
    ``"bidirectional/forward_lstm"``); a layer that is not a model keeps
    its own name first.  A layer reached twice keeps its first path.
    """
    found = {}

    def visit(layer, path):
        if id(layer) in found:
            return
        found[id(layer)] = (layer, path)
        for child in children(layer):
            visit(child, f"{path}/{child.name}" if path else child.name)

    if isinstance(root, keras.Model):
        found[id(root)] = (root, "")
        for child in children(root):
            visit(child, child.name)
    else:
        visit(root, root.name)
    return found


def find(root, predicate):
    """The paths of the layers under ``root`` (itself included) that match
    ``predicate``, parents first, each starting with ``root``'s name."""
    found = []
    for layer, path in layer_paths(root).values():
        if predicate(layer):
            if isinstance(root, keras.Model):
                path = f"{root.name}/{path}" if path else root.name
            found.append(path)
    return found
