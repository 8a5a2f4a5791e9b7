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
========  ==============================================================

Peepholes (``peepholes=True``) are a separate option, as in Greff et al.'s
vanilla LSTM: p_i and p_f read c_{t-1}, p_o reads c_t (Gers & Schmidhuber
2000).  They belong to the gates that exist: NIG has p_f and p_o, NFG and CIFG
p_i and p_o (CIFG's f = 1 - i sees c_{t-1} through p_i), NOG p_i and p_f.
A removed gate has no sublayer and no weights; the step uses the constant 1
in its place (1 - i for CIFG's forget gate).
"""

VARIANTS = ("vanilla", "NIG", "NFG", "NOG", "NIAF", "NOAF", "CIFG", "FGR", "NP")
GATE_NAMES = ("input_gate", "forget_gate", "candidate", "output_gate")
SIGMOID_GATES = ("input_gate", "forget_gate", "output_gate")


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

    @property
    def present_gates(self):
        keep = {
            "input_gate": self.has_input_gate,
            "forget_gate": self.has_forget_gate,
            "candidate": True,
            "output_gate": self.has_output_gate,
        }
        return tuple(name for name in GATE_NAMES if keep[name])

    @property
    def is_vanilla(self):
        return self.name in ("vanilla", "NP") and not self.peepholes

    @property
    def gate_state_dim_factor(self):
        """How many ``units``-wide gate activations FGR carries between steps."""
        return 3 if self.full_gate_recurrence else 0

    def peephole_reads(self, gate):
        """Whether ``gate`` has a peephole weight in this configuration."""
        return self.peepholes and gate in self.present_gates and gate != "candidate"
