"""The cross-modal similarity (CM) baseline, Eq. (1) of DCMM, and its reading as a graph convolution
(in the chapter :math:numref:`eq-dcmm-cm`, :math:numref:`eq-dcmm-simple` and :math:numref:`eq-dcmm-cm-conv`).

    s_CM(q, d) = Σ_{d_i ∈ NN_T^K(q)} s_T(q, d_i) · s_V(d_i, d)                      (Eq. 1)

NN_T^K(q): the K candidates with the highest text score s_T; s_V: cosine of the visual features.
It is unsupervised pseudo-relevance feedback: trust the top-K text results, re-score every candidate
by its visual similarity to them.

Eq. (4) of the paper: take one scalar node feature h_j = s_T(q, d_j), τ(h_j) = h_j if d_j is in the
top K else 0, g = s_V and a fully connected graph with self-loops; then one convolution of Eq. (3),
``h_i' = Σ_j τ(h_j) g(v_i, v_j)``, *is* Eq. (1). :func:`cm_as_convolution` computes it with a
:class:`~xmlib.dcmm.layers.CrossModalConv` whose weight is fixed to 1; :func:`cm_scores` computes
Eq. (1) directly. Ties in s_T at the K-th place go to the earlier candidate in list order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from xmlib.dcmm.batching import VISUAL_EPS, pad_queries
from xmlib.dcmm.data import QueryList
from xmlib.dcmm.graph import full_adjacency
from xmlib.dcmm.layers import CrossModalConv, cosine_edge_weights


def cm_scores(s_text: np.ndarray, visual: np.ndarray, K: int) -> np.ndarray:
    """Eq. (1) of DCMM for one query, written as the sum it is (in the chapter :math:numref:`eq-dcmm-cm`).
    ``s_text``: (n,), ``visual``: (n, D) → (n,)."""
    s_text = np.asarray(s_text, dtype=np.float64)
    v = np.asarray(visual, dtype=np.float64)
    if s_text.ndim != 1 or v.ndim != 2 or v.shape[0] != s_text.shape[0]:
        raise ValueError(f"need s_text (n,) and visual (n, D), got {s_text.shape} and {v.shape}")
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    v = v / (np.linalg.norm(v, axis=1, keepdims=True) + VISUAL_EPS)
    top = np.argsort(-s_text, kind="stable")[:K]             # NN_T^K(q)
    out = np.zeros(len(s_text))
    for d in range(len(s_text)):
        out[d] = sum(s_text[i] * float(v[i] @ v[d]) for i in top)  # s_T(q, d_i) s_V(d_i, d)
    return out


def top_k_mask(s_text: torch.Tensor, mask: torch.Tensor, K: int) -> torch.Tensor:
    """τ's selection: True for the K real candidates with the largest ``s_text`` (B, N) per query."""
    score = s_text.masked_fill(~mask, float("-inf"))
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :K]   # (B, K)
    keep = torch.zeros_like(mask)
    keep.scatter_(-1, order, True)
    return keep & mask


def cm_as_convolution(s_text: torch.Tensor, sim: torch.Tensor, mask: torch.Tensor, K: int) -> torch.Tensor:
    """Eq. (1) of DCMM as one convolution of Eq. (3) with fixed weights, i.e. Eq. (4) (in the chapter
    :math:numref:`eq-dcmm-simple`, :math:numref:`eq-dcmm-cm-conv`). Shapes: (B, N), (B, N, N), (B, N) → (B, N); padded positions are 0."""
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    h = s_text[..., None]                                            # (B, N, 1): h_j = s_T(q, d_j)
    tau_h = h * top_k_mask(s_text, mask, K)[..., None].to(h.dtype)   # τ: keep if in the top K
    g = cosine_edge_weights(sim, full_adjacency(mask, self_loops=True))  # g = s_V on the full graph
    conv = CrossModalConv(1, 1, conv_relu=False, conv_bias=False).to(device=h.device, dtype=h.dtype)
    with torch.no_grad():
        conv.lin.weight.fill_(1.0)                                   # W = 1
        out = conv(tau_h, g)                                         # (B, N, 1)
    return out[..., 0] * mask.to(out.dtype)


def cm_identity_gap(queries: Sequence[QueryList], K: int, cm_text_feature: int = 0) -> float:
    """Largest absolute difference between Eq. (1) of DCMM and its convolution form over ``queries``, in float64
    (in the chapter :math:numref:`eq-dcmm-cm` against :math:numref:`eq-dcmm-cm-conv`).

    The notebook asserts this is ~1e-15: PRF is one graph convolution (Eq. 4).
    """
    data = pad_queries(queries, device=torch.device("cpu"), dtype=torch.float64, cm_text_feature=cm_text_feature)
    conv = cm_as_convolution(data.s_text, data.sim, data.mask, K)
    gap = 0.0
    for b, q in enumerate(queries):
        direct = cm_scores(q.text[:, cm_text_feature], q.visual, K)
        gap = max(gap, float(np.abs(conv[b, : len(q)].numpy() - direct).max()))
    return gap
