"""Golden relevance ``r_ij`` (Sec. 4 of Wang et al., CVPR 2014), chapter "Where the relevance comes from".

The paper scores pairs inside a category with a "golden feature": a weighted mix of hand-made and
learned features, too expensive to compute online, and uses it only to build training triplets. Ours:

    s_ij = α · max(0, cos(c_i, c_j)) + (1 − α) · Σ_b min(h_i[b], h_j[b])

with c the pretrained ConvNet's pooled features and h colour histograms normalised to sum 1 (the
second term is the histogram intersection). Both terms lie in [0, 1], so ``s_ij ∈ [0, 1]``. The golden
relevance is ``r_ij = s_ij`` for images of the same category (i ≠ j) and 0 otherwise.
``golden_similarity`` (all pairs, no category mask) is also the "Golden Features" baseline of Table 1.
"""

from __future__ import annotations

import numpy as np

from xmlib.deepranking.sampler import CategoryRelevance


def _check(cnn: np.ndarray, hist: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    cnn = np.asarray(cnn, dtype=np.float64)
    hist = np.asarray(hist, dtype=np.float64)
    if cnn.ndim != 2 or hist.ndim != 2 or len(cnn) != len(hist):
        raise ValueError(f"{name}: expected (N, F) ConvNet features and (N, B) histograms with the same N, "
                         f"got {cnn.shape} and {hist.shape}")
    if (hist < 0).any():
        raise ValueError(f"{name}: histograms must be non-negative")
    return cnn, hist


def golden_similarity(cnn_a, hist_a, cnn_b, hist_b, alpha: float = 0.5) -> np.ndarray:
    """All-pairs golden similarity ``s_ij`` (n, m) in [0, 1].

    Args:
        cnn_a: (n, F) and cnn_b: (m, F) ConvNet features.
        hist_a: (n, B) and hist_b: (m, B) colour histograms (each row is normalised to sum 1 here).
        alpha: α, the weight of the ConvNet cosine.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    cnn_a, hist_a = _check(cnn_a, hist_a, "a")
    cnn_b, hist_b = _check(cnn_b, hist_b, "b")
    na = cnn_a / np.maximum(np.linalg.norm(cnn_a, axis=1, keepdims=True), 1e-12)
    nb = cnn_b / np.maximum(np.linalg.norm(cnn_b, axis=1, keepdims=True), 1e-12)
    cos = np.clip(na @ nb.T, 0.0, 1.0)  # (n, m)
    ha = hist_a / np.maximum(hist_a.sum(1, keepdims=True), 1e-12)
    hb = hist_b / np.maximum(hist_b.sum(1, keepdims=True), 1e-12)
    inter = np.zeros((len(ha), len(hb)))
    for start in range(0, len(ha), 256):  # chunks keep the (n, m, B) intermediate small
        inter[start:start + 256] = np.minimum(ha[start:start + 256, None, :], hb[None, :, :]).sum(-1)
    return alpha * cos + (1.0 - alpha) * inter


def golden_relevance(cnn, hist, categories, alpha: float = 0.5) -> CategoryRelevance:
    """Golden relevance r_ij within each category (0 across categories and on the diagonal).

    Args:
        cnn: (N, F) ConvNet features; hist: (N, B) colour histograms; categories: (N,) ids.
    """
    cnn, hist = _check(cnn, hist, "golden_relevance")
    cats = np.asarray(categories)
    if cats.shape != (len(cnn),):
        raise ValueError(f"categories must have shape ({len(cnn)},), got {cats.shape}")
    return CategoryRelevance.from_function(
        cats, lambda rows, cols: golden_similarity(cnn[rows], hist[rows], cnn[cols], hist[cols], alpha))
