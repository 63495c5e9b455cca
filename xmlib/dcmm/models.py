"""The rankers of DCMM's Table 1: LTR, CM (fixed weights), LTR+CM and DCMM-cos / DCMM-edge.

    s(q, d_i) = w_0^T h_i^0 + s_conv(q, d_i)                                        (Eq. 6)

h^0 = MLP(text LTR features of (q, d_i)); w_0^T h^0 is the LTR score (the LTR baseline is this
branch alone, trained with BPR); s_conv is a linear projection of the last cross-modal convolution
(Eq. 5, :class:`~xmlib.dcmm.layers.CrossModalConv`). Every model maps a
:class:`~xmlib.dcmm.batching.PaddedQueries` to (B, N) scores, 0 on padding.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from xmlib.dcmm.batching import PaddedQueries
from xmlib.dcmm.cm import cm_as_convolution
from xmlib.dcmm.config import Config
from xmlib.dcmm.graph import knn_adjacency, knn_neighbours, neighbours_to_adjacency
from xmlib.dcmm.layers import CrossModalConv, EdgeWeights, cosine_edge_weights
from xmlib.dcmm.neighbours import edge_weights_on_neighbours, neighbour_weights_to_dense

METHODS: tuple[str, ...] = ("ltr", "cm", "ltr+cm", "dcmm-cos", "dcmm-edge")


class TextMLP(nn.Module):
    """h^0 = MLP(x): Linear(F, c) [ReLU, Dropout, Linear(c, c)] × (mlp_layers − 1), no activation last.

    ``in_dim``: F, the number of text LTR features; ``hidden``: c (the code's ``input_channels``).
    """

    def __init__(self, in_dim: int, hidden: int, mlp_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if mlp_layers < 1:
            raise ValueError(f"mlp_layers must be >= 1, got {mlp_layers}")
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden)]
        for _ in range(mlp_layers - 1):
            layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)                                   # (B, N, F) → (B, N, c)


class LTR(nn.Module):
    """The LTR baseline: s(q, d_i) = w_0^T MLP(x_i) (Eq. 6 of DCMM without s_conv; in the chapter
    :math:numref:`eq-dcmm-score`), trained with BPR."""

    def __init__(self, in_dim: int, hidden: int = 16, mlp_layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.mlp = TextMLP(in_dim, hidden, mlp_layers, dropout)
        self.w0 = nn.Linear(hidden, 1)                       # w_0 (with a bias, as in the code)

    def forward(self, batch: PaddedQueries) -> torch.Tensor:
        s = self.w0(self.mlp(batch.text))[..., 0]            # (B, N)
        return s * batch.mask.to(s.dtype)


class DCMM(nn.Module):
    """DCMM (Eqs. 5-6 of DCMM; in the chapter :math:numref:`eq-dcmm-conv`, :math:numref:`eq-dcmm-score`): LTR branch + ``n_conv``
    cross-modal convolutions on the visual k-NN graph, scored by Eq. (6).

    ``g``: "cos" (DCMM-cos) or "edge" (DCMM-edge, one learned a ∈ R^D per layer);
    ``k``: graph size (0 = fully connected); ``conv_relu``, ``self_loops``, ``conv_bias``,
    ``degree_norm``, ``conv_dropout``: the paper/code switches documented in :mod:`xmlib.dcmm.config`.

    DCMM-edge on a k-NN graph whose lists are short against the query (N ≥ ``LISTS_BELOW`` · ``|N_i|``)
    computes its edge weights on the neighbour lists only (:mod:`xmlib.dcmm.neighbours`); otherwise,
    and for DCMM-cos, G is computed densely. Both give the same G.
    """

    # lists when N >= 8 |N_i|: development measurement, 16 queries x 250-300 candidates, D = 1536, two layers,
    # one thread: lists 175 / 260 / 280 / 480 ms per step at k = 10 / 20 / 30 / 45, dense 405 / 425 / 350 / 370
    LISTS_BELOW = 8

    def __init__(self, in_dim: int, *, g: Literal["cos", "edge"] = "cos", visual_dim: int | None = None,
                 hidden: int = 16, mlp_layers: int = 2, conv_channels: int = 16, n_conv: int = 2,
                 k: int = 10, dropout: float = 0.2, conv_relu: bool = True, self_loops: bool = True,
                 conv_bias: bool = False, degree_norm: bool = False, conv_dropout: bool = False) -> None:
        super().__init__()
        if g not in ("cos", "edge"):
            raise ValueError(f"g must be 'cos' or 'edge', got {g!r}")
        if g == "edge" and not visual_dim:
            raise ValueError("DCMM-edge needs visual_dim (D, the size of the learned vector a)")
        if n_conv < 1:
            raise ValueError(f"n_conv must be >= 1 (use LTR for none), got {n_conv}")
        self.g, self.k, self.self_loops = g, k, self_loops
        self.mlp = TextMLP(in_dim, hidden, mlp_layers, dropout)
        self.w0 = nn.Linear(hidden, 1)                       # text score w_0^T h^0
        sizes = [hidden] + [conv_channels] * n_conv
        self.convs = nn.ModuleList(CrossModalConv(sizes[i], sizes[i + 1], conv_relu=conv_relu, conv_bias=conv_bias,
                                                  degree_norm=degree_norm) for i in range(n_conv))
        self.edges = nn.ModuleList(EdgeWeights(visual_dim) for _ in range(n_conv)) if g == "edge" else None
        self.conv_drop = nn.Dropout(dropout) if conv_dropout else None   # the released code's dropout after each conv
        self.out = nn.Linear(conv_channels, 1)               # s_conv: projection of the last conv layer

    def graph(self, batch: PaddedQueries) -> torch.Tensor:
        """The boolean (B, N, N) graph G_q of each query: k-NN for ``k > 0``, fully connected for ``k = 0``."""
        return knn_adjacency(batch.sim, batch.mask, self.k, self.self_loops)

    def uses_lists(self, n_nodes: int) -> bool:
        """True when DCMM-edge computes its weights on neighbour lists for a batch padded to ``n_nodes``."""
        m = self.k if self.self_loops else self.k - 1         # |N_i|
        return self.edges is not None and 0 < self.k < n_nodes and n_nodes >= self.LISTS_BELOW * m

    def forward(self, batch: PaddedQueries) -> torch.Tensor:
        h = self.mlp(batch.text)                             # (B, N, c): h^0
        s = self.w0(h)[..., 0]                               # (B, N): w_0^T h^0
        if self.uses_lists(batch.mask.shape[1]):             # DCMM-edge's weights on neighbour lists (B, N, m)
            index, valid = knn_neighbours(batch.sim, batch.mask, self.k, self.self_loops)
            adj = neighbours_to_adjacency(index, valid)     # (B, N, N)
            w = edge_weights_on_neighbours(batch.visual, index, valid, torch.stack([e.a for e in self.edges]))
            ws = [neighbour_weights_to_dense(w_l, index) for w_l in w]   # L × (B, N, N)
        else:
            adj = self.graph(batch)                          # (B, N, N)
            if self.edges is None:
                ws = [cosine_edge_weights(batch.sim, adj)] * len(self.convs)
            else:
                lengths = batch.mask.sum(1).tolist()
                ws = [e(batch.visual, adj, lengths) for e in self.edges]   # L × (B, N, N), each query at its length
        for conv, w in zip(self.convs, ws):
            h = conv(h, w, adj)                              # (B, N, conv_channels): Eq. (5)
            if self.conv_drop is not None:
                h = self.conv_drop(h)
        s = s + self.out(h)[..., 0]                          # Eq. (6)
        return s * batch.mask.to(s.dtype)


class CMScorer(nn.Module):
    """The CM baseline (Eq. 1 of DCMM; in the chapter :math:numref:`eq-dcmm-cm`) as a model with no trainable
    parameter (one fixed convolution, :math:numref:`eq-dcmm-cm-conv`)."""

    def __init__(self, K: int = 10) -> None:
        super().__init__()
        self.K = K

    def forward(self, batch: PaddedQueries) -> torch.Tensor:
        return cm_as_convolution(batch.s_text, batch.sim, batch.mask, self.K)


def build_model(method: str, cfg: Config, *, in_dim: int, visual_dim: int) -> nn.Module:
    """The model of ``method`` with the sizes and switches of ``cfg``.

    For "ltr+cm" ``in_dim`` must already count the CM feature (see
    :meth:`~xmlib.dcmm.batching.PaddedQueries.with_extra_feature`).
    """
    if method in ("ltr", "ltr+cm"):
        return LTR(in_dim, cfg.hidden, cfg.mlp_layers, cfg.dropout)
    if method == "cm":
        return CMScorer(cfg.cm_k)
    if method in ("dcmm-cos", "dcmm-edge"):
        return DCMM(in_dim, g="cos" if method == "dcmm-cos" else "edge", visual_dim=visual_dim,
                    hidden=cfg.hidden, mlp_layers=cfg.mlp_layers, conv_channels=cfg.conv_channels,
                    n_conv=cfg.n_conv, k=cfg.k, dropout=cfg.dropout, conv_relu=cfg.conv_relu,
                    self_loops=cfg.self_loops, conv_bias=cfg.conv_bias, degree_norm=cfg.degree_norm,
                    conv_dropout=cfg.conv_dropout)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
