"""The four parts of an LSTM cell: their names, their one order, and the
fused weights of other libraries, which are derived from that order.

Every module of the package names a part by one of :data:`PARTS` and
lists parts in that order: input gate ``i``, forget gate ``f``, candidate
memory ``C~`` and output gate ``o``.  It is the order of
``keras.layers.LSTM``'s fused weights (``i, f, c, o``) and of PyTorch's
``nn.LSTM`` rows (``i, f, g, o``, where ``g`` is the candidate), so
:func:`join` and :func:`split` serve both.

>>> PARTS
('input_gate', 'forget_gate', 'candidate', 'output_gate')
>>> import numpy as np
>>> fused = join([np.full((2, 3), k) for k in range(4)])
>>> fused.shape, split(fused, 3)["forget_gate"][0].tolist()
((2, 12), [1, 1, 1])
"""

import numpy as np

#: The parts, in the order of every fused layout.
PARTS = ("input_gate", "forget_gate", "candidate", "output_gate")
#: The parts that are gates: their activation maps into [0, 1].
GATES = ("input_gate", "forget_gate", "output_gate")
#: What ``return_gates`` and :func:`keras_lstm_gates.trace` record at every step.
TRACED = (*PARTS, "cell_state")
#: Each part's letter in the equations (Olah's notation; PyTorch writes ``g``
#: for the candidate).
SYMBOLS = {"input_gate": "i", "forget_gate": "f", "candidate": "C~", "output_gate": "o"}


def check_part(name, where="parts"):
    """``name`` if it is one of :data:`PARTS`, else a ``ValueError``."""
    if name not in PARTS:
        raise ValueError(f"{where}: unknown part {name!r}; expected one of {PARTS}.")
    return name


def join(arrays, axis=-1):
    """Arrays of the parts, in :data:`PARTS` order (the parts a variant
    has), side by side along ``axis``: the fused layout.  Numpy arrays give a
    numpy array, tensors a tensor of the running backend."""
    arrays = list(arrays)
    if len(arrays) == 1:
        return arrays[0]
    if all(isinstance(a, np.ndarray) for a in arrays):
        return np.concatenate(arrays, axis=axis)
    from keras import ops

    return ops.concatenate(arrays, axis=axis)


def split(fused, units, names=PARTS, axis=-1):
    """The inverse of :func:`join`: ``{part: block}`` of a fused array whose
    ``axis`` holds ``len(names)`` blocks of ``units``, in that order."""
    if fused.shape[axis] is not None and fused.shape[axis] != len(names) * units:
        raise ValueError(
            f"Expected {len(names)} blocks of {units} along axis {axis} "
            f"({len(names) * units} in all) for {list(names)}, received shape "
            f"{tuple(fused.shape)}."
        )
    if len(names) == 1:
        return {names[0]: fused}
    if axis == -1:
        return {name: fused[..., k * units : (k + 1) * units] for k, name in enumerate(names)}
    index = [slice(None)] * len(fused.shape)
    blocks = {}
    for k, name in enumerate(names):
        index[axis] = slice(k * units, (k + 1) * units)
        blocks[name] = fused[tuple(index)]
    return blocks
