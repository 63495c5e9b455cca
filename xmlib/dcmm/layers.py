"""The cross-modal graph convolution of DCMM, Eq. (5), and its two edge functions g (in the chapter
:math:numref:`eq-dcmm-conv` and :math:numref:`eq-dcmm-edges`).

    h_i^{l+1} = ReLU( Σ_{j ∈ N_i} W^l h_j^l · g(v_i, v_j) )                       (Eq. 5)

    DCMM-cos:  g(v_i, v_j) = cos(v_i, v_j)
    DCMM-edge: g(v_i, v_j) = v_i^T diag(a) v_j,  a ∈ R^D learned (initialised U(0, 1), as in the code)

Dense batched form: with G[b, i, j] = g(v_i, v_j) · [j ∈ N_i] (zero off the graph and on padding),
the sum over neighbours for every node of every query is one batched product ``G @ (h W^T)``.

DCMM-edge's dense G costs N² D multiply-adds per query and layer; on a k-NN graph with few
neighbours :func:`xmlib.dcmm.neighbours.edge_weights_on_neighbours` computes only its N·``|N_i|``
entries on the graph.
"""

from __future__ import annotations

import torch
from torch import nn


def cosine_edge_weights(sim: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """G for DCMM-cos, g = cos(v_i, v_j) of Eq. (5) of DCMM (in the chapter :math:numref:`eq-dcmm-edges`):
    ``sim`` (B, N, N) cosines of normalised v, ``adj`` (B, N, N) bool → (B, N, N)."""
    return sim * adj.to(sim.dtype)


class EdgeWeights(nn.Module):
    """g_edge(v_i, v_j) = v_i^T diag(a) v_j of DCMM-edge, Eq. (5) of DCMM (in the chapter :math:numref:`eq-dcmm-edges`).
    ``visual_dim``: D, the size of a."""

    def __init__(self, visual_dim: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.rand(visual_dim))  # a ~ U(0, 1)

    def forward(self, visual: torch.Tensor, adj: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        """``visual``: (B, N, D) normalised v, ``adj``: (B, N, N) bool → G (B, N, N).

        One query at a time, each cut to its ``lengths[b]`` real candidates when given (a ragged batch
        pays no N² D work for padding), so the (n, D) product v ⊙ a and its gradient also stay small."""
        B, N, _ = visual.shape
        if lengths is None or min(lengths) == N:  # no padding: one batched product
            g = torch.bmm(visual * self.a, visual.transpose(1, 2))  # (B, N, N)
            return g * adj.to(g.dtype)
        blocks = []
        for b, v in enumerate(visual):
            n = N if lengths is None else lengths[b]
            g_b = (v[:n] * self.a) @ v[:n].T                 # (n, n): v_i^T diag(a) v_j
            blocks.append(nn.functional.pad(g_b, (0, N - n, 0, N - n)) if n < N else g_b)
        g = torch.stack(blocks)                              # (B, N, N)
        return g * adj.to(g.dtype)


class CrossModalConv(nn.Module):
    """One cross-modal graph convolution, Eq. (5) of DCMM; in the chapter :math:numref:`eq-dcmm-conv`.

    ``in_channels``: size of h^l; ``out_channels``: size of h^{l+1} (W^l is out × in).
    Switches (defaults = the paper; named as in :class:`~xmlib.dcmm.config.Config`): ``conv_relu``
    (Eq. 5's ReLU; the released code has none), ``conv_bias`` (the released code adds b to W h_j),
    ``degree_norm`` (divide by ``|N_i|``; neither paper nor code does).
    """

    def __init__(self, in_channels: int, out_channels: int, *, conv_relu: bool = True, conv_bias: bool = False,
                 degree_norm: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(in_channels, out_channels, bias=conv_bias)   # W^l (and b with conv_bias=True)
        self.conv_relu = conv_relu
        self.degree_norm = degree_norm

    def forward(self, h: torch.Tensor, g: torch.Tensor, adj: torch.Tensor | None = None) -> torch.Tensor:
        """``h``: (B, N, C_in) node features h^l; ``g``: (B, N, N) edge weights G (zero off-graph);
        ``adj``: (B, N, N) bool, needed only with ``degree_norm`` → h^{l+1}: (B, N, C_out)."""
        msg = self.lin(h)                                    # (B, N, C_out): W h_j (+ b)
        out = g @ msg                                        # (B, N, C_out): Σ_j g_ij W h_j
        if self.degree_norm:
            if adj is None:
                raise ValueError("degree_norm=True needs adj (the boolean graph) to count |N_i|")
            out = out / adj.sum(-1, keepdim=True).clamp_min(1).to(out.dtype)
        return torch.relu(out) if self.conv_relu else out
