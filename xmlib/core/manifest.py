"""Manifests of cached artefacts: what a file must be, recorded when it is written, checked when it is used.

An entry describes one file: ``{"bytes": size, "sha256": digest}``, and for an array also ``"shape"``
and ``"dtype"``. Checks come in two strengths:

- cheap (every use): the file exists, its size is the recorded one, an array's header gives the
  recorded shape and dtype;
- full (``full=True``: when ``python -m xmlib.data prepare`` runs, and after a crash): the sha256 too,
  which catches a changed byte that leaves the size alone.

A check returns the problem in words (None when the file is as recorded), so that the caller can name
the file, drop it and rebuild it; a bad piece is never kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from xmlib.core.io import DataFormatError, load_npy_checked, sha256_file

__all__ = ["file_entry", "array_entry", "file_problem", "array_problem"]


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
        size = path.stat().st_size
    except FileNotFoundError:
        return "the file is missing"
    if size != entry.get("bytes"):
        return f"{size} bytes where the manifest records {entry.get('bytes')} (truncated or overwritten)"
    if full and sha256_file(path) != entry.get("sha256"):
        return "its sha256 differs from the manifest's (the content changed)"
    return None


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
