"""Triplet metrics of Deep Ranking (Wang et al., CVPR 2014, Sec. 6), chapter "Evaluation".

A triplet (q, p+, p−) says p+ is more similar to q than p−. With a distance D:

- **correct** when ``D(q, p+) < D(q, p−)``; a tie counts as **incorrect** (a constant embedding then
  scores 0%, not 50%).
- :func:`similarity_precision` — the fraction of triplets ranked correctly (the paper reports %).
- :func:`precision_from_distances` — the same from precomputed ``D(q, p+)``, ``D(q, p−)`` (or, with
  ``higher_is_closer=True``, similarities); ``tie_credit`` says what a tie is worth (0 here, ½ in the
  emoji benchmark's data card, :func:`xmlib.data.benchmarks.emoji.baseline_precisions`).
- :func:`score_at_top_k` — ``#correct − #incorrect`` over the triplets whose p+ **or** p− is among
  the query's top-K nearest neighbours within its gallery (the paper: K = 30 among the 1,000 images
  retrieved for the same text query; scale K with the gallery when it is smaller, and say so).
  The query itself is never its own neighbour; equal distances are ordered by image index.

Uncertainty: :func:`triplet_outcomes` gives each triplet's contribution (correct, and its ±1/0 share of
score-at-top-K); the replication engine (:mod:`xmlib.replication`) resamples them by cluster (the
query's concept: the triplets of one concept are not independent) and over training seeds.
:func:`scaled_top_k` scales the paper's K = 30 (of a 1,000-image gallery) to another gallery size.

Distances default to squared Euclidean (Eq. 1); pass ``distance(x, y) → (n, m)`` for another (e.g. the
negative of OASIS's bilinear similarity).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from xmlib.distances import squared_euclidean_matrix

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _as_tensor(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t if t.is_floating_point() else t.double()


def _as_triplets(triplets, n: int) -> np.ndarray:
    t = np.asarray(triplets.as_array() if hasattr(triplets, "as_array") else triplets, dtype=np.int64)
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"triplets must be an (T, 3) array of (query, positive, negative) indices, got shape {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= n):
        raise ValueError(f"triplet indices must lie in [0, {n}), got range [{t.min()}, {t.max()}]")
    return t


def triplet_distances(embeddings, triplets, distance: Distance = squared_euclidean_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    """``(D(q, p+), D(q, p−))`` for each triplet: two (T,) tensors.

    Args:
        embeddings: (N, d) features of all images.
        triplets: (T, 3) indices into ``embeddings`` (or a :class:`~xmlib.deepranking.sampler.Triplets`).
    """
    x = _as_tensor(embeddings)
    t = torch.as_tensor(_as_triplets(triplets, len(x)))
    q, p, n = x[t[:, 0]], x[t[:, 1]], x[t[:, 2]]  # (T, d) each
    d_pos = torch.stack([distance(q[k:k + 1], p[k:k + 1])[0, 0] for k in range(len(t))]) if _is_custom(distance) else ((q - p) ** 2).sum(-1)
    d_neg = torch.stack([distance(q[k:k + 1], n[k:k + 1])[0, 0] for k in range(len(t))]) if _is_custom(distance) else ((q - n) ** 2).sum(-1)
    return d_pos, d_neg


def _is_custom(distance: Distance) -> bool:
    return distance is not squared_euclidean_matrix


def precision_from_distances(d_pos, d_neg, tie_credit: float = 0.0, higher_is_closer: bool = False) -> float:
    """Fraction of triplets ranked correctly from per-triplet scores: ``D(q, p+) < D(q, p−)``.

    Args:
        d_pos, d_neg: (T,) ``D(q, p+)`` and ``D(q, p−)`` (array-likes or tensors).
        tie_credit: what a tie counts (0: incorrect, the default of this module; 0.5: a coin flip).
        higher_is_closer: the scores are similarities (``s(q, p+) > s(q, p−)`` is correct).
    Raises ValueError when there is no triplet.
    """
    a = np.asarray(d_pos.detach().cpu() if isinstance(d_pos, torch.Tensor) else d_pos, dtype=np.float64).ravel()
    b = np.asarray(d_neg.detach().cpu() if isinstance(d_neg, torch.Tensor) else d_neg, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"d_pos and d_neg must have the same length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no triplets to evaluate")
    if not 0.0 <= tie_credit <= 1.0:
        raise ValueError(f"tie_credit must be in [0, 1], got {tie_credit}")
    correct = a > b if higher_is_closer else a < b
    return float(np.mean(correct + tie_credit * (a == b)))


def similarity_precision(embeddings, triplets, distance: Distance = squared_euclidean_matrix) -> float:
    """Fraction of triplets with ``D(q, p+) < D(q, p−)`` (ties incorrect), in [0, 1]: the share of
    triplets that satisfy Eq. (2) of Deep Ranking (Sec. 6); in the chapter :math:numref:`eq-dr-constraint`."""
    d_pos, d_neg = triplet_distances(embeddings, triplets, distance)
    return precision_from_distances(d_pos, d_neg)


def neighbour_ranks(embeddings, triplets, gallery=None, distance: Distance = squared_euclidean_matrix) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of p+ and of p− among the query's gallery neighbours (nearest first).

    Args:
        embeddings: (N, d).
        triplets: (T, 3) indices.
        gallery: None (every image is in every query's gallery) or (N,) gallery labels: the query's
            neighbours are the images with its label (the paper: the images retrieved for the same text query).
    Returns:
        two (T,) int arrays; the query is excluded, ties are ordered by image index.
    """
    x = _as_tensor(embeddings)
    t = _as_triplets(triplets, len(x))
    labels = None if gallery is None else np.asarray(gallery)
    if labels is not None and labels.shape != (len(x),):
        raise ValueError(f"gallery must be None or (N,) = ({len(x)},) labels, got shape {labels.shape}")
    rank_p = np.empty(len(t), dtype=np.int64)
    rank_n = np.empty(len(t), dtype=np.int64)
    lab = np.zeros(len(x), dtype=np.int64) if labels is None else labels
    queries = np.unique(t[:, 0])
    for g in np.unique(lab[queries]):  # one gallery at a time: its features are gathered once
        members = np.flatnonzero(lab == g)  # (G,)
        xg = x if labels is None else x[torch.as_tensor(members)]  # (G, d)
        qs = queries[lab[queries] == g]
        for s0 in range(0, len(qs), 256):
            chunk = qs[s0:s0 + 256]
            dist = distance(x[torch.as_tensor(chunk)], xg).numpy()  # (chunk, G)
            for k, q in enumerate(chunk):
                keep = members != q
                _ranks_of_query(t, q, members[keep], dist[k][keep], rank_p, rank_n)
    return rank_p, rank_n


def _ranks_of_query(t: np.ndarray, q: int, cand: np.ndarray, d: np.ndarray, rank_p: np.ndarray,
                    rank_n: np.ndarray) -> None:
    """Fill the ranks of p+ and p− for the triplets of query ``q`` from its gallery ``cand`` (G,) and
    their distances ``d`` (G,) (query excluded)."""
    rows = np.flatnonzero(t[:, 0] == q)
    for which, out in ((1, rank_p), (2, rank_n)):
        for r in rows:
            target = t[r, which]
            pos = np.flatnonzero(cand == target)
            if len(pos) == 0:
                raise ValueError(f"image {target} of triplet {r} is not in query {q}'s gallery")
            d_t = d[pos[0]]
            out[r] = int(np.sum(d < d_t) + np.sum((d == d_t) & (cand < target)))


def score_at_top_k(embeddings, triplets, k: int = 30, gallery=None, distance: Distance = squared_euclidean_matrix) -> int:
    """Score-at-top-K: ``#correct − #incorrect`` among triplets whose p+ or p− is in the query's top-K.

    Args: as :func:`neighbour_ranks`; ``k`` = K (the paper: 30).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rank_p, rank_n = neighbour_ranks(embeddings, triplets, gallery, distance)
    d_pos, d_neg = triplet_distances(embeddings, triplets, distance)
    counted = (rank_p < k) | (rank_n < k)
    correct = (d_pos < d_neg).numpy()
    return int(np.sum(correct & counted) - np.sum(~correct & counted))


def scaled_top_k(gallery_size: int, k: int = 30, reference: int = 1000) -> int:
    """K scaled to a gallery: ``max(1, round(k · gallery_size / reference))`` (the paper: K = 30 of 1,000)."""
    if gallery_size < 1 or k < 1 or reference < 1:
        raise ValueError(f"gallery_size, k and reference must be >= 1, got {gallery_size}, {k}, {reference}")
    return max(1, int(round(k * gallery_size / reference)))


def triplet_outcomes(embeddings, triplets, k: int = 30, gallery=None,
                     distance: Distance = squared_euclidean_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per triplet: ``correct`` (T,) bool and ``top_k`` (T,) int in {−1, 0, +1}, its share of
    score-at-top-K; ``correct.mean()`` is :func:`similarity_precision`, ``top_k.sum()`` is :func:`score_at_top_k`."""
    rank_p, rank_n = neighbour_ranks(embeddings, triplets, gallery, distance)
    d_pos, d_neg = triplet_distances(embeddings, triplets, distance)
    correct = (d_pos < d_neg).numpy()
    counted = (rank_p < k) | (rank_n < k)
    return correct, np.where(counted, np.where(correct, 1, -1), 0)
