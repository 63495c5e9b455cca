"""Where things live: the project root, the data cache and the run outputs.

Every location can be moved with an environment variable, so a reader can put the (large) data
cache on another disk and keep several run folders apart:

- ``XMLIB_CACHE``: downloaded assets, extracted files, features (default ``~/.cache/xmlib``)
- ``XMLIB_RUNS``: run outputs, checkpoints and run records (default ``<project root>/runs``)
"""

from __future__ import annotations

import os
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


def cache_dir() -> Path:
    """The data cache (``$XMLIB_CACHE`` or ``~/.cache/xmlib``), created if missing."""
    env = os.environ.get("XMLIB_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "xmlib"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def runs_dir() -> Path:
    """Run outputs (``$XMLIB_RUNS`` or ``<root>/runs``), created if missing."""
    env = os.environ.get("XMLIB_RUNS")
    path = Path(env).expanduser() if env else project_root() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()
