"""Near-duplicate concepts: two concepts one designer draws (nearly) identically, which no one could
tell apart from the pictures (never query and negative of one triplet)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xmlib.data.sources.emoji import DESIGNERS

__all__ = ["near_duplicate_pairs"]


def near_duplicate_pairs(images: np.ndarray, meta: pd.DataFrame, threshold: float) -> list[tuple[str, str]]:
    """Pairs of distinct concepts that one designer draws (nearly) identically: mean absolute pixel
    difference < ``threshold`` (0..255 scale) at the stored size, for any designer. Sorted (a < b).

    E.g. the flags of Norway, Svalbard & Jan Mayen and Bouvet Island are one picture. Such a concept
    is never the negative of the other: no one could rank the pair from the pictures alone.
    """
    if threshold <= 0:
        return []
    concept = meta["concept"].to_numpy()
    out: set[tuple[str, str]] = set()
    s = images.shape[1]
    f = s // 8 if s % 8 == 0 else 1
    for d in DESIGNERS:
        idx = np.flatnonzero(meta["designer"].to_numpy() == d)
        # Block means: their mean absolute difference is a lower bound of the full one (a cheap filter).
        small = images[idx].astype(np.float32).reshape(len(idx), s // f, f, s // f, f, 3).mean(axis=(2, 4))
        small = small.reshape(len(idx), -1)                               # (n, (s/f)^2 * 3)
        for start in range(0, len(idx), 32):
            mad = np.abs(small[start:start + 32, None, :] - small[None, :, :]).mean(-1)   # (32, n)
            for a, b in zip(*np.nonzero(mad < threshold)):
                a += start
                if a >= b:
                    continue
                full = np.abs(images[idx[a]].astype(np.float32) - images[idx[b]].astype(np.float32)).mean()
                if full < threshold and concept[idx[a]] != concept[idx[b]]:
                    out.add(tuple(sorted((str(concept[idx[a]]), str(concept[idx[b]])))))
    return sorted(out)
