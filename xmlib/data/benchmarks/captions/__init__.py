"""Benchmark (c), open captions: image–text pairs for the SGRAF chapter, in the SCAN precomp format.

The papers' Flickr30K / COCO features cannot be downloaded here, so the chapter matches images and
captions built from three registry-distributed sources (see ``DATA.md``, benchmark 3):

- **emoji** drawn by three designers (Google and Twitter PNGs from ``emoji-datasource-*``, OpenMoji
  SVGs): the same concept drawn three times gives three images. Captions: the CLDR name, the OpenMoji
  annotation, and phrases of 2–4 CLDR / OpenMoji tags ("cheerful grin smile");
- **Tux Paint stamps**: the English caption sentence of each stamp's ``.txt`` (one caption each);
  the alphabet stamps (rendered letters) are left out;
- **OpenClipart**: images whose uploader title is made of real words (junk titles dropped: digits,
  ``_``, file extensions, "Clipart by ...", collection labels such as "Lemon SVG theme"); the
  description is a second caption when it passes the same test. Every place a drawing sits in the
  curators' tree is an image (the package's links included), as the PNG package renders it.

Rules (the symbols of SGRAF's data: image i has region features V_i = {v_1..v_K}, captions T):

- a **caption key** is a caption's word set without articles: two captions are distinct only when
  their keys differ ("A dog." = "dog"; a reordered tag list is not a new caption);
- a **concept** is one thing depicted: an emoji code point, a Tux Paint stamp, an OpenClipart title.
  Images whose names share a key are one concept (union-find over names, across sources: emoji
  "fire engine", stamp "A fire engine."), and a concept drawn from two sources stays in train;
- the split is **concept-disjoint**: no concept has images on two sides;
- dev and test hold **one image per concept** (a designer drawn at random; the concept's other
  images are dropped) with **5 distinct captions**, none of which is a caption, name or tag phrase of
  any other concept, so the i2t / t2i ground truth is unambiguous. Flags, emoji components, Tux Paint
  and OpenClipart stay in train. Tag phrases for dev/test candidates are drawn per concept in concept
  order, each claiming a key no other concept uses (single tags only fill up concepts with 1–3 tags).
  If fewer concepts qualify than asked for, test keeps its size and dev shrinks (``meta.json``:
  ``plan.eval_shortfall``);
- **split sizes** (default: test 700, dev 200): every dev/test concept is taken out of train, and
  only emoji qualify, so a bigger test leaves train fewer words. Measured on the plan (no features
  needed): test 1,000 / dev 300 leaves train 4,553 images and 39% of test tokens unseen in train;
  test 700 / dev 200 leaves 5,624 images and 23% unseen (500 / 200: 19%). A model that learns its
  word embeddings from scratch (SGRAF does) can do nothing with an unseen word, so the default gives
  up Flickr30K's 1,000 test images for a test vocabulary the training data mostly covers;
- train images may have fewer than 5 distinct captions; SCAN precomp needs exactly 5 per image, so a
  train image's distinct captions are **cycled** to fill 5 lines (``meta.json`` records how many are
  distinct per image). A training epoch therefore sees some pairs more than once. Train tag phrases
  (2–4 tags, no single tags) are drawn afresh, never equal to a dev/test caption; each designer of a
  concept starts at a different phrase.

Visual features: the EfficientNet-Lite0 7 × 7 grid at 224 px as K = 49 regions of D = 1280
(:func:`xmlib.data.features.image_features` ``kind="grid"``), stored as **float16** (the SGRAF
reader casts batches to float32). The vocabulary (SCAN JSON) is built from the train captions
(each image's distinct captions counted once, so cycling does not inflate counts) with count
threshold 1, not SCAN's 4: SCAN's threshold suits 145,000 Flickr30K captions; on our short tag
phrases it maps 31% of test tokens to ``<unk>`` instead of 23%, and an SGR model selected on dev
reached dev rSum 147.6 at threshold 4 against 174.9 at threshold 1 (the SGRAF chapter's CPU
profile, 14 epochs).

Output, under ``cache_dir()/benchmarks/captions/<profile>/`` (built once): ``{train,dev,test}_ims.npy``
(N, 49, 1280), ``{split}_caps.txt`` (5 lines per image), ``{split}_images.txt`` (one image path per
line, relative to the cache folder when inside it), ``vocab.json``, ``meta.json`` (sources, licences,
counts, per-image source / concept ids) and ``stamp.json`` (:mod:`xmlib.data.benchmarks._build`).

Modules: :mod:`.corpus` (the five sources, read by :mod:`xmlib.data.sources`, and the OpenClipart
title rules), :mod:`.text` (caption keys), :mod:`.plan` (the split design, pure),
:mod:`.vocabulary` (vocabulary and coverage), :mod:`.builder` (build), :mod:`.read` (load, stats,
examples), :mod:`.config` (:class:`CaptionsConfig`, :data:`PROFILES`).

API (the same face as the other benchmarks)
-------------------------------------------
- ``build(profile="default", *, out_dir=None, seed=0, force=False, overrides=None) -> Path``
- ``load(profile_or_path="default", split="test") -> PrecompSplit``; ``out_dir(profile) -> Path``
- ``stats(profile_or_path) -> dict``; ``examples(profile_or_path, n=8, *, split="test", seed=0) -> list[dict]``
- ``plan_split(items, cfg, seed) -> Plan`` (pure: the whole design without features);
  ``collect_corpus(roots=None) -> (items, notes)``; ``plan_coverage(plan)``; ``VERSION``.

Command line: ``python -m xmlib.data prepare --only captions [--profile smoke] [--seed 0] [--force]``.
"""

from xmlib.data.benchmarks.captions.builder import VERSION, build, out_dir
from xmlib.data.benchmarks.captions.config import FEATURE_DIM, N_CAP, N_REGIONS, PROFILES, SOURCES, SPLITS, CaptionsConfig
from xmlib.data.benchmarks.captions.corpus import Item, collect_corpus, english_lexicon
from xmlib.data.benchmarks.captions.plan import Plan, plan_split
from xmlib.data.benchmarks.captions.read import examples, folder, image_paths, load, pictures, stats
from xmlib.data.benchmarks.captions.text import caption_key
from xmlib.data.benchmarks.captions.vocabulary import plan_coverage, train_vocabulary

__all__ = [
    "VERSION", "CaptionsConfig", "PROFILES", "build", "load", "out_dir", "stats", "examples", "pictures", "folder",
    "SOURCES", "SPLITS", "N_CAP", "N_REGIONS", "FEATURE_DIM", "Item", "Plan", "caption_key", "collect_corpus",
    "english_lexicon", "image_paths", "plan_split", "plan_coverage", "train_vocabulary",
]
