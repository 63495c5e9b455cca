"""Helpers of the fault-injection suite: each test breaks one input, asserts the error a user sees
(its type, the file, the line or record, a fix), repairs the input and reads it again."""

from __future__ import annotations

from pathlib import Path

import pytest


def inject_byte(path: Path, line: int, col: int, byte: bytes = b"\xff") -> bytes:
    """Insert a byte that is never UTF-8 before 1-based byte ``col`` of 1-based ``line``; return the
    original bytes (to repair the file with ``path.write_bytes``)."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    lines[line - 1] = lines[line - 1][: col - 1] + byte + lines[line - 1][col - 1:]
    path.write_bytes(b"\n".join(lines))
    return data


def message_of(exc_info: pytest.ExceptionInfo, *parts: str) -> str:
    """The error's message, after checking that it names each of ``parts`` (file, line, fix words)."""
    msg = str(exc_info.value)
    for p in parts:
        assert str(p) in msg, f"{p!r} not in {msg!r}"
    return msg
