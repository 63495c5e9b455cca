"""Progress bars for long work that stay out of the rendered book.

Bars go to stderr (``tqdm.auto``: a widget in Jupyter, text in a terminal). The book removes stderr
from rendered output, so pages stay clean. ``XMLIB_PROGRESS=0`` turns bars off entirely.
"""

from __future__ import annotations

import os
import warnings
from typing import Iterable, TypeVar

with warnings.catch_warnings():  # without ipywidgets tqdm.auto warns once and falls back to text bars
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    return os.environ.get("XMLIB_PROGRESS", "1") not in ("0", "false", "no", "off")


def progress(iterable: Iterable[T], desc: str | None = None, total: int | None = None, **kwargs) -> Iterable[T]:
    """Wrap ``iterable`` in a progress bar (unless disabled); ``leave=False`` by default."""
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, desc=desc, total=total, disable=not progress_enabled(), **kwargs)
