"""DCMM-edge's edge weights on neighbour lists: g of Eq. (5) of DCMM for k-NN graphs with few
neighbours (in the chapter :math:numref:`eq-dcmm-edges`).

DCMM-edge's dense G (B, N, N) of :class:`~xmlib.dcmm.layers.EdgeWeights` costs N² D multiply-adds
per query and layer, though on a k-NN graph only N·m entries are on the graph (m = ``|N_i|`` ≪ N).
:func:`edge_weights_on_neighbours` computes just those, for every layer at once, as a sampled product
on the sparse pattern of the lists of :func:`~xmlib.dcmm.graph.knn_neighbours` (N·m·D per query and
layer; no N × N product, no (N·m) × D gather of neighbour rows); :func:`neighbour_weights_to_dense`
scatters them into the dense G that :class:`~xmlib.dcmm.layers.CrossModalConv` takes.
"""

from __future__ import annotations

import warnings

import torch


def neighbour_weights_to_dense(w: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Scatter weights on neighbour lists, ``w`` (B, N, m) at columns ``index`` (B, N, m), into the
    dense G (B, N, N) of :class:`~xmlib.dcmm.layers.CrossModalConv` (0 elsewhere)."""
    B, N, _ = index.shape
    return w.new_zeros(B, N, N).scatter(-1, index, w)


def edge_weights_on_neighbours(visual: torch.Tensor, index: torch.Tensor, valid: torch.Tensor,
                               a: torch.Tensor) -> torch.Tensor:
    """g_edge(v_i, v_j) = v_i^T diag(a^l) v_j of Eq. (5) of DCMM (in the chapter :math:numref:`eq-dcmm-edges`) on
    neighbour lists only, for L vectors a^l at once.

    ``visual``: (B, N, D) normalised v (a constant: no gradient flows to it); ``index``, ``valid``:
    (B, N, m) neighbour lists of :func:`~xmlib.dcmm.graph.knn_neighbours`; ``a``: (L, D) →
    (L, B, N, m), 0 where not ``valid``. :class:`_SampledEdgeWeights` computes the valid entries.
    """
    if visual.requires_grad:
        raise ValueError("edge_weights_on_neighbours treats visual as a constant; use EdgeWeights.forward "
                         "(the dense form) when visual features need a gradient")
    index, order = index.sort(-1)                                    # a sparse row lists its columns in order
    w = _SampledEdgeWeights.apply(a, visual, index, valid.gather(-1, order))   # (L, B, N, m), sorted lists
    return w.gather(-1, order.argsort(-1).expand_as(w))              # back to the order of ``index``


class _SampledEdgeWeights(torch.autograd.Function):
    """w[l, b, i, t] = Σ_d v_i[d] a^l[d] v_j[d], j = index[b, i, t], where ``valid`` (0 elsewhere): for
    each query a sampled product ``(V diag(a^l) V^T)[pattern]`` on the sparse pattern of its lists,
    which forms neither the N × N product nor an (N·m) × D gather of neighbour rows.

    Backward (to ``a`` only): ∂L/∂a^l[d] = Σ_i v_i[d] (Σ_j ĝ_ij v_j[d]), ĝ the incoming gradient on
    the edges: a sparse × dense product per query. One query at a time, the temporaries are (N, D),
    small enough to be reused from the allocator's pool rather than fresh pages every step.
    """

    @staticmethod
    def forward(ctx, a, visual, index, valid):
        B, N, m = index.shape
        out = visual.new_zeros(a.shape[0], B, N * m)                 # (L, B, N·m)
        ctx.blocks = []
        for b in range(B):
            keep = valid[b].reshape(-1).nonzero().squeeze(1)          # (E_b,) edges of query b
            crow = torch.zeros(N + 1, dtype=torch.long, device=index.device)
            crow[1:] = valid[b].sum(-1).cumsum(0)                     # row i: its edges
            col = index[b].reshape(-1)[keep]                          # (E_b,) neighbour j of each edge
            ctx.blocks.append((keep, crow, col))
            if keep.numel() == 0:
                continue
            pattern = _csr(crow, col, torch.ones_like(col, dtype=visual.dtype), N)
            v = visual[b]                                             # (N, D)
            for layer, a_l in enumerate(a):
                out[layer, b, keep] = torch.sparse.sampled_addmm(pattern, v * a_l, v.T, beta=0.0).values()
        ctx.save_for_backward(visual)
        return out.view(-1, B, N, m)

    @staticmethod
    def backward(ctx, grad):                                         # grad: (L, B, N, m)
        visual, = ctx.saved_tensors
        L, B = grad.shape[:2]
        grad = grad.reshape(L, B, -1)
        grad_a = grad.new_zeros(L, visual.shape[-1])                 # (L, D)
        for b, (keep, crow, col) in enumerate(ctx.blocks):
            if keep.numel() == 0:
                continue
            v = visual[b]                                             # (N, D)
            for layer in range(L):
                g_hat = _csr(crow, col, grad[layer, b, keep], v.shape[0])
                grad_a[layer] += (v * (g_hat @ v)).sum(0)             # Σ_i v_i ⊙ Σ_j ĝ_ij v_j
        return grad_a, None, None, None


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    with warnings.catch_warnings():                                  # torch calls its sparse CSR support "beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, (n, n))
