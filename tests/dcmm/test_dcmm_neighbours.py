"""DCMM-edge's weights on neighbour lists (xmlib.dcmm.neighbours) against plain loops and against the dense
form: k-NN lists, the sampled weights (values and gradient), the model's scores and gradients, and the
dense weights cut to each query's length."""

import pytest
import torch

from xmlib.dcmm.batching import pad_queries
from xmlib.dcmm.config import OFFICIAL_CODE, Config
from xmlib.dcmm.data import make_synthetic_queries
from xmlib.dcmm.graph import knn_adjacency, knn_neighbours, neighbours_to_adjacency
from xmlib.dcmm.layers import EdgeWeights
from xmlib.dcmm.loss import bpr_loss
from xmlib.dcmm.models import DCMM, build_model
from xmlib.dcmm.neighbours import edge_weights_on_neighbours, neighbour_weights_to_dense

DTYPES = [torch.float32, torch.float64]
CPU = torch.device("cpu")


def tol(dtype):
    return {} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 0}


def batch(dtype, n_queries=4, n_docs=14, visual_dim=10, seed=5):
    qs = make_synthetic_queries(n_queries, n_docs, seed=seed, visual_dim=visual_dim, ragged=True)
    return qs, pad_queries(qs, device=CPU, dtype=dtype)


@pytest.mark.parametrize("self_loops", [True, False])
def test_knn_neighbours_are_the_lists_of_the_adjacency(self_loops):
    qs, data = batch(torch.float64)
    index, valid = knn_neighbours(data.sim, data.mask, 9, self_loops)      # 9 > the shortest list (7)
    adj = knn_adjacency(data.sim, data.mask, 9, self_loops)
    assert index.shape[-1] == (9 if self_loops else 8)
    if self_loops:
        assert torch.equal(index[..., 0], torch.arange(data.mask.shape[1]).expand(len(qs), -1))   # i itself first
    for b, q in enumerate(qs):
        for i in range(data.mask.shape[1]):
            got = {j for j, ok in zip(index[b, i].tolist(), valid[b, i].tolist()) if ok}
            assert got == set(torch.nonzero(adj[b, i]).flatten().tolist()), (b, i)
            assert len(got) == (0 if i >= len(q) else min(9, len(q)) - (0 if self_loops else 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("self_loops", [True, False])
def test_edge_weights_on_neighbours_equal_the_plain_sum(dtype, self_loops):
    qs, data = batch(dtype)
    torch.manual_seed(0)
    a = torch.rand(3, 10, dtype=dtype)
    index, valid = knn_neighbours(data.sim, data.mask, 9, self_loops)
    w = edge_weights_on_neighbours(data.visual, index, valid, a)           # (3, B, N, m)
    for layer in range(3):
        for b in range(len(qs)):
            for i in range(data.mask.shape[1]):
                for t, j in enumerate(index[b, i].tolist()):
                    vi, vj = data.visual[b, i], data.visual[b, j]
                    want = (vi * a[layer] * vj).sum() if valid[b, i, t] else torch.zeros((), dtype=dtype)
                    torch.testing.assert_close(w[layer, b, i, t], want, **tol(dtype))


def test_edge_weights_on_neighbours_gradient_is_exact():
    _, data = batch(torch.float64, n_queries=3, n_docs=9, visual_dim=6)
    index, valid = knn_neighbours(data.sim, data.mask, 4, False)
    a = torch.rand(2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: edge_weights_on_neighbours(data.visual, index, valid, a), (a,))
    with pytest.raises(ValueError, match="constant"):
        edge_weights_on_neighbours(data.visual.requires_grad_(), index, valid, a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("self_loops", [True, False])
def test_list_weights_scattered_are_the_dense_g(dtype, self_loops):
    _, data = batch(dtype)
    torch.manual_seed(0)
    ew = EdgeWeights(data.visual.shape[-1]).to(dtype)
    index, valid = knn_neighbours(data.sim, data.mask, 4, self_loops)
    adj = knn_adjacency(data.sim, data.mask, 4, self_loops)
    assert torch.equal(neighbours_to_adjacency(index, valid), adj)
    w = edge_weights_on_neighbours(data.visual, index, valid, ew.a[None].detach())[0]
    torch.testing.assert_close(neighbour_weights_to_dense(w, index), ew(data.visual, adj), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("official", [False, True])
def test_model_lists_and_dense_forms_agree_in_scores_and_gradients(dtype, official, monkeypatch):
    _, data = batch(dtype, n_docs=16, visual_dim=12, seed=6)
    cfg = Config(hidden=6, conv_channels=5, n_conv=3, k=3, dropout=0.0, **(OFFICIAL_CODE if official else {}))
    torch.manual_seed(0)
    model = build_model("dcmm-edge", cfg, in_dim=4, visual_dim=12).to(dtype)
    results = []
    for lists_below in (1, 10 ** 6):                          # neighbour lists, then dense
        monkeypatch.setattr(DCMM, "LISTS_BELOW", lists_below)
        assert model.uses_lists(data.mask.shape[1]) == (lists_below == 1)
        model.zero_grad()
        scores = model(data)
        bpr_loss(scores, data.rel, data.mask).backward()
        results.append((scores.detach(), [p.grad.clone() for p in model.parameters()]))
    (s1, g1), (s2, g2) = results
    torch.testing.assert_close(s1, s2, **tol(dtype))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_edge_weights_cut_to_each_query_equal_the_padded_ones(dtype):
    """EdgeWeights with ``lengths`` (each query's block computed at its own size, the form DCMM uses on
    ragged batches) = the same without ``lengths`` = one query at a time."""
    qs, data = batch(dtype)
    torch.manual_seed(0)
    ew = EdgeWeights(10).to(dtype)
    adj = knn_adjacency(data.sim, data.mask, 0)
    cut = ew(data.visual, adj, data.mask.sum(1).tolist())
    torch.testing.assert_close(cut, ew(data.visual, adj), **tol(dtype))
    for b, q in enumerate(qs):
        one = pad_queries([q], device=CPU, dtype=dtype)
        torch.testing.assert_close(cut[b, : len(q), : len(q)], ew(one.visual, knn_adjacency(one.sim, one.mask, 0))[0],
                                   **tol(dtype))
        assert cut[b, len(q):].abs().sum() == 0 and cut[b, :, len(q):].abs().sum() == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_on_lists_batched_equals_one_query_at_a_time(dtype, monkeypatch):
    qs, data = batch(dtype, n_docs=16, visual_dim=12, seed=7)
    monkeypatch.setattr(DCMM, "LISTS_BELOW", 1)
    torch.manual_seed(0)
    model = build_model("dcmm-edge", Config(hidden=6, conv_channels=5, k=3, **OFFICIAL_CODE), in_dim=4,
                        visual_dim=12).to(dtype).eval()
    with torch.no_grad():
        batched = model(data)
        for b, q in enumerate(qs):
            torch.testing.assert_close(batched[b, : len(q)], model(pad_queries([q], device=CPU, dtype=dtype))[0], **tol(dtype))
