"""Clipart text analysis and de-leaking: the analyser every text goes through (BM25, de-leaking,
text length) and the uniform removal of keywords that repeat the curators' folder names."""

from __future__ import annotations

import re
from typing import Iterable, Sequence

__all__ = ["analyse", "leak_terms", "deleak_keywords"]

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


_STOP: frozenset[str] | None = None


def _stem(word: str) -> str:
    """A light English plural stripper ("cats" -> "cat", "berries" -> "berry", "boxes" -> "box")."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def analyse(text: str) -> list[str]:
    """The analyser every text goes through (BM25, de-leaking, text length).

    Lower-case, ``_``/``-`` as spaces, words of two or more characters, English stop words removed
    (bm25s's list), plural ``s`` stripped by :func:`_stem`.
    """
    global _STOP
    if _STOP is None:
        _STOP = _stopwords()
    text = text.lower().replace("_", " ").replace("-", " ")
    return [_stem(t) for t in _TOKEN.findall(text) if t not in _STOP]


def leak_terms(folders: Iterable[str]) -> set[tuple[str, ...]]:
    """The analysed forms a keyword may not take: every word of every folder name and every whole
    folder name (``big_cats`` gives ``("big",)``, ``("cat",)`` and ``("big", "cat")``)."""
    out: set[tuple[str, ...]] = set()
    for folder in folders:
        for part in folder.split("/"):
            toks = analyse(part)
            if toks:
                out.add(tuple(toks))
                out.update((t,) for t in toks)
    return out


def deleak_keywords(keywords: Sequence[str], leaks: set[tuple[str, ...]]) -> list[str]:
    """Drop every keyword whose analysed form equals a leak term (:func:`leak_terms`).

    The same ``leaks`` (built from all folders of the package) is applied to every image alike: a
    keyword ``"cat"`` is dropped on a tiger *and* on a sofa, whatever the image's own folder.
    Keywords that analyse to nothing (stop words, single characters) are dropped too.
    """
    out = []
    for k in keywords:
        toks = tuple(analyse(k))
        if toks and toks not in leaks:
            out.append(k)
    return out
