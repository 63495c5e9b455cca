"""Files a notebook reads that the book's runner must watch, besides the ``xmlib`` modules it imports.

The runner (:mod:`xmlib.book.run`) re-executes a notebook when its source, its parameters or an
imported ``xmlib`` module changed. A page that reads results written by other notebooks (the
scorecard reads each chapter's verdicts) calls :func:`record` on each file it reads; the runner then
stores their hashes in the notebook's stamp and re-executes the page when one of them changes.
"""

from __future__ import annotations

import os
from pathlib import Path

INPUTS: set[str] = set()


def record(path: str | os.PathLike) -> Path:
    """Note that the running notebook read ``path``; return it as a ``Path``."""
    p = Path(path)
    INPUTS.add(str(p.resolve()))
    return p
