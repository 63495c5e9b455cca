"""A plain re-statement of the released DCMM code's training step, for speed comparisons only.

Written from the facts in ``/work/shared/papers/DCMM.md`` and from reading the release (naver/dcmm,
PyTorch Geometric 1.5) for its formulas and loop structure; no code is taken from it. What one
training step of the release does, and what this module repeats:

1. per query (the dataset's transform runs on every access, so every step):
   - the k-NN graph of the query's visual features, k counting the node itself, as an edge list
     (centre i, neighbour j); brute force Euclidean distances here (the release calls
     ``torch_cluster``'s k-NN; its result is the same list);
   - the text features z-scored over the query: (x − mean) / (s + 1e-6), s the sample standard
     deviation (n − 1);
2. the batch's graphs are concatenated into one disconnected graph (node features, visual features,
   labels, a graph id per node; edge lists shifted by each graph's node offset);
3. the model on the concatenated graph: h^0 = MLP(x); text score Linear(c, 1)(h^0); then for every
   convolution: self-loops dropped, W h + b, for each edge the weight α_ij = Σ_d v_i[d] v_j[d]
   (· a[d] for DCMM-edge) from the two endpoints' gathered visual rows, message α_ij (W h_j + b)
   summed into node i; no activation; dropout; finally score += Linear(conv, 1)(h);
4. BPR: each graph's positive and negative scores scattered into dense (graphs, max count)
   tables, every valid (positive, negative) difference, BCE-with-logits against 1, mean.

Visual features are L2-normalised once, v / (||v|| + 1e-6), when the dataset is built (outside the
step), as the release does in its preprocessing.

The parameters are laid out like :class:`xmlib.dcmm.models.DCMM` (``mlp``, ``w0``, ``convs[l].lin``,
``edges[l].a``, ``out``), so :func:`copy_from_xmlib` can load an xmlib model's weights and the two
can be compared score for score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class Graph:
    """One query as the release stores it: raw text features x (n, F), normalised visual x_v (n, D), y (n,)."""

    x: torch.Tensor
    x_v: torch.Tensor
    y: torch.Tensor


@dataclass
class GraphBatch:
    """The concatenated graph of a batch: T nodes, E edges (row 0: centre i, row 1: neighbour j)."""

    x: torch.Tensor           # (T, F) z-scored text features
    x_v: torch.Tensor         # (T, D)
    y: torch.Tensor           # (T,)
    batch: torch.Tensor       # (T,) graph id of each node
    edge_index: torch.Tensor  # (2, E)
    n_graphs: int


def make_graphs(x: list[np.ndarray], visual: list[np.ndarray], rel: list[np.ndarray], dtype=torch.float32) -> list[Graph]:
    """The stored graphs: visual rows divided by (norm + 1e-6) once, as the release's preprocessing does."""
    out = []
    for xt, xv, r in zip(x, visual, rel):
        v = torch.as_tensor(np.asarray(xv), dtype=dtype)
        v = v / (v.norm(dim=1, keepdim=True) + 1e-6)
        out.append(Graph(torch.as_tensor(np.asarray(xt), dtype=dtype), v, torch.as_tensor(np.asarray(r), dtype=dtype)))
    return out


def knn_edges(x_v: torch.Tensor, k: int) -> torch.Tensor:
    """The k nearest nodes of every node (itself included) by Euclidean distance → (2, n·k) edges (i, j)."""
    n = x_v.shape[0]
    sq = (x_v * x_v).sum(1)
    dist = sq[:, None] + sq[None, :] - 2.0 * (x_v @ x_v.T)          # (n, n) squared distances
    dist.fill_diagonal_(float("-inf"))                              # the node itself is always one of them
    kk = min(k, n)
    nbr = dist.topk(kk, dim=1, largest=False).indices               # (n, kk)
    centre = torch.arange(n).repeat_interleave(kk)
    return torch.stack([centre, nbr.reshape(-1)])


def zscore_official(x: torch.Tensor) -> torch.Tensor:
    """(x − mean) / (s + 1e-6) over the nodes, s the sample standard deviation (n − 1)."""
    return (x - x.mean(0)) / (x.std(0, unbiased=True, keepdim=True) + 1e-6)


def transform_and_collate(graphs: list[Graph], k: int) -> GraphBatch:
    """Step 1 (a loop over the queries) and step 2 of the module docstring."""
    xs, vs, ys, ids, edges = [], [], [], [], []
    offset = 0
    for g, graph in enumerate(graphs):
        n = graph.x.shape[0]
        ei = knn_edges(graph.x_v, k)
        xs.append(zscore_official(graph.x))
        vs.append(graph.x_v)
        ys.append(graph.y)
        ids.append(torch.full((n,), g, dtype=torch.long))
        edges.append(ei + offset)
        offset += n
    return GraphBatch(torch.cat(xs), torch.cat(vs), torch.cat(ys), torch.cat(ids), torch.cat(edges, 1), len(graphs))


class OfficialConv(nn.Module):
    """One convolution on an edge list: out_i = Σ_{j ≠ i} α_ij (W h_j + b), summed (no normalisation)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.lin = nn.Linear(c_in, c_out)

    def forward(self, h: torch.Tensor, x_v: torch.Tensor, edge_index: torch.Tensor, a: torch.Tensor | None) -> torch.Tensor:
        keep = edge_index[0] != edge_index[1]                       # self-loops dropped
        i, j = edge_index[0, keep], edge_index[1, keep]
        hw = self.lin(h)                                            # (T, C)
        # PyG lifts node tensors to edges with index_select and sums messages with a scatter-add
        prod = x_v.index_select(0, i) * x_v.index_select(0, j)     # (E, D)
        if a is not None:
            prod = prod * a
        alpha = prod.sum(1, keepdim=True)                           # (E, 1)
        msg = alpha * hw.index_select(0, j)                         # (E, C)
        return torch.zeros_like(hw).index_add_(0, i, msg)           # (T, C)


class EdgeVector(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.rand(dim))


class OfficialDCMM(nn.Module):
    """The released model: MLP (Linear, ReLU, Dropout, Linear), text projection, convolutions each
    followed by dropout (no activation), conv projection."""

    def __init__(self, in_dim: int, hidden: int, conv_channels: int, n_conv: int, *, edge: bool,
                 visual_dim: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Module()
        self.mlp.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))
        self.w0 = nn.Linear(hidden, 1)
        sizes = [hidden] + [conv_channels] * n_conv
        self.convs = nn.ModuleList(OfficialConv(sizes[i], sizes[i + 1]) for i in range(n_conv))
        self.edges = nn.ModuleList(EdgeVector(visual_dim) for _ in range(n_conv)) if edge else None
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(conv_channels, 1)

    def forward(self, g: GraphBatch) -> torch.Tensor:
        h = self.mlp.net(g.x)                                       # (T, c)
        score = self.w0(h)[:, 0]
        for layer, conv in enumerate(self.convs):
            a = None if self.edges is None else self.edges[layer].a
            h = self.drop(conv(h, g.x_v, g.edge_index, a))
        return score + self.out(h)[:, 0]                            # (T,)


def to_dense(values: torch.Tensor, graph_id: torch.Tensor, n_graphs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter per-node values (sorted by graph) into a (graphs, max count) table and its mask."""
    counts = torch.bincount(graph_id, minlength=n_graphs)
    start = torch.cumsum(counts, 0) - counts
    pos = torch.arange(values.shape[0]) - start[graph_id]
    width = int(counts.max()) if values.numel() else 0
    table = values.new_zeros(n_graphs, width)
    table[graph_id, pos] = values
    mask = torch.zeros(n_graphs, width, dtype=torch.bool)
    mask[graph_id, pos] = True
    return table, mask


def official_bpr(scores: torch.Tensor, y: torch.Tensor, graph_id: torch.Tensor, n_graphs: int) -> torch.Tensor:
    """Step 4: every (positive, negative) difference of each graph, BCE-with-logits against 1, mean."""
    pos, pos_mask = to_dense(scores[y == 1], graph_id[y == 1], n_graphs)       # (G, P)
    neg, neg_mask = to_dense(scores[y == 0], graph_id[y == 0], n_graphs)       # (G, Q)
    diff = pos[:, None, :] - neg[:, :, None]                                    # (G, Q, P)
    valid = neg_mask[:, :, None] & pos_mask[:, None, :]
    d = diff[valid]
    return nn.functional.binary_cross_entropy_with_logits(d, torch.ones_like(d))


def train_step(model: OfficialDCMM, graphs: list[Graph], k: int) -> torch.Tensor:
    """One training step of the release on ``graphs`` (steps 1-4), gradients left in ``model``."""
    model.zero_grad(set_to_none=True)
    g = transform_and_collate(graphs, k)
    loss = official_bpr(model(g), g.y, g.batch, g.n_graphs)
    loss.backward()
    return loss.detach()


@torch.no_grad()
def copy_from_xmlib(model: OfficialDCMM, xm: nn.Module) -> OfficialDCMM:
    """Load the weights of an :class:`xmlib.dcmm.models.DCMM` built with the official switches."""
    missing = model.load_state_dict(xm.state_dict(), strict=True)
    del missing
    return model
