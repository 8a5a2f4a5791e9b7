"""Study a trained model's cells: :func:`explore` (the LSTMVis workflow, the
gates included, in one self-contained page) and its :class:`Explorer`."""

from .explorer import Explorer, explore

__all__ = ["Explorer", "explore"]
