"""Caption keys: when two captions (or names) are the same."""

from __future__ import annotations

from typing import Iterable

from xmlib.data.formats import vocab as vocab_fmt

__all__ = ["caption_key", "distinct"]

_ARTICLES = frozenset({"a", "an", "the"})


def caption_key(text: str) -> frozenset[str]:
    """The word set of a caption without articles (lower-case tokens of
    :func:`xmlib.data.formats.vocab.tokenize`; "a", "an", "the" dropped).

    Two captions are distinct only when their keys differ: "A dog." and "dog", or "cat face" and
    "face cat", are the same caption. The same key matches a concept's names across sources."""
    return frozenset(vocab_fmt.tokenize(text)) - _ARTICLES


def distinct(captions: Iterable[str]) -> list[str]:
    """The captions with a non-empty key not seen before, in order."""
    seen: set[frozenset[str]] = set()
    out = []
    for c in captions:
        k = caption_key(c)
        if k and k not in seen:
            seen.add(k)
            out.append(c)
    return out
