"""Clipart queries: curator folders with enough drawings, their texts and flags, binary relevance,
the smoke subset, and the seeded folds over query ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from xmlib.data.benchmarks.clipart.corpus import ClipartImage

if TYPE_CHECKING:
    from xmlib.data.benchmarks.clipart.builder import ClipartConfig

__all__ = ["NOT_QUERIES", "QUERY_NAMES", "ClipartQuery", "is_relevant", "query_text", "select_queries",
           "smoke_subset", "query_folds"]

#: Folders never used as queries (a name that means nothing to a searcher).
NOT_QUERIES: tuple[str, ...] = ("signs_and_symbols/flags/miscellany",)

FLAG_ROOT = "signs_and_symbols/flags"
#: Sub-folders of the flag folder whose relevance is appearance, not geography (not flagged).
FLAG_NON_GEOGRAPHIC = frozenset({"historic", "navy", "pirates", "semaphore", "miscellany"})

#: Hand-written readable query texts; any other query is its leaf name with "_"/"-" as spaces.
QUERY_NAMES: dict[str, str] = {
    "animals/mammals/big_cats": "big cats",
    "animals/mammals/housecats": "house cats",
    "computer/buttons": "web buttons",
    "computer/folders": "folder icons",
    "computer/hardware": "computer hardware",
    "electronics/bulb": "light bulbs",
    "food/breads_and_carbs": "bread",
    "food/meats_and_eggs": "meat and eggs",
    "geography/astronomy": "astronomy",
    "people/bodypart": "body parts",
    "people/smilies": "smileys",
    "people/stickmen": "stick figures",
    "recreation/games/cards": "playing cards",
    "recreation/games/cards/cardbacks": "card backs",
    "recreation/holiday": "holidays",
    "shapes/callouts": "speech bubbles",
    "shapes/flowchart": "flowchart symbols",
    "shapes/jigsaw": "jigsaw pieces",
    "signs_and_symbols/map_symbols": "map symbols",
    "signs_and_symbols/flags/africa": "flags of africa",
    "signs_and_symbols/flags/america": "flags of the americas",
    "signs_and_symbols/flags/america/canada": "flags of canada",
    "signs_and_symbols/flags/america/united_states": "flags of the united states",
    "signs_and_symbols/flags/asia": "flags of asia",
    "signs_and_symbols/flags/europe": "flags of europe",
    "signs_and_symbols/flags/europe/france": "flags of france",
    "signs_and_symbols/flags/europe/germany": "flags of germany",
    "signs_and_symbols/flags/europe/spain": "flags of spain",
    "signs_and_symbols/flags/europe/italy": "flags of italy",
    "signs_and_symbols/flags/europe/united_kingdom": "flags of the united kingdom",
    "signs_and_symbols/flags/oceania": "flags of oceania",
    "signs_and_symbols/flags/oceania/australia": "flags of australia",
    "signs_and_symbols/flags/historic": "historic flags",
    "signs_and_symbols/flags/semaphore": "semaphore flags",
    "transportation/aiga-symbols": "transport pictograms",
    "transportation/boating": "boats",
    "transportation/roadsigns": "road signs",
    "tools/weapons": "weapons",
}



@dataclass(frozen=True)
class ClipartQuery:
    """One query: ``qid``, the curator ``folder`` it stands for, its ``text``, and ``flag`` (a
    country/region flag folder)."""

    qid: str
    folder: str
    text: str
    flag: bool



def is_relevant(image_folders: Iterable[str], query_folder: str) -> bool:
    """Binary relevance: one of the image's folders is ``query_folder`` or lies below it."""
    return any(f == query_folder or f.startswith(query_folder + "/") for f in image_folders)


def _is_flag_folder(folder: str) -> bool:
    if not folder.startswith(FLAG_ROOT + "/"):
        return False
    return not (set(folder[len(FLAG_ROOT) + 1:].split("/")) & FLAG_NON_GEOGRAPHIC)


def query_text(folder: str) -> str:
    """The query text of a folder: :data:`QUERY_NAMES` or the leaf name with ``_``/``-`` as spaces."""
    if folder in QUERY_NAMES:
        return QUERY_NAMES[folder]
    return " ".join(folder.rsplit("/", 1)[-1].replace("_", " ").replace("-", " ").lower().split())


def select_queries(images: Sequence[ClipartImage], *, min_images: int = 10,
                   not_queries: Sequence[str] = NOT_QUERIES) -> list[ClipartQuery]:
    """Folders below the top level with at least ``min_images`` drawings in their subtree.

    Query ids are ``c01``, ``c02``, ... in folder order.
    """
    folders = sorted({f for im in images for f in im.folders})
    candidates = set()
    for f in folders:  # every ancestor below the top level is a potential query
        parts = f.split("/")
        for i in range(2, len(parts) + 1):
            candidates.add("/".join(parts[:i]))
    chosen = []
    for f in sorted(candidates):
        if f in not_queries:
            continue
        n = sum(is_relevant(im.folders, f) for im in images)
        if n >= min_images:
            chosen.append(f)
    width = max(2, len(str(len(chosen))))
    return [ClipartQuery(f"c{i + 1:0{width}d}", f, query_text(f), _is_flag_folder(f)) for i, f in enumerate(chosen)]


def query_folds(qids: Sequence[str], n_folds: int = 5, seed: int = 0) -> list[list[str]]:
    """Split query ids into ``n_folds`` folds (the MediaEval format's seeded
    :func:`~xmlib.data.formats.mediaeval.make_query_folds`); each fold sorted.

    A partition (every id in exactly one fold, sizes differ by at most one), the same for the same
    ``(set of ids, n_folds, seed)``.
    """
    from xmlib.data.formats.mediaeval import make_query_folds

    return [sorted(f) for f in make_query_folds(list(qids), n_folds, seed)]


def smoke_subset(images: list[ClipartImage], queries: list[ClipartQuery], cfg: "ClipartConfig",
                 seed: int) -> tuple[list[ClipartImage], list[ClipartQuery]]:
    """The ``smoke`` subset: ``max_queries`` non-flag queries with at most ``smoke_max_relevant`` images,
    and a collection of their relevant images plus a seeded sample of others, ``max_collection`` in all."""
    rng = np.random.default_rng([seed, 8])
    pool = [q for q in queries if not q.flag
            and sum(is_relevant(im.folders, q.folder) for im in images) <= cfg.smoke_max_relevant]
    if len(pool) < cfg.max_queries:
        pool = list(queries)
    k = min(cfg.max_queries, len(pool))
    chosen = [pool[i] for i in sorted(rng.choice(len(pool), k, replace=False))]
    keep = {i for i, im in enumerate(images) if any(is_relevant(im.folders, q.folder) for q in chosen)}
    rest = np.array([i for i in range(len(images)) if i not in keep])
    n_more = max(0, min(len(rest), cfg.max_collection - len(keep)))
    keep |= set(rng.choice(rest, n_more, replace=False).tolist()) if n_more else set()
    return [images[i] for i in sorted(keep)], chosen
