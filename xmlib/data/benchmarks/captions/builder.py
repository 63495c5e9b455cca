"""Building the captions benchmark: collect the corpus, plan the split, compute the grid features and
write SCAN precomp files, the vocabulary and ``meta.json``."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from xmlib.core.io import atomic_write_json, atomic_write_text
from xmlib.core.paths import cache_dir
from xmlib.data.benchmarks._build import bench_dir, build_once, check_seed, input_stamps, make_stamp, resolve
from xmlib.data.benchmarks.captions.config import FEATURE_DIM, FEATURE_KIND, N_CAP, N_REGIONS, PROFILES, SOURCES, SPLITS, CaptionsConfig
from xmlib.data.benchmarks.captions.corpus import collect_corpus, default_roots
from xmlib.data.benchmarks.captions.plan import plan_split
from xmlib.data.benchmarks.captions.vocabulary import train_vocabulary
from xmlib.data.formats import scan_precomp
from xmlib.data.formats import vocab as vocab_fmt

__all__ = ["NAME", "VERSION", "build", "out_dir", "relative_to_cache", "from_cache"]

NAME = "captions"
#: Bumped when the output changes for the same config (invalidates old builds).
VERSION = 4  # 4: features from the frozen network (xmlib.data.features)
INPUTS = tuple(sorted({a for assets_, _ in SOURCES.values() for a in assets_}))

FeatureFn = Callable[[Sequence[Path]], np.ndarray]


def out_dir(profile: str = "default") -> Path:
    """``cache_dir()/benchmarks/captions/<profile>``."""
    return bench_dir(NAME, profile)


def _grid_features(paths: Sequence[Path]) -> np.ndarray:
    """(N, 49, 1280) float16 EfficientNet-Lite0 grid features (224 px) of the images; the features
    module caches them (in chunks, so an interrupted build resumes)."""
    from xmlib.data.features import image_features

    return np.asarray(image_features(list(paths), kind="grid", size=224, cache_key="captions", dtype=np.float16))


def relative_to_cache(path: str | os.PathLike) -> str:
    """A path relative to the cache folder when inside it (so the cache can move), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(cache_dir()).as_posix()
    except ValueError:
        return str(path)


def from_cache(text: str) -> Path:
    """The inverse of :func:`relative_to_cache`."""
    p = Path(text)
    return p if p.is_absolute() else cache_dir() / p


def build(
    profile: str = "default",
    *,
    out_dir: str | os.PathLike | None = None,
    seed: int = 0,
    force: bool = False,
    overrides: Mapping[str, Any] | None = None,
    roots: Mapping[str, str | os.PathLike] | None = None,
    feature_fn: FeatureFn | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Build the benchmark for ``profile`` (``smoke`` | ``default`` | ``paper``) and return its folder.

    ``out_dir`` defaults to :func:`out_dir` of the profile; ``overrides`` change single config values
    (split sizes, vocabulary threshold). Built once (:func:`~xmlib.data.benchmarks._build.build_once`):
    a second call with the same config, seed and inputs returns at once (``force=True`` rebuilds).
    ``roots`` maps asset names to extracted folders (default: the fetched assets); ``feature_fn(paths)
    -> (N, 49, 1280)`` replaces the EfficientNet-Lite0 grid features (tests).
    """
    cfg = resolve(CaptionsConfig, PROFILES, NAME, profile, overrides)
    seed = check_seed(seed)
    stamp = make_stamp(NAME, VERSION, cfg, seed, input_stamps(INPUTS, roots), features=FEATURE_KIND)
    out = Path(out_dir) if out_dir is not None else bench_dir(NAME, profile)
    return build_once(out, stamp, lambda folder: _write_benchmark(folder, profile, cfg, seed, roots,
                                                                  feature_fn or _grid_features, log),
                      force=force)


def _write_benchmark(out: Path, profile: str, cfg: CaptionsConfig, seed: int,
                     roots: Mapping[str, str | os.PathLike] | None, feature_fn: FeatureFn,
                     log: Callable[[str], None] | None) -> None:
    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    items, notes = collect_corpus(roots if roots is not None else default_roots())
    say(f"corpus: {len(items)} images ({time.perf_counter() - t0:.1f} s)")
    plan = plan_split(items, cfg, seed)
    say("plan: " + ", ".join(f"{s} {len(plan.items[s])}" for s in SPLITS))

    t1 = time.perf_counter()
    all_items = [it for s in SPLITS for it in plan.items[s]]
    feats = feature_fn([it.path for it in all_items])  # (N_all, 49, 1280), one cached job
    if feats.shape != (len(all_items), N_REGIONS, FEATURE_DIM):
        raise RuntimeError(f"grid features have shape {feats.shape}; expected "
                           f"({len(all_items)}, {N_REGIONS}, {FEATURE_DIM})")
    timings = {"features": round(time.perf_counter() - t1, 1)}
    say(f"features: {len(all_items)} images in {timings['features']} s")
    start = 0
    for split in SPLITS:
        its = plan.items[split]
        scan_precomp.write_split(out, split, feats[start:start + len(its)],
                                 [c for caps in plan.captions[split] for c in caps], dtype=np.float16)
        atomic_write_text(out / f"{split}_images.txt", "".join(relative_to_cache(it.path) + "\n" for it in its))
        start += len(its)
    del feats
    vocab = train_vocabulary([c for caps in plan.captions["train"] for c in caps], cfg.vocab_threshold)
    vocab_fmt.save_vocab(vocab, out / "vocab.json")

    per_source = {s: dict(Counter(it.source for it in plan.items[s])) for s in SPLITS}
    meta = {
        "benchmark": "open captions (SCAN precomp) for the SGRAF chapter",
        "profile": profile,
        "config": cfg.to_dict(),
        "seed": seed,
        "format": {"ims": f"(N, {N_REGIONS}, {FEATURE_DIM}) float16: {FEATURE_KIND}",
                   "caps": f"{N_CAP} lines per image; train images with fewer distinct captions cycle them",
                   "vocab": f"SCAN JSON, threshold {cfg.vocab_threshold}, from the distinct train captions"},
        "sources": {s: {"assets": list(a), "licence": lic} for s, (a, lic) in SOURCES.items()},
        "counts": {s: {"images": len(plan.items[s]), "captions": N_CAP * len(plan.items[s]),
                       "by_source": per_source[s]} for s in SPLITS},
        "vocab_size": len(vocab),
        "corpus": {"images": len(items), "by_source": dict(Counter(it.source for it in items)), **notes},
        "plan": plan.notes,
        "build_seconds": {**timings, "total": round(time.perf_counter() - t0, 1)},
        "images": {s: [{"id": it.image_id, "source": it.source, "concept": plan.concept_of[it.image_id],
                        "group": it.group, "distinct_captions": plan.n_distinct[it.image_id]}
                       for it in plan.items[s]] for s in SPLITS},
    }
    atomic_write_json(out / "meta.json", meta, indent=1)
