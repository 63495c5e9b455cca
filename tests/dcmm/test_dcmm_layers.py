"""DCMM building blocks against plain loops: graph, conv (Eq. 5), BPR (Eq. 7), CM (Eqs. 1 and 4)."""

import math

import numpy as np
import pytest
import torch

from xmlib.dcmm.batching import pad_queries, zscore_per_query
from xmlib.dcmm.cm import cm_as_convolution, cm_identity_gap, cm_scores
from xmlib.dcmm.data import make_synthetic_queries
from xmlib.dcmm.graph import full_adjacency, knn_adjacency
from xmlib.dcmm.layers import CrossModalConv, EdgeWeights, cosine_edge_weights
from xmlib.dcmm.loss import bpr_loss

DTYPES = [torch.float32, torch.float64]
CPU = torch.device("cpu")





def batch(dtype, seed=0, n_queries=4, n_docs=12, visual_dim=16):
    qs = make_synthetic_queries(n_queries, n_docs, seed=seed, visual_dim=visual_dim, ragged=True)
    return qs, pad_queries(qs, device=CPU, dtype=dtype)


def loop_knn(sim_q, n, k, self_loops):
    """N_i for one query by sorting each row in Python (node itself first)."""
    nbrs = []
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -sim_q[i][j])
        keep = [i] + others[: (k - 1 if k > 0 else n)]
        nbrs.append({j for j in keep if self_loops or j != i})
    return nbrs


@pytest.mark.parametrize("k", [0, 1, 3, 5, 100])
@pytest.mark.parametrize("self_loops", [True, False])
def test_knn_adjacency_matches_loop(k, self_loops):
    qs, data = batch(torch.float64)
    adj = knn_adjacency(data.sim, data.mask, k, self_loops)
    for b, q in enumerate(qs):
        n = len(q)
        nbrs = loop_knn(data.sim[b].tolist(), n, k, self_loops)
        for i in range(data.mask.shape[1]):
            row = set(torch.nonzero(adj[b, i]).flatten().tolist())
            assert row == (nbrs[i] if i < n else set()), (b, i)
        if 0 < k <= n:
            assert adj[b, :n].sum(-1).tolist() == [k if self_loops else k - 1] * n


def test_full_adjacency_and_padding():
    mask = torch.tensor([[True, True, False]])
    assert full_adjacency(mask, True)[0].tolist() == [[True, True, False], [True, True, False], [False] * 3]
    assert full_adjacency(mask, False)[0].tolist() == [[False, True, False], [True, False, False], [False] * 3]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("edge", ["cos", "edge"])
@pytest.mark.parametrize("relu,bias,degree_norm", [(True, False, False), (False, True, False), (True, True, True)])
def test_conv_matches_loop_over_edges(dtype, edge, relu, bias, degree_norm):
    torch.manual_seed(0)
    qs, data = batch(dtype)
    adj = knn_adjacency(data.sim, data.mask, 4, self_loops=True)
    conv = CrossModalConv(3, 5, conv_relu=relu, conv_bias=bias, degree_norm=degree_norm).to(dtype)
    h = torch.randn(*data.mask.shape, 3, dtype=dtype)
    if edge == "cos":
        g = cosine_edge_weights(data.sim, adj)
    else:
        ew = EdgeWeights(data.visual.shape[-1]).to(dtype)
        g = ew(data.visual, adj)
    out = conv(h, g, adj)
    W = conv.lin.weight
    b_ = conv.lin.bias if bias else torch.zeros(5, dtype=dtype)
    for b in range(len(qs)):
        for i in range(len(qs[b])):
            acc = torch.zeros(5, dtype=dtype)
            deg = 0
            for j in torch.nonzero(adj[b, i]).flatten().tolist():      # loop over edges j -> i
                vi, vj = data.visual[b, i], data.visual[b, j]
                gij = (vi @ vj) if edge == "cos" else (vi * ew.a * vj).sum()
                acc = acc + gij * (W @ h[b, j] + b_)
                deg += 1
            if degree_norm:
                acc = acc / max(deg, 1)
            if relu:
                acc = torch.relu(acc)
            torch.testing.assert_close(out[b, i], acc)


def test_conv_on_hand_checkable_graph():
    # 3 nodes, W = 2, g = [[1, .5, 0], [.5, 1, 0], [0, 0, 1]] (node 2 alone), h = [1, -1, 3]
    conv = CrossModalConv(1, 1, conv_relu=True)
    with torch.no_grad():
        conv.lin.weight.fill_(2.0)
    g = torch.tensor([[[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    h = torch.tensor([[[1.0], [-1.0], [3.0]]])
    out = conv(h, g)[0, :, 0]
    assert out.tolist() == [1.0, 0.0, 6.0]   # 2*(1 - .5), relu(2*(.5 - 1)), 2*3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bpr_matches_loop_over_pairs(dtype, reduction):
    qs, data = batch(dtype)
    scores = torch.randn(*data.mask.shape, dtype=dtype) * 3
    got = bpr_loss(scores, data.rel, data.mask, reduction)
    terms = []
    for b, q in enumerate(qs):
        for i in range(len(q)):
            for j in range(len(q)):
                if q.rel[i] > 0 and q.rel[j] == 0:
                    x = float(scores[b, i] - scores[b, j])
                    terms.append(-math.log(1 / (1 + math.exp(-x))))      # −log σ(s+ − s−)
    want = np.mean(terms) if reduction == "mean" else np.sum(terms)
    torch.testing.assert_close(got, torch.tensor(want, dtype=dtype))


def test_bpr_without_pairs_is_zero_and_differentiable():
    scores = torch.randn(1, 3, requires_grad=True)
    loss = bpr_loss(scores, torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and scores.grad.abs().sum() == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", [1, 3, 5, 50])
def test_cm_is_one_graph_convolution(dtype, K):
    """Eq. (4): a fixed-weight conv on the full graph with τ = top-K reproduces Eq. (1)."""
    qs, data = batch(dtype)
    conv = cm_as_convolution(data.s_text, data.sim, data.mask, K)
    for b, q in enumerate(qs):
        direct = cm_scores(q.text[:, 0], q.visual, K)
        torch.testing.assert_close(conv[b, : len(q)], torch.tensor(direct, dtype=dtype))
        assert conv[b, len(q):].abs().sum() == 0


def test_cm_hand_checked():
    # 3 documents, orthogonal images except d0 ~ d2; K = 1 keeps d0 (s_T = 2)
    s = np.array([2.0, 1.0, 0.5])
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(cm_scores(s, v, 1), [2.0, 0.0, 2.0], atol=1e-5)


def test_zscore_per_query_ignores_padding():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert zscore_per_query(x, mask)[0, :, 0].tolist() == [-1.0, 1.0, 0.0]


def test_cm_identity_gap_is_tiny_and_detects_a_wrong_K():
    qs = make_synthetic_queries(3, 15, seed=4, visual_dim=12, ragged=True)
    assert cm_identity_gap(qs, 5) < 1e-12
    data = pad_queries(qs, device=CPU, dtype=torch.float64)
    wrong = cm_as_convolution(data.s_text, data.sim, data.mask, 4)[0, : len(qs[0])].numpy()
    assert np.abs(wrong - cm_scores(qs[0].text[:, 0], qs[0].visual, 5)).max() > 1e-3
