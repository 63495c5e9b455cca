"""The emoji benchmark's split: by concept (the three designers of a concept are always on one side),
per subcategory (stratified), from the seed.

A subcategory with n >= 4 concepts gives ``round(test_fraction n)`` (at least 2) concepts to test and,
when n >= 6, ``round(val_fraction n)`` (at least 2) to val, always leaving >= 2 in train; smaller
subcategories stay in train (an in-class test triplet needs two test concepts of a subcategory).
``val`` is for model selection; ``test`` is never looked at in training.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from xmlib.data.benchmarks.emoji.config import EmojiConfig

__all__ = ["split_concepts"]


def split_concepts(subcategory: Sequence[str], cfg: EmojiConfig, seed: int) -> np.ndarray:
    """Split label (``"train"``/``"val"``/``"test"``) per concept, stratified by subcategory."""
    subcategory = np.asarray(subcategory)
    out = np.full(len(subcategory), "train", dtype="<U5")
    for k, sub in enumerate(sorted(set(subcategory.tolist()))):
        idx = np.flatnonzero(subcategory == sub)
        n = len(idx)
        if n < 4:
            continue
        # One generator per subcategory: the split of one subcategory does not depend on the others.
        rng = np.random.default_rng([seed, int(hashlib.sha256(sub.encode()).hexdigest()[:8], 16)])
        perm = idx[rng.permutation(n)]
        n_test = min(max(2, round(cfg.test_fraction * n)), n - 2)
        n_val = 0
        if n >= 6 and cfg.val_fraction > 0:
            n_val = min(max(2, round(cfg.val_fraction * n)), n - n_test - 2)
            n_val = n_val if n_val >= 2 else 0
        out[perm[:n_test]] = "test"
        out[perm[n_test:n_test + n_val]] = "val"
    return out
