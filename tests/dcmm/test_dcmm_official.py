"""The two released-code switches of DCMM, each alone against the release's formulas written out plainly:
``zscore_ddof`` (the z-score) and ``conv_dropout`` (dropout after every convolution)."""

import math

import numpy as np
import pytest
import torch

from xmlib.core.config import ConfigError
from xmlib.dcmm.batching import pad_queries
from xmlib.dcmm.config import OFFICIAL_CODE, Config
from xmlib.dcmm.data import make_synthetic_queries
from xmlib.dcmm.graph import knn_adjacency
from xmlib.dcmm.loss import bpr_loss
from xmlib.dcmm.models import DCMM, build_model
from xmlib.dcmm.protocol import switch_configs

DTYPES = [torch.float32, torch.float64]
CPU = torch.device("cpu")


def tol(dtype):
    return {} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 0}


# ----------------------------------------------------------------------------------------- z-score
def release_zscore(x: np.ndarray) -> np.ndarray:
    """The release's per-query transform, one feature at a time: (x − mean) / (s + 1e-6), s with n − 1."""
    n, F = x.shape
    out = np.empty_like(x)
    for f in range(F):
        col = [float(v) for v in x[:, f]]
        mean = sum(col) / n
        s = math.sqrt(sum((v - mean) ** 2 for v in col) / (n - 1))
        out[:, f] = [(v - mean) / (s + 1e-6) for v in col]
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_zscore_ddof1_is_the_release_formula(dtype):
    qs = make_synthetic_queries(4, 12, seed=3, visual_dim=8, ragged=True)
    qs[1].text[:, 2] = 7.0                                    # a constant feature: 0 in both forms
    data = pad_queries(qs, device=CPU, dtype=dtype, zscore_ddof=1)
    for b, q in enumerate(qs):
        want = release_zscore(q.text.astype(np.float64))
        torch.testing.assert_close(data.text[b, : len(q)], torch.tensor(want, dtype=dtype), **tol(dtype))
        assert data.text[b, len(q):].abs().sum() == 0         # padding stays 0
    assert data.text[1, : len(qs[1]), 2].abs().max() == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_zscore_default_is_unchanged_population_std(dtype):
    qs = make_synthetic_queries(3, 10, seed=2, visual_dim=8, ragged=True)
    data = pad_queries(qs, device=CPU, dtype=dtype)
    other = pad_queries(qs, device=CPU, dtype=dtype, zscore_ddof=1)
    for b, q in enumerate(qs):
        x = q.text.astype(np.float64)
        want = (x - x.mean(0)) / x.std(0, ddof=0)
        torch.testing.assert_close(data.text[b, : len(q)], torch.tensor(want, dtype=dtype), **tol(dtype))
        # the two differ by the factor sqrt((n − 1) / n) (and the 1e-6): the switch changes something
        assert not torch.allclose(data.text[b, : len(q)], other.text[b, : len(q)])


def test_zscore_ddof1_reaches_the_extra_feature_and_the_config():
    qs = make_synthetic_queries(2, 9, seed=1, visual_dim=8, ragged=True)
    data = pad_queries(qs, device=CPU, dtype=torch.float64)
    feat = data.s_text * 2.0 + 1.0
    ext = data.with_extra_feature(feat, True, 1)
    for b, q in enumerate(qs):
        want = release_zscore(feat[b, : len(q), None].numpy())[:, 0]
        torch.testing.assert_close(ext.text[b, : len(q), -1], torch.tensor(want, dtype=torch.float64), atol=1e-10, rtol=0)
    with pytest.raises(ConfigError, match="zscore_ddof"):
        Config(zscore_ddof=2).validate()
    assert OFFICIAL_CODE["zscore_ddof"] == 1 and Config().zscore_ddof == 0


# ----------------------------------------------------------------------------------------- dropout
def release_forward(model: DCMM, data, p: float, seed: int) -> torch.Tensor:
    """The released model's forward in train mode, written out: h^0 = MLP(x) (its own dropout), text
    score; each conv Σ_{j ∈ N_i, j ≠ i} g_ij (W h_j + b) by a loop over nodes and neighbours, no
    activation, then dropout with rate p; score += Linear(h). The dropout masks are drawn in the
    release's order (MLP, then one per conv) from ``seed``."""
    torch.manual_seed(seed)
    h = model.mlp(data.text)                                  # (B, N, c), train mode: draws the MLP mask
    s = model.w0(h)[..., 0]
    adj = knn_adjacency(data.sim, data.mask, model.k, self_loops=False)
    B, N, _ = adj.shape
    for layer, conv in enumerate(model.convs):
        W, bias = conv.lin.weight, conv.lin.bias
        out = torch.zeros(B, N, W.shape[0], dtype=h.dtype)
        for b in range(B):
            for i in range(N):
                for j in torch.nonzero(adj[b, i]).flatten().tolist():
                    vi, vj = data.visual[b, i], data.visual[b, j]
                    g = (vi * vj).sum() if model.edges is None else (vi * vj * model.edges[layer].a).sum()
                    out[b, i] = out[b, i] + g * (W @ h[b, j] + bias)
        h = torch.nn.functional.dropout(out, p, training=True)
    return (s + model.out(h)[..., 0]) * data.mask.to(s.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("g", ["cos", "edge"])
def test_conv_dropout_follows_every_conv_as_in_the_release(dtype, g):
    qs = make_synthetic_queries(3, 9, seed=0, visual_dim=12, ragged=True)
    data = pad_queries(qs, device=CPU, dtype=dtype)
    p = 0.3
    torch.manual_seed(1)
    model = DCMM(4, g=g, visual_dim=12, hidden=5, conv_channels=4, n_conv=2, k=4, dropout=p, conv_relu=False,
                 self_loops=False, conv_bias=True, conv_dropout=True).to(dtype).train()
    torch.manual_seed(7)
    got = model(data)
    want = release_forward(model, data, p, seed=7)
    torch.testing.assert_close(got, want, **tol(dtype))
    # the same weights without the switch: the same scores in eval mode, other scores in train mode
    plain = DCMM(4, g=g, visual_dim=12, hidden=5, conv_channels=4, n_conv=2, k=4, dropout=p, conv_relu=False,
                 self_loops=False, conv_bias=True).to(dtype)
    plain.load_state_dict(model.state_dict())
    plain.train()
    torch.manual_seed(7)
    assert not torch.allclose(plain(data), got)
    model.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(data), plain(data), rtol=0, atol=0)


def test_conv_dropout_zeroes_conv_channels_in_train_mode_only():
    """With conv_dropout the last conv's output is masked before the projection: some channels of h
    are exactly 0 in train mode, none in eval mode (no ReLU, as in the release)."""
    data = pad_queries(make_synthetic_queries(2, 10, seed=4, visual_dim=8), device=CPU)
    model = build_model("dcmm-cos", Config(hidden=6, conv_channels=6, k=4, dropout=0.5, conv_relu=False, conv_dropout=True),
                        in_dim=4, visual_dim=8)
    seen = []
    model.out.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    torch.manual_seed(0)
    model.train()(data)
    model.eval()(data)
    assert (seen[0] == 0).float().mean() > 0.2 and (seen[1] == 0).sum() == 0


def test_switch_ablation_has_one_row_per_official_switch():
    variants = switch_configs(Config())
    assert {"conv_dropout=True", "zscore_ddof=1", "official code", "paper"} <= set(variants)
    assert variants["official code"].conv_dropout and variants["official code"].zscore_ddof == 1
    assert not variants["paper"].conv_dropout and variants["paper"].zscore_ddof == 0
    assert variants["zscore_ddof=1"].replace(zscore_ddof=0) == variants["paper"]


# ----------------------------------------------------------------------------------------- BPR pairs
@pytest.mark.parametrize("dtype", DTYPES)
def test_bpr_pairs_between_positives_and_negatives_equal_all_node_pairs(dtype):
    """The loss forms its pairs from each query's positives and negatives moved to the front; the pair
    terms are those of the (B, N, N) pair mask, in the same order, so the mean is the same number."""
    from xmlib.dcmm.loss import pair_mask
    from xmlib.losses import bpr_loss as pair_terms

    qs = make_synthetic_queries(5, 13, seed=8, visual_dim=4, ragged=True)
    data = pad_queries(qs, device=CPU, dtype=dtype)
    scores = (torch.randn(data.mask.shape, dtype=dtype) * 2).requires_grad_()
    for reduction in ("mean", "sum"):
        want = pair_terms((scores[:, :, None] - scores[:, None, :])[pair_mask(data.rel, data.mask)], reduction)
        got = bpr_loss(scores, data.rel, data.mask, reduction)
        assert got.item() == want.item()
        g_want, = torch.autograd.grad(want, scores)
        g_got, = torch.autograd.grad(got, scores)
        torch.testing.assert_close(g_got, g_want, **tol(dtype))
