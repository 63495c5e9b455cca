"""Shared pieces of the format readers and writers: the error type and line-based text I/O."""

from __future__ import annotations

import os
from pathlib import Path

from xmlib.core.io import DataFormatError, read_text_checked

#: A file does not follow the on-disk format it is read as (the message names the file and the fix);
#: the one error type of :mod:`xmlib.core.io`'s checked readers.
FormatError = DataFormatError


def require_file(path: Path, what: str, fix: str) -> None:
    """Raise ``FileNotFoundError`` naming ``path``, what it should hold, and how to get it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: expected {what}. {fix}")


def read_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a UTF-8 text file, each without its line ending (``\\n`` or ``\\r\\n``).

    Splits on ``\\n`` only (not on the Unicode separators ``str.splitlines`` also honours), and drops
    the single empty string after a final newline.
    """
    text = read_text_checked(path)  # a byte-order mark some editors add is dropped; a non-UTF-8 byte names its line
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def check_single_line(value: str, what: str) -> None:
    """A value written as one line of a text file must not contain a line break."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if "\n" in value or "\r" in value:
        raise FormatError(f"{what} contains a line break ({value!r}); one value is one line in this format")
