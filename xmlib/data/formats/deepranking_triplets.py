"""Deep Ranking's evaluation file ``query_and_triplets.txt`` (human-rated triplets), read and written.

API
---
- ``TripletRecord(query_text, query_image, positive, negative)`` — one record: the triplet
  (p_i, p_i+, p_i−) of the paper's Eq. (2) with the text query it came from; ``images`` → the 3 fields;
  ``line`` = the 1-based line of its query text when read from a file (0 otherwise).
- ``read_query_and_triplets(path) -> list[TripletRecord]`` — parse and validate a file.
- ``write_query_and_triplets(path, records) -> Path`` — write records (tuples accepted) atomically.
- ``is_url(s) -> bool``; ``resolve_image(ref, base_dir) -> str | Path`` — a URL stays a URL, a relative
  path is resolved against ``base_dir`` (the file's folder).

Format
------
Plain text, 4 lines a record, no separators: the text query, then the query image, the image the
raters judged more similar to it (positive), and the less similar one (negative). The released file
has thumbnail URLs (many dead by now); the project's emoji triplets use the same layout with image
paths relative to the file's folder (``google/1f600.png``), so one reader serves both (a path that
leads outside that folder is refused, naming its line). Blank lines at
the very end of the file are ignored; a blank line anywhere else is an error, and so is a query-text
line that is a URL (the usual sign that a record lost or gained a line).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

from xmlib.core.io import atomic_write_text, require_inside
from xmlib.data.formats._common import FormatError, check_single_line, read_lines

__all__ = [
    "FIELDS",
    "TripletRecord",
    "is_url",
    "read_query_and_triplets",
    "resolve_image",
    "write_query_and_triplets",
]

FIELDS = ("query_text", "query_image", "positive", "negative")
_URL_PREFIXES = ("http://", "https://", "ftp://", "file://")


def is_url(s: str) -> bool:
    return s.lower().startswith(_URL_PREFIXES)


@dataclass(frozen=True)
class TripletRecord:
    """A rated triplet: for ``query_text``, ``positive`` is more similar to ``query_image`` than
    ``negative`` is (r(p_i, p_i+) > r(p_i, p_i−))."""

    query_text: str
    query_image: str
    positive: str
    negative: str
    line: int = field(default=0, compare=False)

    @property
    def images(self) -> tuple[str, str, str]:
        """(p_i, p_i+, p_i−)."""
        return (self.query_image, self.positive, self.negative)


def resolve_image(ref: str, base_dir: str | os.PathLike) -> str | Path:
    """A URL as is; a relative path joined to ``base_dir``; an absolute path as a ``Path``."""
    if is_url(ref):
        return ref
    p = Path(ref)
    return p if p.is_absolute() else Path(base_dir) / p


def read_query_and_triplets(path: str | os.PathLike) -> list[TripletRecord]:
    """Parse a ``query_and_triplets.txt`` file into records (each field stripped of surrounding spaces)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: expected a query_and_triplets.txt file (4 lines a record)")
    lines = [line.strip() for line in read_lines(path)]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise FormatError(f"{path} holds no records")
    records = []
    n_full = len(lines) // 4
    for k in range(n_full):
        start = 4 * k  # 0-based index of the query-text line
        vals = lines[start : start + 4]
        for j, (name, v) in enumerate(zip(FIELDS, vals)):
            if not v:
                raise FormatError(
                    f"{path}, line {start + j + 1}: field {name!r} of record {k + 1} (starting at line "
                    f"{start + 1}) is blank; every record is 4 non-empty lines"
                )
        if is_url(vals[0]):
            raise FormatError(
                f"{path}, line {start + 1}: record {k + 1} should start with the query text but starts with "
                f"a URL ({vals[0]!r}); a line is missing or extra at or before this record"
            )
        for j, v in enumerate(vals[1:], start=1):
            if not is_url(v):  # an image path must stay inside the file's folder
                require_inside(v, path.parent, source=path, line=start + j + 1, what=f"{FIELDS[j]} image of record {k + 1}")
        records.append(TripletRecord(*vals, line=start + 1))
    rest = len(lines) - 4 * n_full
    if rest:
        start = 4 * n_full
        raise FormatError(
            f"{path}: {len(lines)} lines is not a multiple of 4; the last record (record {n_full + 1}, "
            f"starting at line {start + 1}) has only {rest} line(s): query text, query image, positive, "
            "negative are needed"
        )
    return records


def write_query_and_triplets(
    path: str | os.PathLike, records: Iterable[TripletRecord | Sequence[str]]
) -> Path:
    """Write records in the 4-lines-a-record layout. Images are URLs or relative POSIX paths (no
    ``..``) under the file's folder, so the folder can be moved as a whole."""
    path = Path(path)
    out = []
    for k, rec in enumerate(records):
        vals = (
            (rec.query_text, rec.query_image, rec.positive, rec.negative)
            if isinstance(rec, TripletRecord)
            else tuple(rec)
        )
        if len(vals) != 4:
            raise ValueError(f"record {k} has {len(vals)} fields; expected {FIELDS}")
        for name, v in zip(FIELDS, vals):
            check_single_line(v, f"record {k} field {name!r} for {path}")
            if not v.strip() or v != v.strip():
                raise FormatError(f"record {k} field {name!r} for {path} is blank or has surrounding spaces: {v!r}")
        if is_url(vals[0]):
            raise FormatError(f"record {k} for {path}: the query text {vals[0]!r} is a URL; text comes first")
        for name, v in zip(FIELDS[1:], vals[1:]):
            if not is_url(v):
                p = PurePosixPath(v)
                if p.is_absolute() or ".." in p.parts or "\\" in v:
                    raise FormatError(
                        f"record {k} field {name!r} for {path}: {v!r} must be a URL or a relative POSIX "
                        "path inside the file's folder"
                    )
        out.extend(vals)
    if not out:
        raise ValueError(f"no records to write to {path}")
    return atomic_write_text(path, "".join(v + "\n" for v in out))
