import numpy as np
import pytest

from xmlib.deepranking.golden import golden_relevance, golden_similarity


def test_golden_similarity_against_loop():
    rng = np.random.default_rng(0)
    cnn = rng.normal(size=(7, 5))
    hist = rng.random((7, 4))
    got = golden_similarity(cnn, hist, cnn, hist, alpha=0.3)
    for i in range(7):
        for j in range(7):
            cos = cnn[i] @ cnn[j] / np.linalg.norm(cnn[i]) / np.linalg.norm(cnn[j])
            hi, hj = hist[i] / hist[i].sum(), hist[j] / hist[j].sum()
            ref = 0.3 * max(0.0, cos) + 0.7 * sum(min(a, b) for a, b in zip(hi, hj))
            assert got[i, j] == pytest.approx(ref, abs=1e-12)
    assert np.all((got >= 0) & (got <= 1 + 1e-12))
    np.testing.assert_allclose(np.diag(got), 0.3 + 0.7, rtol=1e-12)


def test_golden_relevance_is_masked_by_category():
    rng = np.random.default_rng(1)
    cats = np.array([0, 1, 0, 1, 1, 2, 0])
    cnn, hist = rng.random((7, 5)), rng.random((7, 4))
    rel = golden_relevance(cnn, hist, cats, alpha=0.5)
    full = golden_similarity(cnn, hist, cnn, hist, 0.5)
    for i in range(7):
        for j in range(7):
            expect = full[i, j] if cats[i] == cats[j] and i != j else 0.0
            assert rel(i, j) == pytest.approx(expect)
    assert rel.total[5] == 0.0  # alone in its category
    with pytest.raises(ValueError, match="categories"):
        golden_relevance(cnn, hist, cats[:3])
    with pytest.raises(ValueError, match="alpha"):
        golden_similarity(cnn, hist, cnn, hist, alpha=2.0)
