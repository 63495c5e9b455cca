"""Similarities and distances shared by the three papers (chapter "Shared building blocks").

- :func:`cosine_similarity_matrix` — ``cos(x_i, y_j)``, the cosine of the building-blocks chapter. The
  papers' cosines (DCMM-cos's edge weights, Eq. 5; SGRAF's attention) are computed in their own
  batched forms (:func:`xmlib.dcmm.batching.pad_queries`, :func:`xmlib.sgraf.similarity.attend_text_to_image`),
  as products of L2-normalised rows; this function is the reference the chapter checks against a loop.
- :func:`squared_euclidean_matrix` — ``‖x_i − y_j‖²``, Deep Ranking's Eq. (1) (used by its metrics,
  :mod:`xmlib.metrics.triplets`).
- :func:`l2_normalize` — projection onto the unit sphere (used by Deep Ranking's network and SGRAF).

On the unit sphere the two carry the same information: ``‖x − y‖² = 2 − 2 cos(x, y)``
(in the chapter :math:numref:`eq-blocks-sphere`), so they rank neighbours identically.
"""

from __future__ import annotations

import torch


def l2_normalize(x: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """``x / max(‖x‖₂, eps)`` along ``dim``."""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(eps)


def cosine_similarity_matrix(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """All-pairs cosine similarity (chapter "Shared building blocks", :math:numref:`eq-blocks-cos-dist`).

    Args:
        x: (n, d) rows ``x_i``.
        y: (m, d) rows ``y_j``.
    Returns:
        (n, m) with entry ``cos(x_i, y_j) = x_i·y_j / (‖x_i‖ ‖y_j‖)``.
    """
    _check_pair(x, y)
    return l2_normalize(x, eps=eps) @ l2_normalize(y, eps=eps).T


def squared_euclidean_matrix(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """All-pairs squared Euclidean distance ``D(x_i, y_j) = ‖x_i − y_j‖₂²``: Eq. (1) of Deep Ranking;
    in the chapter :math:numref:`eq-dr-distance` and :math:numref:`eq-blocks-cos-dist`.

    Computed as ``‖x‖² + ‖y‖² − 2 x·y`` (one matrix product) and clamped at 0 against round-off.

    Args:
        x: (n, d); y: (m, d).
    Returns:
        (n, m) non-negative distances.
    """
    _check_pair(x, y)
    sq = (x * x).sum(-1, keepdim=True) + (y * y).sum(-1)[None, :] - 2.0 * (x @ y.T)
    return sq.clamp_min(0.0)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"expected two 2-D tensors (n, d) and (m, d), got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: x has d={x.shape[1]}, y has d={y.shape[1]}")
