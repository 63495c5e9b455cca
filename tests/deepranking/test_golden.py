"""Golden features and relevance (Sec. 5 of Deep Ranking, xmlib.deepranking.golden): the formula in a
plain loop (float32 and float64 features), the concept bonus, elementwise vs dense forms, on a tiny fake
emoji benchmark; and the block-mean golden feature of Fashion-MNIST."""

from __future__ import annotations

import numpy as np
import pytest

from tests.data.emoji_fake import cheap_features, make_fake_corpus
from xmlib.data.benchmarks import emoji as E
from xmlib.data.sources.fashion_mnist import FashionMNIST
from xmlib.deepranking.golden import GoldenRelevance, block_mean_golden, golden_vectors


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden_fake")
    return E.build("default", out_dir=root / "bench", seed=3, roots=make_fake_corpus(root / "src"),
                   feature_fn=cheap_features)


@pytest.fixture
def fake(built):
    """A fresh load per test (tests change ``bench.cnn``)."""
    return E.load(built)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_golden_relevance(fake, dtype):
    bench = fake
    bench.cnn = bench.cnn.astype(dtype)
    golden = GoldenRelevance.of(bench)  # w_cnn = w_color = 1/2, w_concept = 0
    idx = np.arange(len(bench.meta))
    r = golden.relevance_matrix(idx)
    assert np.allclose(r, r.T)
    cat = bench.category
    assert (r[cat[:, None] != cat[None, :]] == 0).all()
    assert (np.diag(r) == 0).all() and (r >= 0).all()
    # against the formula in a plain loop
    f = bench.cnn.astype(np.float64)
    h = bench.color_hist.astype(np.float64)
    for i in range(0, len(idx), 5):
        for j in range(len(idx)):
            want = 0.0
            if cat[i] == cat[j] and i != j:
                cos = f[i] @ f[j] / np.linalg.norm(f[i]) / np.linalg.norm(f[j])
                want = 0.5 * cos + 0.5 * np.sum(np.sqrt(h[i] * h[j]))
            assert r[i, j] == pytest.approx(want, rel=1e-5, abs=1e-6)
    tot = golden.total_relevance(bench.train_idx)
    assert np.allclose(tot, r[np.ix_(bench.train_idx, bench.train_idx)].sum(1))


def test_concept_weight_and_elementwise_relevance(fake):
    bench = fake
    g1 = GoldenRelevance.of(bench)
    b2 = GoldenRelevance.of(bench, concept=1.0)
    assert b2.w_concept == 1.0 and g1.w_concept == 0.0
    q = bench.test_triplets[0]
    assert b2.relevance(q[0], q[1]) == pytest.approx(g1.relevance(q[0], q[1]) + 1.0)
    assert b2.relevance(q[0], q[2]) == pytest.approx(g1.relevance(q[0], q[2]))
    # elementwise pairs agree with the dense matrix, for broadcast index arrays too
    idx = np.arange(len(bench.meta))
    for b in (g1, b2):
        full = b.relevance_matrix(idx)
        assert np.allclose(b.relevance(idx[:, None], idx[None, :]), full)
        rng = np.random.default_rng(0)
        i, j = rng.integers(0, len(idx), 40), rng.integers(0, len(idx), 40)
        assert np.allclose(b.relevance(i, j), full[i, j])
    # a changed weight is seen by the golden vectors
    b3 = GoldenRelevance.of(bench, cnn=0.0, color=1.0)
    assert np.allclose(b3.golden[:, :bench.cnn.shape[1]], 0)




def test_fashion_golden():
    rng = np.random.default_rng(0)
    fm = FashionMNIST(rng.integers(0, 256, (5, 28, 28)).astype(np.uint8), np.arange(5), np.array(["train"] * 5),
                      tuple("abcdefghij"))
    g = block_mean_golden(fm.images, 14)
    assert g.shape == (5, 196) and np.allclose(np.linalg.norm(g, axis=1), 1, atol=1e-5) and (g >= 0).all()
    want = fm.images[0].reshape(14, 2, 14, 2).mean(axis=(1, 3)).ravel()
    assert np.allclose(g[0], want / np.linalg.norm(want), atol=1e-6)


def test_golden_vectors_dot_product_is_the_weighted_mix(fake):
    g = golden_vectors(fake.cnn, fake.color_hist, w_cnn=0.3, w_color=0.7)
    f = fake.cnn.astype(np.float64)
    h = fake.color_hist.astype(np.float64)
    for i, j in ((0, 1), (2, 7), (5, 5)):
        cos = f[i] @ f[j] / np.linalg.norm(f[i]) / np.linalg.norm(f[j])
        assert float(g[i].astype(np.float64) @ g[j]) == pytest.approx(0.3 * cos + 0.7 * np.sum(np.sqrt(h[i] * h[j])),
                                                                      rel=1e-5)
    with pytest.raises(ValueError, match="w_color"):
        golden_vectors(fake.cnn, fake.color_hist, w_cnn=0.5, w_color=-1.0)
