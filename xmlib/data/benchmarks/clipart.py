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
- **Folds.** 5 folds over the queries, seeded (:func:`make_folds`); every query is in split ``train``
  (the format's split name): model selection and test both come from the folds.

Profiles (:data:`PROFILES`): ``default`` = the full benchmark (N = 50 candidates); ``smoke`` = 8
non-flag queries of at most 40 images, 20 candidates each, over a 400-image sub-collection (their
relevant images plus a seeded sample), for a quick end-to-end run.

Files (``cache_dir()/benchmarks/clipart/<profile>/``): the MediaEval'17 layout
(``interactions/interactions_train.csv``, ``DeepFeatures/train/efficientnet_lite0_pooled/{qid}_PreLogits.npy``,
``DeepFeatures/train/imlist/{qid}_imlist.txt``, ``qrels_train.json``, ``folds.json``, ``meta.json``)
plus ``queries.csv`` (qid, text, folder, flag), ``images.csv`` (img_id, svg, png, folders, title,
description, de-leaked and raw keywords), ``build_stamp.json`` and ``build_info.json`` (timings).

Public API: :func:`build`, :func:`load`, :func:`stats`, :func:`example_lists`. ``build`` is idempotent
(a stamp holds the build parameters; a second call returns at once).

Example::

    from xmlib.data.benchmarks import clipart
    path = clipart.build("default")          # minutes the first time, then instant
    data = clipart.load("default")           # MediaEvalData: data[qid].features / .rel / .visual
    weak = data.meta["feature_sets"]["weak"] # column names of the BM25-only h^0
    clipart.stats(path)["no_flags"]["first_stage"]["map"]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from xmlib.core.io import atomic_write_json
from xmlib.core.paths import cache_dir

__all__ = [
    "BUILD_VERSION", "EXCLUDED", "PROFILES", "QUERY_NAMES", "FEATURES", "FEATURE_GROUPS", "FEATURE_SETS",
    "ClipartMetadataError", "ClipartImage", "ClipartQuery", "Corpus",
    "analyse", "parse_svg_metadata", "scan_corpus", "leak_terms", "deleak_keywords", "select_queries",
    "is_relevant", "make_folds", "rank_scores", "build_lists", "build", "load", "stats", "example_lists",
    "default_out_dir",
]

BUILD_VERSION = 1  # bump when the output changes for the same parameters

#: Folders left out of the collection (non-semantic or near-duplicate sets); a prefix excludes its subtree.
EXCLUDED: tuple[str, ...] = (
    "shapes/stars",
    "computer/icons",
    "special",
    "unsorted",
    "signs_and_symbols/led",
    "recreation/games/cards/bordered",
    "recreation/games/cards/ornamental",
    "recreation/games/cards/simple",
    "recreation/games/cards/white",
)

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

#: Text LTR feature columns (without the ``_feature`` suffix), in file order.
FEATURES: tuple[str, ...] = ("bm25_all", "bm25_title", "bm25_description", "bm25_keywords",
                             "minilm_cosine", "first_stage_score", "first_stage_rank", "text_length")
FEATURE_GROUPS: dict[str, list[str]] = {
    "bm25": ["bm25_all", "bm25_title", "bm25_description", "bm25_keywords"],
    "dense": ["minilm_cosine"],
    "first_stage": ["first_stage_score", "first_stage_rank"],
    "length": ["text_length"],
}
FEATURE_SETS: dict[str, list[str]] = {
    "weak": list(FEATURE_GROUPS["bm25"]),
    "strong": list(FEATURES),
}

#: Build parameters per profile (``build(profile)``).
#: ``smoke`` draws ``max_queries`` non-flag queries with at most ``smoke_max_relevant`` images and a
#: sub-collection of ``max_collection`` images (their relevant images plus a seeded sample of the rest),
#: so that it builds in about a minute from an empty feature cache.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"n_candidates": 20, "max_queries": 8, "max_collection": 400, "smoke_max_relevant": 40,
              "min_images": 10, "rrf_k": 60, "n_folds": 5},
    "default": {"n_candidates": 50, "max_queries": None, "max_collection": None, "smoke_max_relevant": None,
                "min_images": 10, "rrf_k": 60, "n_folds": 5},
}

_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "cc": "http://web.resource.org/cc/",
}
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


class ClipartMetadataError(ValueError):
    """An SVG whose RDF metadata cannot be read; the message names the file and the field."""


# ----------------------------------------------------------------------------------------------
# text analysis


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


_STOP: frozenset[str] | None = None


def _stem(word: str) -> str:
    """A light English plural stripper ("cats" -> "cat", "berries" -> "berry", "boxes" -> "box")."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def analyse(text: str) -> list[str]:
    """The analyser every text goes through (BM25, de-leaking, text length).

    Lower-case, ``_``/``-`` as spaces, words of two or more characters, English stop words removed
    (bm25s's list), plural ``s`` stripped by :func:`_stem`.
    """
    global _STOP
    if _STOP is None:
        _STOP = _stopwords()
    text = text.lower().replace("_", " ").replace("-", " ")
    return [_stem(t) for t in _TOKEN.findall(text) if t not in _STOP]


# ----------------------------------------------------------------------------------------------
# corpus


@dataclass(frozen=True)
class ClipartImage:
    """One drawing: ``img_id`` (a hash of ``svg``), the canonical SVG path relative to the package's
    ``svg/`` folder, every curator folder it sits in, and its uploader metadata."""

    img_id: str
    svg: str
    folders: tuple[str, ...]
    title: str
    description: str
    keywords: tuple[str, ...]

    @property
    def png(self) -> str:
        """The PNG's path relative to the package's ``png/`` folder."""
        return self.svg[: -len(".svg")] + ".png"


@dataclass(frozen=True)
class ClipartQuery:
    """One query: ``qid``, the curator ``folder`` it stands for, its ``text``, and ``flag`` (a
    country/region flag folder)."""

    qid: str
    folder: str
    text: str
    flag: bool


@dataclass
class Corpus:
    """The scanned package: kept ``images`` (sorted by path), every folder of the package (excluded ones
    too), and the SVGs skipped because their metadata could not be read (``(path, reason)``)."""

    images: list[ClipartImage]
    all_folders: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    n_excluded: int = 0


def parse_svg_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``dc:title``, ``dc:description`` and the ``dc:subject`` keywords of one SVG.

    Raises :class:`ClipartMetadataError` naming the file and what is missing: an XML syntax error, no
    ``rdf:RDF`` / ``cc:Work`` block, or no ``dc:title`` element. A missing ``dc:description`` or
    ``dc:subject`` reads as empty (the text is noisy by nature). When a file holds several ``cc:Work``
    blocks, the first is used.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ClipartMetadataError(f"{path}: the SVG is not well-formed XML ({exc}); its RDF metadata cannot be read") from exc
    except OSError as exc:
        raise ClipartMetadataError(f"{path}: cannot be read ({exc})") from exc
    work = root.find(".//rdf:RDF/cc:Work", _NS)
    if work is None:
        raise ClipartMetadataError(f"{path}: no <rdf:RDF><cc:Work> metadata block (field 'cc:Work' missing)")
    title_el = work.find("dc:title", _NS)
    if title_el is None:
        raise ClipartMetadataError(f"{path}: RDF metadata has no 'dc:title' field (cc:Work/dc:title)")
    desc_el = work.find("dc:description", _NS)
    subj_el = work.find("dc:subject", _NS)
    keywords: list[str] = []
    if subj_el is not None:
        items = subj_el.findall(".//rdf:li", _NS)
        if items:
            keywords = [(li.text or "").strip() for li in items]
        elif (subj_el.text or "").strip():  # a plain comma/space separated list
            keywords = [k.strip() for k in re.split(r"[,;]", subj_el.text)]
    return {
        "title": " ".join((title_el.text or "").split()),
        "description": " ".join(("".join(desc_el.itertext()) if desc_el is not None else "").split()),
        "keywords": tuple(k for k in (" ".join(k.split()) for k in keywords) if k),
    }


def _excluded(folder: str, excluded: Sequence[str]) -> bool:
    return any(folder == e or folder.startswith(e + "/") for e in excluded)


def _img_id(svg_rel: str) -> str:
    return "oc" + hashlib.sha1(svg_rel.encode("utf-8")).hexdigest()[:12]


def scan_corpus(svg_root: str | os.PathLike, *, excluded: Sequence[str] = EXCLUDED,
                max_skipped_fraction: float = 0.05) -> Corpus:
    """Walk the package's ``svg/`` folder: one :class:`ClipartImage` per distinct file.

    Symbolic links (the package's de-duplication) add their folder to the target's ``folders``. SVGs
    whose metadata cannot be read are skipped and listed in ``Corpus.skipped``; more than
    ``max_skipped_fraction`` of them is an error (the package is probably damaged).
    """
    svg_root = Path(svg_root)
    if not svg_root.is_dir():
        raise FileNotFoundError(f"OpenClipart SVG folder {svg_root} does not exist; fetch it with "
                                "`python -m xmlib.data fetch openclipart-svg`")
    real_root = svg_root.resolve()
    locations: dict[str, set[str]] = {}
    all_folders: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(svg_root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(svg_root).as_posix()
        if rel_dir != ".":
            all_folders.add(rel_dir)
        for name in sorted(filenames):
            if not name.lower().endswith(".svg"):
                continue
            p = Path(dirpath) / name
            try:
                target = p.resolve(strict=True).relative_to(real_root).as_posix()
            except (OSError, ValueError):
                continue  # a dangling link or one leaving the package
            folder = "" if rel_dir == "." else rel_dir
            locations.setdefault(target, set()).add(folder)
    images: list[ClipartImage] = []
    skipped: list[tuple[str, str]] = []
    n_excluded = 0
    for svg_rel in sorted(locations):
        folders = tuple(sorted(f for f in locations[svg_rel] if f and not _excluded(f, excluded)))
        if not folders:
            n_excluded += 1
            continue
        try:
            meta = parse_svg_metadata(real_root / svg_rel)
        except ClipartMetadataError as exc:
            skipped.append((svg_rel, str(exc)))
            continue
        images.append(ClipartImage(_img_id(svg_rel), svg_rel, folders, meta["title"], meta["description"],
                                   meta["keywords"]))
    total = len(images) + len(skipped)
    if total == 0:
        raise ValueError(f"no readable SVG under {svg_root} outside the excluded folders {list(excluded)}")
    if len(skipped) > max_skipped_fraction * total:
        raise ValueError(f"{len(skipped)} of {total} SVGs under {svg_root} have unreadable metadata "
                         f"(first: {skipped[0][1]}); the package looks damaged — delete and re-fetch it")
    return Corpus(images, sorted(all_folders), skipped, n_excluded)


# ----------------------------------------------------------------------------------------------
# de-leaking, queries, relevance, folds


def leak_terms(folders: Iterable[str]) -> set[tuple[str, ...]]:
    """The analysed forms a keyword may not take: every word of every folder name and every whole
    folder name (``big_cats`` gives ``("big",)``, ``("cat",)`` and ``("big", "cat")``)."""
    out: set[tuple[str, ...]] = set()
    for folder in folders:
        for part in folder.split("/"):
            toks = analyse(part)
            if toks:
                out.add(tuple(toks))
                out.update((t,) for t in toks)
    return out


def deleak_keywords(keywords: Sequence[str], leaks: set[tuple[str, ...]]) -> list[str]:
    """Drop every keyword whose analysed form equals a leak term (:func:`leak_terms`).

    The same ``leaks`` (built from all folders of the package) is applied to every image alike: a
    keyword ``"cat"`` is dropped on a tiger *and* on a sofa, whatever the image's own folder.
    Keywords that analyse to nothing (stop words, single characters) are dropped too.
    """
    out = []
    for k in keywords:
        toks = tuple(analyse(k))
        if toks and toks not in leaks:
            out.append(k)
    return out


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


def make_folds(qids: Sequence[str], n_folds: int = 5, seed: int = 0) -> list[list[str]]:
    """Split query ids into ``n_folds`` folds (the MediaEval format's seeded
    :func:`~xmlib.data.formats.mediaeval.make_query_folds`); each fold sorted.

    A partition (every id in exactly one fold, sizes differ by at most one), the same for the same
    ``(set of ids, n_folds, seed)``.
    """
    from xmlib.data.formats.mediaeval import make_query_folds

    return [sorted(f) for f in make_query_folds(list(qids), n_folds, seed)]


def rank_scores(scores: Sequence[float]) -> np.ndarray:
    """Strictly decreasing stand-ins for ``scores`` that keep the tie rule.

    Sorting on ``-score`` with a stable sort keeps the stored row order among ties; the returned
    values are ``n - position`` in that order, so trec_eval (which breaks ties by document id) ranks
    exactly as the tie rule says.
    """
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    out = np.empty(len(s), dtype=np.float64)
    out[order] = np.arange(len(s), 0, -1, dtype=np.float64)
    return out


# ----------------------------------------------------------------------------------------------
# first stage and features


def _doc_text(title: str, description: str, keywords: Sequence[str]) -> str:
    parts = [p for p in (title, description, ", ".join(keywords)) if p]
    return ". ".join(parts)


def _rank_positions(scores: np.ndarray, positive_only: bool) -> np.ndarray:
    """1-based rank of each document (ties by collection order); 0 where ``positive_only`` and score <= 0."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    if positive_only:
        ranks[scores <= 0] = 0
    return ranks


class _Bm25Field:
    """BM25 (bm25s defaults: Lucene variant, k1 = 1.5, b = 0.75) over one field of the collection;
    a field empty on every document scores 0 everywhere."""

    def __init__(self, token_lists: list[list[str]]):
        self.n = len(token_lists)
        self.index = None
        if any(token_lists):
            import bm25s

            self.index = bm25s.BM25()
            self.index.index(token_lists, show_progress=False)

    def get_scores(self, query_tokens: list[str]) -> np.ndarray:
        if self.index is None or not query_tokens:
            return np.zeros(self.n)
        return np.asarray(self.index.get_scores(query_tokens), dtype=np.float64)


def _bm25_index(token_lists: list[list[str]]) -> _Bm25Field:
    return _Bm25Field(token_lists)


def _l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def build_lists(
    images: Sequence[ClipartImage],
    queries: Sequence[ClipartQuery],
    leaks: set[tuple[str, ...]],
    *,
    n_candidates: int,
    rrf_k: int = 60,
    seed: int = 0,
    text_encoder: Callable[[list[str]], np.ndarray],
) -> tuple[dict[str, list[dict[str, Any]]], list[list[str]]]:
    """First stage + text features for every query.

    Returns ``{qid: rows}`` with one row per candidate in the stored (shuffled) order — ``img_id``,
    ``rel`` and every feature of :data:`FEATURES` — and the de-leaked keywords of every image.
    ``text_encoder(texts) -> (n, 384)`` embeds queries and documents (MiniLM in the book).
    """
    kws = [deleak_keywords(im.keywords, leaks) for im in images]
    fields = {
        "title": [analyse(im.title) for im in images],
        "description": [analyse(im.description) for im in images],
        "keywords": [analyse(" ; ".join(k)) for k in kws],
    }
    fields["all"] = [a + b + c for a, b, c in zip(fields["title"], fields["description"], fields["keywords"])]
    indexes = {name: _bm25_index(toks) for name, toks in fields.items()}
    texts = [_doc_text(im.title, im.description, k) for im, k in zip(images, kws)]
    doc_emb = _l2n(text_encoder(texts))  # (n_docs, 384)
    q_emb = _l2n(text_encoder([q.text for q in queries]))  # (n_queries, 384)
    lengths = np.array([len(t) for t in fields["all"]], dtype=np.float64)

    lists: dict[str, list[dict[str, Any]]] = {}
    for qi, q in enumerate(queries):
        q_toks = analyse(q.text)
        bm = {name: np.asarray(ix.get_scores(q_toks), dtype=np.float64) for name, ix in indexes.items()}
        cos = doc_emb @ q_emb[qi]  # (n_docs,)
        r_bm = _rank_positions(bm["all"], positive_only=True)
        r_ds = _rank_positions(cos, positive_only=False)
        rrf = np.where(r_bm > 0, 1.0 / (rrf_k + np.maximum(r_bm, 1)), 0.0) + 1.0 / (rrf_k + r_ds)
        top = np.argsort(-rrf, kind="stable")[:n_candidates]
        rows = []
        for rank, d in enumerate(top, start=1):
            im = images[d]
            rows.append({
                "img_id": im.img_id,
                "rel": int(is_relevant(im.folders, q.folder)),
                "bm25_all": float(bm["all"][d]),
                "bm25_title": float(bm["title"][d]),
                "bm25_description": float(bm["description"][d]),
                "bm25_keywords": float(bm["keywords"][d]),
                "minilm_cosine": float(cos[d]),
                "first_stage_score": float(rrf[d]),
                "first_stage_rank": float(rank),
                "text_length": float(lengths[d]),
            })
        perm = np.random.default_rng([seed, qi]).permutation(len(rows))
        lists[q.qid] = [rows[i] for i in perm]
    return lists, kws


# ----------------------------------------------------------------------------------------------
# build / load


def default_out_dir(profile: str) -> Path:
    return cache_dir() / "benchmarks" / "clipart" / profile


def _default_text_encoder(texts: list[str]) -> np.ndarray:
    from xmlib.data.features import text_embeddings

    return np.asarray(text_embeddings(texts, cache_key="clipart"), dtype=np.float32)


def _default_image_featurizer(paths: list[Path]) -> np.ndarray:
    from xmlib.data.features import image_features

    return np.asarray(image_features(paths, kind="pooled", cache_key="clipart"), dtype=np.float32)


def _smoke_subset(images: list[ClipartImage], queries: list[ClipartQuery], cfg: dict[str, Any],
                  seed: int) -> tuple[list[ClipartImage], list[ClipartQuery]]:
    """The ``smoke`` subset: ``max_queries`` non-flag queries with at most ``smoke_max_relevant`` images,
    and a collection of their relevant images plus a seeded sample of others, ``max_collection`` in all."""
    rng = np.random.default_rng([seed, 8])
    pool = [q for q in queries if not q.flag
            and sum(is_relevant(im.folders, q.folder) for im in images) <= cfg["smoke_max_relevant"]]
    if len(pool) < cfg["max_queries"]:
        pool = list(queries)
    k = min(cfg["max_queries"], len(pool))
    chosen = [pool[i] for i in sorted(rng.choice(len(pool), k, replace=False))]
    keep = {i for i, im in enumerate(images) if any(is_relevant(im.folders, q.folder) for q in chosen)}
    rest = np.array([i for i in range(len(images)) if i not in keep])
    n_more = max(0, min(len(rest), cfg["max_collection"] - len(keep)))
    keep |= set(rng.choice(rest, n_more, replace=False).tolist()) if n_more else set()
    return [images[i] for i in sorted(keep)], chosen


def _asset_roots() -> tuple[Path, Path]:
    from xmlib.data.assets import CLIPART_PNG_DIR, CLIPART_SVG_DIR, fetch

    return fetch("openclipart-svg") / CLIPART_SVG_DIR, fetch("openclipart-png") / CLIPART_PNG_DIR


_STAMP = "build_stamp.json"


def _params(profile: str, seed: int, svg_root: Path, png_root: Path) -> dict[str, Any]:
    if profile not in PROFILES:
        raise ValueError(f"unknown clipart profile {profile!r}; choose one of {sorted(PROFILES)}")
    return {"benchmark": "clipart", "build_version": BUILD_VERSION, "profile": profile, "seed": int(seed),
            **PROFILES[profile], "excluded": list(EXCLUDED), "svg_root": str(svg_root), "png_root": str(png_root)}


def _read_stamp(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / _STAMP).read_text())
    except (OSError, ValueError):
        return None


def build(
    profile: str = "default",
    *,
    out_dir: str | os.PathLike | None = None,
    seed: int = 0,
    force: bool = False,
    svg_root: str | os.PathLike | None = None,
    png_root: str | os.PathLike | None = None,
    text_encoder: Callable[[list[str]], np.ndarray] | None = None,
    image_featurizer: Callable[[list[Path]], np.ndarray] | None = None,
    verbose: bool = True,
) -> Path:
    """Build the clipart benchmark for ``profile`` (``smoke`` | ``default``) and return its folder.

    ``out_dir`` defaults to ``cache_dir()/benchmarks/clipart/<profile>``. Idempotent: when the folder's
    stamp matches the parameters the call returns at once (``force=True`` rebuilds). The folder is
    written under a temporary name and renamed into place, so an interrupted build leaves nothing that
    a later call trusts. ``svg_root`` / ``png_root`` (the packages' ``svg/`` and ``png/`` folders,
    default: the fetched assets), ``text_encoder`` and ``image_featurizer`` may be replaced (tests).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown clipart profile {profile!r}; choose one of {sorted(PROFILES)}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    out = Path(out_dir) if out_dir is not None else default_out_dir(profile)
    if svg_root is None or png_root is None:
        s, p = _asset_roots()
        svg_root = s if svg_root is None else svg_root
        png_root = p if png_root is None else png_root
    svg_root, png_root = Path(svg_root), Path(png_root)
    params = _params(profile, seed, svg_root, png_root)
    if not force and _read_stamp(out) == params:
        return out

    t0 = time.perf_counter()
    cfg = PROFILES[profile]
    timings: dict[str, float] = {}
    corpus = scan_corpus(svg_root)
    images = corpus.images
    timings["scan_svgs"] = time.perf_counter() - t0
    queries = select_queries(images, min_images=cfg["min_images"])
    if cfg["max_queries"] is not None:
        images, queries = _smoke_subset(images, queries, cfg, seed)
    leaks = leak_terms(corpus.all_folders)
    t1 = time.perf_counter()
    lists, kws = build_lists(images, queries, leaks, n_candidates=cfg["n_candidates"], rrf_k=cfg["rrf_k"],
                             seed=seed, text_encoder=text_encoder or _default_text_encoder)
    timings["first_stage_and_text_features"] = time.perf_counter() - t1
    # A list without any relevant image can neither train (no pairs for Eq. (7)) nor tell rankers apart
    # (AP = 0 for all); MediaEval's queries all have relevant results. Such queries are dropped.
    dropped = [q for q in queries if not any(r["rel"] for r in lists[q.qid])]
    queries = [q for q in queries if q not in dropped]
    lists = {q.qid: lists[q.qid] for q in queries}
    if len(queries) < cfg["n_folds"]:
        raise ValueError(f"only {len(queries)} queries have a relevant candidate; at least n_folds="
                         f"{cfg['n_folds']} are needed (collection {svg_root})")

    by_id = {im.img_id: i for i, im in enumerate(images)}
    needed = sorted({r["img_id"] for rows in lists.values() for r in rows}, key=by_id.__getitem__)
    png_paths = [png_root / images[by_id[i]].png for i in needed]
    missing = [p for p in png_paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} PNGs are missing under {png_root} (first: {missing[0]}); "
                                "re-fetch with `python -m xmlib.data fetch openclipart-png`")
    t1 = time.perf_counter()
    feats = np.asarray((image_featurizer or _default_image_featurizer)(png_paths), dtype=np.float32)
    timings["image_features"] = time.perf_counter() - t1
    if feats.ndim != 2 or feats.shape[0] != len(needed):
        raise ValueError(f"image featurizer returned shape {feats.shape}, expected ({len(needed)}, D)")
    vis = {i: feats[k] for k, i in enumerate(needed)}

    folds = make_folds([q.qid for q in queries], cfg["n_folds"], seed)
    meta = {
        "benchmark": "clipart",
        "description": "OpenClipart 0.18 image search: curator folders as queries, uploader RDF text as "
                       "surrounding text; see xmlib.data.benchmarks.clipart",
        "source": {"packages": ["openclipart-svg 1:0.18+dfsg-19", "openclipart-png 1:0.18+dfsg-19"],
                   "licence": "public domain"},
        "params": params,
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
    image_rows = [{"img_id": images[by_id[i]].img_id, "svg": images[by_id[i]].svg, "png": images[by_id[i]].png,
                   "folders": ";".join(images[by_id[i]].folders), "title": images[by_id[i]].title,
                   "description": images[by_id[i]].description,
                   "keywords": ";".join(kws[by_id[i]]), "keywords_raw": ";".join(images[by_id[i]].keywords)}
                  for i in needed]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    os.chmod(tmp, 0o755)
    try:
        _write(tmp, queries, lists, vis, folds, meta, image_rows)
        meta_build = {"seconds": round(time.perf_counter() - t0, 1),
                      "timings_s": {k: round(v, 1) for k, v in timings.items()},
                      "images_in_collection": len(images), "images_featurised": len(needed)}
        atomic_write_json(tmp / "build_info.json", meta_build)
        atomic_write_json(tmp / _STAMP, params)
        if out.exists():
            old = out.with_name(f".{out.name}.old.{os.getpid()}")
            os.replace(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if verbose and corpus.skipped:
        print(f"clipart: skipped {len(corpus.skipped)} SVGs with unreadable metadata (listed in meta.json)")
    return out


SPLIT = "train"  # all queries form one split; model selection uses the 5 folds over it
FEATURE_DIR = "efficientnet_lite0_pooled"


def _write(out: Path, queries, lists, vis, folds, meta, image_rows) -> None:
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


def _resolve(path_or_profile: str | os.PathLike) -> Path:
    p = Path(path_or_profile)
    if isinstance(path_or_profile, str) and path_or_profile in PROFILES and not p.exists():
        p = default_out_dir(path_or_profile)
    if not (p / "meta.json").is_file():
        raise FileNotFoundError(f"{p} holds no built clipart benchmark (meta.json missing); run "
                                "xmlib.data.benchmarks.clipart.build(profile) first")
    return p


def load(profile: str = "default", *, out_dir: str | os.PathLike | None = None):
    """Read a built benchmark through the MediaEval'17 reader: a ``MediaEvalData`` (split ``train``,
    5 ``folds``, ``meta`` with queries, query sets and feature sets). Build it first with :func:`build`."""
    from xmlib.data.formats.mediaeval import read_mediaeval

    path = Path(out_dir) if out_dir is not None else default_out_dir(profile)
    return read_mediaeval(_resolve(path), SPLIT, feature_dir=FEATURE_DIR)


def _trec(data, qids: Sequence[str], column: str) -> dict[str, float]:
    import pytrec_eval

    names = list(data.feature_names)
    j = names.index(column + "_feature")
    sign = -1.0 if column == "first_stage_rank" else 1.0
    run = {}
    for q in qids:
        qq = data[q]
        s = rank_scores(sign * qq.features[:, j].astype(np.float64))
        run[q] = {i: float(v) for i, v in zip(qq.img_ids, s)}
    qrels = {q: data.qrels[q] for q in qids}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"map", "P.20", "ndcg_cut.20"})
    res = ev.evaluate(run)
    return {
        "map": float(np.mean([res[q]["map"] for q in qids])),
        "P@20": float(np.mean([res[q]["P_20"] for q in qids])),
        "nDCG@20": float(np.mean([res[q]["ndcg_cut_20"] for q in qids])),
    }


def stats(path: str | os.PathLike | Any = "default") -> dict[str, Any]:
    """Summary of a built benchmark (a folder, a profile name, or loaded data), per query set
    (``all`` and ``no_flags``): number of queries, candidates per query, relevant-rate quartiles, and
    MAP / P@20 / nDCG@20 (pytrec_eval, tie rule of :func:`rank_scores`) of single-feature rankers over the
    candidate lists: the first stage (RRF), BM25 alone and MiniLM alone."""
    data = path if hasattr(path, "queries") else load(out_dir=_resolve(path))
    out: dict[str, Any] = {"images_in_collection": data.meta.get("counts", {}).get("images_in_collection"),
                           "images_featurised": data.meta.get("counts", {}).get("images_featurised")}
    for name, qids in data.meta["query_sets"].items():
        qids = [q for q in qids if q in data.queries]
        if not qids:
            continue
        n = np.array([len(data[q]) for q in qids])
        rate = np.array([data[q].rel.mean() for q in qids])
        out[name] = {
            "queries": len(qids),
            "candidates_mean": float(n.mean()),
            "candidates_min": int(n.min()),
            "relevant_rate_quartiles": [float(x) for x in np.quantile(rate, [0.25, 0.5, 0.75])],
            "relevant_rate_mean": float(rate.mean()),
            "lists_with_rate_10_90": float(np.mean((rate >= 0.1) & (rate <= 0.9))),
            "lists_without_relevant": int((rate == 0).sum()),
            "first_stage": _trec(data, qids, "first_stage_rank"),
            "bm25": _trec(data, qids, "bm25_all"),
            "minilm": _trec(data, qids, "minilm_cosine"),
        }
    return out


def example_lists(path: str | os.PathLike = "default", n_queries: int = 4, n_images: int = 4, *,
                  seed: int = 0, include_flags: bool = False) -> list[dict[str, Any]]:
    """Pictures for the data chapter: for ``n_queries`` queries (seeded choice), the query text and
    folder, and up to ``n_images`` relevant and non-relevant candidates, each a dict with ``img_id``,
    ``png`` (absolute path), ``title``, ``keywords`` (de-leaked) and ``folders``."""
    import pandas as pd

    root = _resolve(path)
    meta = json.loads((root / "meta.json").read_text())
    imgs = pd.read_csv(root / "images.csv", dtype=str, keep_default_na=False).set_index("img_id")
    inter = pd.read_csv(root / "interactions" / f"interactions_{SPLIT}.csv", dtype={"query_id": str, "img_id": str},
                        usecols=["query_id", "img_id", "rel", "first_stage_rank_feature"])
    png_root = Path(meta["params"]["png_root"])
    qids = [q for q in meta["query_sets"]["all" if include_flags else "no_flags"]]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(qids), min(n_queries, len(qids)), replace=False))
    out = []
    for k in chosen:
        q = qids[k]
        g = inter[inter["query_id"] == q].sort_values("first_stage_rank_feature", kind="stable")

        def pick(rows):
            res = []
            for i in rows["img_id"][:n_images]:
                r = imgs.loc[i]
                res.append({"img_id": i, "png": str(png_root / r["png"]), "title": r["title"],
                            "keywords": r["keywords"], "folders": r["folders"]})
            return res

        out.append({"query_id": q, "text": meta["queries"][q]["text"], "folder": meta["queries"][q]["folder"],
                    "relevant": pick(g[g["rel"] > 0]), "non_relevant": pick(g[g["rel"] == 0])})
    return out
