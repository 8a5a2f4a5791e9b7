"""Each private framework API in keras_lstm_gates/compat.py still exists and
still means what the package relies on.  An upgrade that removes or changes
one fails here, by name, instead of changing what the package computes."""

import keras

from keras_lstm_gates import compat


def test_sublayers_walks_every_depth_once():
    inner = keras.layers.Dense(2, name="inner")

    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.first = inner
            self.pair = [keras.layers.Dense(3, name="a"), keras.layers.Dense(3, name="b")]
            self.again = inner  # held twice, listed once

    block = Block(name="block")
    names = [layer.name for layer in compat.sublayers(block)]
    assert names[0] == "block"
    assert sorted(names[1:]) == ["a", "b", "inner"]
