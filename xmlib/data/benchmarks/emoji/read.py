"""Reading a built emoji benchmark: :func:`load`, :func:`stats` for the data card and :func:`examples`
(triplets to show)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from xmlib.core.io import load_json_checked
from xmlib.data.benchmarks._build import locate, read_stamp, rebuild_hint
from xmlib.data.benchmarks.emoji.baselines import baseline_precisions
from xmlib.data.benchmarks.emoji.bench import EmojiBenchmark
from xmlib.data.benchmarks.emoji.builder import NAME, VERSION, build
from xmlib.data.benchmarks.emoji.config import PAIR_KINDS, PROFILES, SPLITS, TRIPLET_TYPES, EmojiConfig
from xmlib.data.sources.emoji import DESIGNERS

__all__ = ["load", "stats", "examples"]

_REBUILD = rebuild_hint(NAME)


def load(profile_or_path: str | os.PathLike = "default") -> EmojiBenchmark:
    """A built benchmark in memory. ``profile_or_path``: a profile name (built first if it has no build
    yet) or a built folder; its config and seed come from the folder's stamp."""
    root = locate(NAME, PROFILES, profile_or_path, VERSION, build)
    stamp = read_stamp(root)
    return EmojiBenchmark.read(root, EmojiConfig(**stamp["config"]), int(stamp["seed"]))


def stats(source: EmojiBenchmark | str | os.PathLike = "default", *, with_baselines: bool = True) -> dict[str, Any]:
    """Counts for the data card: concepts, images per designer and split, categories, triplets by
    type and pair kind, and (``with_baselines``) the baselines' similarity precision on val and test
    (:func:`~xmlib.data.benchmarks.emoji.baselines.baseline_precisions`). ``source`` may be a loaded
    benchmark, a profile name or a built folder (then the stored ``stats.json`` is returned)."""
    if not isinstance(source, EmojiBenchmark):
        root = locate(NAME, PROFILES, source, VERSION, build)
        if (root / "stats.json").is_file():
            return load_json_checked(root / "stats.json", fix=_REBUILD)
        source = load(root)
    bench = source
    m = bench.meta
    per_concept = m.groupby("concept")["designer"].nunique()
    concept_split = m.drop_duplicates("concept")["split"]
    out: dict[str, Any] = {
        "images": int(len(m)),
        "image_size": int(bench.images.shape[1]),
        "concepts": int(per_concept.size),
        "concepts_with_2plus_designers": int((per_concept >= 2).sum()),
        "images_per_designer": {d: int((m["designer"] == d).sum()) for d in DESIGNERS},
        "categories": int(m["subcategory"].nunique()),
        "top_level_categories": int(m["category"].nunique()),
        "concepts_per_split": {s: int((concept_split == s).sum()) for s in SPLITS},
        "images_per_split": {s: int((m["split"] == s).sum()) for s in SPLITS},
        "categories_per_split": {s: int(m.loc[m["split"] == s, "subcategory"].nunique()) for s in SPLITS},
    }
    dup_file = Path(bench.root) / "near_duplicates.json"
    if dup_file.is_file():
        out["near_duplicate_concept_pairs_count"] = len(load_json_checked(dup_file, fix=_REBUILD))
    for split in ("val", "test"):
        t, ty, pk = bench.triplets_of(split)
        out[f"{split}_triplets"] = {"total": int(len(t)),
                                    **{n: int((ty == k).sum()) for k, n in enumerate(TRIPLET_TYPES)},
                                    **{n: int((pk == k).sum()) for k, n in enumerate(PAIR_KINDS)}}
    if with_baselines:
        out["baselines"] = {s: baseline_precisions(bench, s) for s in ("val", "test") if len(bench.triplets_of(s)[0])}
    return out


def examples(source: EmojiBenchmark | str | os.PathLike = "default", n: int = 6, *, split: str = "test",
             kind: str | None = None, seed: int = 0) -> tuple[np.ndarray, list[tuple[str, str, str]], list[str]]:
    """``n`` random triplets for a figure: images uint8 (n, 3, S, S, 3) (query, positive, negative),
    labels ``("name · designer", ...)`` per triplet and each triplet's type. ``kind`` picks one type;
    ``source``: a loaded benchmark, a profile name or a built folder."""
    bench = source if isinstance(source, EmojiBenchmark) else load(source)
    t, ty, _ = bench.triplets_of(split)
    pool = np.arange(len(t)) if kind is None else np.flatnonzero(ty == TRIPLET_TYPES.index(kind))
    if len(pool) == 0:
        raise ValueError(f"no {kind or ''} triplets in split {split!r}")
    pick = np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False)
    images = bench.images[t[pick]]                                     # (n, 3, S, S, 3)
    labels = [tuple(bench.label(i) for i in t[k]) for k in pick]
    return images, labels, [TRIPLET_TYPES[ty[k]] for k in pick]
