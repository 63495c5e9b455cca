"""SGRAF's objective: the bidirectional triplet ranking loss (Diao et al. 2021, Eq. "Objective").

For a batch whose score matrix S[i, c] has the matching pairs on the diagonal (S(v_i, t_i)):

- hardest negatives (VSE++, the paper):
  ``L = Σ_i [γ − S(v_i, t_i) + max_{c≠i} S(v_i, t_c)]_+ + [γ − S(v_i, t_i) + max_{i'≠i} S(v_i', t_i)]_+``;
- all negatives (SCAN's sum variant): the max replaced by a sum over every negative's hinge.

``image_ids`` (optional) marks pairs whose image is the same (two captions of one image in a batch):
those are not negatives (``mask_same_image`` in the config; the paper does not mask them).
"""

from __future__ import annotations

import torch

from xmlib.losses import pairwise_hinge


def contrastive_loss(scores: torch.Tensor, margin: float = 0.2, max_violation: bool = True,
                     image_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Bidirectional hinge on a (B, B) score matrix with positives on the diagonal; summed over the batch
    (SGRAF, Sec. "Objective"; in the chapter :math:numref:`eq-sgraf-loss`).

    Args:
        scores: (B, B), S[i, c] = S(v_i, t_c).
        margin: γ.
        max_violation: True = hardest negative per positive (the paper); False = all negatives.
        image_ids: (B,) image id of each pair, or None (every off-diagonal pair is a negative).
    Returns:
        a scalar, the sum of both directions' hinges.
    """
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square (B, B) matrix with positives on the diagonal, got {tuple(scores.shape)}")
    b = scores.shape[0]
    pos = scores.diagonal()  # (B,)
    # Δ = S(v, t) − S(negative): a caption negative per row, an image negative per column
    cost_c = pairwise_hinge(pos[:, None] - scores, margin, reduction="none")  # (B, B): image i vs caption c
    cost_i = pairwise_hinge(pos[None, :] - scores, margin, reduction="none")  # (B, B): caption c vs image i
    not_neg = torch.eye(b, dtype=torch.bool, device=scores.device)
    if image_ids is not None:
        not_neg = not_neg | (image_ids[:, None] == image_ids[None, :])
    cost_c = cost_c.masked_fill(not_neg, 0.0)
    cost_i = cost_i.masked_fill(not_neg, 0.0)
    if max_violation:
        return cost_c.max(dim=1).values.sum() + cost_i.max(dim=0).values.sum()
    return cost_c.sum() + cost_i.sum()
