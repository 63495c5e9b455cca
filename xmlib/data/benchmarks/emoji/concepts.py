"""The emoji benchmark's concepts: the records :mod:`xmlib.data.sources.emoji` finds drawn by all
three designers, outside the excluded categories (and, for a subset, inside the chosen subcategories)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from xmlib.data.benchmarks.emoji.config import EmojiConfig
from xmlib.data.sources.emoji import DESIGNERS, read_emoji

__all__ = ["read_concepts"]


def read_concepts(roots: Mapping[str, str | Path] | None, cfg: EmojiConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """The benchmark's concepts (one row each, in emoji-datasource's ``sort_order``) and match counts.

    ``roots`` maps the assets ``emoji-google``, ``emoji-twitter``, ``openmoji`` to extracted folders
    (None: the fetched assets). Columns: concept (matching key), unified, name, category, subcategory,
    and per designer the source file path. Counts: the reader's (records, drawn by Google and Twitter,
    matched exactly / without FE0F, ambiguous), ``matched``, ``excluded_category`` and ``concepts``.
    """
    records, counts = read_emoji(roots)
    counts = dict(counts, excluded_category=0)
    rows = []
    for c in records:
        if set(c.files) != set(DESIGNERS):
            continue
        if c.category in cfg.exclude_categories:
            counts["excluded_category"] += 1
            continue
        if cfg.subcategories and c.subcategory not in cfg.subcategories:
            continue
        rows.append({"concept": c.concept, "unified": c.unified, "name": c.name, "category": c.category,
                     "subcategory": c.subcategory, **{d: c.files[d] for d in DESIGNERS}})
    counts["matched"] = counts["matched_exact"] + counts["matched_without_fe0f"]
    if cfg.subcategories:
        unknown = sorted(set(cfg.subcategories) - {r["subcategory"] for r in rows})
        if unknown:
            raise ValueError(f"EmojiConfig.subcategories names {unknown}, which have no matched concept; "
                             "use CLDR subcategory names such as 'face-smiling' or 'animal-bird'")
    concepts = pd.DataFrame(rows)
    if concepts.empty:
        raise ValueError("no concept is drawn by all three designers in the emoji assets; check the roots= "
                         "folders (each must hold package/...)")
    if concepts["concept"].duplicated().any():
        dup = concepts.loc[concepts["concept"].duplicated(), "unified"].tolist()[:5]
        raise ValueError(f"two emoji.json records share a code point sequence after removing FE0F: {dup}")
    counts["concepts"] = len(concepts)
    return concepts.reset_index(drop=True), counts
