"""The captions benchmark's vocabulary (SCAN JSON) from the train captions, and how well a split plan's
train captions cover its test words."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from xmlib.data.benchmarks.captions.config import N_CAP
from xmlib.data.benchmarks.captions.plan import Plan
from xmlib.data.benchmarks.captions.text import distinct
from xmlib.data.formats import vocab as vocab_fmt

__all__ = ["train_vocabulary", "plan_coverage"]


def train_vocabulary(train_lines: Sequence[str], threshold: int) -> vocab_fmt.Vocabulary:
    """The benchmark's vocabulary from the train split's caption lines (5 per image, in order): each
    image's distinct captions are counted once, so cycled lines do not inflate the counts."""
    lines = list(train_lines)
    if len(lines) % N_CAP:
        raise ValueError(f"{len(lines)} train caption lines is not {N_CAP} per image")
    text = [c for s in range(0, len(lines), N_CAP) for c in distinct(lines[s:s + N_CAP])]
    return vocab_fmt.build_vocab(text, threshold=threshold)


def plan_coverage(plan: Plan, thresholds: Sequence[int] = (1, 4)) -> dict:
    """How well a split plan's train captions cover its test words, before any feature is computed.

    Returns train / test image counts, the share of test word tokens never seen in train captions,
    and for each vocabulary threshold t the share of test tokens that would map to ``<unk>``
    (``unk_at_t``). Counts as :func:`build` does: each train image's distinct captions once.
    """
    counts: Counter[str] = Counter(w for caps in plan.captions["train"] for c in distinct(caps)
                                   for w in vocab_fmt.tokenize(c))
    test = [w for caps in plan.captions["test"] for c in caps for w in vocab_fmt.tokenize(c)]
    n = max(len(test), 1)
    out = {"train_images": len(plan.items["train"]), "dev_images": len(plan.items["dev"]),
           "test_images": len(plan.items["test"]),
           "test_words_unseen_in_train": round(sum(counts[w] == 0 for w in test) / n, 4)}
    for t in thresholds:
        out[f"unk_at_{t}"] = round(sum(counts[w] < t for w in test) / n, 4)
    return out
