"""Every private Keras, TensorFlow and PyTorch API the package uses, in one place.

Each function here wraps one name that is not part of a framework's public
API (``keras.src``, ``tensorflow.python``, an underscored attribute, a
feature that older releases lack).  The rest of the package calls these
functions, never the private name itself, and
``tests/core/test_compat.py`` checks each of them against the installed
frameworks, so that an upgrade that removes one fails that test by name
instead of changing what the package computes.
"""


def sublayers(layer):
    """``layer`` and every layer it holds, at any depth (Keras's own
    traversal, ``Layer._flatten_layers``), each once, parents first."""
    return list(layer._flatten_layers(include_self=True, recursive=True))
