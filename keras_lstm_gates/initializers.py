"""Initializers for gate weights.

:class:`FusedSlice` gives each gate the block it would get in a fused
``(…, 4 * units)`` Keras weight, so that fan-in/fan-out scaled initializers
(Glorot, orthogonal) draw from the same distribution as in
``keras.layers.LSTM``.  :class:`ChronoInitializer` is the chrono
initialisation of Tallec & Ollivier (2018).
"""

import numpy as np
from keras import backend, initializers, ops
from keras.initializers import Initializer
from keras.saving import register_keras_serializable

from .gates import PACKAGE


@register_keras_serializable(package=PACKAGE)
class FusedSlice(Initializer):
    """Block ``index`` of ``count`` along the last axis of ``initializer``'s draw
    over the fused shape ``shape[:-1] + (count * shape[-1],)``.

    With a seeded initializer the blocks are exactly the slices of the matrix a
    fused ``keras.layers.LSTM`` weight would get.

    ``draws``, a dict shared by the slices of one fused weight, keeps the
    first draw for the others: an initializer seeded with a
    ``keras.random.SeedGenerator`` (whose every call draws anew) is then
    called once per fused weight, as in ``keras.layers.LSTM``.  It is not
    part of the config; :class:`keras_lstm_gates.LSTMCell` empties it once
    built.

    >>> init = FusedSlice("glorot_uniform", index=1, count=4)
    >>> tuple(init((3, 2)).shape)
    (3, 2)
    """

    def __init__(self, initializer, index, count=4, draws=None):
        self.initializer = initializers.get(initializer)
        self.index = int(index)
        self.count = int(count)
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"FusedSlice: expected 0 <= index < count, received index={index!r}, "
                f"count={count!r}."
            )
        self.draws = draws

    def __call__(self, shape, dtype=None):
        width = shape[-1]
        full_shape = tuple(shape[:-1]) + (width * self.count,)
        key = (full_shape, str(dtype))
        if self.draws is not None and key in self.draws:
            full = self.draws[key]
        else:
            full = self.initializer(full_shape, dtype=dtype)
            if self.draws is not None and _is_concrete(full):
                self.draws[key] = full
        return full[..., self.index * width : (self.index + 1) * width]

    def get_config(self):
        return {
            "initializer": initializers.serialize(self.initializer),
            "index": self.index,
            "count": self.count,
        }


def _is_concrete(value):
    """Whether ``value`` holds numbers, not a symbol of a graph being traced.

    Keras initialises a variable lazily when it is created inside a traced
    function (a subclassed model's first symbolic call): a draw kept from
    there belongs to that graph and cannot be read outside it.  On PyTorch
    that call runs on the "meta" device, whose tensors have no numbers: a
    weight initialised from one would hold whatever memory it was given.
    """
    name = backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if name == "jax":
        import jax

        return not isinstance(value, jax.core.Tracer)
    return not getattr(value, "is_meta", False)


@register_keras_serializable(package=PACKAGE)
class ChronoInitializer(Initializer):
    """Chrono initialisation of the forget-gate bias (Tallec & Ollivier, 2018,
    "Can recurrent neural networks warp time?", ICLR).

    ``b_f = log(u)`` with ``u ~ Uniform[1, T_max - 1]``, so that the forget
    gate's characteristic memory time ``1 / (1 - f)`` spreads over
    ``[2, T_max]``.  Pass ``negate=True`` for the input gate, whose bias is
    ``b_i = -b_f``; :class:`keras_lstm_gates.LSTM` does this for you with
    ``chrono_t_max=...``.

    Args:
        t_max: the longest dependency expected, in timesteps (> 2).
        negate: return ``-log(u)`` instead (the input-gate bias).
        seed: seed of the uniform draw.  The forget and input gate of one
            layer share it, so that ``b_i = -b_f`` holds exactly.

    >>> import numpy as np
    >>> b = np.asarray(ChronoInitializer(100, seed=0)((1000,)))
    >>> bool(b.min() >= 0.0 and b.max() <= np.log(99.0) + 1e-6)
    True
    """

    def __init__(self, t_max, negate=False, seed=None):
        is_number = isinstance(t_max, (int, float, np.integer, np.floating))
        if isinstance(t_max, bool) or not (is_number and np.isfinite(t_max) and t_max > 2):
            raise ValueError(
                "ChronoInitializer: expected t_max to be a finite number > 2 (the longest "
                f"dependency, in timesteps), received t_max={t_max!r}."
            )
        self.t_max = float(t_max)
        self.negate = bool(negate)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        rng = np.random.default_rng(self.seed)
        values = np.log(rng.uniform(1.0, self.t_max - 1.0, size=shape))
        if self.negate:
            values = -values
        return ops.convert_to_tensor(values, dtype=dtype or "float32")

    def get_config(self):
        return {"t_max": self.t_max, "negate": self.negate, "seed": self.seed}
