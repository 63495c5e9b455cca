"""The data card's baselines: similarity precision of features that learn nothing from the benchmark.

Precision is the share of triplets with s(q, p+) > s(q, p-), a tie counting one half (the data
card's convention; the chapters count a tie as incorrect), computed by
:func:`xmlib.metrics.triplets.precision_from_distances`; NaN for a group without triplets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xmlib.data.benchmarks.emoji.config import PAIR_KINDS, TRIPLET_TYPES

if TYPE_CHECKING:
    from xmlib.data.benchmarks.emoji.bench import EmojiBenchmark

__all__ = ["baseline_precisions", "raw_pixels"]


def _precision_or_nan(sim_qp: np.ndarray, sim_qn: np.ndarray) -> float:
    """Precision from similarities (tie = 1/2), NaN when there is no triplet."""
    from xmlib.metrics.triplets import precision_from_distances

    if np.asarray(sim_qp).size == 0:
        return float("nan")
    return precision_from_distances(sim_qp, sim_qn, tie_credit=0.5, higher_is_closer=True)


def _l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def raw_pixels(images: np.ndarray, side: int) -> np.ndarray:
    """Block-mean downsample to side x side, scaled to [0, 1], flattened: float32 (N, side*side*3)."""
    n, s = images.shape[0], images.shape[1]
    if s % side == 0:
        f = s // side
        x = images.reshape(n, side, f, side, f, 3).astype(np.float32).mean(axis=(2, 4))
    else:
        from PIL import Image

        x = np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.BILINEAR)) for im in images])
    return (x.reshape(n, -1) / 255.0).astype(np.float32)


def baseline_precisions(bench: "EmojiBenchmark", split: str = "test") -> dict[str, dict[str, float]]:
    """Similarity precision of model-free baselines on the split's triplets, overall and per type/pair.

    ``cnn``: cosine of the pretrained EfficientNet-Lite0 pooled features; ``color_hist``: Bhattacharyya
    coefficient of the colour histograms (also the feature that mined the negatives, so low by
    construction); ``raw_pixels``: negative squared Euclidean distance of ``raw_size`` px pixels;
    ``golden``: Deep Ranking's golden vectors at equal weights (w_cnn = w_color = 1/2, no concept
    term; :func:`xmlib.deepranking.golden.golden_vectors`).
    """
    from xmlib.deepranking.golden import golden_vectors

    trip, typ, pair = bench.triplets_of(split)
    feats = {
        "cnn": _l2n(bench.cnn),
        "color_hist": np.sqrt(bench.color_hist.astype(np.float64)),
        "golden": golden_vectors(bench.cnn, bench.color_hist, w_cnn=0.5, w_color=0.5).astype(np.float64),
    }
    raw = raw_pixels(bench.images, bench.config.raw_size).astype(np.float64)
    out: dict[str, dict[str, float]] = {}
    q, p, n = trip[:, 0], trip[:, 1], trip[:, 2]
    for name in ("cnn", "color_hist", "raw_pixels", "golden"):
        if name == "raw_pixels":
            sp = -((raw[q] - raw[p]) ** 2).sum(1)
            sn = -((raw[q] - raw[n]) ** 2).sum(1)
        else:
            f = feats[name]
            sp = (f[q] * f[p]).sum(1)
            sn = (f[q] * f[n]).sum(1)
        row = {"all": _precision_or_nan(sp, sn)}
        for t, tname in enumerate(TRIPLET_TYPES):
            row[tname] = _precision_or_nan(sp[typ == t], sn[typ == t])
            for k, kname in enumerate(PAIR_KINDS):
                m = (typ == t) & (pair == k)
                row[f"{tname}/{kname}"] = _precision_or_nan(sp[m], sn[m])
        for k, kname in enumerate(PAIR_KINDS):
            row[kname] = _precision_or_nan(sp[pair == k], sn[pair == k])
        out[name] = row
    return out
