"""The linear VSE reference of the SGRAF chapter: pooling, scores, bad input, and that it learns."""

import numpy as np
import pytest
import torch

from xmlib.metrics.retrieval import retrieval_metrics
from xmlib.sgraf.baseline import LinearVSE, LinearVSEConfig, pooled_regions, score_linear_vse, train_linear_vse


def test_pooled_regions_is_the_region_mean_in_chunks():
    x = np.random.default_rng(0).standard_normal((7, 3, 5)).astype(np.float16)
    np.testing.assert_allclose(pooled_regions(x, chunk=2), x.astype(np.float32).mean(axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="region features"):
        pooled_regions(x[:, 0])


def test_scores_are_cosines_of_the_mapped_vectors():
    torch.manual_seed(0)
    m = LinearVSE(5, 4, 3)
    img, txt = np.random.default_rng(1).standard_normal((2, 5)).astype(np.float32), \
        np.random.default_rng(2).standard_normal((10, 4)).astype(np.float32)
    s = score_linear_vse(m, img, txt)
    with torch.no_grad():
        a = m.img(torch.from_numpy(img)).numpy()
        b = m.txt(torch.from_numpy(txt)).numpy()
    ref = np.array([[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
    np.testing.assert_allclose(s, ref, rtol=1e-5, atol=1e-6)


def _toy(n_img, seed, d=12, e=8):
    """Captions are a noisy linear image of their image's feature: learnable, not trivially."""
    rng = np.random.default_rng(seed)
    proj = np.random.default_rng(99).standard_normal((d, e)).astype(np.float32)
    img = rng.standard_normal((n_img, d)).astype(np.float32)
    txt = np.repeat(img @ proj, 5, axis=0) + 0.5 * rng.standard_normal((5 * n_img, e)).astype(np.float32)
    return img, txt


def test_training_beats_the_untrained_model_on_held_out_data():
    train, dev, test = _toy(120, 0), _toy(30, 1), _toy(30, 2)
    cfg = LinearVSEConfig(embed_size=8, batch_size=16, epochs=6, lr=1e-2, max_violation=False)
    torch.manual_seed(cfg.seed)
    before = retrieval_metrics(score_linear_vse(LinearVSE(12, 8, 8), *test))["rsum"]
    model, res = train_linear_vse(cfg, train, dev)
    after = retrieval_metrics(score_linear_vse(model, *test))["rsum"]
    assert len(res.history) == 6
    assert after > before + 100, (before, after)


def test_bad_shapes_and_values_are_named():
    img, txt = _toy(10, 0)
    with pytest.raises(ValueError, match="dev"):
        train_linear_vse(LinearVSEConfig(epochs=1), (img, txt), (img, txt[:-1]))
    with pytest.raises(ValueError, match="embed_size"):
        LinearVSEConfig(embed_size=0)
