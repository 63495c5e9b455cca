"""Table 1 baselines of Deep Ranking (Wang et al., CVPR 2014), chapter "Baselines".

Hand-made features, each a function ``images (N, 3, H, W) in [0, 1] → (N, D) float64`` compared with
squared Euclidean distance unless said otherwise:

- :func:`raw_pixels` — the image area-downsampled to ``size``², flattened.
- :func:`colour_histogram` — joint RGB histogram with ``bins``³ cells, normalised to sum 1.
- :func:`haar_wavelet` — a truncated, quantised 2-D Haar signature (after Jacobs, Finkelstein & Salesin
  1995): per channel the mean plus the signs of the ``keep`` largest-magnitude Haar coefficients. (The
  full orthonormal transform would give the same distances as raw pixels.)
- :func:`hog` — histogram of oriented gradients of the grey image (``skimage.feature.hog``).
- :class:`OASIS` — a bilinear similarity ``S_W(p, q) = pᵀ W q`` learned from triplets by
  passive-aggressive updates (Chechik et al., JMLR 2010), on any of the features above.

The "pretrained ConvNet features" row uses :func:`xmlib.deepranking.network.convnet_features`; the
"golden features" row uses the golden vectors (:func:`xmlib.deepranking.golden.golden_vectors`, the dot
product of which is r_ij within a category).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _images(images) -> np.ndarray:
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W) RGB in [0, 1], got shape {x.shape}")
    return x.astype(np.float64)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(x)
    if tuple(t.shape[-2:]) == (size, size):
        return x
    return F.interpolate(t, size=(size, size), mode="area" if t.shape[-1] >= size else "bilinear").numpy()


def raw_pixels(images, size: int = 16) -> np.ndarray:
    """Raw pixels: (N, 3·size²)."""
    return _resize(_images(images), size).reshape(len(images), -1)


def colour_histogram(images, bins: int = 8, ignore_white: float | None = None) -> np.ndarray:
    """Joint RGB histogram (N, bins³), rows sum to 1.

    ``ignore_white``: drop pixels whose three channels all exceed this value (a white background); an
    image with no pixel left gets a uniform histogram.
    """
    x = _images(images)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    q = np.clip((x * bins).astype(np.int64), 0, bins - 1)  # (N, 3, H, W)
    cell = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]  # (N, H, W)
    out = np.zeros((len(x), bins ** 3))
    for n in range(len(x)):
        c = cell[n].ravel()
        if ignore_white is not None:
            c = c[~(x[n] > ignore_white).all(axis=0).ravel()]
        out[n] = np.bincount(c, minlength=bins ** 3) if len(c) else 1.0
    return out / out.sum(axis=1, keepdims=True)


def haar_2d(a: np.ndarray) -> np.ndarray:
    """Full orthonormal 2-D Haar decomposition of square arrays (..., n, n), n a power of 2 (standard
    decomposition: all levels along rows, then along columns)."""
    n = a.shape[-1]
    if a.shape[-2] != n or n & (n - 1):
        raise ValueError(f"haar_2d needs square power-of-2 arrays, got {a.shape[-2:]}")
    out = a.astype(np.float64).copy()
    for axis in (-1, -2):
        m = n
        while m > 1:
            part = np.moveaxis(out, axis, -1)[..., :m].copy()
            avg = (part[..., 0::2] + part[..., 1::2]) / np.sqrt(2.0)
            dif = (part[..., 0::2] - part[..., 1::2]) / np.sqrt(2.0)
            view = np.moveaxis(out, axis, -1)
            view[..., : m // 2] = avg
            view[..., m // 2 : m] = dif
            m //= 2
    return out


def haar_wavelet(images, size: int = 32, keep: int = 40) -> np.ndarray:
    """Truncated, quantised Haar signature (N, 3·size²): per channel the overall mean at [0, 0] and
    ±1 at the ``keep`` largest-magnitude detail coefficients, 0 elsewhere."""
    x = _resize(_images(images), size)  # (N, 3, s, s)
    coef = haar_2d(x).reshape(len(x), 3, -1)  # (N, 3, s²)
    sig = np.zeros_like(coef)
    sig[..., 0] = coef[..., 0] / size  # channel mean
    detail = np.abs(coef[..., 1:])
    k = min(keep, detail.shape[-1])
    top = np.argpartition(-detail, k - 1, axis=-1)[..., :k] + 1  # (N, 3, k)
    np.put_along_axis(sig, top, np.sign(np.take_along_axis(coef, top, axis=-1)), axis=-1)
    return sig.reshape(len(x), -1)


def hog(images, size: int = 64, orientations: int = 9, pixels_per_cell: int = 8, cells_per_block: int = 2) -> np.ndarray:
    """HOG of the grey image resized to ``size``² (scikit-image, L2-Hys block normalisation)."""
    from skimage.feature import hog as sk_hog

    x = _resize(_images(images), size)
    grey = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]  # (N, s, s)
    return np.stack([
        sk_hog(g, orientations=orientations, pixels_per_cell=(pixels_per_cell,) * 2,
               cells_per_block=(cells_per_block,) * 2, block_norm="L2-Hys", feature_vector=True)
        for g in grey
    ])


class OASIS:
    """Online Algorithm for Scalable Image Similarity (Chechik et al. 2010): ``S_W(p, q) = pᵀ W q``.

    For a triplet (p, p+, p−) with hinge ``l_W = max(0, 1 − S_W(p, p+) + S_W(p, p−))`` the
    passive-aggressive step is ``W ← W + τ V`` with ``V = p (p+ − p−)ᵀ`` and
    ``τ = min(C, l_W / ‖V‖²_F)``. W starts at the identity.

    Args:
        dim: feature size D (W is D × D).
        c: aggressiveness C.
    """

    def __init__(self, dim: int, c: float = 0.1):
        if c <= 0:
            raise ValueError(f"C must be > 0, got {c}")
        self.c = c
        self.W = np.eye(dim)
        self.updates = 0

    def step(self, p: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
        """One PA update on a triplet of feature vectors; returns the hinge before the update."""
        diff = pos - neg  # (D,)
        loss = max(0.0, 1.0 - float(p @ self.W @ diff))
        if loss > 0:
            v_norm2 = float(p @ p) * float(diff @ diff)  # ‖p diffᵀ‖²_F
            if v_norm2 > 0:
                tau = min(self.c, loss / v_norm2)
                self.W += tau * np.outer(p, diff)
                self.updates += 1
        return loss

    def fit(self, features, triplets) -> "OASIS":
        """One pass of PA updates over ``triplets`` (T, 3) indices into ``features`` (N, D)."""
        x = np.asarray(features, dtype=np.float64)
        t = np.asarray(triplets.as_array() if hasattr(triplets, "as_array") else triplets, dtype=np.int64)
        if x.shape[1] != self.W.shape[0]:
            raise ValueError(f"features have {x.shape[1]} dims, OASIS was built with dim={self.W.shape[0]}")
        for q, p, n in t:
            self.step(x[q], x[p], x[n])
        return self

    def similarity(self, a, b) -> np.ndarray:
        """``S_W(a_i, b_j)`` for all pairs: (n, m)."""
        return np.asarray(a, dtype=np.float64) @ self.W @ np.asarray(b, dtype=np.float64).T

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``−S_W`` as a torch (n, m) "distance" for :mod:`xmlib.metrics.triplets`."""
        w = torch.as_tensor(self.W, dtype=a.dtype)
        return -(a @ w @ b.T)
