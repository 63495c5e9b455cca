"""Reader of the three emoji packages: one concept, up to three designers.

Assets (see :mod:`xmlib.data.assets` for the layout): ``emoji-google`` and ``emoji-twitter``
(emoji-datasource 16.0.0: 64 px PNGs and ``emoji.json`` with name, category, subcategory and
``has_img_<designer>`` flags) and ``openmoji`` (17.0.0: colour SVGs and ``data/openmoji.json`` with
the annotation and tags).

Matching rule (the only one in the project)
-------------------------------------------
A concept is a record of the Google package's ``emoji.json`` (its ``unified`` code point sequence,
skin-tone variants are not records). A designer draws it when

- Google / Twitter: that designer's own ``emoji.json`` does not say ``has_img_<designer>: false``
  for the record and the 64 px PNG is present;
- OpenMoji: a ``data/openmoji.json`` record has the same **matching key** (:func:`normalize_code`:
  upper case, every U+FE0F emoji presentation selector removed; OpenMoji names some files without
  FE0F, emoji-datasource keeps it) and its ``color/svg/<hexcode>.svg`` is present and renderable
  (:func:`xmlib.data.images.svg_declares_entities`). When several OpenMoji records share the key, the
  one with an SVG and the exact spelling wins (then the smaller hexcode), and the concept is marked
  ``openmoji_ambiguous``.

On emoji-datasource 16.0.0 / OpenMoji 17.0.0 all 1,911 records are drawn by all three designers
(1,704 matched by the exact ``unified`` string, 207 only without FE0F, none ambiguously).

Public API: :func:`read_emoji`, :func:`normalize_code`, :class:`EmojiConcept`, :data:`DESIGNERS`,
:data:`ASSET_OF`, :data:`LICENCES`, :func:`default_roots`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from xmlib.core.io import DataFormatError, load_json_checked, require_inside
from xmlib.data.assets import ASSETS, EMOJI_IMG_DIR, EMOJI_JSON, OPENMOJI_JSON, OPENMOJI_SVG_DIR
from xmlib.data.sources._text import clean_text

__all__ = ["DESIGNERS", "ASSET_OF", "LICENCES", "EmojiConcept", "normalize_code", "read_emoji", "default_roots"]

DESIGNERS = ("google", "twitter", "openmoji")
#: designer -> the asset that holds its pictures
ASSET_OF = {"google": "emoji-google", "twitter": "emoji-twitter", "openmoji": "openmoji"}
LICENCES = {d: ASSETS[a].licence for d, a in ASSET_OF.items()}
_FE0F = "FE0F"


@dataclass(frozen=True)
class EmojiConcept:
    """One emoji record and the pictures of it.

    concept: the matching key (:func:`normalize_code` of ``unified``); unified: emoji-datasource's code
    point sequence; name: the CLDR name, lower case (the short name or the code when it has none);
    category / subcategory: CLDR group and subgroup; sort_order: emoji-datasource's order;
    files: designer -> picture (PNG for Google and Twitter, SVG for OpenMoji), only the designers
    that draw it; annotation: OpenMoji's annotation ("" without an OpenMoji record); tags: OpenMoji's
    CLDR tags then its own tags, lower case, each once; openmoji_match: ``"exact"``,
    ``"without_fe0f"`` or ``""`` (no OpenMoji SVG); openmoji_ambiguous: several OpenMoji records
    share the key.
    """

    concept: str
    unified: str
    name: str
    category: str
    subcategory: str
    sort_order: int
    files: Mapping[str, Path] = field(default_factory=dict)
    annotation: str = ""
    tags: tuple[str, ...] = ()
    openmoji_match: str = ""
    openmoji_ambiguous: bool = False


def normalize_code(seq: str) -> str:
    """The matching key of a code point sequence: upper case, ``-`` separated, without U+FE0F.

    >>> normalize_code("2764-fe0f"), normalize_code("0023-FE0F-20E3")
    ('2764', '0023-20E3')
    """
    parts = [p for p in seq.strip().upper().split("-") if p and p != _FE0F]
    return "-".join(parts)


def default_roots() -> dict[str, Path]:
    """The fetched emoji assets (fetched on first use): asset name -> extracted folder."""
    from xmlib.data.assets import fetch

    return {a: Path(fetch(a)) for a in ASSET_OF.values()}


def _read_json(path: Path, asset: str, pictures: Path) -> Any:
    """The records of an asset's JSON file, each with the fields the matching rule reads, and each
    picture name inside ``pictures``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: fetch the asset with `python -m xmlib.data fetch {asset}`, "
                                f"or pass roots= with the extracted {asset!r} folder (the one holding package/)")
    fix = f"delete the extracted {asset!r} folder and fetch it again (`python -m xmlib.data fetch {asset}`)"
    records = load_json_checked(path, fix=fix)
    if not isinstance(records, list):
        raise DataFormatError(path=path, problem=f"holds a JSON {type(records).__name__}",
                              expected="a list of emoji records", fix=fix)
    keys = ("hexcode",) if asset == "openmoji" else ("unified", "image")
    for n, rec in enumerate(records):
        lacking = [k for k in keys if not (isinstance(rec, dict) and isinstance(rec.get(k), str) and rec[k])]
        if lacking:
            raise DataFormatError(path=path, record=f"record {n}", problem=f"field(s) {lacking} missing or not text",
                                  expected=f"an object with {list(keys)}", fix=fix)
        name = rec["hexcode"] + ".svg" if asset == "openmoji" else rec["image"]
        require_inside(name, pictures, source=path, what=f"the picture of record {n}")
    return records


def _split_tags(*fields: str) -> tuple[str, ...]:
    """Comma-separated tag lists -> distinct lower-case tags, in order."""
    out: list[str] = []
    for f in fields:
        for t in (f or "").split(","):
            t = clean_text(t).lower()
            if t and t not in out:
                out.append(t)
    return tuple(out)


def read_emoji(roots: Mapping[str, str | Path] | None = None) -> tuple[list[EmojiConcept], dict[str, int]]:
    """Every record of the Google package with the designers that draw it, in ``sort_order``.

    ``roots`` maps each of ``emoji-google``, ``emoji-twitter``, ``openmoji`` to its extracted folder
    (default: :func:`default_roots`). Returns the concepts and counts: ``emoji_json_records``,
    ``google_and_twitter`` (records drawn by both), and among those ``matched_exact`` /
    ``matched_without_fe0f`` (with an OpenMoji SVG) and ``ambiguous``.
    """
    from xmlib.data.images import svg_declares_entities

    roots = dict(roots) if roots is not None else default_roots()
    missing = [a for a in ASSET_OF.values() if a not in roots]
    if missing:
        raise KeyError(f"roots= lacks {missing}; give the extracted folder of each of {list(ASSET_OF.values())}")
    root = {d: Path(roots[a]) for d, a in ASSET_OF.items()}
    records = {d: _read_json(root[d] / EMOJI_JSON, ASSET_OF[d], root[d] / EMOJI_IMG_DIR[ASSET_OF[d]])
               for d in ("google", "twitter")}
    om_records = _read_json(root["openmoji"] / OPENMOJI_JSON, "openmoji", root["openmoji"] / OPENMOJI_SVG_DIR)
    om_by_key: dict[str, list[dict]] = {}
    for rec in om_records:
        om_by_key.setdefault(normalize_code(rec["hexcode"]), []).append(rec)
    # has_img_<designer> as that designer's own package says (absent = not denied)
    flags = {d: {r["unified"]: r.get(f"has_img_{d}", True) for r in records[d]} for d in ("google", "twitter")}

    def om_svg(rec: dict) -> Path | None:
        svg = root["openmoji"] / OPENMOJI_SVG_DIR / f"{rec['hexcode']}.svg"
        return svg if svg.is_file() and not svg_declares_entities(svg) else None

    concepts = []
    counts = {"emoji_json_records": len(records["google"]), "google_and_twitter": 0, "matched_exact": 0,
              "matched_without_fe0f": 0, "ambiguous": 0}
    for rec in sorted(records["google"], key=lambda r: (r.get("sort_order", 0), r["unified"])):
        uni = rec["unified"]
        files: dict[str, Path] = {}
        for d in ("google", "twitter"):
            png = root[d] / EMOJI_IMG_DIR[ASSET_OF[d]] / rec["image"]
            if flags[d].get(uni) and png.is_file():
                files[d] = png
        # OpenMoji candidates: with a renderable SVG first, then the exact spelling, then the hexcode
        cands = sorted(((om_svg(o), o) for o in om_by_key.get(normalize_code(uni), [])),
                       key=lambda so: (so[0] is None, so[1]["hexcode"].upper() != uni.upper(), so[1]["hexcode"]))
        om = cands[0][1] if cands else None
        match = ""
        if cands and cands[0][0] is not None:
            files["openmoji"] = cands[0][0]
            match = "exact" if om["hexcode"].upper() == uni.upper() else "without_fe0f"
        ambiguous = sum(s is not None for s, _ in cands) > 1
        if "google" in files and "twitter" in files:
            counts["google_and_twitter"] += 1
            if match:
                counts["matched_" + match] += 1
                counts["ambiguous"] += int(ambiguous)
        concepts.append(EmojiConcept(
            concept=normalize_code(uni), unified=uni,
            name=clean_text(rec.get("name") or rec.get("short_name") or uni).lower(),
            category=rec.get("category", ""), subcategory=rec.get("subcategory", ""),
            sort_order=int(rec.get("sort_order", 0)), files=files,
            annotation=clean_text(om["annotation"]) if om else "",
            tags=_split_tags(om.get("tags", ""), om.get("openmoji_tags", "")) if om else (),
            openmoji_match=match, openmoji_ambiguous=ambiguous,
        ))
    return concepts, counts
