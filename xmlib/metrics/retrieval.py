"""Recall at K for image–text matching (the SCAN / SGRAF evaluation protocol).

Input: a score matrix S of shape (N_img, c·N_img), S[i, j] = similarity of image i and caption j,
caption j belonging to image ``j // c`` (c = 5 captions per image).

- image → text (i2t): the rank of the image's **best-ranked** own caption among all captions;
- text → image (t2i): the rank of the caption's image among all images;
- R@K = % of queries whose rank is < K (ranks are 0-based internally); rSum = the six R@K summed;
  medr = ``floor(median(rank)) + 1`` and meanr = ``mean(rank) + 1`` (1-based, as SCAN reports them).

Ties count against the query: a negative that scores exactly as high as the positive is ranked above
it (so a constant score matrix gets R@1 = 0, not a lucky 100).

Protocols: Flickr30K 1K is :func:`retrieval_metrics` on the 1000 × 5000 test matrix; COCO "5K" is the
same on ``testall``; COCO "1K" (:func:`coco_1k`) averages the five 1000-image folds and computes rSum
from the **averaged** R@K (the SCAN-family summary prints a wrong fold-5 rSum).

Uncertainty: :func:`recall_hits` gives each query's hits (images for i2t, captions for t2i); the
replication engine (:mod:`xmlib.replication`) resamples them, and the training seeds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

KS = (1, 5, 10)


def _as_numpy(scores: np.ndarray | torch.Tensor, captions_per_image: int) -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (N_img, {captions_per_image}·N_img) matrix, got shape {scores.shape}")
    n_img, n_cap = scores.shape
    if n_cap != captions_per_image * n_img:
        raise ValueError(f"scores has {n_img} images and {n_cap} captions; expected {captions_per_image} captions "
                         f"per image ({captions_per_image * n_img} columns), caption j of image j // {captions_per_image}")
    return scores


def i2t_ranks(scores: np.ndarray | torch.Tensor, captions_per_image: int = 5) -> np.ndarray:
    """(N_img,) 0-based rank of each image's best own caption among all captions."""
    s = _as_numpy(scores, captions_per_image)
    n_img = s.shape[0]
    own = s.reshape(n_img, n_img, captions_per_image)[np.arange(n_img), np.arange(n_img)]  # (N_img, c)
    best = own.max(axis=1)  # (N_img,)
    ge = (s >= best[:, None]).sum(axis=1)  # captions scoring at least the best positive (itself included)
    own_ge = (own >= best[:, None]).sum(axis=1)  # of those, the image's own captions
    return (ge - own_ge).astype(np.int64)


def t2i_ranks(scores: np.ndarray | torch.Tensor, captions_per_image: int = 5) -> np.ndarray:
    """(N_cap,) 0-based rank of each caption's image among all images."""
    s = _as_numpy(scores, captions_per_image)
    n_cap = s.shape[1]
    img = np.arange(n_cap) // captions_per_image
    pos = s[img, np.arange(n_cap)]  # (N_cap,)
    return ((s >= pos[None, :]).sum(axis=0) - 1).astype(np.int64)


def _summary(ranks: np.ndarray, prefix: str, ks: Sequence[int]) -> dict[str, float]:
    out = {f"{prefix}_r{k}": 100.0 * float(np.mean(ranks < k)) for k in ks}
    out[f"{prefix}_medr"] = float(np.floor(np.median(ranks)) + 1)
    out[f"{prefix}_meanr"] = float(np.mean(ranks) + 1)
    return out


def retrieval_metrics(scores: np.ndarray | torch.Tensor, captions_per_image: int = 5,
                      ks: Sequence[int] = KS) -> dict[str, float]:
    """i2t and t2i R@K (%), medr, meanr and rSum (the sum of the R@K) of one score matrix."""
    out = _summary(i2t_ranks(scores, captions_per_image), "i2t", ks)
    out.update(_summary(t2i_ranks(scores, captions_per_image), "t2i", ks))
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in ks)
    return out


def average_metrics(folds: Sequence[dict[str, float]], ks: Sequence[int] = KS) -> dict[str, float]:
    """Mean of every metric over folds, with rSum recomputed from the averaged R@K."""
    if not folds:
        raise ValueError("average_metrics needs at least one fold")
    keys = [k for k in folds[0] if k != "rsum"]
    out = {k: float(np.mean([f[k] for f in folds])) for k in keys}
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in ks)
    return out


def coco_1k(scores: np.ndarray | torch.Tensor, captions_per_image: int = 5, fold_size: int = 1000,
            ks: Sequence[int] = KS) -> dict[str, float]:
    """COCO 1K protocol: metrics of each consecutive ``fold_size``-image block, averaged."""
    s = _as_numpy(scores, captions_per_image)
    n_img = s.shape[0]
    if n_img % fold_size:
        raise ValueError(f"{n_img} images do not split into folds of {fold_size} (COCO testall: 5000 = 5 × 1000)")
    c = captions_per_image
    folds = [retrieval_metrics(s[f:f + fold_size, c * f:c * (f + fold_size)], c, ks) for f in range(0, n_img, fold_size)]
    return average_metrics(folds, ks)


# ------------------------------------------------------------------------------------------------
# Bootstrap confidence intervals over test queries
# ------------------------------------------------------------------------------------------------
def recall_hits(scores: np.ndarray | torch.Tensor, captions_per_image: int = 5,
                ks: Sequence[int] = KS) -> tuple[np.ndarray, np.ndarray]:
    """Per-query hits: i2t (N_img, len(ks)) and t2i (N_cap, len(ks)) booleans, ``rank < K``.

    R@K of a set of queries is 100 × the mean of its column; the replication engine resamples rows.
    """
    r_i2t = i2t_ranks(scores, captions_per_image)
    r_t2i = t2i_ranks(scores, captions_per_image)
    k = np.asarray(ks)[None, :]
    return r_i2t[:, None] < k, r_t2i[:, None] < k
