"""Benchmark (a): clipart image search, the open stand-in for DCMM's web image search data.

DCMM (Formal et al., ECIR 2020) re-ranks, for each text query q, the candidate list a first-stage
text engine returned; each candidate d_i is an image with noisy surrounding text. This module builds
such lists from OpenClipart 0.18 (Debian ``openclipart-svg`` / ``openclipart-png``, public domain)
and writes them in the MediaEval'17 layout that the DCMM code reads
(:mod:`xmlib.data.formats.mediaeval`).

How the benchmark is made (the measured design of ``DATA.md``, benchmark 1):

- **Documents.** One document per distinct SVG file (the Debian package de-duplicates identical
  files with symbolic links, so one drawing may sit in several curator folders; it keeps all of
  them). Its surrounding text is the uploader's RDF metadata: ``dc:title``, ``dc:description`` and the
  ``dc:subject`` keyword bag. Excluded folders (:data:`EXCLUDED`): ``shapes/stars``,
  ``computer/icons/**``, ``special/**``, ``unsorted/**``, ``signs_and_symbols/led`` and the four
  54-card deck folders. A drawing is kept when at least one of its folders is not excluded.
- **De-leaking, uniform.** The uploaders' keywords often repeat the curators' folder names, which are
  the labels. Every keyword equal (after the analyser below) to any folder-name word of the package,
  or to a whole folder name, is dropped **on every image alike** (:func:`deleak_keywords`). Dropping
  only an image's *own* folder words would strip the query term from relevant images only — a leak
  of its own.
- **Queries.** Curator folders with at least ``min_images`` drawings in their subtree, top level
  excluded; the query text is the leaf name, or a hand-written readable name from
  :data:`QUERY_NAMES` (e.g. ``big_cats`` -> "big cats"). Country/region flag folders are flagged
  (``flag=True``): their relevance is geography rather than appearance, so :func:`stats` reports every
  number for the full set and for the set without them. A query whose candidate list holds no
  relevant image is dropped (listed in ``meta.json`` under ``dropped_queries``): it gives no training
  pair and the same AP = 0 to every re-ranker (MediaEval's queries all have relevant results).
- **Candidates** (the first stage). Reciprocal-rank fusion (``rrf_k`` = 60) of BM25 (``bm25s``) and
  MiniLM cosine (all-MiniLM-L6-v2) over title + description + de-leaked keywords, on the whole
  collection, cut at ``n_candidates`` (50). Ranking ties are broken by the document's position in
  the collection (sorted by file path); documents with BM25 = 0 get no BM25 rank (no contribution).
- **Relevance** (binary, ``rel``): 1 when one of the drawing's folders is the query's folder or lies
  below it (:func:`is_relevant`). It comes from the curators, independently of the uploader's text.
- **Row order and ties.** Each list is shuffled with a generator seeded by ``(seed, query index)``
  before writing. *Tie rule:* a ranker's equal scores keep that stored (random) row order — sort with a
  stable sort on the negated score. :func:`rank_scores` turns scores into strictly decreasing
  values so that trec_eval (which breaks ties by document id) sees the same order.
  Image ids are hashes of the file path, so they carry no label.
- **Text LTR features** h^0 (DCMM Eq. (6) input, the paper's ``in_dim``), one ``*_feature`` column
  each: ``bm25_all``, ``bm25_title``, ``bm25_description``, ``bm25_keywords`` (field-wise BM25, each
  field its own index), ``minilm_cosine`` (the DESM analogue), ``first_stage_score`` (RRF),
  ``first_stage_rank`` (1 = top), ``text_length`` (analysed tokens). Two sets, listed in
  ``meta.json`` under ``feature_sets``: ``weak`` = the four BM25 features (a paper-like ranker,
  in_dim 4); ``strong`` = all eight.
- **Visual** v_i: EfficientNet-Lite0 pooled 1280-d features of the PNG
  (:func:`xmlib.data.features.image_features`), stored per query as ``{qid}_PreLogits.npy`` in the
  row order of ``{qid}_imlist.txt`` (the paper used 1536-d Inception-ResNet pre-logits).
- **Folds.** 5 folds over the queries, seeded (:func:`query_folds`); every query is in split ``train``
  (the format's split name): model selection and test both come from the folds.

Config (:class:`ClipartConfig`, profiles in :data:`PROFILES`): ``default`` = the full benchmark
(N = 50 candidates); ``smoke`` = 8 non-flag queries of at most 40 images, 20 candidates each, over a
400-image sub-collection (their relevant images plus a seeded sample), for a quick end-to-end run.

Files (``cache_dir()/benchmarks/clipart/<profile>/``): the MediaEval'17 layout
(``interactions/interactions_train.csv``, ``DeepFeatures/train/efficientnet_lite0_pooled/{qid}_PreLogits.npy``,
``DeepFeatures/train/imlist/{qid}_imlist.txt``, ``qrels_train.json``, ``folds.json``, ``meta.json``)
plus ``queries.csv`` (qid, text, folder, flag), ``images.csv`` (img_id, svg, png, folders, title,
description, de-leaked and raw keywords), ``build_info.json`` (timings) and ``stamp.json``
(:mod:`xmlib.data.benchmarks._build`).

Modules: :mod:`.corpus` (the collection), :mod:`.text` (analyser, de-leaking), :mod:`.queries`
(queries, relevance, folds, smoke subset), :mod:`.lists` (first stage and text features),
:mod:`.builder` (config and build), :mod:`.read` (load, stats, examples). The drawings and their
metadata are read by :mod:`xmlib.data.sources.openclipart`.

Public API (the same face as the other benchmarks): :func:`build`, :func:`load`, :func:`out_dir`,
:func:`stats`, :func:`examples`, :data:`VERSION`, :class:`ClipartConfig`, :data:`PROFILES`.

Example::

    from xmlib.data.benchmarks import clipart
    path = clipart.build("default")          # minutes the first time, then instant
    data = clipart.load(path)                # MediaEvalData: data[qid].features / .rel / .visual
    weak = data.meta["feature_sets"]["weak"] # column names of the BM25-only h^0
    clipart.stats(data)["no_flags"]["first_stage"]["map"]
"""


from xmlib.data.benchmarks.clipart.builder import FEATURE_DIR, PROFILES, SPLIT, VERSION, ClipartConfig, build, out_dir
from xmlib.data.benchmarks.clipart.corpus import EXCLUDED, ClipartImage, Corpus, scan_corpus
from xmlib.data.benchmarks.clipart.lists import FEATURE_GROUPS, FEATURE_SETS, FEATURES, build_lists, rank_scores
from xmlib.data.benchmarks.clipart.queries import QUERY_NAMES, ClipartQuery, is_relevant, query_folds, query_text, select_queries
from xmlib.data.benchmarks.clipart.read import examples, load, pictures, stats
from xmlib.data.benchmarks.clipart.text import analyse, deleak_keywords, leak_terms

__all__ = [
    "VERSION", "ClipartConfig", "PROFILES", "build", "load", "out_dir", "stats", "examples", "pictures",
    "EXCLUDED", "QUERY_NAMES", "FEATURES", "FEATURE_GROUPS", "FEATURE_SETS", "SPLIT", "FEATURE_DIR",
    "ClipartImage", "ClipartQuery", "Corpus", "analyse", "scan_corpus", "leak_terms", "deleak_keywords",
    "select_queries", "query_text", "is_relevant", "query_folds", "rank_scores", "build_lists",
]
