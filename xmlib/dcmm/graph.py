"""The per-query visual graph G_q of DCMM (Sect. 3.2): who is in N_i, the neighbourhood of node i.

Adjacency is a dense boolean (B, N, N) tensor with ``adj[b, i, j] = True`` when j ∈ N_i, i.e. when
node j sends a message to node i in Eqs. (3) and (5). Padded nodes have no edges.

- k-NN graph: N_i = the k candidates most visually similar to d_i (cosine of normalised features).
  As in the official code **k counts the node itself**: i is always one of its own k nearest, so
  with ``self_loops=False`` (the code's choice) k − 1 neighbours remain, with ``self_loops=True``
  (Eqs. 1 and 3, where d_i is its own neighbour) N_i has k members.
- fully connected graph (``k = 0`` or k ≥ list length): N_i = every candidate of the query.
"""

from __future__ import annotations

import torch


def full_adjacency(mask: torch.Tensor, self_loops: bool = True) -> torch.Tensor:
    """Fully connected graph over the real nodes. ``mask``: (B, N) bool → (B, N, N) bool."""
    adj = mask[:, :, None] & mask[:, None, :]                                # (B, N, N)
    if not self_loops:
        adj = adj & ~torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    return adj


def _knn_scores(sim: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Similarities ranked for the k-NN choice: padded nodes last (−inf), the node itself first (+inf)."""
    score = sim.masked_fill(~mask[:, None, :], float("-inf"))               # (B, N, N)
    score.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    return score


def knn_neighbours(sim: torch.Tensor, mask: torch.Tensor, k: int,
                   self_loops: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The k-NN graph as neighbour lists: ``index`` (B, N, m) long and ``valid`` (B, N, m) bool.

    ``index[b, i]`` lists N_i: the k nodes with the largest ``sim[b, i, :]``, node i itself first
    (``m = k``), or without it (``self_loops=False``, ``m = k − 1``).
    ``valid`` is False where a list is shorter than k (the pick is a padded node) and on padded rows.
    Needs ``1 <= k <= N``. Ties between equal similarities are broken by ``torch.topk`` (continuous
    features make them vanishingly rare).
    """
    N = sim.shape[1]
    if not 1 <= k <= N:
        raise ValueError(f"knn_neighbours needs 1 <= k <= N = {N}, got k = {k} (use full_adjacency for k = 0)")
    index = _knn_scores(sim, mask).topk(k, dim=-1).indices                   # (B, N, k), node i first
    if not self_loops:
        index = index[..., 1:]                                               # (B, N, k − 1): drop i itself
    valid = mask[:, :, None] & mask.gather(1, index.flatten(1)).view_as(index)  # both ends real
    return index, valid


def neighbours_to_adjacency(index: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Boolean (B, N, N) adjacency of the neighbour lists ``index``/``valid`` (B, N, m) of :func:`knn_neighbours`."""
    B, N, _ = index.shape
    return torch.zeros(B, N, N, dtype=torch.bool, device=index.device).scatter_(-1, index, valid)


def knn_adjacency(sim: torch.Tensor, mask: torch.Tensor, k: int, self_loops: bool = True) -> torch.Tensor:
    """k-NN graph from visual similarities. ``sim``: (B, N, N), ``mask``: (B, N) → (B, N, N) bool.

    ``adj[b, i, j]`` is True when j is among the k nodes with the largest ``sim[b, i, :]`` (node i
    itself always counted first); ``k = 0`` (or k ≥ N) gives :func:`full_adjacency`. The same graph
    as :func:`knn_neighbours` (whose lists need a sorted top-k; a set of k does not).
    """
    if k < 0:
        raise ValueError(f"k must be >= 0 (0 = fully connected), got {k}")
    B, N, _ = sim.shape
    if k == 0 or k >= N:
        return full_adjacency(mask, self_loops)
    top = _knn_scores(sim, mask).topk(k, dim=-1, sorted=False).indices     # (B, N, k)
    adj = torch.zeros(B, N, N, dtype=torch.bool, device=sim.device).scatter_(-1, top, True)
    adj &= mask[:, :, None] & mask[:, None, :]                               # drop picks beyond short lists
    if not self_loops:
        adj.diagonal(dim1=1, dim2=2).fill_(False)
    return adj
