"""Building the emoji benchmark: read the concepts, split them, load the pictures, compute the features,
mine the triplets and write the files (see the package docstring for the list)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from xmlib.core.io import atomic_path, atomic_save_npy, atomic_write_json
from xmlib.data.benchmarks._build import bench_dir, build_once, check_seed, input_stamps, make_stamp, resolve
from xmlib.data.benchmarks.emoji.bench import EmojiBenchmark
from xmlib.data.benchmarks.emoji.concepts import read_concepts
from xmlib.data.benchmarks.emoji.config import PROFILES, EmojiConfig
from xmlib.data.benchmarks.emoji.duplicates import near_duplicate_pairs
from xmlib.data.benchmarks.emoji.histograms import color_histograms
from xmlib.data.benchmarks.emoji.split import split_concepts
from xmlib.data.benchmarks.emoji.triplets import make_triplets
from xmlib.data.sources.emoji import ASSET_OF, DESIGNERS, LICENCES

__all__ = ["NAME", "VERSION", "build", "out_dir"]

NAME = "emoji"
#: Bumped when the build's output changes for the same config (invalidates old builds).
VERSION = 3  # 3: features from the frozen network (xmlib.data.features)

FeatureFn = Callable[[Sequence[Path]], np.ndarray]


def out_dir(profile: str = "default") -> Path:
    """``cache_dir()/benchmarks/emoji/<profile>``."""
    return bench_dir(NAME, profile)


def _default_features(paths: Sequence[Path]) -> np.ndarray:
    from xmlib.data.features import image_features

    return np.asarray(image_features(list(paths), kind="pooled", cache_key="emoji"), dtype=np.float32)


def _load_images(paths: Sequence[Path], size: int) -> np.ndarray:
    """The pictures as uint8 (N, size, size, 3) on white (:func:`xmlib.data.images.load_image`)."""
    from xmlib.data.images import load_image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for k, p in enumerate(paths):
        im = np.asarray(load_image(p, size))
        if im.dtype != np.uint8:
            im = np.clip(np.rint(im * 255.0 if im.max() <= 1.0 else im), 0, 255).astype(np.uint8)
        if im.shape != (size, size, 3):
            raise ValueError(f"load_image({p}, {size}) returned shape {im.shape}, expected ({size}, {size}, 3)")
        out[k] = im
    return out


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

    ``out_dir`` defaults to :func:`out_dir` of the profile; ``overrides`` change single config values.
    Built once (:func:`~xmlib.data.benchmarks._build.build_once`): a second call with the same config,
    seed and inputs returns at once (``force=True`` rebuilds). ``roots`` maps ``emoji-google``,
    ``emoji-twitter`` and ``openmoji`` to extracted package folders (default: the fetched assets);
    ``feature_fn(paths) -> (N, D)`` replaces the pretrained CNN features (tests use a cheap one).
    """
    cfg = resolve(EmojiConfig, PROFILES, NAME, profile, overrides)
    seed = check_seed(seed)
    stamp = make_stamp(NAME, VERSION, cfg, seed, input_stamps(ASSET_OF.values(), roots))
    out = Path(out_dir) if out_dir is not None else bench_dir(NAME, profile)
    return build_once(out, stamp, lambda folder: _write_benchmark(folder, cfg, seed, roots, feature_fn, log),
                      force=force)


def _write_benchmark(out: Path, cfg: EmojiConfig, seed: int, roots: Mapping[str, str | os.PathLike] | None,
                     feature_fn: FeatureFn | None, log: Callable[[str], None] | None) -> None:
    from xmlib.data.benchmarks.emoji.read import stats
    from xmlib.data.sources.emoji import default_roots

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    last = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - last[0], 2)
        last[0] = now
        if log is not None:
            log(f"[emoji] {name}: {timings[name]:.1f}s")

    src = {a: Path(r) for a, r in (roots if roots is not None else default_roots()).items()}
    concepts, counts = read_concepts(src, cfg)
    concept_split = split_concepts(concepts["subcategory"].to_numpy(), cfg, seed)
    subcats = sorted(concepts["subcategory"].unique())
    sub_id = {s: k for k, s in enumerate(subcats)}
    rows = []
    for k, c in concepts.iterrows():
        for d in DESIGNERS:
            path = Path(c[d])
            rows.append({
                "image_id": len(rows), "concept": c["concept"], "unified": c["unified"], "name": c["name"],
                "designer": d, "category": c["category"], "subcategory": c["subcategory"],
                "category_id": sub_id[c["subcategory"]], "split": concept_split[k],
                "source": f"{ASSET_OF[d]}/{path.relative_to(src[ASSET_OF[d]]).as_posix()}", "licence": LICENCES[d],
                "file": f"png/{d}/{c['concept'].lower()}.png",
            })
    meta = pd.DataFrame(rows)
    paths = [Path(c[d]) for _, c in concepts.iterrows() for d in DESIGNERS]
    lap("read")

    images = _load_images(paths, cfg.size)
    lap("images")
    cnn = np.asarray((feature_fn or _default_features)(paths), dtype=np.float32)
    if cnn.ndim != 2 or cnn.shape[0] != len(paths):
        raise ValueError(f"feature_fn returned shape {cnn.shape}, expected ({len(paths)}, D)")
    lap("features")
    hist = color_histograms(images, cfg.hist_bins, cfg.white_threshold)
    dups = near_duplicate_pairs(images, meta, cfg.duplicate_threshold)
    trips = {s: make_triplets(meta, hist, s, cfg, seed, dups) for s in ("val", "test")}
    lap("triplets")

    atomic_save_npy(out / "images.npy", images)
    with atomic_path(out / "metadata.csv") as tmp:
        meta.to_csv(tmp, index=False)
    atomic_save_npy(out / "cnn.npy", cnn)
    atomic_save_npy(out / "color_hist.npy", hist)
    atomic_write_json(out / "near_duplicates.json", [list(p) for p in dups])
    for s, (t, ty, pk) in trips.items():
        atomic_save_npy(out / f"{s}_triplets.npy", t)
        atomic_save_npy(out / f"{s}_triplet_type.npy", ty)
        atomic_save_npy(out / f"{s}_triplet_pair.npy", pk)
        _write_deepranking_file(out / f"{s}_query_and_triplets.txt", meta, t)
    _write_thumbnails(out, meta, images)
    lap("write")
    info = stats(EmojiBenchmark.read(out, cfg, seed), with_baselines=True)
    info["matching"] = counts
    names = dict(zip(meta["concept"], meta["name"]))
    info["near_duplicate_concept_pairs"] = [[a, b, names[a], names[b]] for a, b in dups]
    lap("baselines")
    info["build_seconds"] = dict(timings, total=round(time.perf_counter() - t0, 2))
    atomic_write_json(out / "stats.json", info)


def _write_thumbnails(out: Path, meta: pd.DataFrame, images: np.ndarray) -> None:
    """The stored images as PNG files ``<out>/<file>`` (``png/<designer>/<code>.png``), so the Deep
    Ranking file can name them by a path relative to its folder."""
    from PIL import Image

    for f, im in zip(meta["file"], images):
        dest = out / f
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(dest, format="PNG")


def _write_deepranking_file(path: Path, meta: pd.DataFrame, trip: np.ndarray) -> None:
    """Deep Ranking's ``query_and_triplets.txt``: per triplet the query text (the concept's name) and
    the three images (query, positive, negative) as paths relative to the benchmark folder."""
    from xmlib.data.formats.deepranking_triplets import write_query_and_triplets

    names = meta["name"].to_numpy()
    files = meta["file"].to_numpy()
    records = [(str(names[q]), str(files[q]), str(files[p]), str(files[n])) for q, p, n in trip]
    if records:
        write_query_and_triplets(path, records)
