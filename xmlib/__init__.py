"""xmlib: learning to rank and match images with text.

A small library behind the book: one module per concept (core utilities, distances, losses,
metrics, data, and one sub-package per paper: ``dcmm``, ``deepranking``, ``sgraf``).
"""

__version__ = "0.1.0"
