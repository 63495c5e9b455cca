"""Where things live: the project root, the data cache and the run outputs.

Every location can be moved with an environment variable, so a reader can put the (large) data
cache on another disk and keep several run folders apart:

- ``XMLIB_CACHE``: downloaded assets, extracted files, features (default ``~/.cache/xmlib``)
- ``XMLIB_RUNS``: run outputs, checkpoints and run records (default ``<project root>/runs``)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def project_root() -> Path:
    """The checkout's root (the folder holding ``_toc.yml``), or the current folder if not found."""
    env = os.environ.get("XMLIB_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "_toc.yml").exists() and (parent / "xmlib").is_dir():
            return parent
    return Path.cwd().resolve()


class UnusableFolderError(OSError):
    """A data or run folder (``$XMLIB_CACHE``, ``$XMLIB_RUNS``) that cannot be created or written."""


_USABLE: set[Path] = set()  # folders already found writable in this process


def _usable_folder(env: str, default: Path) -> Path:
    """``$env`` (or ``default``) created if missing and checked writable once per process."""
    value = os.environ.get(env)
    path = Path(value).expanduser() if value else default
    source = f"${env}={value}" if value else f"the default {path} (${env} is not set)"
    fix = f"point ${env} at a writable folder (or unset it to use {default})"
    try:
        path.mkdir(parents=True, exist_ok=True)
        path = path.resolve()
        if path not in _USABLE:
            fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
            os.close(fd)
            os.unlink(probe)
            _USABLE.add(path)
    except OSError as exc:
        problem = "is a file, not a folder" if path.is_file() else f"cannot be created or written ({exc.strerror or exc})"
        raise UnusableFolderError(f"{source}: {path} {problem}; {fix}") from exc
    return path


def cache_dir() -> Path:
    """The data cache (``$XMLIB_CACHE`` or ``~/.cache/xmlib``), created if missing; an unusable one
    (a file, read-only) raises :class:`UnusableFolderError` naming the variable and the fix."""
    return _usable_folder("XMLIB_CACHE", Path.home() / ".cache" / "xmlib")


def runs_dir() -> Path:
    """Run outputs (``$XMLIB_RUNS`` or ``<root>/runs``), created if missing; an unusable one raises
    :class:`UnusableFolderError`."""
    return _usable_folder("XMLIB_RUNS", project_root() / "runs")
