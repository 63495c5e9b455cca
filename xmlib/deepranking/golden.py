"""Golden features and relevance of Deep Ranking (Sec. 5 of Wang et al., CVPR 2014), chapter "Where relevance comes from".

The paper's relevance r_ij comes from a "golden feature", a weighted combination of learned and
hand-made features too expensive to use at query time, with r_ij = 0 across categories. On the emoji
benchmark (:mod:`xmlib.data.benchmarks.emoji`) the golden vector of image i is::

    g_i = [ sqrt(w_cnn) * f_i / |f_i| ,  sqrt(w_color) * sqrt(h_i) ]

with f_i the ImageNet-pretrained EfficientNet-Lite0 pooled feature (1280-d, ReLU6 output so f >= 0)
and h_i the colour histogram (sums to 1; in the chapter :math:numref:`eq-dr-golden`), so g_i . g_j = w_cnn cos(f_i, f_j) + w_color BC(h_i, h_j)
lies in [0, w_cnn + w_color] (BC: Bhattacharyya coefficient). Then::

    r_ij = [c_i = c_j] [i != j] ( g_i . g_j + w_concept [concept_i = concept_j] )

with c = category (the CLDR subcategory). ``w_concept = 0`` is the paper's rule (golden features
only); ``w_concept > 0`` adds the designers' judgement (the same emoji drawn by another designer) of
the training concepts to the teacher signal. The total relevance r_i = sum_j r_ij drives query
sampling (Sec. 5.1; :mod:`xmlib.deepranking.sampler`).

- :func:`golden_vectors` — g_i (float32).
- :class:`GoldenRelevance` — r_ij, dense blocks and totals; :meth:`GoldenRelevance.of` builds it from a
  loaded benchmark, :meth:`GoldenRelevance.from_config` with the chapter's weights
  (``golden_alpha`` = w_cnn, 1 − ``golden_alpha`` = w_color, ``golden_concept`` = w_concept).
- :func:`block_mean_golden` — a cheap hand-made golden feature for Fashion-MNIST (the sampler at scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["golden_vectors", "GoldenRelevance", "block_mean_golden"]


def _l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _check_weights(w_cnn: float, w_color: float, w_concept: float = 0.0) -> None:
    for name, w in (("w_cnn", w_cnn), ("w_color", w_color), ("w_concept", w_concept)):
        if not w >= 0:
            raise ValueError(f"{name} = {w!r}: weights of the golden relevance must be >= 0")
    if not w_cnn + w_color > 0:
        raise ValueError(f"w_cnn + w_color = {w_cnn + w_color!r}: must be > 0 (the golden vector would be 0)")


def golden_vectors(cnn: np.ndarray, color_hist: np.ndarray, w_cnn: float = 0.5, w_color: float = 0.5) -> np.ndarray:
    """Golden vectors g_i (the first equation of the module docstring, Sec. 5): float32 (N, D + B).

    cnn: (N, D) pretrained features f_i (>= 0); color_hist: (N, B) colour histograms h_i (rows sum to 1);
    w_cnn, w_color: the weights, so that g_i . g_j = w_cnn cos(f_i, f_j) + w_color BC(h_i, h_j).
    """
    _check_weights(w_cnn, w_color)
    return np.concatenate([math.sqrt(w_cnn) * _l2n(cnn),
                           math.sqrt(w_color) * np.sqrt(np.asarray(color_hist).astype(np.float64))],
                          axis=1).astype(np.float32)


@dataclass(frozen=True)
class GoldenRelevance:
    """r_ij over a set of images (see the module docstring).

    golden: float32 (N, D) golden vectors g_i; category: int (N,) c_i; concept_id: int (N,) the concept
    (the same for the designers of one emoji); w_concept: the bonus of the same concept.
    """

    golden: np.ndarray
    category: np.ndarray
    concept_id: np.ndarray
    w_concept: float = 0.0

    @classmethod
    def of(cls, bench, *, cnn: float = 0.5, color: float = 0.5, concept: float = 0.0) -> "GoldenRelevance":
        """From a loaded benchmark (``cnn``, ``color_hist``, ``category``, ``concept_id``) with the weights
        w_cnn = ``cnn``, w_color = ``color``, w_concept = ``concept``."""
        _check_weights(cnn, color, concept)
        return cls(golden_vectors(bench.cnn, bench.color_hist, cnn, color), np.asarray(bench.category),
                   np.asarray(bench.concept_id), float(concept))

    @classmethod
    def from_config(cls, bench, cfg) -> "GoldenRelevance":
        """With the weights of a :class:`~xmlib.deepranking.config.Config`: w_cnn = ``golden_alpha``,
        w_color = 1 − ``golden_alpha``, w_concept = ``golden_concept``."""
        return cls.of(bench, cnn=cfg.golden_alpha, color=1.0 - cfg.golden_alpha, concept=cfg.golden_concept)

    def _mask(self, r: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Add w_concept for the same concept; 0 across categories and for i = j."""
        cid, cat = self.concept_id, self.category
        r = r + self.w_concept * (cid[i] == cid[j])
        return np.where((cat[i] == cat[j]) & (i != j), np.maximum(r, 0.0), 0.0)

    def relevance(self, i: np.ndarray | int, j: np.ndarray | int) -> np.ndarray:
        """r_ij for index arrays ``i``, ``j`` (broadcast against each other): float64 of their shape."""
        i, j = np.broadcast_arrays(np.asarray(i, np.int64), np.asarray(j, np.int64))
        fi, fj = i.ravel(), j.ravel()
        g = self.golden
        r = np.empty(fi.size)
        for s in range(0, fi.size, 1 << 14):                              # (chunk, D) at a time
            a, b = fi[s:s + (1 << 14)], fj[s:s + (1 << 14)]
            r[s:s + len(a)] = np.einsum("nd,nd->n", g[a].astype(np.float64), g[b].astype(np.float64))
        return self._mask(r, fi, fj).reshape(i.shape)

    def relevance_matrix(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Dense r_ij for i in ``rows``, j in ``cols`` (default ``rows``): float64 (n, m)."""
        rows = np.asarray(rows, np.int64)
        cols = rows if cols is None else np.asarray(cols, np.int64)
        g = self.golden
        r = g[rows].astype(np.float64) @ g[cols].astype(np.float64).T     # (n, m)
        return self._mask(r, rows[:, None], cols[None, :])

    def total_relevance(self, idx: np.ndarray) -> np.ndarray:
        """r_i = sum_j r_ij over the pool ``idx`` (e.g. the training images), computed per category: (n,)."""
        idx = np.asarray(idx, np.int64)
        out = np.zeros(len(idx))
        cat = self.category[idx]
        for c in np.unique(cat):
            pos = np.flatnonzero(cat == c)
            out[pos] = self.relevance_matrix(idx[pos]).sum(1)
        return out


def block_mean_golden(images: np.ndarray, side: int = 14) -> np.ndarray:
    """A cheap hand-made golden feature for small greyscale images (Fashion-MNIST): L2-normalised
    block-mean ``side`` x ``side`` pixels, float32 (N, side^2), non-negative, so r_ij = g_i . g_j lies in
    [0, 1] within a class. images: uint8 (N, S, S) with ``side`` dividing S."""
    n, s = images.shape[0], images.shape[1]
    if s % side:
        raise ValueError(f"side must divide the image side {s}, got {side}")
    f = s // side
    x = images.reshape(n, side, f, side, f).astype(np.float32).mean(axis=(2, 4)).reshape(n, -1)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)).astype(np.float32)
