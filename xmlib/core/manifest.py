"""Manifests of cached artefacts: what a file must be, recorded when it is written, checked when it is used.

An entry describes one file: ``{"bytes": size, "sha256": digest}``, and for an array also ``"shape"``
and ``"dtype"``. Checks come in two strengths:

- cheap (every use): the file exists, its size is the recorded one, an array's header gives the
  recorded shape and dtype;
- full (``full=True``: when ``python -m xmlib.data prepare`` runs, and after a crash): the sha256 too,
  which catches a changed byte that leaves the size alone.

A check returns the problem in words (None when the file is as recorded), so that the caller can name
the file, drop it and rebuild it; a bad piece is never kept.

Inside :func:`remembering` (``prepare`` wraps its checks in it) a full check hashes only the files
written since their sha256 last matched: each match is kept in ``cache_dir()/verified.json`` with the
file's size, modification and inode-change times and inode, and a file whose four are unchanged was
not written since (the change time cannot be set back by a program, unlike the modification time).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from xmlib.core.io import DataFormatError, atomic_write_json, load_json_checked, load_npy_checked, sha256_file

__all__ = ["file_entry", "array_entry", "file_problem", "array_problem", "remembering"]

_MEMO: dict[str, list] | None = None  # while remembering(): absolute path -> [size, mtime, ctime, inode, sha256]


def file_entry(path: str | os.PathLike) -> dict[str, Any]:
    """``{"bytes", "sha256"}`` of the file as it is now."""
    path = Path(path)
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def array_entry(path: str | os.PathLike, array: np.ndarray) -> dict[str, Any]:
    """The entry of a ``.npy`` file just written from ``array``: size, sha256, shape, dtype."""
    return {**file_entry(path), "shape": list(array.shape), "dtype": str(array.dtype)}


def file_problem(path: str | os.PathLike, entry: Mapping[str, Any], *, full: bool = False) -> str | None:
    """What is wrong with ``path`` against its manifest ``entry`` (None: nothing): missing, another size,
    or (``full``) another sha256."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return "the file is missing"
    if st.st_size != entry.get("bytes"):
        return f"{st.st_size} bytes where the manifest records {entry.get('bytes')} (truncated or overwritten)"
    if not full:
        return None
    key, seen = os.path.abspath(path), [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, entry.get("sha256")]
    if _MEMO is not None and _MEMO.get(key) == seen:
        return None  # not written since its sha256 last matched (see remembering)
    if sha256_file(path) != entry.get("sha256"):
        return "its sha256 differs from the manifest's (the content changed)"
    if _MEMO is not None:
        _MEMO[key] = seen
    return None


@contextmanager
def remembering(record: str | os.PathLike | None = None) -> Iterator[None]:
    """Full checks inside skip the files not written since their sha256 last matched (module docstring).
    ``record``: where the matches are kept (default ``cache_dir()/verified.json``), read on entry and
    written on exit; an unreadable one counts as empty, an unwritable one is left alone."""
    global _MEMO
    if _MEMO is not None:  # nested: the outer one keeps the record
        yield
        return
    from xmlib.core.paths import cache_dir

    path = Path(record) if record is not None else cache_dir() / "verified.json"
    try:
        before = load_json_checked(path)
        before = before if isinstance(before, dict) else {}
    except (OSError, ValueError):
        before = {}
    _MEMO = dict(before)
    try:
        yield
    finally:
        after, _MEMO = _MEMO, None
        if after != before:
            try:
                atomic_write_json(path, after)
            except OSError:
                pass


def array_problem(path: str | os.PathLike, entry: Mapping[str, Any], *, full: bool = False) -> str | None:
    """:func:`file_problem`, then the ``.npy`` header against the recorded shape and dtype (the data is
    memory-mapped, not read)."""
    problem = file_problem(path, entry, full=full)
    if problem:
        return problem
    try:
        arr = load_npy_checked(path, mmap_mode="r")
    except DataFormatError:
        return "not a readable .npy array (its header or data is damaged)"
    if list(arr.shape) != list(entry.get("shape", [])) or str(arr.dtype) != entry.get("dtype"):
        return f"holds {arr.dtype} {tuple(arr.shape)} where the manifest records {entry.get('dtype')} {tuple(entry.get('shape', []))}"
    return None
