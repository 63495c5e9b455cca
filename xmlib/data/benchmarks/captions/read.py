"""Reading a built captions benchmark: :func:`load` (one SCAN precomp split), :func:`stats` for the
data card, :func:`examples` (images with their captions) and :func:`image_paths`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmlib.core.io import load_json_checked, read_text_checked, require_inside
from xmlib.core.paths import cache_dir
from xmlib.data.benchmarks._build import locate, rebuild_hint
from xmlib.data.benchmarks.captions.builder import NAME, VERSION, build, from_cache
from xmlib.data.benchmarks.captions.config import N_CAP, PROFILES, SPLITS
from xmlib.data.formats import scan_precomp
from xmlib.data.formats import vocab as vocab_fmt

__all__ = ["load", "folder", "stats", "examples", "image_paths", "pictures"]

_REBUILD = rebuild_hint(NAME)


def _folder(source: str | os.PathLike) -> Path:
    return locate(NAME, PROFILES, source, VERSION, build)


def folder(profile_or_path: str | os.PathLike = "default") -> Path:
    """The folder of a current build in the SCAN precomp layout (a profile is built first if needed)."""
    return _folder(profile_or_path)


def load(profile_or_path: str | os.PathLike = "default", split: str = "test", *,
         mmap: bool = True) -> scan_precomp.PrecompSplit:
    """One built split as :class:`xmlib.data.formats.scan_precomp.PrecompSplit`. ``profile_or_path``: a
    profile name (built first if it has no build yet) or a built folder."""
    return scan_precomp.read_split(_folder(profile_or_path), split, mmap=mmap)


def image_paths(source: str | os.PathLike, split: str) -> list[Path]:
    """The picture files of ``split``, one per image row (``{split}_images.txt``): an absolute path, or
    a path relative to the cache that must stay inside it."""
    listing = _folder(source) / f"{split}_images.txt"
    lines = read_text_checked(listing, fix=_REBUILD).split("\n")[:-1]
    cache = cache_dir()
    for n, p in enumerate(lines, start=1):
        if not Path(p).is_absolute():
            require_inside(p, cache, source=listing, line=n, what="picture")
    return [from_cache(p) for p in lines]


def stats(source: str | os.PathLike = "default") -> dict:
    """Numbers for the data card: images / captions per split, vocabulary size, mean caption length
    (words), the share of test word tokens never seen in train captions and the share mapped to
    ``<unk>``, and images per source. ``source``: a profile name or a built folder."""
    path = _folder(source)
    meta = load_json_checked(path / "meta.json", fix=_REBUILD)
    vocab = vocab_fmt.load_vocab(path / "vocab.json")
    caps = {s: scan_precomp.read_split(path, s).captions for s in SPLITS}
    toks = {s: [vocab_fmt.tokenize(c) for c in caps[s]] for s in SPLITS}
    train_words = {w for t in toks["train"] for w in t}
    test_words = [w for t in toks["test"] for w in t]
    out = {
        s: {"images": len(caps[s]) // N_CAP, "captions": len(caps[s]),
            "distinct_captions": len(set(caps[s])),
            "mean_caption_words": round(float(np.mean([len(t) for t in toks[s]])), 2),
            "by_source": meta["counts"][s]["by_source"]}
        for s in SPLITS
    }
    out["vocab_size"] = len(vocab)
    n_test = max(len(test_words), 1)
    out["test_words_unseen_in_train"] = round(sum(w not in train_words for w in test_words) / n_test, 4)
    out["test_words_unk"] = round(sum(w not in vocab for w in test_words) / n_test, 4)
    out["train_images_with_5_distinct"] = meta["plan"]["train_images_with_5_distinct"]
    return out


def examples(source: str | os.PathLike = "default", n: int = 8, *, split: str = "test", seed: int = 0) -> list[dict]:
    """``n`` images of ``split`` picked with ``seed``: dicts with ``path`` (Path), ``captions`` (5),
    ``source``, ``concept`` and ``index`` (row in the split), for the chapter's pictures."""
    path = _folder(source)
    meta = load_json_checked(path / "meta.json", fix=_REBUILD)
    paths = image_paths(path, split)
    caps = scan_precomp.read_split(path, split).captions
    rng = np.random.default_rng(seed)
    idx = sorted(rng.choice(len(paths), size=min(n, len(paths)), replace=False).tolist())
    return [{"index": i, "path": paths[i], "captions": caps[N_CAP * i:N_CAP * (i + 1)],
             "source": meta["images"][split][i]["source"], "concept": meta["images"][split][i]["concept"]}
            for i in idx]


@dataclass(frozen=True)
class Pictures:
    """The pictures and captions of a precomp folder's test split (for figures): ``paths[i]`` is image
    i's picture, ``captions[j]`` caption j (of image j // 5)."""

    paths: list[Path]
    captions: list[str]


def pictures(source: str | os.PathLike, split: str = "test") -> Pictures | None:
    """:class:`Pictures` of a built captions benchmark (a profile name or folder), or None for precomp
    data without pictures (the paper's Flickr30K / COCO features)."""
    p = Path(source)
    if p.exists() and not (p / f"{split}_images.txt").is_file():
        return None
    path = _folder(source)
    return Pictures(image_paths(path, split), list(scan_precomp.read_split(path, split).captions))
