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

How it is made
--------------
- **Concepts** (:mod:`.concepts`): the emoji records drawn by all three designers under the one
  matching rule of :mod:`xmlib.data.sources.emoji` (1,911 on the pinned packages); the 5 skin-tone
  swatches of category ``Component`` are dropped (colour squares, not pictures), leaving **1,906
  concepts x 3 designers = 5,718 images** in 98 subcategories.
- **Split** (:mod:`.split`): by concept, stratified per subcategory, from the seed.
- **Colour histograms** (:mod:`.histograms`) and **near-duplicate concepts** (:mod:`.duplicates`:
  mean absolute pixel difference < 1 on 0..255 for some designer, e.g. the flags of France, St. Martin
  and Clipperton Island are one picture; never query and negative of one triplet).
- **Triplets** (:mod:`.triplets`, ``TRIPLET_TYPES``): for each held-out concept and ordered designer
  pair, an ``in_class`` (colour nearest neighbour among other concepts of the subcategory, hard) and an
  ``out_of_class`` negative; each triplet carries its *pair kind* (``cross_style`` with OpenMoji, or
  ``same_style``). Mining the negatives with the colour histogram makes the colour histogram baseline
  weak *by construction* (its precision is reported, but is not a fair score).
- **Baselines** (:mod:`.baselines`) for the data card; the loaded benchmark is
  :class:`~.bench.EmojiBenchmark` (data only). Deep Ranking's golden relevance r_ij over it (Sec. 5 of
  the paper) is :mod:`xmlib.deepranking.golden`.

Files (``cache_dir()/benchmarks/emoji/<profile>/``, built once, ``stamp.json`` last)
------------------------------------------------------------------------------------
``images.npy`` uint8 (N, S, S, 3) white background, and the same pictures as ``png/<designer>/<code>.png``;
``metadata.csv`` (one row per image: image_id, concept, unified, name, designer, category (top-level
CLDR group), subcategory (the benchmark's category), category_id, split, source (``<asset>/<path in
the package>``), licence, file (the PNG));
``cnn.npy`` float32 (N, 1280); ``color_hist.npy`` float32 (N, bins^3); ``{val,test}_triplets.npy``
int64 (T, 3) image ids (query, positive, negative), ``{val,test}_triplet_type.npy`` int8 (index into
``TRIPLET_TYPES``), ``{val,test}_triplet_pair.npy`` int8 (index into ``PAIR_KINDS``);
``{val,test}_query_and_triplets.txt`` (Deep Ranking's file, via
:mod:`xmlib.data.formats.deepranking_triplets`, images named by their PNG path);
``near_duplicates.json``; ``stats.json`` (counts, matching counts, baselines, build times); ``stamp.json``
(:mod:`xmlib.data.benchmarks._build`).
Pictures are stored as each designer draws them (OpenMoji keeps its own margin inside its 72-unit
view box; nothing is cropped).

Measured (default profile, seed 0; ``stats.json``)
-------------------------------------------------
1,906 concepts (train 1,192 / val 240 / test 474), 98 subcategories (89 in test), 177 near-duplicate
concept pairs; test triplets 5,676 (in-class 2,832, out-of-class 2,844; cross-style 3,784). Similarity
precision on test, all / in-class / out-of-class: pretrained CNN (cosine) .678 / .448 / .907; raw 32 px
pixels .628 / .456 / .800; colour histogram .396 / .122 / .668 (mined against); golden vector
(:mod:`xmlib.deepranking.golden`, equal weights) .516 / .204 / .827. In-class CNN precision below one
half means the pretrained features prefer another concept in the query's own style to the same concept in another style (86% of in-class negatives
are by the query's designer): that is what a learned fine-grained similarity has to fix.

Public API (the same face as the other benchmarks): :func:`build`, :func:`load`, :func:`out_dir`,
:func:`stats`, :func:`examples`, :data:`VERSION`, :class:`EmojiConfig`, :data:`PROFILES`; and
:class:`EmojiBenchmark`, :func:`baseline_precisions`, :func:`color_histograms`, :func:`make_triplets`,
:func:`near_duplicate_pairs`, :func:`read_concepts`, :func:`split_concepts`.
Command line: ``python -m xmlib.data prepare --only emoji [--profile smoke] [--force]``.
"""

from xmlib.data.benchmarks.emoji.baselines import baseline_precisions, raw_pixels
from xmlib.data.benchmarks.emoji.bench import EmojiBenchmark
from xmlib.data.benchmarks.emoji.builder import VERSION, build, out_dir
from xmlib.data.benchmarks.emoji.concepts import read_concepts
from xmlib.data.benchmarks.emoji.config import PAIR_KINDS, PROFILES, SPLITS, TRIPLET_TYPES, EmojiConfig
from xmlib.data.benchmarks.emoji.duplicates import near_duplicate_pairs
from xmlib.data.benchmarks.emoji.histograms import bhattacharyya, color_histograms
from xmlib.data.benchmarks.emoji.read import examples, load, stats
from xmlib.data.benchmarks.emoji.split import split_concepts
from xmlib.data.benchmarks.emoji.triplets import make_triplets
from xmlib.data.sources.emoji import DESIGNERS

__all__ = [
    "VERSION", "EmojiConfig", "PROFILES", "build", "load", "out_dir", "stats", "examples",
    "DESIGNERS", "SPLITS", "TRIPLET_TYPES", "PAIR_KINDS", "EmojiBenchmark", "baseline_precisions", "raw_pixels",
    "color_histograms", "bhattacharyya", "make_triplets", "near_duplicate_pairs", "read_concepts", "split_concepts",
]
