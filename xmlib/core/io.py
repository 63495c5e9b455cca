"""Atomic writes, checksums and a lock between processes.

A long run that is interrupted must never leave a half-written file that a later run trusts. Every
writer here writes to a temporary file in the destination folder, flushes it to disk, and renames it
over the destination (``os.replace`` is atomic on POSIX and Windows). :func:`file_lock` makes a
second process wait while a first one fills the cache (assets, benchmarks).

Temporary files are named ``.<name>.<pid>.<random>.part<suffix>``: hidden, marked as partial, and
carrying the writer's process id, so that :func:`remove_stale_parts` can delete those whose writer is
gone (killed with ``kill -9``, or a machine that lost power) without touching a live writer's file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success rename it to ``dest``, else delete it.

    >>> with atomic_path("out.bin") as tmp:
    ...     tmp.write_bytes(b"...")   # doctest: +SKIP
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}.{os.getpid()}.", suffix=f".part{dest.suffix}", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # make sure the bytes are on disk before the rename
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def is_partial(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_path` (never a result to read)."""
    name = Path(path).name
    return name.startswith(".") and ".part" in name


def _writer_alive(name: str) -> bool | None:
    """Whether the process that wrote the partial file ``name`` still runs (None: no pid in the name)."""
    head = name[1:].rpartition(".part")[0]  # "<stem>.<pid>.<random>": the stem may hold dots, the others do not
    parts = head.rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    pid = int(parts[1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_parts(folder: str | os.PathLike, max_age_s: float = 6 * 3600) -> list[Path]:
    """Delete the partial files of :func:`atomic_path` in ``folder`` whose writer is gone (or, for a
    name without a process id, that nobody touched for ``max_age_s``); return what was removed."""
    import time

    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        if not (path.is_file() and is_partial(path)):
            continue
        alive = _writer_alive(path.name)
        stale = (alive is False) or (alive is None and time.time() - path.stat().st_mtime > max_age_s)
        if stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_write_text(dest: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(dest, text.encode("utf-8"))


def atomic_write_json(dest: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(dest, json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n")


def atomic_save_npy(dest: str | os.PathLike, array: np.ndarray) -> Path:
    """Save one array as ``.npy`` atomically (no pickled objects allowed)."""
    array = np.asarray(array)
    if array.dtype == object:
        raise TypeError(f"refusing to save an object array to {dest}: .npy files here hold plain numbers")
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    return Path(dest)


def load_npy(path: str | os.PathLike, *, mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` file without unpickling anything; a clear error names a missing file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` for the block (POSIX ``flock``; a no-op where unavailable).

    A second process asking for the same lock waits until the first leaves its block."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
