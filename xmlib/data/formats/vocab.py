"""SCAN-style vocabulary JSON, a deterministic word tokeniser, and caption encoding.

API
---
- ``tokenize(text, *, punctuation=False) -> list[str]`` — lower-case word tokens (rule below).
- ``Vocabulary`` — ``idx2word`` tuple; ``word2idx`` dict; ``len(v)``; ``word in v``; ``v(word)`` → id
  (``<unk>`` id for unknown words); ``v.word(idx)``.
- ``build_vocab(captions, threshold=4, *, tokenizer=tokenize) -> Vocabulary`` — words seen at least
  ``threshold`` times.
- ``save_vocab(vocab, path) -> Path`` / ``load_vocab(path) -> Vocabulary`` — the JSON file.
- ``encode(caption, vocab, max_len=None, *, strict=False, tokenizer=tokenize) -> list[int]`` —
  ``<start> w1 .. wn <end>``.
- ``decode(ids, vocab, *, skip_special=True) -> str``.
- ``pad_batch(seqs, pad_id=PAD_ID) -> (ids (B, L_max) int64, lengths (B,) int64)``.
- ``UnknownWordError`` (a ``ValueError``, ``.word``); constants ``PAD, START, END, UNK`` and
  ``PAD_ID = 0, START_ID = 1, END_ID = 2, UNK_ID = 3``; ``SPECIAL_TOKENS``.

File format
-----------
``{"word2idx": {"<pad>": 0, "<start>": 1, ...}, "idx2word": {"0": "<pad>", "1": "<start>", ...},
"idx": n}`` — the keys of ``idx2word`` are strings (JSON object keys), ``idx`` is the vocabulary size,
ids are 0 .. n−1 and the four special tokens hold ids 0–3.

Tokeniser
---------
SCAN tokenises lower-cased captions with NLTK's word tokeniser; here a small regular expression does
the job so the result never depends on an installed package's version:

1. Unicode NFKC normalisation, typographic apostrophes (’ ‘) become ``'``, then ``str.lower()``;
2. tokens are maximal runs of letters and digits (any script; ``_`` is not part of a word), optionally
   joined by single inner apostrophes: ``"Don't stop, dog_2!"`` → ``["don't", "stop", "dog", "2"]``.

Punctuation is dropped by default. NLTK keeps it as tokens (so a vocabulary built SCAN's way holds
``.`` and ``,``); with ``punctuation=True`` every other non-space character is a token of its own, which
comes close to NLTK on Flickr30K / COCO captions (NLTK's split of "don't" into "do" + "n't" is not
copied). Pass ``tokenizer=functools.partial(tokenize, punctuation=True)`` to ``build_vocab`` and
``encode`` to use it. Either way the rule is deterministic.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from xmlib.core.io import atomic_write_json, load_json_checked
from xmlib.data.formats._common import FormatError

__all__ = [
    "END",
    "END_ID",
    "PAD",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "START",
    "START_ID",
    "UNK",
    "UNK_ID",
    "UnknownWordError",
    "Vocabulary",
    "build_vocab",
    "decode",
    "encode",
    "load_vocab",
    "pad_batch",
    "save_vocab",
    "tokenize",
]

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3
SPECIAL_TOKENS = (PAD, START, END, UNK)

_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_TOKEN_PUNCT_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]|_")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


class UnknownWordError(ValueError):
    """A word is not in the vocabulary and strict encoding was asked for."""

    def __init__(self, word: str, caption: str) -> None:
        super().__init__(
            f"unknown word {word!r} in caption {caption!r}: it is not in the vocabulary. Rebuild the "
            "vocabulary with this text (or a lower threshold), or encode with strict=False to map it to <unk>"
        )
        self.word = word
        self.caption = caption


def tokenize(text: str, *, punctuation: bool = False) -> list[str]:
    """Lower-case word tokens of ``text`` (see the module docstring for the exact rule); with
    ``punctuation`` each other non-space character is a token too."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    return (_TOKEN_PUNCT_RE if punctuation else _TOKEN_RE).findall(text)


@dataclass(frozen=True)
class Vocabulary:
    """Word ↔ id table; ``idx2word[i]`` is the word of id i, ids 0–3 are the special tokens."""

    idx2word: tuple[str, ...]
    word2idx: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = tuple(self.idx2word)
        object.__setattr__(self, "idx2word", words)
        if words[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise FormatError(
                f"a vocabulary must start with {SPECIAL_TOKENS} at ids 0-3, got {words[:len(SPECIAL_TOKENS)]}"
            )
        w2i: dict[str, int] = {}
        for i, w in enumerate(words):
            if not isinstance(w, str) or not w:
                raise FormatError(f"vocabulary id {i} holds {w!r}; every word must be a non-empty string")
            if w in w2i:
                raise FormatError(f"vocabulary word {w!r} appears twice (ids {w2i[w]} and {i})")
            w2i[w] = i
        object.__setattr__(self, "word2idx", w2i)

    def __len__(self) -> int:
        return len(self.idx2word)

    def __contains__(self, word: object) -> bool:
        return word in self.word2idx

    def __call__(self, word: str) -> int:
        """The id of ``word``; the ``<unk>`` id for a word not in the vocabulary."""
        return self.word2idx.get(word, UNK_ID)

    def word(self, idx: int) -> str:
        return self.idx2word[idx]

    def to_json(self) -> dict:
        """The SCAN JSON object (``idx2word`` with string keys)."""
        return {
            "word2idx": dict(self.word2idx),
            "idx2word": {str(i): w for i, w in enumerate(self.idx2word)},
            "idx": len(self.idx2word),
        }


def build_vocab(
    captions: Iterable[str], threshold: int = 4, *, tokenizer: Callable[[str], list[str]] = tokenize
) -> Vocabulary:
    """Vocabulary of the words seen at least ``threshold`` times in ``captions`` (after ``tokenize``).

    The special tokens take ids 0–3; the words follow by decreasing count, ties in alphabetical order,
    so the same captions always give the same ids.
    """
    if threshold < 1:
        raise ValueError(f"threshold must be >= 1, got {threshold}")
    counts: Counter[str] = Counter()
    for c in captions:
        counts.update(tokenizer(c))
    words = sorted((w for w, n in counts.items() if n >= threshold and w not in SPECIAL_TOKENS),
                   key=lambda w: (-counts[w], w))
    return Vocabulary(SPECIAL_TOKENS + tuple(words))


def save_vocab(vocab: Vocabulary, path: str | os.PathLike) -> Path:
    """Write the vocabulary JSON atomically."""
    return atomic_write_json(path, vocab.to_json())


def load_vocab(path: str | os.PathLike) -> Vocabulary:
    """Read and validate a SCAN vocabulary JSON file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: expected a vocabulary JSON (write one with save_vocab)")
    obj = load_json_checked(path, fix="rewrite it with save_vocab (or build_vocab from the training captions)")
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: expected a JSON object with word2idx, idx2word and idx")
    for key in ("word2idx", "idx2word", "idx"):
        if key not in obj:
            raise FormatError(
                f"{path}: field {key!r} is missing; a vocabulary file needs word2idx, idx2word and idx "
                "(rewrite it with save_vocab)"
            )
    w2i, i2w, n = obj["word2idx"], obj["idx2word"], obj["idx"]
    if not isinstance(w2i, dict) or not isinstance(i2w, dict):
        raise FormatError(f"{path}: word2idx and idx2word must be JSON objects")
    if not isinstance(n, int) or isinstance(n, bool):
        raise FormatError(f"{path}: field 'idx' must be an integer (the vocabulary size), got {n!r}")
    try:
        by_id = {int(k): v for k, v in i2w.items()}
    except ValueError as exc:
        raise FormatError(f"{path}: idx2word keys must be integer strings such as \"0\" ({exc})") from exc
    ids = sorted(by_id)
    if ids != list(range(n)) or len(i2w) != n:
        raise FormatError(
            f"{path}: idx2word must hold ids 0..idx-1 = 0..{n - 1}, found {len(i2w)} entries "
            f"(ids {ids[:3]}..{ids[-3:]})"
        )
    words = [by_id[i] for i in range(n)]
    try:
        vocab = Vocabulary(tuple(words))
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from exc
    if w2i != vocab.word2idx:
        bad = next((w for w in set(w2i) | set(vocab.word2idx) if w2i.get(w) != vocab.word2idx.get(w)), None)
        raise FormatError(
            f"{path}: word2idx and idx2word disagree (word {bad!r}: word2idx says {w2i.get(bad)}, "
            f"idx2word says {vocab.word2idx.get(bad)})"
        )
    return vocab


def encode(
    caption: str,
    vocab: Vocabulary,
    max_len: int | None = None,
    *,
    strict: bool = False,
    tokenizer: Callable[[str], list[str]] = tokenize,
) -> list[int]:
    """Token ids ``<start> w1 .. wn <end>`` of a caption.

    max_len: keep at most this many words (the result then has at most ``max_len + 2`` ids; ``<end>`` is
    always last). strict: raise ``UnknownWordError`` naming the first unknown word instead of using
    ``<unk>``.
    """
    if max_len is not None and max_len < 0:
        raise ValueError(f"max_len must be >= 0 or None, got {max_len}")
    words = tokenizer(caption)
    ids = []
    for w in words:
        i = vocab.word2idx.get(w)
        if i is None:
            if strict:
                raise UnknownWordError(w, caption)
            i = UNK_ID
        ids.append(i)
    if max_len is not None:
        ids = ids[:max_len]
    return [START_ID, *ids, END_ID]


def decode(ids: Sequence[int] | np.ndarray, vocab: Vocabulary, *, skip_special: bool = True) -> str:
    """Words of ``ids`` joined by spaces; stops at ``<end>`` and drops ``<pad>``/``<start>`` when
    ``skip_special`` (``<unk>`` is kept so unknown words stay visible)."""
    out = []
    for i in ids:
        i = int(i)
        if not 0 <= i < len(vocab):
            raise ValueError(f"token id {i} is outside the vocabulary (size {len(vocab)})")
        if skip_special:
            if i == END_ID:
                break
            if i in (PAD_ID, START_ID):
                continue
        out.append(vocab.idx2word[i])
    return " ".join(out)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad id sequences into ``ids`` (B, L_max) int64 with their ``lengths`` (B,) int64."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    out = np.full((len(seqs), int(lengths.max(initial=0))), pad_id, dtype=np.int64)
    for b, s in enumerate(seqs):
        out[b, : len(s)] = s
    return out, lengths
