"""keras_lstm_gates: a Keras 3 LSTM whose gates are explicit sublayers.

>>> import keras_lstm_gates as klg
>>> layer = klg.LSTM(8)
>>> sorted(n for n in layer.cell.gates)
['candidate', 'forget_gate', 'input_gate', 'output_gate']
"""

from .cell import LSTMCell
from .check import check
from .convert import convert
from .explore import Explorer, explore
from .gates import (
    CandidateMemory,
    ForgetGate,
    Gate,
    InputGate,
    OutputGate,
    SigmoidGate,
    check_gate_activation,
)
from .initializers import ChronoInitializer, FusedSlice
from .interop import get_fused_weights, set_gates_from_fused, split_fused_weights
from .layer import LSTM
from .lstmvis import export_lstmvis
from .monitor import GateMonitor
from .tflite import to_tflite
from .torch_import import from_torch, to_torch, to_torch_state_dict
from .traces import GateTrace, GateTraces
from .tracing import trace
from .variants import VARIANTS
from .version import __version__  # noqa: F401  (the package attribute)

__all__ = [
    "check",
    "convert",
    "trace",
    "GateTrace",
    "GateTraces",
    "GateMonitor",
    "explore",
    "Explorer",
    "export_lstmvis",
    "to_tflite",
    "LSTM",
    "LSTMCell",
    "Gate",
    "SigmoidGate",
    "InputGate",
    "ForgetGate",
    "OutputGate",
    "CandidateMemory",
    "ChronoInitializer",
    "FusedSlice",
    "VARIANTS",
    "check_gate_activation",
    "get_fused_weights",
    "set_gates_from_fused",
    "split_fused_weights",
    "from_torch",
    "to_torch",
    "to_torch_state_dict",
]
