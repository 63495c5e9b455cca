"""Eq. (1) and the two attention directions against plain loops over pairs, words and regions."""

import math

import pytest
import torch

from xmlib.sgraf.config import ModelConfig
from xmlib.sgraf.similarity import SimilarityNodes, attend_image_to_text, attend_text_to_image, vector_similarity

DTYPES = [torch.float32, torch.float64]


def unit(*shape, dtype):
    x = torch.randn(*shape, dtype=dtype)
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_similarity_matches_loop(dtype):
    torch.manual_seed(0)
    x, y, w = torch.randn(4, 6, dtype=dtype), torch.randn(4, 6, dtype=dtype), torch.randn(3, 6, dtype=dtype)
    got = vector_similarity(x, y, w)
    for r in range(4):
        v = [sum(w[a, b] * (x[r, b] - y[r, b]) ** 2 for b in range(6)) for a in range(3)]
        norm = math.sqrt(sum(float(t) ** 2 for t in v))
        torch.testing.assert_close(got[r], torch.stack(v) / norm)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(4, dtype=dtype))


def test_vector_similarity_by_hand():
    # x − y = (1, 2) → squares (1, 4); W = [[1, 0], [0, 1], [1, 1]] → (1, 4, 5) / sqrt(42)
    got = vector_similarity(torch.tensor([1.0, 2.0]), torch.zeros(2), torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    torch.testing.assert_close(got, torch.tensor([1.0, 4.0, 5.0]) / math.sqrt(42.0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("leaky", [0.0, 0.1])
def test_text_to_image_attention_matches_loop(dtype, leaky):
    torch.manual_seed(1)
    v, t = unit(2, 3, 4, dtype=dtype), unit(3, 4, 4, dtype=dtype)
    lengths = [4, 2, 3]
    mask = torch.arange(4)[None] < torch.tensor(lengths)[:, None]
    ctx, alpha = attend_text_to_image(v, t, mask, lambda_softmax=9.0, attn_leaky=leaky)
    act = (lambda z: max(z, 0.0)) if leaky == 0 else (lambda z: z if z > 0 else leaky * z)
    for i in range(2):
        for c in range(3):
            n = lengths[c]
            cos = [[float(v[i, r] @ t[c, j]) for j in range(n)] for r in range(3)]  # (K, L_c)
            for r in range(3):
                norm = math.sqrt(sum(act(cos[r][j]) ** 2 for j in range(n)))  # over the words
                cos[r] = [act(z) / norm if norm > 0 else 0.0 for z in cos[r]]  # all ≤ 0 → 0
            for j in range(n):
                e = [math.exp(9.0 * cos[r][j]) for r in range(3)]
                a = [x / sum(e) for x in e]
                torch.testing.assert_close(alpha[i, c, j], torch.tensor(a, dtype=dtype))
                torch.testing.assert_close(ctx[i, c, j], sum(a[r] * v[i, r] for r in range(3)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_image_to_text_attention_matches_loop(dtype):
    torch.manual_seed(2)
    v, t = unit(2, 3, 4, dtype=dtype), unit(2, 4, 4, dtype=dtype)
    lengths = [4, 2]
    mask = torch.arange(4)[None] < torch.tensor(lengths)[:, None]
    ctx, alpha = attend_image_to_text(v, t, mask, lambda_softmax=4.0)
    for i in range(2):
        for c in range(2):
            n = lengths[c]
            cos = [[max(float(v[i, r] @ t[c, j]), 0.0) for j in range(n)] for r in range(3)]
            for j in range(n):  # normalised over the regions
                norm = math.sqrt(sum(cos[r][j] ** 2 for r in range(3)))
                for r in range(3):
                    cos[r][j] = cos[r][j] / norm if norm > 0 else 0.0
            for r in range(3):
                e = [math.exp(4.0 * cos[r][j]) for j in range(n)]
                a = [x / sum(e) for x in e] + [0.0] * (4 - n)
                torch.testing.assert_close(alpha[i, c, r], torch.tensor(a, dtype=dtype))
                torch.testing.assert_close(ctx[i, c, r], sum(a[j] * t[c, j] for j in range(n)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nodes_global_first_and_masked(dtype):
    torch.manual_seed(3)
    nodes = SimilarityNodes(ModelConfig(embed_size=4, sim_dim=5)).to(dtype)
    v, vg, t, tg = unit(2, 3, 4, dtype=dtype), unit(2, 4, dtype=dtype), unit(3, 4, 4, dtype=dtype), unit(3, 4, dtype=dtype)
    mask = torch.arange(4)[None] < torch.tensor([4, 1, 2])[:, None]
    out, node_mask = nodes(v, vg, t, tg, mask)
    assert out.shape == (2, 3, 5, 5) and node_mask.shape == (3, 5)
    assert node_mask[:, 0].all() and node_mask[1].tolist() == [True, True, False, False, False]
    torch.testing.assert_close(out[1, 2, 0], vector_similarity(vg[1], tg[2], nodes.w_global.weight))
    # no padded word: no mask (the aggregators skip masking), the same nodes as with an all-True mask
    full = torch.ones(3, 4, dtype=torch.bool)
    out_full, mask_full = nodes(v, vg, t, tg, full)
    out_none, mask_none = nodes(v, vg, t, tg, None)
    assert mask_full.shape == (3, 5) and mask_full.all() and mask_none is None
    assert torch.equal(out_full, out_none)
    i2t = SimilarityNodes(ModelConfig(embed_size=4, sim_dim=5, attention="i2t")).to(dtype)
    assert i2t(v, vg, t, tg, mask)[1] is None  # its local nodes are the regions: never padded
    scalar = SimilarityNodes(ModelConfig(embed_size=4, sim_dim=5, similarity="scalar", aggregator="average")).to(dtype)
    s_out, _ = scalar(v, vg, t, tg, mask)
    torch.testing.assert_close(s_out[0, 1, 0, 0], vg[0] @ tg[1])
