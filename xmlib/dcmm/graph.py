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


def knn_adjacency(sim: torch.Tensor, mask: torch.Tensor, k: int, self_loops: bool = True) -> torch.Tensor:
    """k-NN graph from visual similarities. ``sim``: (B, N, N), ``mask``: (B, N) → (B, N, N) bool.

    ``adj[b, i, j]`` is True when j is among the k nodes with the largest ``sim[b, i, :]`` (node i
    itself always counted first); ``k = 0`` gives :func:`full_adjacency`. Ties between equal
    similarities are broken by ``torch.topk`` (continuous features make them vanishingly rare).
    """
    if k < 0:
        raise ValueError(f"k must be >= 0 (0 = fully connected), got {k}")
    B, N, _ = sim.shape
    valid = mask[:, :, None] & mask[:, None, :]                              # (B, N, N)
    if k == 0 or k >= N:
        return full_adjacency(mask, self_loops)
    eye = torch.eye(N, dtype=torch.bool, device=sim.device)
    score = sim.masked_fill(~valid, float("-inf"))
    score = score.masked_fill(eye, float("inf"))                             # the node itself first
    top = score.topk(k, dim=-1).indices                                      # (B, N, k)
    adj = torch.zeros(B, N, N, dtype=torch.bool, device=sim.device)
    adj.scatter_(-1, top, True)
    adj = adj & valid                                                        # drop picks beyond short lists
    if not self_loops:
        adj = adj & ~eye
    return adj
