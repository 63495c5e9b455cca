"""Atomic writes, checksums and a lock between processes.

A long run that is interrupted must never leave a half-written file that a later run trusts. Every
writer here writes to a temporary file in the destination folder, flushes it to disk, and renames it
over the destination (``os.replace`` is atomic on POSIX and Windows). :func:`file_lock` makes a
second process wait while a first one fills the cache (assets, benchmarks).

Temporary files are named ``.<name>.<pid>.<random>.part<suffix>``: hidden, marked as partial, and
carrying the writer's process id, so that :func:`remove_stale_parts` can delete those whose writer is
gone (killed with ``kill -9``, or a machine that lost power) without touching a live writer's file.
Temporary folders (:func:`temp_dir`, filled and then renamed into place) are named the same way and
removed the same way.

Checked reading (:func:`read_text_checked`, :func:`load_json_checked`, :func:`load_npy_checked`,
:func:`require_finite`, :func:`require_inside`) is the other half: every reader of a user's file goes
through these, so a damaged file ends in one :class:`DataFormatError` that names the file, the line or
record, what was expected and the fix, instead of a traceback from deep inside a library.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import tempfile
import tokenize
from pathlib import Path
from typing import Any, Callable, Iterator

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


def temp_dir(parent: str | os.PathLike, stem: str) -> Path:
    """A new empty folder ``parent/.<stem>.<pid>.<random>.part`` to fill and rename into place: named
    like :func:`atomic_path`'s files, so that :func:`remove_stale_parts` removes it once its writer is gone."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{stem}.{os.getpid()}.", suffix=".part", dir=parent))


def remove_stale_parts(folder: str | os.PathLike, max_age_s: float = 6 * 3600) -> list[Path]:
    """Delete the partial files of :func:`atomic_path` and folders of :func:`temp_dir` in ``folder``
    whose writer is gone (or, for a name without a process id, that nobody touched for ``max_age_s``);
    return what was removed."""
    import shutil
    import time

    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        if not is_partial(path) or path.is_symlink():
            continue
        alive = _writer_alive(path.name)
        with contextlib.suppress(FileNotFoundError):
            stale = (alive is False) or (alive is None and time.time() - path.stat().st_mtime > max_age_s)
            if stale:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
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
    """Load a ``.npy`` file without unpickling anything; a clear error names a missing or damaged file."""
    return load_npy_checked(path, mmap_mode="r" if mmap else None)


# --------------------------------------------------------------------------------- checked reading
class DataFormatError(ValueError):
    """A file that cannot be read as what it should hold.

    Built from a ready message, or from its parts: ``path``, ``line`` (1-based) or ``record`` (e.g.
    ``"record 3"``, ``"row 5"``), the ``problem``, what was ``expected`` and the ``fix``; the message then
    reads ``"{path}, line {line}: {problem}; expected {expected}; fix: {fix}"``. The parts stay
    attributes (None when not given) and survive pickling (errors cross worker processes).
    """

    def __init__(self, message: str | None = None, *, path: str | os.PathLike | None = None,
                 line: int | None = None, record: str | None = None, problem: str = "",
                 expected: str | None = None, fix: str | None = None) -> None:
        if message is None:
            where = ", ".join(str(w) for w in (path, f"line {line}" if line is not None else None, record)
                              if w is not None)
            message = "; ".join(p for p in (f"{where or 'input'}: {problem}",
                                             expected and f"expected {expected}", fix and f"fix: {fix}") if p)
        super().__init__(message)
        self.path, self.line, self.record, self.expected, self.fix = path, line, record, expected, fix


_REFETCH = "restore the file from its source (fetch or build it again), or delete it so it is rebuilt"


def read_text_checked(path: str | os.PathLike, *, fix: str | None = None) -> str:
    """The text of a UTF-8 file (a leading byte-order mark removed).

    A byte that is not UTF-8 raises :class:`DataFormatError` naming the file, the line, the byte's
    position in that line and in the file, and the fix (re-save as UTF-8)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line_start = data.rfind(b"\n", 0, start) + 1
        raise DataFormatError(
            path=path, line=data.count(b"\n", 0, start) + 1,
            problem=f"byte {start - line_start + 1} of the line (offset {start} in the file) is 0x{data[start]:02x}, "
                    "which is not UTF-8",
            expected="UTF-8 text",
            fix=fix or "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
        ) from exc
    return text[1:] if text.startswith("\ufeff") else text


def load_json_checked(path: str | os.PathLike, *, fix: str | None = None) -> Any:
    """The JSON value in ``path``; bad text raises :class:`DataFormatError` naming the file, line and column."""
    path = Path(path)
    text = read_text_checked(path, fix=fix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problem = "the file is empty" if not text.strip() else f"invalid JSON at column {exc.colno} ({exc.msg})"
        raise DataFormatError(path=path, line=exc.lineno, problem=problem, expected="a complete JSON document",
                              fix=fix or _REFETCH) from exc


def load_npy_checked(path: str | os.PathLike, mmap_mode: str | None = None, *, fix: str | None = None) -> np.ndarray:
    """One array from a ``.npy`` file, never unpickling (``allow_pickle=False``).

    A missing file raises ``FileNotFoundError``; a garbled header, truncated data, an ``.npz`` archive or
    an object array raise :class:`DataFormatError` naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {fix or _REFETCH}")
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:  # numpy parses the header as Python
        reason = "the file is empty" if path.stat().st_size == 0 else f"header or data damaged ({exc})"
        raise DataFormatError(path=path, problem=f"not a readable .npy array: {reason}",
                              expected="a plain numeric .npy file whose size matches its header",
                              fix=fix or _REFETCH) from exc
    if not isinstance(arr, np.ndarray):  # an .npz archive loads as NpzFile
        arr.close()
        raise DataFormatError(path=path, problem="holds an .npz archive, not one array",
                              expected="a single-array .npy file", fix=fix or _REFETCH)
    return arr


def require_finite(array: np.ndarray, path: str | os.PathLike, what: str, *, fix: str | None = None,
                   chunk_bytes: int = 1 << 24, after_chunk: Callable[[], object] | None = None) -> np.ndarray:
    """``array`` if every value is finite, else :class:`DataFormatError` naming the file and the first
    row (index along axis 0) holding NaN or inf. Memory-mapped arrays are checked ``chunk_bytes`` at a
    time, so a large file is never loaded whole; ``after_chunk()`` is called after each chunk (e.g. to
    drop the pages just read from resident memory)."""
    if array.dtype.kind not in "fc":
        return array
    rows = max(1, chunk_bytes // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        bad = ~np.isfinite(np.asarray(array[start:start + rows]))
        if after_chunk is not None:
            after_chunk()
        if bad.any():
            r = start + int(bad.reshape(len(bad), -1).any(axis=1).argmax())
            kind = "NaN" if np.isnan(np.asarray(array[r])).any() else "inf"
            raise DataFormatError(path=path, record=f"row {r}", problem=f"{what} hold {kind}",
                                  expected="finite numbers", fix=fix or "recompute or repair these features")
    return array


def release_pages(array: np.ndarray) -> bool:
    """Drop the pages of the memory map behind ``array`` (or a view of it) from this process's resident
    memory (``madvise(MADV_DONTNEED)``); the data stay readable, from the page cache or the file. Pages
    read through a map otherwise stay resident until the kernel needs them, so reading a whole 8 GB
    split would show as 8 GB of resident memory. Returns whether ``array`` was memory-mapped."""
    a = array
    while a is not None:
        mm = getattr(a, "_mmap", None)  # numpy.memmap keeps its mmap.mmap here
        if isinstance(mm, mmap.mmap):
            if hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                mm.madvise(mmap.MADV_DONTNEED)
            return True
        a = getattr(a, "base", None)
    return False


def require_inside(ref: str, base: str | os.PathLike, *, source: str | os.PathLike, line: int | None = None,
                   what: str = "path") -> Path:
    """``base / ref`` made absolute, if it stays inside ``base``; else :class:`DataFormatError` naming the
    file ``source`` (and ``line``) that holds the record. The check is on the path's text (``..`` and
    absolute paths), not through symbolic links, so a data folder may link to pictures kept elsewhere."""
    base = Path(os.path.abspath(base))
    target = Path(os.path.abspath(base / ref))
    if not target.is_relative_to(base):
        raise DataFormatError(path=source, line=line, problem=f"{what} {ref!r} points outside {base}",
                              expected=f"a relative path inside {base}",
                              fix="keep the files inside the data folder and write paths relative to it")
    return target


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
