"""Lines that frameworks print on their own (TensorFlow's and XLA's C++ log,
absl, oneDNN, CUDA discovery), which must not reach a reader: not in an
executed tutorial, not in the demo's output."""

from __future__ import annotations

import re

FRAMEWORK_LOG = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d"  # the absl/glog C++ prefix: I0000 00:00:...
    r"|absl::InitializeLog|WARNING:absl:"
    r"|oneDNN custom operations|cpu_feature_guard|This TensorFlow binary is optimized"
    r"|Could not find cuda drivers|Unable to register cu(?:DNN|FFT|BLAS) factory"
    r"|XLA service|StreamExecutor|Compiled cluster using XLA|TF-TRT Warning",
    re.M,
)


def framework_lines(text: str) -> list[str]:
    """The lines of ``text`` that a framework printed."""
    return [line for line in text.splitlines() if FRAMEWORK_LOG.search(line)]


# What TensorFlow reads at import to keep those lines back; a process that
# sets them after importing it is too late.
QUIETING_ENV = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
