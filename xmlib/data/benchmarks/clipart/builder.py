"""Building the clipart benchmark: config, profiles and the build into the MediaEval'17 layout."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from xmlib.core.config import BaseConfig
from xmlib.core.io import atomic_write_json
from xmlib.data.benchmarks._build import bench_dir, build_once, check_seed, input_stamps, make_stamp, resolve
from xmlib.data.benchmarks.clipart.corpus import EXCLUDED, scan_corpus
from xmlib.data.benchmarks.clipart.lists import FEATURE_GROUPS, FEATURE_SETS, FEATURES, build_lists
from xmlib.data.benchmarks.clipart.queries import is_relevant, query_folds, select_queries, smoke_subset
from xmlib.data.benchmarks.clipart.text import leak_terms
from xmlib.data.sources import openclipart

__all__ = ["NAME", "VERSION", "ClipartConfig", "PROFILES", "SPLIT", "FEATURE_DIR", "build", "out_dir"]

NAME = "clipart"
#: Bumped when the output changes for the same config (invalidates old builds).
VERSION = 2  # 2: features from the frozen network (xmlib.data.features)
INPUTS = ("openclipart-svg", "openclipart-png")
SPLIT = "train"  # all queries form one split; model selection uses the 5 folds over it
FEATURE_DIR = "efficientnet_lite0_pooled"


@dataclass(frozen=True)
class ClipartConfig(BaseConfig):
    """How the benchmark is built (a profile is a set of values that differ from these defaults).

    n_candidates: N, the first stage's cut-off per query. min_images: drawings a folder's subtree
    needs to be a query. rrf_k: k of reciprocal-rank fusion. n_folds: folds over the queries.
    max_queries / max_collection / smoke_max_relevant: the smoke subset (all ``None`` = the full
    benchmark): ``max_queries`` non-flag queries with at most ``smoke_max_relevant`` relevant images,
    over a sub-collection of ``max_collection`` images (their relevant images plus a seeded sample).
    """

    n_candidates: int = 50
    min_images: int = 10
    rrf_k: int = 60
    n_folds: int = 5
    max_queries: int | None = None
    max_collection: int | None = None
    smoke_max_relevant: int | None = None

    def validate(self) -> None:
        self.require(self.n_candidates >= 2, "n_candidates", "a list needs at least 2 candidates")
        self.require(self.min_images >= 1, "min_images", "must be at least 1")
        self.require(self.rrf_k >= 1, "rrf_k", "must be at least 1 (60 is the usual value)")
        self.require(self.n_folds >= 2, "n_folds", "must be at least 2")
        subset = (self.max_queries, self.max_collection, self.smoke_max_relevant)
        self.require(all(v is None for v in subset) or all(v is not None and v >= 1 for v in subset),
                     "max_queries", "set max_queries, max_collection and smoke_max_relevant together (>= 1), "
                                    "or none of them")


#: ``smoke`` draws 8 non-flag queries of at most 40 images, 20 candidates each, over a 400-image
#: sub-collection, so that it builds in about a minute from an empty feature cache. ``paper`` equals
#: ``default`` (the open data holds no more).
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"n_candidates": 20, "max_queries": 8, "max_collection": 400, "smoke_max_relevant": 40},
    "default": {},
    "paper": {},
}


def out_dir(profile: str = "default") -> Path:
    """``cache_dir()/benchmarks/clipart/<profile>``."""
    return bench_dir(NAME, profile)


def _default_text_encoder(texts: list[str]) -> np.ndarray:
    from xmlib.data.features import text_embeddings

    return np.asarray(text_embeddings(texts, cache_key="clipart"), dtype=np.float32)


def _default_features(paths: list[Path]) -> np.ndarray:
    from xmlib.data.features import image_features

    return np.asarray(image_features(paths, kind="pooled", cache_key="clipart"), dtype=np.float32)


def build(
    profile: str = "default",
    *,
    out_dir: str | os.PathLike | None = None,
    seed: int = 0,
    force: bool = False,
    overrides: Mapping[str, Any] | None = None,
    roots: Mapping[str, str | os.PathLike] | None = None,
    feature_fn: Callable[[list[Path]], np.ndarray] | None = None,
    text_encoder: Callable[[list[str]], np.ndarray] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Build the clipart benchmark for ``profile`` (``smoke`` | ``default`` | ``paper``); return its folder.

    ``out_dir`` defaults to :func:`out_dir` of the profile; ``overrides`` change single config values.
    Built once (:func:`~xmlib.data.benchmarks._build.build_once`): a second call with the same config,
    seed and inputs returns at once (``force=True`` rebuilds). ``roots`` maps ``openclipart-svg`` and
    ``openclipart-png`` to extracted folders (default: the fetched assets); ``feature_fn(paths) ->
    (N, D)`` and ``text_encoder(texts) -> (N, 384)`` replace EfficientNet-Lite0 and MiniLM (tests).
    """
    cfg = resolve(ClipartConfig, PROFILES, NAME, profile, overrides)
    seed = check_seed(seed)
    folders = dict(roots) if roots is not None else openclipart.default_roots()
    svg_root, png_root = openclipart.svg_folder(folders[INPUTS[0]]), openclipart.png_folder(folders[INPUTS[1]])
    # The folders enter meta.json (pictures are found through them), so they are part of the stamp.
    stamp = make_stamp(NAME, VERSION, cfg, seed, input_stamps(INPUTS, roots), excluded=list(EXCLUDED),
                       svg_root=str(svg_root), png_root=str(png_root))
    out = Path(out_dir) if out_dir is not None else bench_dir(NAME, profile)

    def write(folder: Path) -> None:
        _write_benchmark(folder, profile, cfg, seed, svg_root, png_root, text_encoder or _default_text_encoder,
                         feature_fn or _default_features, log or (lambda msg: None))

    return build_once(out, stamp, write, force=force)


def _write_benchmark(out: Path, profile: str, cfg: ClipartConfig, seed: int, svg_root: Path, png_root: Path,
                     text_encoder: Callable, feature_fn: Callable, log: Callable[[str], None]) -> None:
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    corpus = scan_corpus(svg_root)
    images = corpus.images
    timings["scan_svgs"] = time.perf_counter() - t0
    queries = select_queries(images, min_images=cfg.min_images)
    if cfg.max_queries is not None:
        images, queries = smoke_subset(images, queries, cfg, seed)
    leaks = leak_terms(corpus.all_folders)
    t1 = time.perf_counter()
    lists, kws = build_lists(images, queries, leaks, n_candidates=cfg.n_candidates, rrf_k=cfg.rrf_k,
                             seed=seed, text_encoder=text_encoder)
    timings["first_stage_and_text_features"] = time.perf_counter() - t1
    # A list without any relevant image can neither train (no pairs for Eq. (7)) nor tell rankers apart
    # (AP = 0 for all); MediaEval's queries all have relevant results. Such queries are dropped.
    dropped = [q for q in queries if not any(r["rel"] for r in lists[q.qid])]
    queries = [q for q in queries if q not in dropped]
    lists = {q.qid: lists[q.qid] for q in queries}
    if len(queries) < cfg.n_folds:
        raise ValueError(f"only {len(queries)} queries have a relevant candidate; at least n_folds="
                         f"{cfg.n_folds} are needed (collection {svg_root})")

    by_id = {im.img_id: i for i, im in enumerate(images)}
    needed = sorted({r["img_id"] for rows in lists.values() for r in rows}, key=by_id.__getitem__)
    png_paths = [png_root / images[by_id[i]].png for i in needed]
    missing = [p for p in png_paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} PNGs are missing under {png_root} (first: {missing[0]}); "
                                "re-fetch with `python -m xmlib.data fetch openclipart-png`")
    t1 = time.perf_counter()
    feats = np.asarray(feature_fn(png_paths), dtype=np.float32)
    timings["image_features"] = time.perf_counter() - t1
    if feats.ndim != 2 or feats.shape[0] != len(needed):
        raise ValueError(f"image featurizer returned shape {feats.shape}, expected ({len(needed)}, D)")
    vis = {i: feats[k] for k, i in enumerate(needed)}

    folds = query_folds([q.qid for q in queries], cfg.n_folds, seed)
    meta = {
        "benchmark": "clipart",
        "description": "OpenClipart 0.18 image search: curator folders as queries, uploader RDF text as "
                       "surrounding text; see xmlib.data.benchmarks.clipart",
        "source": {"packages": ["openclipart-svg 1:0.18+dfsg-19", "openclipart-png 1:0.18+dfsg-19"],
                   "licence": "public domain"},
        "params": {"profile": profile, "seed": seed, **cfg.to_dict(), "excluded": list(EXCLUDED),
                   "svg_root": str(svg_root), "png_root": str(png_root)},
        "features": [f + "_feature" for f in FEATURES],
        "feature_groups": {k: [f + "_feature" for f in v] for k, v in FEATURE_GROUPS.items()},
        "feature_sets": {k: [f + "_feature" for f in v] for k, v in FEATURE_SETS.items()},
        "visual": {"name": "EfficientNet-Lite0 pooled", "dim": int(feats.shape[1])},
        "tie_rule": "rows are stored in a seeded random order per query; equal scores keep that order "
                    "(stable sort on -score); rank_scores() makes scores strictly decreasing for trec_eval",
        "relevance": "1 if one of the image's curator folders is the query's folder or below it",
        "queries": {q.qid: {"text": q.text, "folder": q.folder, "flag": q.flag,
                            "relevant_in_collection": sum(is_relevant(im.folders, q.folder) for im in images)}
                    for q in queries},
        "query_sets": {"all": [q.qid for q in queries], "no_flags": [q.qid for q in queries if not q.flag]},
        "dropped_queries": {q.qid: {"text": q.text, "folder": q.folder, "flag": q.flag,
                                    "reason": "no relevant image among the candidates"} for q in dropped},
        "counts": {"images_in_collection": len(images), "images_excluded": corpus.n_excluded,
                   "svgs_skipped": len(corpus.skipped), "images_featurised": len(needed),
                   "queries": len(queries), "queries_no_flags": sum(not q.flag for q in queries),
                   "queries_dropped": len(dropped)},
        "skipped_svgs": [{"svg": s, "reason": r} for s, r in corpus.skipped],
        "images_file": "images.csv",
    }
    image_rows = []
    for i in needed:
        im = images[by_id[i]]
        image_rows.append({"img_id": im.img_id, "svg": im.svg, "png": im.png, "folders": ";".join(im.folders),
                           "title": im.title, "description": im.description, "keywords": ";".join(kws[by_id[i]]),
                           "keywords_raw": ";".join(im.keywords)})
    _write_files(out, queries, lists, vis, folds, meta, image_rows)
    atomic_write_json(out / "build_info.json", {
        "seconds": round(time.perf_counter() - t0, 1), "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "images_in_collection": len(images), "images_featurised": len(needed)})
    if corpus.skipped:
        log(f"clipart: skipped {len(corpus.skipped)} SVGs with unreadable metadata (listed in meta.json)")


def _write_files(out: Path, queries, lists, vis, folds, meta, image_rows) -> None:
    """The MediaEval'17 layout (:func:`~xmlib.data.formats.mediaeval.write_mediaeval`) plus
    ``images.csv`` and ``queries.csv``."""
    import pandas as pd

    from xmlib.data.formats.mediaeval import write_mediaeval

    rows = []
    visual = {}
    for q in queries:
        ids = [r["img_id"] for r in lists[q.qid]]
        for r in lists[q.qid]:
            rows.append({"query_id": q.qid, "img_id": r["img_id"], "rel": r["rel"],
                         **{f + "_feature": r[f] for f in FEATURES}})
        visual[q.qid] = (ids, np.stack([vis[i] for i in ids]).astype(np.float32))
    df = pd.DataFrame(rows, columns=["query_id", "img_id", "rel", *[f + "_feature" for f in FEATURES]])
    pd.DataFrame(image_rows).to_csv(out / "images.csv", index=False)
    pd.DataFrame([{"query_id": q.qid, "text": q.text, "folder": q.folder, "flag": q.flag} for q in queries]
                 ).to_csv(out / "queries.csv", index=False)
    write_mediaeval(out, SPLIT, df, visual, folds=folds, meta=meta, feature_dir=FEATURE_DIR)
