"""Benchmark (b): emoji fine-grained similarity, the open stand-in for Deep Ranking's triplet data.

The same emoji *concept* (a Unicode code point sequence, e.g. U+1F600 "grinning face") drawn by three
independent *designers* (Google Noto, Twitter Twemoji, OpenMoji) is a human-made "more similar"
judgement: a designer who draws "grinning face" means the same thing as another designer who draws it,
whatever the style. That gives Deep Ranking's two ingredients without any rater:

- **categories** = CLDR subcategories (``face-smiling``, ``animal-bird``, ``country-flag`` ...; 98 of
  them), as in the paper where a category is a text query and relevance is defined only within one;
- **evaluation triplets** (p_i, p_i+, p_i-) on held-out concepts, with r(p_i, p_i+) > r(p_i, p_i-) by
  construction: the query is concept c by designer A, the positive is c by designer B != A, the
  negative is another concept (Sec. 6 of the paper, "human-rated triplets").

Matching rule (one concept, three designers)
---------------------------------------------
A concept is an ``emoji.json`` record of ``emoji-datasource`` (base emoji only; skin-tone variants are
not concepts) with ``has_img_google`` in the Google package's ``emoji.json``, ``has_img_twitter`` in the
Twitter package's, both 64 px PNG files present, and an OpenMoji record whose ``hexcode`` equals the
record's ``unified`` code point sequence **after removing every U+FE0F (emoji presentation selector) and
upper-casing** from both sides (OpenMoji names some files without FE0F, emoji-datasource keeps it), with
``color/svg/<HEXCODE>.svg`` present. On emoji-datasource 16.0.0 / OpenMoji 17.0.0 that matches all
1,911 Google-and-Twitter records (1,704 of them already by the exact ``unified`` string; none
ambiguously); the 5 skin-tone swatches of category ``Component`` are then dropped (colour squares,
not pictures), leaving **1,906 concepts x 3 designers = 5,718 images** in 98 subcategories.

Split
-----
By concept (the three designers of a concept are always on one side), per subcategory (stratified),
from the seed: a subcategory with n >= 4 concepts gives ``round(test_fraction n)`` (at least 2) concepts
to test and, when n >= 6, ``round(val_fraction n)`` (at least 2) to val, always leaving >= 2 in train;
smaller subcategories stay in train (an in-class test triplet needs two test concepts of a subcategory).
``val`` is for model selection; ``test`` is never looked at in training.

Triplets (val and test; ``TRIPLET_TYPES``)
------------------------------------------
For each held-out concept c and each ordered designer pair (A, B), A != B (6 pairs; ``pairs="cross"``
keeps only the 4 with OpenMoji, the line-art style), with q = image(c, A), p = image(c, B):

- ``in_class`` (hard): n = the nearest neighbour of q under the colour histogram (Bhattacharyya
  coefficient, a model-independent feature) among the split's images of *other concepts of the same
  subcategory* (any designer). r(q, n) is the golden relevance, but a human would still rank c above it.
- ``out_of_class``: n = an image of another subcategory (r = 0), uniform from the seed
  (``out_of_class="random"``, the paper's choice) or the colour nearest neighbour there
  (``out_of_class="color_nn"``).

A concept that some designer draws (nearly) identically to c (mean absolute pixel difference < 1 on
0..255 at the stored size: e.g. the flags of France, St. Martin and Clipperton Island are one picture;
``near_duplicates.json``) is never c's negative, in either type: no one could rank such a triplet
from the pictures. Each triplet also carries its *pair kind*: ``cross_style`` (OpenMoji with Google or Twitter) or
``same_style`` (Google with Twitter). Mining the negatives with the colour histogram makes the colour
histogram baseline weak *by construction* (its precision is reported, but is not a fair score).

Golden features and relevance (Sec. 5 of the paper)
---------------------------------------------------
The paper's relevance r_ij comes from a "golden feature", a weighted combination of learned and
hand-made features, with r_ij = 0 across categories. Here the golden vector of image i is

    g_i = [ sqrt(w_cnn) * f_i / |f_i| ,  sqrt(w_color) * sqrt(h_i) ]

with f_i the ImageNet-pretrained EfficientNet-Lite0 pooled feature (1280-d, ReLU6 output so f >= 0) and
h_i the colour histogram (sums to 1), so g_i . g_j = w_cnn cos(f_i, f_j) + w_color BC(h_i, h_j) lies in
[0, w_cnn + w_color]. Then

    r_ij = [c_i = c_j] [i != j] ( g_i . g_j + w_concept [concept_i = concept_j] )

with c = category (subcategory). ``w_concept = 0`` (default) is the paper's rule (golden features only);
``w_concept > 0`` adds the designer-pair judgement of the training concepts to the teacher signal. The
total relevance r_i = sum_j r_ij drives query sampling (Sec. 5.1).

Files (``cache_dir()/benchmarks/emoji/<profile>/``, all written atomically, ``stamp.json`` last)
-----------------------------------------------------------------------------------------------
``images.npy`` uint8 (N, S, S, 3) white background, and the same pictures as ``png/<designer>/<code>.png``;
``metadata.csv`` (one row per image: image_id, concept, unified, name, designer, category (top-level
CLDR group), subcategory (the benchmark's category), category_id, split, source (``<asset>/<path in
the package>``), licence, file (the PNG));
``cnn.npy`` float32 (N, 1280); ``color_hist.npy`` float32 (N, bins^3); ``{val,test}_triplets.npy``
int64 (T, 3) image ids (query, positive, negative), ``{val,test}_triplet_type.npy`` int8 (index into
``TRIPLET_TYPES``), ``{val,test}_triplet_pair.npy`` int8 (index into ``PAIR_KINDS``);
``{val,test}_query_and_triplets.txt`` (Deep Ranking's file, via
:mod:`xmlib.data.formats.deepranking_triplets`, images named by their PNG path);
``near_duplicates.json``; ``stats.json`` (counts, matching counts, baselines, build times); ``stamp.json``.
Pictures are stored as each designer draws them (OpenMoji keeps its own margin inside its 72-unit
view box; nothing is cropped).

Measured (default profile, seed 0; ``stats.json``)
-------------------------------------------------
1,906 concepts (train 1,192 / val 240 / test 474), 98 subcategories (89 in test), 177 near-duplicate
concept pairs; test triplets 5,676 (in-class 2,832, out-of-class 2,844; cross-style 3,784). Similarity
precision on test, all / in-class / out-of-class: pretrained CNN (cosine) .678 / .448 / .907; raw 32 px
pixels .628 / .456 / .800; colour histogram .396 / .122 / .668 (mined against); golden vector
.516 / .204 / .827. In-class CNN precision below one half means the pretrained features prefer another
concept in the query's own style to the same concept in another style (86% of in-class negatives
are by the query's designer): that is what a learned fine-grained similarity has to fix.

Public API: :func:`build`, :func:`load`, :func:`stats`, :func:`triplet_examples`,
:func:`baseline_precisions`, :func:`load_fashion_mnist`, :class:`EmojiBenchmark`.
Command line: ``python -m xmlib.data.benchmarks.emoji [--profile smoke] [--force]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from xmlib.core.config import BaseConfig, resolve_config
from xmlib.core.io import atomic_path, atomic_save_npy, atomic_write_json, load_npy

__all__ = [
    "BUILD_VERSION",
    "DESIGNERS",
    "TRIPLET_TYPES",
    "PAIR_KINDS",
    "EmojiConfig",
    "PROFILES",
    "EmojiBenchmark",
    "FashionMNIST",
    "build",
    "load",
    "stats",
    "baseline_precisions",
    "similarity_precision",
    "triplet_examples",
    "color_histograms",
    "make_triplets",
    "near_duplicate_pairs",
    "read_concepts",
    "split_concepts",
    "normalize_code",
    "load_fashion_mnist",
    "default_out_dir",
]

#: Bumped when the build's output changes for the same config (invalidates old stamps).
BUILD_VERSION = 2
DESIGNERS = ("google", "twitter", "openmoji")
TRIPLET_TYPES = ("in_class", "out_of_class")
PAIR_KINDS = ("cross_style", "same_style")
SPLITS = ("train", "val", "test")
LICENCES = {"google": "Apache-2.0", "twitter": "CC-BY-4.0", "openmoji": "CC-BY-SA-4.0"}
ASSET_OF = {"google": "emoji-google", "twitter": "emoji-twitter", "openmoji": "openmoji"}
_FE0F = "FE0F"

#: Inside each extracted npm package (the layout of emoji-datasource-* and openmoji).
EMOJI_JSON = "package/emoji.json"
EMOJI_PNG_DIR = {"google": "package/img/google/64", "twitter": "package/img/twitter/64"}
OPENMOJI_JSON = "package/data/openmoji.json"
OPENMOJI_SVG_DIR = "package/color/svg"

FeatureFn = Callable[[Sequence[Path]], np.ndarray]


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmojiConfig(BaseConfig):
    """How the benchmark is built (a profile is a set of values that differ from these defaults).

    size: stored image side S in pixels. subcategories: keep only these (empty = all).
    exclude_categories: top-level CLDR categories dropped. test_fraction / val_fraction: share of each
    subcategory's concepts held out (see the module docstring). pairs: ``"all"`` six ordered designer
    pairs per concept or ``"cross"`` only those with OpenMoji. out_of_class: ``"random"`` or
    ``"color_nn"``. hist_bins: levels per RGB channel of the colour histogram (bins^3 cells).
    white_threshold: pixels with all channels >= this are background, left out of the histogram.
    raw_size: side of the raw-pixel baseline. duplicate_threshold: mean absolute pixel difference
    (0..255) under which two concepts drawn by one designer count as the same picture (never query and
    negative of one triplet; 0 turns the check off). golden_cnn / golden_color / golden_concept: the weights
    w_cnn, w_color, w_concept of the golden relevance.
    """

    size: int = 64
    subcategories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ("Component",)
    test_fraction: float = 0.25
    val_fraction: float = 0.10
    pairs: str = "all"
    out_of_class: str = "random"
    hist_bins: int = 6
    white_threshold: int = 240
    raw_size: int = 32
    duplicate_threshold: float = 1.0
    golden_cnn: float = 0.5
    golden_color: float = 0.5
    golden_concept: float = 0.0

    def validate(self) -> None:
        self.require(8 <= self.size <= 512, "size", "choose a side between 8 and 512 pixels")
        self.require(0.0 < self.test_fraction < 0.9, "test_fraction", "must be in (0, 0.9)")
        self.require(0.0 <= self.val_fraction < 0.5, "val_fraction", "must be in [0, 0.5)")
        self.require(self.test_fraction + self.val_fraction < 0.9, "val_fraction",
                     "test_fraction + val_fraction must leave concepts for training (< 0.9)")
        self.require(self.pairs in ("all", "cross"), "pairs", "use 'all' or 'cross'")
        self.require(self.out_of_class in ("random", "color_nn"), "out_of_class", "use 'random' or 'color_nn'")
        self.require(2 <= self.hist_bins <= 16, "hist_bins", "use 2..16 levels per channel")
        self.require(0 < self.white_threshold <= 256, "white_threshold", "use 1..256 (256 keeps every pixel)")
        self.require(4 <= self.raw_size <= self.size, "raw_size", "use 4..size")
        self.require(0.0 <= self.duplicate_threshold < 64, "duplicate_threshold", "use 0 (off) .. 64")
        for name in ("golden_cnn", "golden_color", "golden_concept"):
            self.require(getattr(self, name) >= 0, name, "weights of the golden relevance must be >= 0")
        self.require(self.golden_cnn + self.golden_color > 0, "golden_cnn",
                     "golden_cnn + golden_color must be > 0")


PROFILES: dict[str, dict[str, Any]] = {
    # 3 subcategories, 68 concepts, 204 images: builds in well under a minute once the assets are there.
    "smoke": {"subcategories": ("food-fruit", "animal-bird", "face-concerned")},
    "default": {},
    "paper": {},
}


# ------------------------------------------------------------------------------------------------
# Reading the three packages
# ------------------------------------------------------------------------------------------------
def normalize_code(seq: str) -> str:
    """The matching key of a code point sequence: upper case, ``-`` separated, without U+FE0F.

    >>> normalize_code("2764-fe0f"), normalize_code("0023-FE0F-20E3")
    ('2764', '0023-20E3')
    """
    parts = [p for p in seq.strip().upper().split("-") if p and p != _FE0F]
    return "-".join(parts)


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: expected {what}. Fetch the asset with "
                                "`python -m xmlib.data fetch` or pass sources= pointing at the extracted packages")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _default_sources() -> dict[str, Path]:
    from xmlib.data.assets import fetch

    return {d: Path(fetch(ASSET_OF[d])) for d in DESIGNERS}


def read_concepts(sources: Mapping[str, Path], cfg: EmojiConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """The matched concepts (one row each, in emoji-datasource's ``sort_order``) and match counts.

    ``sources`` maps each designer to the extracted package folder (the one holding ``package/``).
    Columns: concept (normalised code), unified, name, category, subcategory, and per designer the
    source file path.
    """
    missing = [d for d in DESIGNERS if d not in sources]
    if missing:
        raise KeyError(f"sources= lacks {missing}; give a folder for each of {list(DESIGNERS)}")
    src = {d: Path(sources[d]) for d in DESIGNERS}
    records = {d: _read_json(src[d] / EMOJI_JSON, f"emoji-datasource-{d}'s emoji.json") for d in ("google", "twitter")}
    om = _read_json(src["openmoji"] / OPENMOJI_JSON, "OpenMoji's data/openmoji.json")
    om_by_key: dict[str, list[str]] = {}
    for rec in om:
        om_by_key.setdefault(normalize_code(rec["hexcode"]), []).append(rec["hexcode"])
    tw_flags = {r["unified"]: bool(r.get("has_img_twitter")) for r in records["twitter"]}

    rows = []
    counts = {"emoji_json_records": len(records["google"]), "google_and_twitter": 0, "matched_exact": 0,
              "matched_without_fe0f": 0, "ambiguous": 0, "excluded_category": 0}
    for rec in sorted(records["google"], key=lambda r: (r.get("sort_order", 0), r["unified"])):
        uni = rec["unified"]
        if not (rec.get("has_img_google") and tw_flags.get(uni)):
            continue
        png = {d: src[d] / EMOJI_PNG_DIR[d] / rec["image"] for d in ("google", "twitter")}
        if not all(p.is_file() for p in png.values()):
            continue
        counts["google_and_twitter"] += 1
        key = normalize_code(uni)
        hexes = [h for h in om_by_key.get(key, []) if (src["openmoji"] / OPENMOJI_SVG_DIR / f"{h}.svg").is_file()]
        if not hexes:
            continue
        if len(hexes) > 1:
            counts["ambiguous"] += 1
            hexes = sorted(hexes, key=lambda h: (h.upper() != uni.upper(), h))  # exact spelling first
        counts["matched_exact" if hexes[0].upper() == uni.upper() else "matched_without_fe0f"] += 1
        if rec.get("category") in cfg.exclude_categories:
            counts["excluded_category"] += 1
            continue
        if cfg.subcategories and rec.get("subcategory") not in cfg.subcategories:
            continue
        name = (rec.get("name") or rec.get("short_name") or uni).lower()
        rows.append({
            "concept": key, "unified": uni, "name": name, "category": rec["category"],
            "subcategory": rec["subcategory"],
            "google": png["google"], "twitter": png["twitter"],
            "openmoji": src["openmoji"] / OPENMOJI_SVG_DIR / f"{hexes[0]}.svg",
        })
    counts["matched"] = counts["matched_exact"] + counts["matched_without_fe0f"]
    if cfg.subcategories:
        unknown = sorted(set(cfg.subcategories) - {r["subcategory"] for r in rows})
        if unknown:
            raise ValueError(f"EmojiConfig.subcategories names {unknown}, which have no matched concept; "
                             "use CLDR subcategory names such as 'face-smiling' or 'animal-bird'")
    concepts = pd.DataFrame(rows)
    if concepts.empty:
        raise ValueError(f"no concept is drawn by all three designers under {sorted(map(str, src.values()))}; "
                         "check the sources= folders (each must hold package/...)")
    if concepts["concept"].duplicated().any():
        dup = concepts.loc[concepts["concept"].duplicated(), "unified"].tolist()[:5]
        raise ValueError(f"two emoji.json records share a code point sequence after removing FE0F: {dup}")
    counts["concepts"] = len(concepts)
    return concepts.reset_index(drop=True), counts


# ------------------------------------------------------------------------------------------------
# Split, histograms, triplets
# ------------------------------------------------------------------------------------------------
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


def color_histograms(images: np.ndarray, bins: int = 6, white_threshold: int = 240) -> np.ndarray:
    """Joint RGB histograms of the non-background pixels: float32 (N, bins^3), each row sums to 1.

    images: uint8 (N, S, S, 3). A pixel whose three channels are all >= ``white_threshold`` is
    background and not counted; an image with no foreground pixel gets the histogram of all its pixels.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, S, S, 3), got {images.dtype} {images.shape}")
    n = images.shape[0]
    q = (images.astype(np.int64) * bins) // 256                      # (N, S, S, 3) levels 0..bins-1
    cell = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]          # (N, S, S)
    fg = ~(images >= white_threshold).all(axis=-1)                    # (N, S, S)
    out = np.zeros((n, bins ** 3), dtype=np.float64)
    for i in range(n):
        mask = fg[i] if fg[i].any() else np.ones_like(fg[i])
        out[i] = np.bincount(cell[i][mask], minlength=bins ** 3)
    out /= out.sum(axis=1, keepdims=True)
    return out.astype(np.float32)


def _bhattacharyya(h: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    s = np.sqrt(h.astype(np.float64))
    return s[rows] @ s[cols].T                                         # (len(rows), len(cols))


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


def make_triplets(meta: pd.DataFrame, hist: np.ndarray, split: str, cfg: EmojiConfig,
                  seed: int, duplicates: Sequence[tuple[str, str]] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation triplets of one split: (T, 3) int64 image ids, type (T,) int8, pair kind (T,) int8.

    See the module docstring for the rules; concept pairs in ``duplicates`` (see
    :func:`near_duplicate_pairs`) are never query and negative. Deterministic from ``seed`` (only the
    random out-of-class negatives use it).
    """
    sel = meta[meta["split"] == split]
    if sel.empty:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int8), np.zeros(0, np.int8)
    rng = np.random.default_rng([seed, SPLITS.index(split), 7])
    ids = sel["image_id"].to_numpy()
    cat = sel["category_id"].to_numpy()
    concept = sel["concept"].to_numpy()
    by = {(c, d): i for i, c, d in zip(ids, concept, sel["designer"])}
    designer_pairs = [(a, b) for a in DESIGNERS for b in DESIGNERS if a != b]
    if cfg.pairs == "cross":
        designer_pairs = [(a, b) for a, b in designer_pairs if "openmoji" in (a, b)]
    trip, typ, pair = [], [], []
    # Nearest colour neighbour of every query among the split's images (two candidate pools).
    bc = _bhattacharyya(hist, ids, ids)                                # (n, n)
    same_cat = cat[:, None] == cat[None, :]
    other_concept = concept[:, None] != concept[None, :]
    if len(duplicates):
        codes, inv = np.unique(concept, return_inverse=True)
        pos = {c: k for k, c in enumerate(codes)}
        dup = np.zeros((len(codes), len(codes)), dtype=bool)
        for a, b in duplicates:
            if a in pos and b in pos:
                dup[pos[a], pos[b]] = dup[pos[b], pos[a]] = True
        other_concept &= ~dup[inv[:, None], inv[None, :]]
    in_pool = same_cat & other_concept
    out_pool = ~same_cat & other_concept
    # argmax over the pool; ties -> lowest image id (ids are sorted ascending)
    in_nn = np.where(in_pool.any(1), np.where(in_pool, bc, -np.inf).argmax(1), -1)
    out_nn = np.where(out_pool.any(1), np.where(out_pool, bc, -np.inf).argmax(1), -1)
    pos_of = {int(i): k for k, i in enumerate(ids)}
    for c in pd.unique(concept):
        for a, b in designer_pairs:
            q, p = int(by[(c, a)]), int(by[(c, b)])
            k = pos_of[q]
            kind = PAIR_KINDS.index("cross_style" if "openmoji" in (a, b) else "same_style")
            if in_nn[k] >= 0:
                trip.append((q, p, int(ids[in_nn[k]])))
                typ.append(0)
                pair.append(kind)
            if out_pool[k].any():
                if cfg.out_of_class == "color_nn":
                    n = int(ids[out_nn[k]])
                else:
                    n = int(rng.choice(ids[out_pool[k]]))
                trip.append((q, p, n))
                typ.append(1)
                pair.append(kind)
    return (np.asarray(trip, dtype=np.int64).reshape(-1, 3), np.asarray(typ, dtype=np.int8),
            np.asarray(pair, dtype=np.int8))


# ------------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------------
def similarity_precision(sim_qp: np.ndarray, sim_qn: np.ndarray) -> float:
    """Similarity precision from similarities: share of triplets with s(q, p+) > s(q, p-); a tie counts
    one half here (the data card's convention); NaN when there is no triplet. Computed by
    :func:`xmlib.metrics.triplets.precision_from_distances`, which the chapters use with ties incorrect."""
    from xmlib.metrics.triplets import precision_from_distances

    if np.asarray(sim_qp).size == 0:
        return float("nan")
    return precision_from_distances(sim_qp, sim_qn, tie_credit=0.5, higher_is_closer=True)


def _l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _raw_pixels(images: np.ndarray, side: int) -> np.ndarray:
    """Block-mean downsample to side x side, scaled to [0, 1], flattened: float32 (N, side*side*3)."""
    n, s = images.shape[0], images.shape[1]
    if s % side == 0:
        f = s // side
        x = images.reshape(n, side, f, side, f, 3).astype(np.float32).mean(axis=(2, 4))
    else:
        from PIL import Image

        x = np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.BILINEAR)) for im in images])
    return (x.reshape(n, -1) / 255.0).astype(np.float32)


def baseline_precisions(bench: "EmojiBenchmark", split: str = "test") -> dict[str, dict[str, float]]:
    """Similarity precision of model-free baselines on the split's triplets, overall and per type/pair.

    ``cnn``: cosine of the pretrained EfficientNet-Lite0 pooled features; ``color_hist``: Bhattacharyya
    coefficient of the colour histograms (also the feature that mined the negatives, so low by
    construction); ``raw_pixels``: negative squared Euclidean distance of ``raw_size`` px pixels;
    ``golden``: the golden vector's dot product (no concept term).
    """
    trip, typ, pair = bench.triplets_of(split)
    feats = {
        "cnn": _l2n(bench.cnn),
        "color_hist": np.sqrt(bench.color_hist.astype(np.float64)),
        "golden": bench.golden.astype(np.float64),
    }
    raw = _raw_pixels(bench.images, bench.config.raw_size).astype(np.float64)
    out: dict[str, dict[str, float]] = {}
    q, p, n = trip[:, 0], trip[:, 1], trip[:, 2]
    for name in ("cnn", "color_hist", "raw_pixels", "golden"):
        if name == "raw_pixels":
            sp = -((raw[q] - raw[p]) ** 2).sum(1)
            sn = -((raw[q] - raw[n]) ** 2).sum(1)
        else:
            f = feats[name]
            sp = (f[q] * f[p]).sum(1)
            sn = (f[q] * f[n]).sum(1)
        row = {"all": similarity_precision(sp, sn)}
        for t, tname in enumerate(TRIPLET_TYPES):
            row[tname] = similarity_precision(sp[typ == t], sn[typ == t])
            for k, kname in enumerate(PAIR_KINDS):
                m = (typ == t) & (pair == k)
                row[f"{tname}/{kname}"] = similarity_precision(sp[m], sn[m])
        for k, kname in enumerate(PAIR_KINDS):
            row[kname] = similarity_precision(sp[pair == k], sn[pair == k])
        out[name] = row
    return out


# ------------------------------------------------------------------------------------------------
# The loaded benchmark
# ------------------------------------------------------------------------------------------------
@dataclass
class EmojiBenchmark:
    """A built benchmark in memory.

    images: uint8 (N, S, S, 3); meta: one row per image (``image_id`` = row index); cnn: float32
    (N, 1280) pretrained features f_i; color_hist: float32 (N, bins^3) h_i; ``test_triplets`` /
    ``val_triplets``: int64 (T, 3) image ids (p_i, p_i+, p_i-) with ``*_type`` (index into
    :data:`TRIPLET_TYPES`) and ``*_pair`` (index into :data:`PAIR_KINDS`).
    """

    root: Path
    config: EmojiConfig
    seed: int
    images: np.ndarray
    meta: pd.DataFrame
    cnn: np.ndarray
    color_hist: np.ndarray
    test_triplets: np.ndarray
    test_type: np.ndarray
    test_pair: np.ndarray
    val_triplets: np.ndarray
    val_type: np.ndarray
    val_pair: np.ndarray

    def __post_init__(self) -> None:
        self._category = self.meta["category_id"].to_numpy(np.int64)
        self._concept_id = pd.factorize(self.meta["concept"])[0].astype(np.int64)

    # -- convenient views ------------------------------------------------------------------------
    @property
    def triplets(self) -> np.ndarray:
        """The test triplets (T, 3) (query, positive, negative) image ids."""
        return self.test_triplets

    @property
    def triplet_type(self) -> np.ndarray:
        return self.test_type

    def triplets_of(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if split == "test":
            return self.test_triplets, self.test_type, self.test_pair
        if split == "val":
            return self.val_triplets, self.val_type, self.val_pair
        raise ValueError(f"split must be 'val' or 'test' (training triplets are sampled online), got {split!r}")

    def indices(self, split: str) -> np.ndarray:
        """Image ids of a split (``"train"``, ``"val"`` or ``"test"``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.flatnonzero(self.meta["split"].to_numpy() == split)

    @property
    def train_idx(self) -> np.ndarray:
        return self.indices("train")

    @property
    def val_idx(self) -> np.ndarray:
        return self.indices("val")

    @property
    def test_idx(self) -> np.ndarray:
        return self.indices("test")

    @property
    def category(self) -> np.ndarray:
        """Category c_i (subcategory index, int64) of every image."""
        return self._category

    @property
    def category_names(self) -> list[str]:
        names = self.meta.drop_duplicates("category_id").sort_values("category_id")["subcategory"]
        return names.tolist()

    @property
    def concept_id(self) -> np.ndarray:
        """A dense integer per concept (same for the three designers' images)."""
        return self._concept_id

    # -- golden features (Sec. 5) ----------------------------------------------------------------
    @property
    def golden(self) -> np.ndarray:
        """Golden vectors g_i = [sqrt(w_cnn) f_i/|f_i|, sqrt(w_color) sqrt(h_i)]: float32 (N, 1280 + bins^3).

        g_i . g_j = w_cnn cos(f_i, f_j) + w_color BC(h_i, h_j); computed once per (features, weights)."""
        c = self.config
        key = (id(self.cnn), id(self.color_hist), c.golden_cnn, c.golden_color)
        cached = self.__dict__.get("_golden_cache")
        if cached is None or cached[0] != key:
            g = np.concatenate([math.sqrt(c.golden_cnn) * _l2n(self.cnn),
                                math.sqrt(c.golden_color) * np.sqrt(self.color_hist.astype(np.float64))],
                               axis=1).astype(np.float32)
            self.__dict__["_golden_cache"] = cached = (key, g)
        return cached[1]

    def with_weights(self, *, cnn: float | None = None, color: float | None = None,
                     concept: float | None = None) -> "EmojiBenchmark":
        """A view of the benchmark with other golden weights (w_cnn, w_color, w_concept); arrays are shared."""
        changes = {k: v for k, v in (("golden_cnn", cnn), ("golden_color", color), ("golden_concept", concept))
                   if v is not None}
        return dataclasses.replace(self, config=self.config.replace(**changes))

    def relevance(self, i: np.ndarray | int, j: np.ndarray | int) -> np.ndarray:
        """r_ij for index arrays ``i``, ``j`` (broadcast against each other): the golden dot product
        (+ w_concept when same concept) within a category; 0 across categories and for i = j. float64."""
        i, j = np.broadcast_arrays(np.asarray(i, np.int64), np.asarray(j, np.int64))
        fi, fj = i.ravel(), j.ravel()
        g = self.golden
        r = np.empty(fi.size)
        for s in range(0, fi.size, 1 << 14):                              # (chunk, D) at a time
            a, b = fi[s:s + (1 << 14)], fj[s:s + (1 << 14)]
            r[s:s + len(a)] = np.einsum("nd,nd->n", g[a].astype(np.float64), g[b].astype(np.float64))
        return self._mask(r, fi, fj).reshape(i.shape)

    def _mask(self, r: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        cid, cat = self.concept_id, self.category
        r = r + self.config.golden_concept * (cid[i] == cid[j])
        return np.where((cat[i] == cat[j]) & (i != j), np.maximum(r, 0.0), 0.0)

    def relevance_matrix(self, rows: np.ndarray | None = None, cols: np.ndarray | None = None) -> np.ndarray:
        """Dense r_ij for i in ``rows``, j in ``cols`` (default both: the training images): float64 (n, m)."""
        rows = self.train_idx if rows is None else np.asarray(rows, np.int64)
        cols = rows if cols is None else np.asarray(cols, np.int64)
        g = self.golden
        r = g[rows].astype(np.float64) @ g[cols].astype(np.float64).T     # (n, m)
        return self._mask(r, rows[:, None], cols[None, :])

    def total_relevance(self, idx: np.ndarray | None = None) -> np.ndarray:
        """r_i = sum_j r_ij over the pool ``idx`` (default: training images), computed per category."""
        idx = self.train_idx if idx is None else np.asarray(idx, np.int64)
        out = np.zeros(len(idx))
        cat = self.category[idx]
        for c in np.unique(cat):
            pos = np.flatnonzero(cat == c)
            out[pos] = self.relevance_matrix(idx[pos]).sum(1)
        return out

    @property
    def near_duplicates(self) -> list[tuple[str, str]]:
        """Concept pairs one designer draws (nearly) identically (``near_duplicates.json``)."""
        path = Path(self.root) / "near_duplicates.json"
        return [tuple(p) for p in json.loads(path.read_text())] if path.is_file() else []

    def label(self, i: int) -> str:
        row = self.meta.iloc[int(i)]
        return f"{row['name']} · {row['designer']}"

    def stats(self) -> dict[str, Any]:
        return stats(self)


# ------------------------------------------------------------------------------------------------
# Build / load
# ------------------------------------------------------------------------------------------------
def default_out_dir(profile: str) -> Path:
    from xmlib.core.paths import cache_dir

    return cache_dir() / "benchmarks" / "emoji" / profile


def _default_features(paths: Sequence[Path]) -> np.ndarray:
    from xmlib.data.features import image_features

    return np.asarray(image_features(list(paths), kind="pooled", cache_key="emoji"), dtype=np.float32)


def _load_images(paths: Sequence[Path], size: int) -> np.ndarray:
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


def _stamp_key(cfg: EmojiConfig, seed: int, sources: Mapping[str, Path] | None) -> dict[str, Any]:
    if sources is None:
        from xmlib.data.assets import ASSETS

        src = {d: ASSETS[ASSET_OF[d]].sha256 for d in DESIGNERS}
    else:
        src = {d: str(Path(sources[d]).resolve()) for d in DESIGNERS}
    return {"build_version": BUILD_VERSION, "config": cfg.to_dict(), "seed": int(seed), "sources": src}


def _resolve(profile: str, overrides: Mapping[str, Any] | None) -> EmojiConfig:
    return resolve_config(EmojiConfig, PROFILES, profile, overrides)


def build(
    profile: str = "default",
    *,
    out_dir: str | Path | None = None,
    seed: int = 0,
    force: bool = False,
    overrides: Mapping[str, Any] | None = None,
    sources: Mapping[str, str | Path] | None = None,
    feature_fn: FeatureFn | None = None,
    verbose: bool = False,
) -> Path:
    """Build the benchmark for ``profile`` (``smoke`` | ``default`` | ``paper``) and return its folder.

    Idempotent: when ``stamp.json`` in the folder records the same config, seed, sources and
    :data:`BUILD_VERSION`, nothing is done (``force=True`` rebuilds). ``sources`` maps each designer
    to an extracted package folder (default: the fetched assets); ``feature_fn(paths) -> (N, D)``
    replaces the pretrained CNN features (tests use a cheap one).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    cfg = _resolve(profile, overrides)
    out = Path(out_dir) if out_dir is not None else default_out_dir(profile)
    key = _stamp_key(cfg, seed, sources)
    stamp = out / "stamp.json"
    if not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text())["key"] == json.loads(json.dumps(key)):
                return out
        except (ValueError, KeyError):
            pass
    if stamp.exists():
        stamp.unlink()  # the folder is being rewritten: never trusted until the new stamp is written
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    last = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - last[0], 2)
        last[0] = now
        if verbose:
            print(f"[emoji] {name}: {timings[name]:.1f}s", flush=True)

    src = {d: Path(s) for d, s in (sources or _default_sources()).items()}
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
                "source": f"{ASSET_OF[d]}/{path.relative_to(src[d]).as_posix()}", "licence": LICENCES[d],
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

    out.mkdir(parents=True, exist_ok=True)
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
    bench = _read(out, cfg, seed)
    info = stats(bench, with_baselines=True)
    info["matching"] = counts
    names = dict(zip(meta["concept"], meta["name"]))
    info["near_duplicate_concept_pairs"] = [[a, b, names[a], names[b]] for a, b in dups]
    lap("baselines")
    info["build_seconds"] = dict(timings, total=round(time.perf_counter() - t0, 2))
    atomic_write_json(out / "stats.json", info)
    atomic_write_json(stamp, {"key": key, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return out


def _write_thumbnails(out: Path, meta: pd.DataFrame, images: np.ndarray) -> None:
    """The stored images as PNG files ``<out>/<file>`` (``png/<designer>/<code>.png``), so the Deep
    Ranking file can name them by a path relative to its folder. Written into a temporary folder that
    replaces ``png/`` when complete (the stamp, written after, is what marks the build usable)."""
    import os
    import shutil
    import tempfile

    from PIL import Image

    tmp = Path(tempfile.mkdtemp(prefix=".png.", suffix=".part", dir=out))
    try:
        for f, im in zip(meta["file"], images):
            dest = tmp / Path(f).relative_to("png")
            dest.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(im).save(dest, format="PNG")
        if (out / "png").exists():
            shutil.rmtree(out / "png")
        os.replace(tmp, out / "png")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_deepranking_file(path: Path, meta: pd.DataFrame, trip: np.ndarray) -> None:
    """Deep Ranking's ``query_and_triplets.txt``: per triplet the query text (the concept's name) and
    the three images (query, positive, negative) as paths relative to the benchmark folder."""
    from xmlib.data.formats.deepranking_triplets import write_query_and_triplets

    names = meta["name"].to_numpy()
    files = meta["file"].to_numpy()
    records = [(str(names[q]), str(files[q]), str(files[p]), str(files[n])) for q, p, n in trip]
    if records:
        write_query_and_triplets(path, records)


def _read(root: Path, cfg: EmojiConfig, seed: int) -> EmojiBenchmark:
    meta = pd.read_csv(root / "metadata.csv", dtype={"concept": str, "unified": str, "split": str},
                       keep_default_na=False)
    arr = {s: (load_npy(root / f"{s}_triplets.npy"), load_npy(root / f"{s}_triplet_type.npy"),
               load_npy(root / f"{s}_triplet_pair.npy")) for s in ("val", "test")}
    return EmojiBenchmark(
        root=root, config=cfg, seed=seed, images=load_npy(root / "images.npy"), meta=meta,
        cnn=load_npy(root / "cnn.npy"), color_hist=load_npy(root / "color_hist.npy"),
        test_triplets=arr["test"][0], test_type=arr["test"][1], test_pair=arr["test"][2],
        val_triplets=arr["val"][0], val_type=arr["val"][1], val_pair=arr["val"][2],
    )


def load(profile: str = "default", *, out_dir: str | Path | None = None, seed: int = 0,
         overrides: Mapping[str, Any] | None = None, build_missing: bool = True, **build_kwargs: Any) -> EmojiBenchmark:
    """Load a built benchmark (building it first when missing or stale, unless ``build_missing=False``)."""
    cfg = _resolve(profile, overrides)
    root = Path(out_dir) if out_dir is not None else default_out_dir(profile)
    if build_missing:
        build(profile, out_dir=root, seed=seed, overrides=overrides, **build_kwargs)
    elif not (root / "stamp.json").is_file():
        raise FileNotFoundError(f"no built emoji benchmark in {root}: run "
                                f"`python -m xmlib.data.benchmarks.emoji --profile {profile}`")
    return _read(root, cfg, seed)


# ------------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------------
def stats(bench: EmojiBenchmark | str = "default", *, with_baselines: bool = True) -> dict[str, Any]:
    """Counts for the data card: concepts, images per designer and split, categories, triplets by
    type and pair kind, and (``with_baselines``) the baselines' similarity precision on val and test.
    ``bench`` may be a loaded benchmark or a profile name (then the stored ``stats.json`` is returned
    when it exists)."""
    if isinstance(bench, str):
        path = default_out_dir(bench) / "stats.json"
        if path.is_file():
            return json.loads(path.read_text())
        bench = load(bench)
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
        out["near_duplicate_concept_pairs_count"] = len(json.loads(dup_file.read_text()))
    for split in ("val", "test"):
        t, ty, pk = bench.triplets_of(split)
        out[f"{split}_triplets"] = {"total": int(len(t)),
                                    **{n: int((ty == k).sum()) for k, n in enumerate(TRIPLET_TYPES)},
                                    **{n: int((pk == k).sum()) for k, n in enumerate(PAIR_KINDS)}}
    if with_baselines:
        out["baselines"] = {s: baseline_precisions(bench, s) for s in ("val", "test") if len(bench.triplets_of(s)[0])}
    return out


def triplet_examples(bench: EmojiBenchmark, n: int = 6, *, split: str = "test", kind: str | None = None,
                     seed: int = 0) -> tuple[np.ndarray, list[tuple[str, str, str]], list[str]]:
    """``n`` random triplets for a figure: images uint8 (n, 3, S, S, 3) (query, positive, negative),
    labels ``("name · designer", ...)`` per triplet and each triplet's type. ``kind`` picks one type."""
    t, ty, _ = bench.triplets_of(split)
    pool = np.arange(len(t)) if kind is None else np.flatnonzero(ty == TRIPLET_TYPES.index(kind))
    if len(pool) == 0:
        raise ValueError(f"no {kind or ''} triplets in split {split!r}")
    pick = np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False)
    images = bench.images[t[pick]]                                     # (n, 3, S, S, 3)
    labels = [tuple(bench.label(i) for i in t[k]) for k in pick]
    return images, labels, [TRIPLET_TYPES[ty[k]] for k in pick]


# ------------------------------------------------------------------------------------------------
# Fashion-MNIST, for the sampler at scale
# ------------------------------------------------------------------------------------------------
@dataclass
class FashionMNIST:
    """Fashion-MNIST as Deep Ranking data: images uint8 (N, 28, 28), category = class label (10),
    ``split`` ``"train"``/``"test"``; :meth:`golden` gives a cheap hand-made golden feature."""

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: tuple[str, ...]

    @property
    def category(self) -> np.ndarray:
        return self.labels

    def golden(self, side: int = 14) -> np.ndarray:
        """L2-normalised block-mean ``side`` x ``side`` pixels: float32 (N, side^2), non-negative, so
        r_ij = g_i . g_j in [0, 1] within a class."""
        n, s = self.images.shape[0], self.images.shape[1]
        if s % side:
            raise ValueError(f"side must divide {s}, got {side}")
        f = s // side
        x = self.images.reshape(n, side, f, side, f).astype(np.float32).mean(axis=(2, 4)).reshape(n, -1)
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)).astype(np.float32)


def load_fashion_mnist(*, cache: str | Path | None = None) -> FashionMNIST:
    """Fashion-MNIST through :func:`xmlib.data.assets.load_fashion_mnist` (fetched on demand)."""
    from xmlib.data import assets

    assets.fetch("fashion-mnist", cache=cache)
    images, labels, split = assets.load_fashion_mnist(cache=cache)
    return FashionMNIST(images, labels, split, tuple(assets.FASHION_MNIST_CLASSES))


def _main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m xmlib.data.benchmarks.emoji", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    root = build(args.profile, seed=args.seed, force=args.force, verbose=True)
    info = json.loads((root / "stats.json").read_text())
    info.pop("near_duplicate_concept_pairs", None)
    print(json.dumps(info, indent=1, default=str))
    print(f"[emoji] {root} ready in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
