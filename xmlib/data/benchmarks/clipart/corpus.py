"""The clipart collection: one document per distinct OpenClipart drawing outside the excluded
folders, with the uploader's text read by :mod:`xmlib.data.sources.openclipart`."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Sequence

from xmlib.data.sources.openclipart import OpenClipartMetadataError, parse_svg_metadata, scan_drawings

__all__ = ["EXCLUDED", "ClipartImage", "Corpus", "scan_corpus"]

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



@dataclass
class Corpus:
    """The scanned package: kept ``images`` (sorted by path), every folder of the package (excluded ones
    too), and the SVGs skipped because their metadata could not be read (``(path, reason)``)."""

    images: list[ClipartImage]
    all_folders: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    n_excluded: int = 0


def _excluded(folder: str, excluded: Sequence[str]) -> bool:
    return any(folder == e or folder.startswith(e + "/") for e in excluded)


def _img_id(svg_rel: str) -> str:
    return "oc" + hashlib.sha1(svg_rel.encode("utf-8")).hexdigest()[:12]


def scan_corpus(svg_root: str | os.PathLike, *, excluded: Sequence[str] = EXCLUDED,
                max_skipped_fraction: float = 0.05) -> Corpus:
    """The collection under the package's ``svg/`` folder: one :class:`ClipartImage` per distinct
    file (:func:`~xmlib.data.sources.openclipart.scan_drawings`) with a folder outside ``excluded``.

    SVGs whose metadata cannot be read are skipped and listed in ``Corpus.skipped``; more than
    ``max_skipped_fraction`` of them is an error (the package is probably damaged).
    """
    drawings, all_folders = scan_drawings(svg_root)
    real_root = os.path.realpath(svg_root)
    images: list[ClipartImage] = []
    skipped: list[tuple[str, str]] = []
    n_excluded = 0
    for d in drawings:
        folders = tuple(f for f in d.folders if f and not _excluded(f, excluded))
        if not folders:
            n_excluded += 1
            continue
        try:
            meta = parse_svg_metadata(os.path.join(real_root, d.svg))
        except OpenClipartMetadataError as exc:
            skipped.append((d.svg, str(exc)))
            continue
        images.append(ClipartImage(_img_id(d.svg), d.svg, folders, meta.title, meta.description, meta.keywords))
    total = len(images) + len(skipped)
    if total == 0:
        raise ValueError(f"no readable SVG under {svg_root} outside the excluded folders {list(excluded)}")
    if len(skipped) > max_skipped_fraction * total:
        raise ValueError(f"{len(skipped)} of {total} SVGs under {svg_root} have unreadable metadata "
                         f"(first: {skipped[0][1]}); the package looks damaged — delete and re-fetch it")
    return Corpus(images, all_folders, skipped, n_excluded)
