"""Evaluation triplets (p_i, p_i+, p_i-) of the emoji benchmark, on held-out concepts.

For each held-out concept c and each ordered designer pair (A, B), A != B (6 pairs; ``pairs="cross"``
keeps only the 4 with OpenMoji, the line-art style), with q = image(c, A), p = image(c, B):

- ``in_class`` (hard): n = the nearest neighbour of q under the colour histogram (Bhattacharyya
  coefficient) among the split's images of *other concepts of the same subcategory* (any designer);
- ``out_of_class``: n = an image of another subcategory, uniform from the seed
  (``out_of_class="random"``, the paper's choice) or the colour nearest neighbour there
  (``out_of_class="color_nn"``).

A near-duplicate concept of c (:mod:`~xmlib.data.benchmarks.emoji.duplicates`) is never c's
negative. Each triplet also carries its *pair kind*: ``cross_style`` (OpenMoji with Google or
Twitter) or ``same_style`` (Google with Twitter).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from xmlib.data.benchmarks.emoji.config import PAIR_KINDS, SPLITS, EmojiConfig
from xmlib.data.benchmarks.emoji.histograms import bhattacharyya
from xmlib.data.sources.emoji import DESIGNERS

__all__ = ["make_triplets"]


def make_triplets(meta: pd.DataFrame, hist: np.ndarray, split: str, cfg: EmojiConfig,
                  seed: int, duplicates: Sequence[tuple[str, str]] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation triplets of one split: (T, 3) int64 image ids, type (T,) int8, pair kind (T,) int8.

    See the module docstring for the rules; concept pairs in ``duplicates`` (see
    :func:`near_duplicate_pairs`) are never query and negative. Deterministic from ``seed`` (only the
    random out-of-class negatives use it).
    """
    sel = meta[meta["split"] == split]
    if sel.empty:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int8), np.zeros(0, np.int8)
    rng = np.random.default_rng([seed, SPLITS.index(split), 7])
    ids = sel["image_id"].to_numpy()
    cat = sel["category_id"].to_numpy()
    concept = sel["concept"].to_numpy()
    by = {(c, d): i for i, c, d in zip(ids, concept, sel["designer"])}
    designer_pairs = [(a, b) for a in DESIGNERS for b in DESIGNERS if a != b]
    if cfg.pairs == "cross":
        designer_pairs = [(a, b) for a, b in designer_pairs if "openmoji" in (a, b)]
    trip, typ, pair = [], [], []
    # Nearest colour neighbour of every query among the split's images (two candidate pools).
    bc = bhattacharyya(hist, ids, ids)                                # (n, n)
    same_cat = cat[:, None] == cat[None, :]
    other_concept = concept[:, None] != concept[None, :]
    if len(duplicates):
        codes, inv = np.unique(concept, return_inverse=True)
        pos = {c: k for k, c in enumerate(codes)}
        dup = np.zeros((len(codes), len(codes)), dtype=bool)
        for a, b in duplicates:
            if a in pos and b in pos:
                dup[pos[a], pos[b]] = dup[pos[b], pos[a]] = True
        other_concept &= ~dup[inv[:, None], inv[None, :]]
    in_pool = same_cat & other_concept
    out_pool = ~same_cat & other_concept
    # argmax over the pool; ties -> lowest image id (ids are sorted ascending)
    in_nn = np.where(in_pool.any(1), np.where(in_pool, bc, -np.inf).argmax(1), -1)
    out_nn = np.where(out_pool.any(1), np.where(out_pool, bc, -np.inf).argmax(1), -1)
    pos_of = {int(i): k for k, i in enumerate(ids)}
    for c in pd.unique(concept):
        for a, b in designer_pairs:
            q, p = int(by[(c, a)]), int(by[(c, b)])
            k = pos_of[q]
            kind = PAIR_KINDS.index("cross_style" if "openmoji" in (a, b) else "same_style")
            if in_nn[k] >= 0:
                trip.append((q, p, int(ids[in_nn[k]])))
                typ.append(0)
                pair.append(kind)
            if out_pool[k].any():
                if cfg.out_of_class == "color_nn":
                    n = int(ids[out_nn[k]])
                else:
                    n = int(rng.choice(ids[out_pool[k]]))
                trip.append((q, p, n))
                typ.append(1)
                pair.append(kind)
    return (np.asarray(trip, dtype=np.int64).reshape(-1, 3), np.asarray(typ, dtype=np.int8),
            np.asarray(pair, dtype=np.int8))
