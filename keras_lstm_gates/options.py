"""Constructor arguments, declared once: default, check and config entry.

A class lists its arguments as :class:`Option` objects (the gates in
``gates.py``, the cell in ``cell.py``, the sequence layer in ``layer.py``),
and :func:`takes` turns that list into the class's ``__init__`` signature:
``inspect.signature(klg.LSTM)`` and ``help(klg.LSTM)`` show every argument
with its default.  The same list gives :func:`resolve` (each value checked
and converted, with an error that names the argument, what it expects and
what it received) and :func:`config_of` (the ``get_config`` entries), so
that no argument is written down twice.

>>> SEED = Option("seed", None, "an integer seed", kind="any")
>>> resolve([SEED], {"seed": 3}, "demo")
{'seed': 3}
>>> resolve([Option("rate", 0.0, "a rate", kind="fraction")], {"rate": 2.0}, "demo")
Traceback (most recent call last):
...
ValueError: demo: expected `rate` in [0, 1], received rate=2.0.
"""

import functools
import inspect

import numpy as np
from keras import activations, constraints, initializers, regularizers

# kind -> (get, serialize) for Keras's own objects.
_KERAS_OBJECTS = {
    "activation": (activations.get, activations.serialize),
    "initializer": (initializers.get, initializers.serialize),
    "regularizer": (regularizers.get, regularizers.serialize),
    "constraint": (constraints.get, constraints.serialize),
}


class Option:
    """One constructor argument.

    Args:
        name: the argument's name.
        default: its default value.
        doc: what it does, in a few words.
        kind: how a value is checked and stored: ``"activation"``,
            ``"initializer"``, ``"regularizer"``, ``"constraint"`` (a Keras
            object, stored resolved and serialised in the config),
            ``"bool"``, ``"fraction"`` (a float in [0, 1]), ``"units"`` (a
            positive integer), ``"int"``, ``"number"`` (a finite real or
            ``None``), ``"choice"`` (one of ``choices``) or ``"any"``.
        choices: the values a ``"choice"`` takes.
        check: optional ``check(value, owner)`` run after the kind's own
            check, returning the value to store.
        serialize: optional ``serialize(stored)`` for the config.
        attribute: the attribute that holds the value (the name by default).
    """

    def __init__(
        self,
        name,
        default,
        doc,
        kind="any",
        choices=(),
        check=None,
        serialize=None,
        attribute=None,
    ):
        self.name = name
        self.attribute = attribute or name
        self.default = default
        self.doc = doc
        self.kind = kind
        self.choices = tuple(choices)
        self.check = check
        self.serialize = serialize

    def resolve(self, value, owner):
        name = self.name
        if self.kind in _KERAS_OBJECTS:
            value = _KERAS_OBJECTS[self.kind][0](value)
        elif self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(
                    f"{owner}: expected `{name}` to be True or False, received {name}={value!r}."
                )
            value = bool(value)
        elif self.kind == "fraction":
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(
                    f"{owner}: expected `{name}` to be a number in [0, 1], received {name}={value!r}."
                )
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(
                    f"{owner}: expected `{name}` in [0, 1], received {name}={value!r}."
                )
            value = float(value)
        elif self.kind == "units":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(
                    f"{owner}: expected `{name}` to be a positive integer, received {name}={value!r}."
                )
            value = int(value)
        elif self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(
                    f"{owner}: expected `{name}` to be a non-negative integer, "
                    f"received {name}={value!r}."
                )
            value = int(value)
        elif self.kind == "number":
            if value is not None:
                is_number = isinstance(value, (int, float, np.integer, np.floating))
                if isinstance(value, bool) or not is_number or not np.isfinite(value):
                    raise ValueError(
                        f"{owner}: expected `{name}` to be a finite number or None, "
                        f"received {name}={value!r}."
                    )
                value = float(value)
        elif self.kind == "choice":
            # `is` for booleans: 1 == True would let 0 and 1 pass for False and True.
            if not any(value is c or (type(value) is type(c) and value == c) for c in self.choices):
                raise ValueError(
                    f"{owner}: expected `{name}` to be one of "
                    f"{', '.join(repr(c) for c in self.choices)}; received {name}={value!r}."
                )
        if self.check is not None:
            value = self.check(value, owner)
        return value

    def config_value(self, stored):
        if self.serialize is not None:
            return self.serialize(stored)
        if self.kind in _KERAS_OBJECTS:
            return _KERAS_OBJECTS[self.kind][1](stored)
        return stored


def signature(options, positional=("units",)):
    """The ``__init__`` signature: ``self``, the options in order (those in
    ``positional`` first, without default) and ``**kwargs`` for Keras's
    own layer arguments (``name``, ``dtype``, ``trainable``...)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("self", kind)]
    for option in options:
        default = inspect.Parameter.empty if option.name in positional else option.default
        params.append(inspect.Parameter(option.name, kind, default=default))
    params.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(params)


def takes(options, positional=("units",)):
    """Decorate ``__init__(self, given, **kwargs)`` so that it is called as
    ``Class(units, activation=..., ...)``: the arguments are bound to the
    signature of ``options`` (unknown names go on to Keras in ``kwargs``),
    defaults filled in, and ``given`` is ``{name: value}`` of every option,
    unchecked (see :func:`resolve`)."""
    declared = signature(options, positional)

    def decorate(init):
        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            bound = declared.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop("self")
            extra = arguments.pop("kwargs")
            return init(self, arguments, **extra)

        __init__.__signature__ = declared
        return __init__

    return decorate


def resolve(options, given, owner):
    """``{name: checked value}`` of ``given`` for every option (defaults for
    the missing ones); ``owner`` names the layer in errors."""
    return {o.name: o.resolve(given.get(o.name, o.default), owner) for o in options}


def assign(obj, options, given, owner):
    """Check ``given`` (see :func:`resolve`) and set each value on ``obj``."""
    by_name = {o.name: o for o in options}
    for name, value in resolve(options, given, owner).items():
        setattr(obj, by_name[name].attribute, value)


def config_of(obj, options):
    """The config entries of ``options``, read from ``obj``'s attributes."""
    return {o.name: o.config_value(getattr(obj, o.attribute)) for o in options}


def named(options, names):
    """The options among ``options`` whose names are in ``names``, in order."""
    by_name = {o.name: o for o in options}
    return [by_name[n] for n in names]
