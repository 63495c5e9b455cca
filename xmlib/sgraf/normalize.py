"""Where SGRAF's normalisations put their epsilon (the ``norm_eps`` switch of :class:`~xmlib.sgraf.config.ModelConfig`).

SGRAF divides by a norm in many places: region and word features, the two pooled global vectors, the
attention scores (over the words), the attended contexts, Eq. (1)'s similarity vectors and SAF's
weights and read-out. The paper writes plain ``x / ‖x‖``; an implementation needs an ε against a zero
norm, and the two rules give different numbers away from zero:

- ``"clamp"`` (xmlib, the default): ``x / max(‖x‖, ε)``, which equals ``x / ‖x‖`` whenever the norm
  exceeds ε;
- ``"add"`` (the official code): ``x / (‖x‖ + ε)``, which shrinks every vector by the factor
  ``‖x‖ / (‖x‖ + ε)``: about 1e-8 relative for a unit-size vector, far above float64 round-off.

ε = 1e-8 in both. The ``"add"`` rule's norm is ``Tensor.norm``, whose gradient at a zero vector is
0 (no NaN in training).
"""

from __future__ import annotations

import torch

from xmlib import distances
from xmlib.sgraf.config import NormEps

EPS = 1e-8
"""ε of every SGRAF normalisation (xmlib and the official code use the same value)."""


def l2_normalize(x: torch.Tensor, dim: int = -1, *, norm_eps: NormEps = "clamp") -> torch.Tensor:
    """``x / max(‖x‖₂, ε)`` (``norm_eps="clamp"``) or ``x / (‖x‖₂ + ε)`` (``"add"``) along ``dim``."""
    if norm_eps == "clamp":
        return distances.l2_normalize(x, dim=dim, eps=EPS)  # the same numbers as before the switch existed
    if norm_eps == "add":
        return x / (x.norm(dim=dim, keepdim=True) + EPS)
    raise ValueError(f"norm_eps must be 'clamp' (xmlib) or 'add' (official code), got {norm_eps!r}")


def l2_normalize_(x: torch.Tensor, dim: int = -1, *, norm_eps: NormEps = "clamp") -> torch.Tensor:
    """:func:`l2_normalize` in place (the same numbers, no new buffer): for scoring without autograd."""
    norm = x.norm(dim=dim, keepdim=True)
    if norm_eps == "clamp":
        return x.div_(norm.clamp_min_(EPS))
    if norm_eps == "add":
        return x.div_(norm.add_(EPS))
    raise ValueError(f"norm_eps must be 'clamp' (xmlib) or 'add' (official code), got {norm_eps!r}")


def l1_normalize_positive(w: torch.Tensor, dim: int = -1, *, norm_eps: NormEps = "clamp") -> torch.Tensor:
    """Non-negative weights ``w`` divided by their sum along ``dim``: ``w / Σ w`` (``"clamp"``: SAF's
    weights are sigmoids of at least one real node, so the sum is positive and xmlib needs no ε) or
    ``w / (Σ |w| + ε)`` (``"add"``, the official code)."""
    if norm_eps == "clamp":
        return w / w.sum(dim, keepdim=True)
    if norm_eps == "add":
        return w / (w.abs().sum(dim, keepdim=True) + EPS)
    raise ValueError(f"norm_eps must be 'clamp' (xmlib) or 'add' (official code), got {norm_eps!r}")
