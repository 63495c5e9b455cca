import numpy as np
import pytest
import torch
from skimage.feature import hog as sk_hog

from xmlib.deepranking.baselines import OASIS, colour_histogram, haar_2d, haar_wavelet, hog, raw_pixels


def images(n=4, side=32, seed=0):
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_raw_pixels_is_area_downsampling():
    x = images()
    f = raw_pixels(x, size=16)
    assert f.shape == (4, 3 * 256)
    np.testing.assert_allclose(f[0, :16], x[0, 0, :2, :].reshape(2, 16, 2).mean(axis=(0, 2)).numpy(), rtol=1e-12)


def test_colour_histogram_by_hand():
    x = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    x[0, 0, 0, 0] = 1.0  # one red pixel, three black
    x[0, :, 1, 1] = 1.0  # one white pixel
    h = colour_histogram(x, bins=2)
    assert h.shape == (1, 8) and h.sum() == pytest.approx(1.0)
    assert h[0, 0] == 0.5 and h[0, 4] == 0.25 and h[0, 7] == 0.25  # cell = (r·2 + g)·2 + b
    h2 = colour_histogram(x, bins=2, ignore_white=0.9)
    assert h2[0, 7] == 0.0 and h2[0, 0] == pytest.approx(2 / 3)


def test_haar_is_orthonormal_and_matches_a_hand_case():
    a = np.array([[1.0, 3.0], [5.0, 7.0]])
    c = haar_2d(a)
    # rows: [(1+3), (1−3)]/√2, [(5+7), (5−7)]/√2; then columns
    np.testing.assert_allclose(c, [[8.0, -2.0], [-4.0, 0.0]], atol=1e-12)
    x = np.random.default_rng(0).normal(size=(3, 8, 8))
    np.testing.assert_allclose(np.linalg.norm(haar_2d(x).reshape(3, -1), axis=1), np.linalg.norm(x.reshape(3, -1), axis=1))
    const = haar_2d(np.full((8, 8), 2.0))
    assert const[0, 0] == pytest.approx(16.0) and np.abs(const.ravel()[1:]).max() < 1e-12


def test_haar_signature_keeps_signs_of_largest_coefficients():
    f = haar_wavelet(images(), size=16, keep=10).reshape(4, 3, 256)
    assert np.all(np.count_nonzero(f[..., 1:], axis=-1) == 10)
    assert set(np.unique(f[..., 1:])) <= {-1.0, 0.0, 1.0}
    np.testing.assert_allclose(f[..., 0], raw_pixels(images(), 16).reshape(4, 3, 256).mean(-1), rtol=1e-12)


def test_hog_matches_skimage():
    x = images(2, 64)
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).numpy()
    ref = sk_hog(grey[1], orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")
    np.testing.assert_allclose(hog(x, size=64)[1], ref)


def test_oasis_pa_step_by_hand_and_learning():
    o = OASIS(2, c=10.0)
    p, pos, neg = np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 0.0])
    loss = o.step(p, pos, neg)  # S(p,p+) = 0, S(p,p−) = 1 → l = 2; V = p (p+ − p−)ᵀ, ‖V‖² = 2 → τ = 1
    assert loss == 2.0
    np.testing.assert_allclose(o.W, np.eye(2) + np.outer(p, pos - neg))
    assert o.step(p, pos, neg) == pytest.approx(0.0)  # now S(p,p+) − S(p,p−) = 1
    # learning: a bilinear relevance x_q[0]·x_a[0] carried by dimension 0 only, noise in the others
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    x[:, 0] *= 0.3
    trip = []
    for _ in range(3000):
        q, a, b = rng.choice(200, 3, replace=False)
        if x[q, 0] * x[a, 0] < x[q, 0] * x[b, 0]:
            a, b = b, a
        trip.append((q, a, b))
    trip = np.array(trip)

    def prec(model, t):
        s = model.similarity(x, x)
        return np.mean(s[t[:, 0], t[:, 1]] > s[t[:, 0], t[:, 2]])

    before = prec(OASIS(6), trip[2000:])
    after = prec(OASIS(6, c=0.1).fit(x, trip[:2000]), trip[2000:])
    assert after > before + 0.1
