"""BPR over each query's positive/negative pairs, Eq. (7) of DCMM.

    L = − Σ_q Σ_{d+ ∈ D_q^+, d− ∈ D_q^−} log σ( s(q, d+) − s(q, d−) )                (Eq. 7)

The official code averages over all pairs of the batch of queries (BCE-with-logits against 1), which
is Eq. (7) divided by the number of pairs: ``reduction="mean"`` (default, learning rates comparable
to the code's), ``"sum"`` for Eq. (7) as printed. Pairs never cross queries; padded nodes are in no
pair. The per-pair term −log σ(Δ) is the shared :func:`xmlib.losses.bpr_loss` (softplus(−Δ), stable for
large ``|Δ|``); this module only forms the pairs of each query.
"""

from __future__ import annotations

from typing import Literal

import torch

from xmlib.losses import bpr_loss as bpr_pair_loss


def pair_mask(rel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N, N) bool, True at [b, i, j] when d_i ∈ D_q^+ and d_j ∈ D_q^− of query b."""
    pos = (rel > 0) & mask                                   # (B, N)
    neg = (rel <= 0) & mask                                  # (B, N)
    return pos[:, :, None] & neg[:, None, :]


def to_front(scores: torch.Tensor, chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's ``chosen`` (B, N) scores moved to the front in list order: (B, P) scores and their
    (B, P) mask, P the largest count of a query."""
    order = torch.sort((~chosen).to(torch.uint8), dim=1, stable=True).indices   # chosen first, in list order
    count = chosen.sum(1)                                    # (B,)
    P = int(count.max()) if count.numel() else 0
    return scores.gather(1, order[:, :P]), torch.arange(P, device=scores.device)[None] < count[:, None]


def bpr_loss(scores: torch.Tensor, rel: torch.Tensor, mask: torch.Tensor,
             reduction: Literal["mean", "sum"] = "mean") -> torch.Tensor:
    """Eq. (7) of DCMM (in the chapter :math:numref:`eq-dcmm-bpr`). ``scores``: (B, N) s(q, d); ``rel``: (B, N);
    ``mask``: (B, N) bool → scalar.

    The pairs of each query are formed between its positives and its negatives only (a (B, P, Q) table,
    P and Q the largest counts, rather than all (B, N, N) pairs of nodes); they come out in the order of
    :func:`pair_mask` (positive, then negative, each in list order). A batch without any pair (every
    query all-relevant or all-irrelevant) gives a zero loss that is still connected to ``scores`` (so
    ``backward`` works and changes nothing).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    s_pos, m_pos = to_front(scores, (rel > 0) & mask)        # (B, P): s(q, d+)
    s_neg, m_neg = to_front(scores, (rel <= 0) & mask)       # (B, Q): s(q, d−)
    pairs = m_pos[:, :, None] & m_neg[:, None, :]            # (B, P, Q)
    delta = (s_pos[:, :, None] - s_neg[:, None, :])[pairs]   # (pairs,): s(q, d+) − s(q, d−)
    if delta.numel() == 0:
        return scores.sum() * 0.0
    return bpr_pair_loss(delta, reduction)                   # −log σ(Δ), mean or sum over pairs
