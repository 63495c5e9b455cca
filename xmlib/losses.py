"""Pairwise ranking losses shared by the three papers (chapter "Shared building blocks").

All of them look at a *margin* ``Δ = s(q, d⁺) − s(q, d⁻)``: how much higher the relevant item scores
than the non-relevant one.

- :func:`pairwise_hinge` — ``max(0, γ − Δ)``: zero once the pair is ordered with margin γ
  (the form of Deep Ranking's Eq. 3 and SGRAF's ranking loss).
- :func:`bpr_loss` — ``−log σ(Δ) = softplus(−Δ)``: Bayesian Personalised Ranking, DCMM's Eq. (7);
  never exactly zero, so well-ordered pairs keep a small push.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_hinge(delta: torch.Tensor, margin: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Hinge on score margins: ``max(0, margin − Δ)`` (in the chapter :math:numref:`eq-blocks-hinge`; the form of Eq. (3)
    of Deep Ranking and of SGRAF's objective).

    Args:
        delta: any shape, ``Δ = s⁺ − s⁻`` per pair.
        margin: γ ≥ 0.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    return _reduce(torch.clamp_min(margin - delta, 0.0), reduction)


def bpr_loss(delta: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """BPR: ``−log σ(Δ)``, computed stably as ``softplus(−Δ)``: the per-pair term of Eq. (7) of DCMM;
    in the chapter :math:numref:`eq-blocks-bpr`.

    Args:
        delta: any shape, ``Δ = s(q, d⁺) − s(q, d⁻)`` per pair.
        reduction: ``"mean"`` (the official DCMM code's BCE-with-logits mean), ``"sum"`` (the paper's Σ) or ``"none"``.
    """
    return _reduce(F.softplus(-delta), reduction)


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
