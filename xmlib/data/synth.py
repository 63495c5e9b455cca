"""Paper-shaped synthetic data: the papers' on-disk formats and sizes, random features with a planted signal.

``python -m xmlib.data synth --like f30k|coco|mediaeval|deepranking --out DIR [--scale F] [--seed N]``

What each ``--like`` writes (counts at ``--scale 1``; ``--scale`` multiplies every count, with a floor
so that a tiny scale still gives a usable split):

- ``f30k``: SCAN precomp (:mod:`xmlib.data.formats.scan_precomp`) ``train`` / ``dev`` / ``test`` of
  29,000 / 1,014 / 1,000 images, ``{split}_ims.npy`` float32 (N, 36, 2048) and ``{split}_caps.txt``
  with 5 captions per image, plus ``f30k_precomp_vocab.json`` (threshold 4, from the train captions).
  8.6 GB of features at scale 1.
- ``coco``: the same for COCO: ``train`` 113,287, ``dev`` 5,000, ``test`` 5,000 and ``testall``
  5,000 images (``coco_precomp_vocab.json``); 33 GB at scale 1.
- ``mediaeval``: the MediaEval'17 layout (:mod:`xmlib.data.formats.mediaeval`): ``train`` 110 queries
  and ``test`` 84 queries of about 300 candidates each (33,000 / 25,200 rows; the paper's 33,340 /
  24,986), 1536-d visual features, four text LTR features, 5 folds over the train queries, and a
  ``meta.json`` with the ``feature_sets`` (``weak``, ``strong``) and ``query_sets`` (``all``,
  ``no_flags``) the DCMM chapter names.
- ``deepranking``: an image stream for the buffered online sampler (:mod:`xmlib.data.image_stream`):
  ``image_list.tsv`` (one image a line: ``image``, ``category``, ``relevance`` r_i), ``golden.npy``
  float32 (N, 64) golden features, row k ↔ line k (r_ij = max(0, cos) within a category), and
  ``query_and_triplets.txt`` (:mod:`xmlib.data.formats.deepranking_triplets`) of rated triplets
  consistent with that relevance. 12,000,000 images in 1,000 categories at scale 1 (the paper's
  order of magnitude; 3 GB of golden features).

The planted signal: **captions** — each image holds 3 of ``N_CONCEPTS`` concepts; its regions are
uniform noise plus, for half of them, the nonnegative pattern of one of its concepts, and each of
its captions names two of its concepts among filler words, so word ↔ region pattern is learnable;
**MediaEval** — a query's relevant candidates share a visual prototype and their text features are
slightly higher; **Deep Ranking** — images of a category scatter around its centre.

Features are written chunk by chunk into a memory-mapped ``.npy`` (``np.lib.format.open_memmap``) on a
temporary file renamed into place, so a COCO-sized file never sits in memory; every chunk's values
come from a generator seeded by (seed, split, chunk), so a file is the same whatever the machine.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmlib.core.io import atomic_path, atomic_write_json, release_pages

__all__ = ["LIKES", "PrecompShape", "SHAPES", "synth", "write_deepranking", "write_mediaeval_like", "write_precomp"]

LIKES = ("f30k", "coco", "mediaeval", "deepranking")
N_CONCEPTS = 120
CONCEPTS_PER_IMAGE = 3
SIGNAL = 3.0  # height of a concept's pattern over the U(0, 1) noise of a region feature
PATTERN_DIMS = 64  # nonzero dimensions of one concept's pattern
CHUNK_BYTES = 64 * 2**20  # features generated and written this many bytes at a time
_FILLER = ("a", "the", "is", "with", "near", "of", "and", "on", "in", "two", "some", "small", "big", "old",
           "young", "red", "blue", "green", "looking", "standing", "sitting", "next", "to", "at")


@dataclass(frozen=True)
class PrecompShape:
    """Images per split, regions R and feature size D of a SCAN precomp data set."""

    splits: tuple[tuple[str, int], ...]
    regions: int = 36
    dim: int = 2048
    vocab_name: str = "f30k_precomp_vocab.json"


SHAPES = {
    "f30k": PrecompShape((("train", 29_000), ("dev", 1_014), ("test", 1_000))),
    "coco": PrecompShape((("train", 113_287), ("dev", 5_000), ("test", 5_000), ("testall", 5_000)),
                         vocab_name="coco_precomp_vocab.json"),
}
MEDIAEVAL = {"train": 110, "test": 84}
MEDIAEVAL_CANDIDATES = 300
MEDIAEVAL_VISUAL_DIM = 1536
DEEPRANKING_IMAGES = 12_000_000
DEEPRANKING_CATEGORIES = 1_000
GOLDEN_DIM = 64


def scaled(n: int, scale: float, floor: int) -> int:
    """``round(n · scale)``, at least ``floor`` (and never more than ``n`` unless ``floor`` asks)."""
    return max(floor, int(round(n * scale)))


def _check(scale: float, seed: int) -> None:
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale) or not 0 < scale <= 1:
        raise ValueError(f"--scale must be a number in (0, 1] (1 = the paper's counts, 0.01 for CI), got {scale!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed!r}")


def concept_words(n: int = N_CONCEPTS) -> list[str]:
    """``n`` distinct made-up nouns from syllables (deterministic)."""
    cons, vows = "bdfgklmnprstvz", "aeiou"
    words = []
    for k in range(n):
        a, b = divmod(k, len(cons) * len(vows))
        c, d = divmod(b, len(vows))
        words.append(f"{cons[a % len(cons)]}{vows[(a // len(cons)) % len(vows)]}{cons[c]}{vows[d]}")
    return words


def concept_patterns(seed: int, dim: int, n: int = N_CONCEPTS) -> np.ndarray:
    """(n, dim) float32 nonnegative patterns: ``SIGNAL`` on ``PATTERN_DIMS`` random dimensions each."""
    rng = np.random.default_rng([seed, 7])
    out = np.zeros((n, dim), dtype=np.float32)
    k = min(PATTERN_DIMS, dim)
    for c in range(n):
        out[c, rng.choice(dim, k, replace=False)] = SIGNAL
    return out


def _captions(rng: np.random.Generator, concepts: np.ndarray, words: list[str]) -> list[str]:
    """5 captions per image: two of its concepts' words among 4–9 filler words."""
    out = []
    for row in concepts:
        for _ in range(5):
            pick = rng.choice(row, 2, replace=False)
            toks = [_FILLER[j] for j in rng.integers(len(_FILLER), size=int(rng.integers(4, 10)))]
            for c in pick:
                toks.insert(int(rng.integers(len(toks) + 1)), words[c])
            out.append(" ".join(toks))
    return out


def _write_precomp_split(root: Path, split: str, split_id: int, n: int, shape: PrecompShape, seed: int,
                         patterns: np.ndarray, words: list[str]) -> Counter:
    """Stream one split's features and captions to disk; returns the captions' word counts."""
    from xmlib.data.formats.scan_precomp import caps_path, ims_path
    from xmlib.data.formats.vocab import tokenize

    r, d = shape.regions, shape.dim
    chunk = max(1, CHUNK_BYTES // (r * d * 4))
    counts: Counter = Counter()
    with ExitStack() as stack:
        tmp_ims = stack.enter_context(atomic_path(ims_path(root, split)))
        tmp_caps = stack.enter_context(atomic_path(caps_path(root, split)))
        ims = np.lib.format.open_memmap(tmp_ims, mode="w+", dtype=np.float32, shape=(n, r, d))
        with open(tmp_caps, "w", encoding="utf-8", newline="\n") as fh:
            for k, s in enumerate(range(0, n, chunk)):
                m = min(chunk, n - s)
                rng = np.random.default_rng([seed, split_id, k])
                concepts = np.argsort(rng.random((m, N_CONCEPTS)), axis=1)[:, :CONCEPTS_PER_IMAGE]  # (m, 3)
                block = rng.random((m, r, d), dtype=np.float32)  # (m, R, D) noise
                region_concept = rng.integers(CONCEPTS_PER_IMAGE, size=(m, r))  # which concept a region shows
                shows = rng.random((m, r)) < 1 / 2  # half of the regions show a concept
                for c in range(CONCEPTS_PER_IMAGE):
                    sel = shows & (region_concept == c)  # (m, R)
                    block += sel[..., None] * patterns[concepts[:, c]][:, None, :]
                ims[s:s + m] = block
                ims.flush()  # written back, then dropped from this process's resident memory
                release_pages(ims)
                caps = _captions(rng, concepts, words)
                for c in caps:
                    counts.update(tokenize(c))
                fh.write("".join(c + "\n" for c in caps))
        ims.flush()
        del ims
    return counts


def write_precomp(out: str | os.PathLike, like: str = "f30k", *, scale: float = 1.0, seed: int = 0) -> Path:
    """SCAN precomp splits shaped like ``like`` (``f30k`` or ``coco``) and their vocabulary under ``out``."""
    from xmlib.data.formats.vocab import SPECIAL_TOKENS, Vocabulary, save_vocab

    _check(scale, seed)
    if like not in SHAPES:
        raise ValueError(f"like must be one of {tuple(SHAPES)} for SCAN precomp data, got {like!r}")
    shape, root = SHAPES[like], Path(out)
    root.mkdir(parents=True, exist_ok=True)
    words = concept_words()
    patterns = concept_patterns(seed, shape.dim)
    train_counts: Counter = Counter()
    for split_id, (split, n) in enumerate(shape.splits):
        counts = _write_precomp_split(root, split, split_id, scaled(n, scale, 20), shape, seed, patterns, words)
        if split == "train":
            train_counts = counts
    kept = sorted((w for w, c in train_counts.items() if c >= 4 and w not in SPECIAL_TOKENS),
                  key=lambda w: (-train_counts[w], w))  # build_vocab's rule, from the streamed counts
    save_vocab(Vocabulary(SPECIAL_TOKENS + tuple(kept)), root / shape.vocab_name)
    return root


# ------------------------------------------------------------------------------------- MediaEval
MEDIAEVAL_FEATURES = ("bm25_feature", "desm_feature", "rank_feature", "length_feature")


def write_mediaeval_like(out: str | os.PathLike, *, scale: float = 1.0, seed: int = 0) -> Path:
    """MediaEval'17-shaped ``train`` and ``test`` splits under ``out`` (one query in memory at a time
    while generating; :func:`~xmlib.data.formats.mediaeval.write_mediaeval` then writes each split)."""
    import pandas as pd

    from xmlib.data.formats.mediaeval import make_query_folds, write_mediaeval

    _check(scale, seed)
    root = Path(out)
    n_cand = scaled(MEDIAEVAL_CANDIDATES, scale, 20)
    all_qids: list[str] = []
    protos = np.random.default_rng([seed, 11]).standard_normal((40, MEDIAEVAL_VISUAL_DIM)).astype(np.float32)
    for split_id, (split, n_q) in enumerate(MEDIAEVAL.items()):
        n_q = scaled(n_q, scale, 5)
        rows, visual = [], {}
        for q in range(n_q):
            rng = np.random.default_rng([seed, 100 + split_id, q])
            qid = f"{split}{q:03d}"
            n = int(rng.integers(max(2, n_cand - n_cand // 10), n_cand + n_cand // 10 + 1))
            rel = (rng.random(n) < rng.uniform(0.4, 0.8)).astype(np.int64)  # (n,) relevance
            proto = int(rng.integers(len(protos)))
            other = rng.integers(len(protos), size=n)  # irrelevant images show some other prototype
            centre = np.where(rel[:, None] == 1, protos[proto], protos[other])  # (n, D)
            vis = np.maximum(0.0, 0.8 * centre + rng.standard_normal((n, MEDIAEVAL_VISUAL_DIM))).astype(np.float32)
            bm25 = 0.6 * rel + rng.standard_normal(n)  # weak text signal
            desm = 0.4 * rel + rng.standard_normal(n)
            order = np.argsort(-(bm25 + desm), kind="stable")
            rank = np.empty(n)
            rank[order] = np.arange(1, n + 1)
            ids = [f"{qid}_{i:04d}" for i in range(n)]
            rows.append(pd.DataFrame({"query_id": qid, "img_id": ids, "rel": rel, "bm25_feature": bm25,
                                      "desm_feature": desm, "rank_feature": -np.log(rank),
                                      "length_feature": rng.poisson(12, n).astype(float)}))
            visual[qid] = (ids, vis)
        df = pd.concat(rows, ignore_index=True)
        qids = list(visual)
        all_qids += qids
        folds = make_query_folds(qids, 5, seed) if split == "train" else None
        write_mediaeval(root, split, df, visual, folds=folds)
        del rows, visual, df
    features = list(MEDIAEVAL_FEATURES)
    atomic_write_json(root / "meta.json", {  # one file for both splits: the sets the DCMM chapter names
        "synthetic": "mediaeval", "seed": seed, "scale": scale,
        "feature_sets": {"weak": ["bm25_feature"], "strong": features, "all": features},
        "query_sets": {"all": all_qids, "no_flags": all_qids}})
    return root


# ------------------------------------------------------------------------------------ Deep Ranking
def write_deepranking(out: str | os.PathLike, *, scale: float = 1.0, seed: int = 0,
                      n_images: int | None = None, n_categories: int | None = None) -> Path:
    """A Deep Ranking image stream under ``out`` (``image_list.tsv``, ``golden.npy``,
    ``query_and_triplets.txt``); ``n_images`` / ``n_categories`` override the scaled counts."""
    from xmlib.data.formats.deepranking_triplets import write_query_and_triplets
    from xmlib.data.image_stream import GOLDEN_NAME, LIST_NAME, golden_relevance

    _check(scale, seed)
    n = scaled(DEEPRANKING_IMAGES, scale, 200) if n_images is None else int(n_images)
    n_cat = scaled(DEEPRANKING_CATEGORIES, scale, 4) if n_categories is None else int(n_categories)
    if n < 2 * n_cat or n_cat < 2:
        raise ValueError(f"n_images ({n}) must be at least twice n_categories ({n_cat}), and n_categories >= 2")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    centres = np.random.default_rng([seed, 21]).standard_normal((n_cat, GOLDEN_DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    size = n / n_cat  # expected images per category
    chunk = max(1, CHUNK_BYTES // (GOLDEN_DIM * 4))
    with ExitStack() as stack:
        tmp_g = stack.enter_context(atomic_path(root / GOLDEN_NAME))
        tmp_l = stack.enter_context(atomic_path(root / LIST_NAME))
        golden = np.lib.format.open_memmap(tmp_g, mode="w+", dtype=np.float32, shape=(n, GOLDEN_DIM))
        with open(tmp_l, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("image\tcategory\trelevance\n")
            for k, s in enumerate(range(0, n, chunk)):
                m = min(chunk, n - s)
                rng = np.random.default_rng([seed, 22, k])
                cat = rng.integers(n_cat, size=m)  # (m,)
                g = centres[cat] + 0.6 * rng.standard_normal((m, GOLDEN_DIM)).astype(np.float32) / math.sqrt(GOLDEN_DIM) * 4
                g /= np.linalg.norm(g, axis=1, keepdims=True)
                golden[s:s + m] = g
                golden.flush()
                release_pages(golden)
                # r_i = Σ_j r_ij ≈ (n_c − 1) · E[max(0, cos(g_i, g_j))], estimated by the cosine to the centre
                r_i = np.maximum(1e-3, (g * centres[cat]).sum(1)) ** 2 * size
                fh.write("".join(f"img/{s + i:08d}.jpg\t{c}\t{w:.6g}\n" for i, (c, w) in enumerate(zip(cat, r_i))))
        golden.flush()
        del golden
    # rated triplets over the first images: positive more relevant to the query than the negative
    g = np.load(root / GOLDEN_NAME, mmap_mode="r", allow_pickle=False)
    m = min(n, 20_000)
    head = np.asarray(g[:m])
    cats = np.loadtxt(root / LIST_NAME, dtype=np.int64, delimiter="\t", skiprows=1, usecols=1, max_rows=m)
    rng = np.random.default_rng([seed, 23])
    records = []
    for _ in range(min(scaled(14_000, scale, 50), max(50, n // 20))):
        q = int(rng.integers(m))
        same = np.flatnonzero(cats == cats[q])
        same = same[same != q]
        if len(same) < 2:
            continue
        a, b = (int(x) for x in rng.choice(same, 2, replace=False))
        ra, rb = golden_relevance(head[q], head[a]), golden_relevance(head[q], head[b])
        if abs(ra - rb) < 0.05:
            continue
        pos, neg = (a, b) if ra > rb else (b, a)
        records.append((f"category {cats[q]}", f"img/{q:08d}.jpg", f"img/{pos:08d}.jpg", f"img/{neg:08d}.jpg"))
    write_query_and_triplets(root / "query_and_triplets.txt", records)
    return root


def synth(like: str, out: str | os.PathLike, *, scale: float = 1.0, seed: int = 0) -> Path:
    """Write paper-shaped synthetic data shaped like ``like`` under ``out``; returns ``out``."""
    if like not in LIKES:
        raise ValueError(f"--like must be one of {', '.join(LIKES)}, got {like!r}")
    _check(scale, seed)
    if like in SHAPES:
        return write_precomp(out, like, scale=scale, seed=seed)
    if like == "mediaeval":
        return write_mediaeval_like(out, scale=scale, seed=seed)
    return write_deepranking(out, scale=scale, seed=seed)
