"""Colour histograms of the emoji pictures (a model-independent feature: it mines the in-class
negatives and is one of the data card's baselines) and their Bhattacharyya coefficient."""

from __future__ import annotations

import numpy as np

__all__ = ["color_histograms", "bhattacharyya"]


def color_histograms(images: np.ndarray, bins: int = 6, white_threshold: int = 240) -> np.ndarray:
    """Joint RGB histograms of the non-background pixels: float32 (N, bins^3), each row sums to 1.

    images: uint8 (N, S, S, 3). A pixel whose three channels are all >= ``white_threshold`` is
    background and not counted; an image with no foreground pixel gets the histogram of all its pixels.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, S, S, 3), got {images.dtype} {images.shape}")
    n = images.shape[0]
    q = (images.astype(np.int64) * bins) // 256                      # (N, S, S, 3) levels 0..bins-1
    cell = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]          # (N, S, S)
    fg = ~(images >= white_threshold).all(axis=-1)                    # (N, S, S)
    out = np.zeros((n, bins ** 3), dtype=np.float64)
    for i in range(n):
        mask = fg[i] if fg[i].any() else np.ones_like(fg[i])
        out[i] = np.bincount(cell[i][mask], minlength=bins ** 3)
    out /= out.sum(axis=1, keepdims=True)
    return out.astype(np.float32)


def bhattacharyya(h: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficients BC(h_i, h_j) = sum_k sqrt(h_ik h_jk) for i in ``rows``, j in ``cols``:
    float64 (len(rows), len(cols)), in [0, 1] for histograms that sum to 1."""
    s = np.sqrt(h.astype(np.float64))
    return s[rows] @ s[cols].T                                         # (len(rows), len(cols))
