"""The Deep Ranking objective: Eqs. (1)–(4) of Wang et al. (CVPR 2014), chapter "The ranking loss".

- Eq. (1) ``D(f(P), f(Q)) = ‖f(P) − f(Q)‖₂²`` — :func:`squared_distance` (row-wise; the all-pairs
  form is :func:`xmlib.distances.squared_euclidean_matrix`).
- Eq. (3) ``l(p_i, p_i+, p_i−) = max{0, g + D(f(p_i), f(p_i+)) − D(f(p_i), f(p_i−))}`` —
  :func:`triplet_hinge`, applied **per triplet** and then averaged (not a hinge of the batch mean).
- Eq. (4) ``min_W Σ_i ξ_i + λ‖W‖₂²`` s.t. ``max{0, g + D+ − D−} < ξ_i``, ``ξ_i ≥ 0``.
  For fixed W the smallest feasible slack is ``ξ_i = max{0, g + D+ − D−} = l_i``, so Eq. (4) is the
  unconstrained ``Σ_i l_i + λ‖W‖₂²`` (:func:`ranking_objective`).

Which λ we use: training minimises the batch mean ``(1/B) Σ_i l_i`` with SGD's ``weight_decay = λ``,
i.e. a step on ``(1/B) Σ_i l_i + (λ/2)‖W‖₂²`` (:func:`weight_penalty` with ``half=True`` is that term;
a test checks the two give the same SGD step). Dividing Eq. (4) by the number of triplets N gives
``(1/N) Σ l_i + (λ_paper/N)‖W‖²``; the paper's "λ = 0.001" is read, as in the frameworks of its time, as
the weight-decay coefficient of the stochastic step. The penalty covers every trainable parameter
(weights and biases); a frozen ConvNet branch is not in W.
"""

from __future__ import annotations

import torch

from xmlib.losses import pairwise_hinge


def squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. (1) of Deep Ranking row by row: ``D(a_i, b_i) = ‖a_i − b_i‖₂²`` (in the chapter :math:numref:`eq-dr-distance`).

    Args:
        a, b: (B, d) embeddings ``f(P)``, ``f(Q)``.
    Returns:
        (B,) squared Euclidean distances.
    """
    if a.shape != b.shape:
        raise ValueError(f"embeddings must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return ((a - b) ** 2).sum(-1)


def triplet_hinge(
    query: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, gap: float, reduction: str = "mean"
) -> torch.Tensor:
    """Eq. (3) of Deep Ranking: ``l = max{0, g + D(f(p_i), f(p_i+)) − D(f(p_i), f(p_i−))}`` per triplet
    (in the chapter :math:numref:`eq-dr-hinge`).

    Args:
        query, positive, negative: (B, d) embeddings ``f(p_i)``, ``f(p_i+)``, ``f(p_i−)``.
        gap: g > 0 (< 4 for unit-norm embeddings, where D ≤ 4).
        reduction: ``"mean"`` over the B triplets (default), ``"sum"`` (Eq. 4's Σ_i ξ_i) or ``"none"``.
    Returns:
        Scalar, or (B,) with ``"none"``.
    """
    if gap <= 0:
        raise ValueError(f"gap g must be > 0, got {gap}")
    d_pos = squared_distance(query, positive)  # (B,)  D+
    d_neg = squared_distance(query, negative)  # (B,)  D−
    # hinge on the margin Δ = D− − D+: max(0, g − Δ) = max(0, g + D+ − D−)
    return pairwise_hinge(d_neg - d_pos, margin=gap, reduction=reduction)


def weight_penalty(params, weight_decay: float, half: bool = False) -> torch.Tensor:
    """Eq. (4)'s regulariser ``λ‖W‖₂²`` over ``params`` (Deep Ranking; in the chapter :math:numref:`eq-dr-objective`),
    with λ = ``weight_decay`` (the config's name), or ``(λ/2)‖W‖₂²`` with ``half``, the term that SGD's
    ``weight_decay = λ`` adds to the gradient."""
    params = [p for p in params if p.requires_grad]
    if not params:
        return torch.zeros(())
    total = sum((p * p).sum() for p in params)
    return (0.5 * weight_decay if half else weight_decay) * total


def ranking_objective(
    query: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    gap: float,
    params=(),
    weight_decay: float = 0.0,
) -> torch.Tensor:
    """Eq. (4) of Deep Ranking with the slacks substituted: ``Σ_i max{0, g + D+ − D−} + λ‖W‖₂²`` (a sum,
    as printed), λ = ``weight_decay``; in the chapter :math:numref:`eq-dr-constrained` (Eq. 4) and :math:numref:`eq-dr-objective`
    (the substituted form).

    Training uses the mean hinge plus SGD weight decay instead (see the module docstring)."""
    return triplet_hinge(query, positive, negative, gap, reduction="sum") + weight_penalty(params, weight_decay)
