"""Helpers of the fault-injection suite: each test breaks one input, asserts the error a user sees
(its type, the file, the line or record, a fix), repairs the input and reads it again."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from xmlib.core.io import DataFormatError


def message_of(exc_info: pytest.ExceptionInfo, *parts: Any) -> str:
    """The error's message, after checking that it names each of ``parts`` (file, line, fix words)."""
    msg = str(exc_info.value)
    for p in parts:
        assert str(p) in msg, f"{p!r} not in {msg!r}"
    return msg


def insert_byte(line: int, col: int, byte: bytes = b"\xff") -> Callable[[bytes], bytes]:
    """A fault: ``byte`` (never UTF-8 by default) inserted before 1-based byte ``col`` of 1-based ``line``."""
    def damage(data: bytes) -> bytes:
        lines = data.split(b"\n")
        lines[line - 1] = lines[line - 1][: col - 1] + byte + lines[line - 1][col - 1:]
        return b"\n".join(lines)
    return damage


def assert_fault(path: Path, damage: bytes | str | Callable[[bytes], bytes], read: Callable[[], Any], *parts: Any,
                 error: type[BaseException] = DataFormatError) -> Any:
    """Damage ``path`` (new content, or a function of the old bytes), check that ``read()`` raises
    ``error`` naming every one of ``parts``, restore the file and return what ``read()`` gives then
    (the next normal run succeeds)."""
    good = path.read_bytes()
    bad = damage(good) if callable(damage) else damage.encode() if isinstance(damage, str) else damage
    path.write_bytes(bad)
    with pytest.raises(error) as e:
        read()
    message_of(e, *parts)
    path.write_bytes(good)
    return read()
