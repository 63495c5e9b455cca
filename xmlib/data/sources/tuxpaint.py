"""Reader of the Tux Paint stamps (Debian ``tuxpaint-stamps-default``).

Each stamp is ``NAME.png`` (or ``NAME.svg``) under ``usr/share/tuxpaint/stamps/<category path>/``
with ``NAME.txt`` beside it: the first line that is not a ``xx_YY.utf8=`` translation is the English
caption. Mirrored variants are not separate stamps.

A stamp is read when its picture exists: the PNG, else an SVG that the renderer can load (one that
declares no XML entities, :func:`xmlib.data.images.svg_declares_entities`).

Public API: :func:`read_stamps`, :class:`Stamp`, :func:`stamps_folder`, :func:`default_root`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from xmlib.core.io import read_text_checked
from xmlib.data.assets import TUXPAINT_STAMPS_DIR
from xmlib.data.sources._text import clean_text

__all__ = ["Stamp", "read_stamps", "stamps_folder", "default_root"]

_LOCALE_LINE = re.compile(r"^[A-Za-z_@]+\.utf8=")
_REFETCH = "delete the extracted 'tuxpaint-stamps' folder and fetch it again (`python -m xmlib.data fetch tuxpaint-stamps`)"


@dataclass(frozen=True)
class Stamp:
    """One stamp: ``rel`` its path below the stamps folder without suffix (``animals/dog``), ``image``
    the picture, ``caption`` the English caption (HTML entities decoded, one line; may be empty)."""

    rel: str
    image: Path
    caption: str

    @property
    def category(self) -> str:
        """The category path (``animals``, ``symbols/alphabets/english``)."""
        return self.rel.rsplit("/", 1)[0] if "/" in self.rel else ""


def stamps_folder(root: str | os.PathLike) -> Path:
    """The stamps folder inside the extracted ``tuxpaint-stamps`` asset."""
    return Path(root) / TUXPAINT_STAMPS_DIR


def default_root() -> Path:
    """The fetched ``tuxpaint-stamps`` asset (fetched on first use)."""
    from xmlib.data.assets import fetch

    return Path(fetch("tuxpaint-stamps"))


def read_stamps(root: str | os.PathLike | None = None) -> list[Stamp]:
    """Every readable stamp of the extracted asset ``root`` (default: :func:`default_root`), sorted by
    the path of its ``.txt``."""
    from xmlib.data.images import svg_declares_entities

    stamps = stamps_folder(root if root is not None else default_root())
    if not stamps.is_dir():
        raise FileNotFoundError(f"{stamps} is missing; fetch the asset: python -m xmlib.data fetch tuxpaint-stamps")
    out = []
    for txt in sorted(stamps.rglob("*.txt")):
        image = next((p for p in (txt.with_suffix(".png"), txt.with_suffix(".svg")) if p.is_file()), None)
        if image is None or (image.suffix == ".svg" and svg_declares_entities(image)):
            continue
        lines = [ln.strip() for ln in read_text_checked(txt, fix=_REFETCH).splitlines()]
        english = next((ln for ln in lines if ln and not _LOCALE_LINE.match(ln)), "")
        out.append(Stamp(txt.relative_to(stamps).with_suffix("").as_posix(), image, clean_text(english)))
    return out
