"""The LSTM variants of Greff et al. (2017), as one option of the cell.

Each variant changes one thing about the vanilla LSTM:

========  ==============================================================
variant   change
========  ==============================================================
vanilla   none: i, f, o gates, tanh candidate, h = o * tanh(c)
NIG       no input gate: i = 1
NFG       no forget gate: f = 1
NOG       no output gate: o = 1
NIAF      no input activation: the candidate is linear
NOAF      no output activation: h = o * c
CIFG      coupled input and forget gate: f = 1 - i
FGR       full gate recurrence: every gate also reads the previous
          step's i, f, o
NP        no peepholes (the same as vanilla with ``peepholes=False``)
LN        layer normalisation (Ba, Kiros & Hinton 2016): each part's
          pre-activation, and the cell state before the output tanh,
          normalised over the units, with a learnable gain and bias
========  ==============================================================

LN is not one of Greff et al.'s variants; it changes each part the same
way, and each part does it itself (see :class:`keras_lstm_gates.Gate`).

Peepholes (``peepholes=True``) are a separate option, as in Greff et al.'s
vanilla LSTM: p_i and p_f read c_(t-1), p_o reads c_t (Gers & Schmidhuber
2000).  They belong to the gates that exist: NIG has p_f and p_o, NFG and CIFG
p_i and p_o (CIFG's f = 1 - i sees c_(t-1) through p_i), NOG p_i and p_f.
A removed gate has no sublayer and no weights; the step uses the constant 1
in its place (1 - i for CIFG's forget gate).

What a variant changes about each part is :meth:`VariantSpec.part_arguments`:
the cell passes it to the part's class, and the part's own math does the rest.
"""

from .parts import GATES, PARTS

VARIANTS = ("vanilla", "NIG", "NFG", "NOG", "NIAF", "NOAF", "CIFG", "FGR", "NP", "LN")


class VariantSpec:
    """What a variant keeps and what it removes.

    >>> spec = VariantSpec("CIFG")
    >>> spec.present_gates
    ('input_gate', 'candidate', 'output_gate')
    >>> spec.coupled
    True
    """

    def __init__(self, variant="vanilla", peepholes=False):
        variant = "vanilla" if variant is None else variant
        if variant not in VARIANTS:
            raise ValueError(
                f"Unknown LSTM variant: expected one of {VARIANTS}, received variant={variant!r}."
            )
        if variant == "NP" and peepholes:
            raise ValueError(
                "variant='NP' means no peepholes, but peepholes=True was given. "
                "Use variant='vanilla' with peepholes=True for peepholes."
            )
        self.name = variant
        self.peepholes = bool(peepholes)
        self.has_input_gate = variant != "NIG"
        self.has_forget_gate = variant not in ("NFG", "CIFG")
        self.has_output_gate = variant != "NOG"
        self.coupled = variant == "CIFG"
        self.candidate_linear = variant == "NIAF"
        self.output_linear = variant == "NOAF"
        self.full_gate_recurrence = variant == "FGR"
        self.layer_norm = variant == "LN"

    @property
    def present_gates(self):
        """The parts this variant has, in :data:`~keras_lstm_gates.parts.PARTS` order."""
        keep = {
            "input_gate": self.has_input_gate,
            "forget_gate": self.has_forget_gate,
            "candidate": True,
            "output_gate": self.has_output_gate,
        }
        return tuple(name for name in PARTS if keep[name])

    @property
    def constant_gates(self):
        """The gates the variant replaces by a constant (traced as ones);
        CIFG's forget gate is ``1 - i``, a value, not a constant."""
        removed = [g for g in GATES if g not in self.present_gates]
        return tuple(g for g in removed if not (self.coupled and g == "forget_gate"))

    @property
    def is_vanilla(self):
        """Whether the cell has the parts and weights of Keras's and
        PyTorch's LSTM: every gate, and no weight beyond theirs."""
        return self.name in ("vanilla", "NP") and not self.peepholes

    @property
    def carried_gate_units(self):
        """How many ``units``-wide gate values a step hands to the next one
        besides ``h`` and ``c``: FGR's ``[i, f, o]``."""
        return len(GATES) if self.full_gate_recurrence else 0

    def peephole_reads(self, gate):
        """Whether ``gate`` has a peephole weight in this configuration."""
        return self.peepholes and gate in self.present_gates and gate != "candidate"

    def part_arguments(self, name, units, gate_options=None):
        """The arguments the variant gives part ``name``'s class (beyond the
        cell's initializers and activations): its peephole, its reading of
        the previous gates, a linear candidate."""
        arguments = {"layer_norm": True} if self.layer_norm else {}
        if name == "candidate":
            if self.candidate_linear:
                if "activation" in (gate_options or {}):
                    raise ValueError("variant 'NIAF' fixes the candidate activation to linear.")
                arguments["activation"] = "linear"
            return arguments
        arguments["peephole"] = self.peephole_reads(name)
        if self.full_gate_recurrence:
            arguments["recurrent_gate_dim"] = self.carried_gate_units * units
        return arguments
