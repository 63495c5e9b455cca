"""The captions benchmark's split design (pure: no files, no features).

Rules (the symbols of SGRAF's data: image i has region features V_i = {v_1..v_K}, captions T):

- a **concept** is one thing depicted: an emoji code point, a Tux Paint stamp, an OpenClipart title.
  Images whose names share a caption key (:func:`~xmlib.data.benchmarks.captions.text.caption_key`)
  are one concept (union-find over names, across sources), and a concept drawn from two sources stays
  in train;
- the split is **concept-disjoint**: no concept has images on two sides;
- dev and test hold **one image per concept** (a designer drawn at random) with **5 distinct
  captions**, none of which is a caption, name or tag phrase of any other concept; flags, emoji
  components, Tux Paint and OpenClipart stay in train. If fewer concepts qualify than asked for, test
  keeps its size and dev shrinks (``notes["eval_shortfall"]``);
- train images may have fewer than 5 distinct captions; they are **cycled** to fill 5 lines. Train tag
  phrases (2–4 tags, no single tags) are drawn afresh, never equal to a dev/test caption; each designer
  of a concept starts at a different phrase.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Container, Sequence

import numpy as np

from xmlib.data.benchmarks.captions.config import N_CAP, SPLITS, CaptionsConfig
from xmlib.data.benchmarks.captions.corpus import Item
from xmlib.data.benchmarks.captions.text import caption_key, distinct
from xmlib.data.formats import vocab as vocab_fmt

__all__ = ["Plan", "plan_split"]

_FAMILY = {"emoji-google": "emoji", "emoji-twitter": "emoji", "openmoji": "emoji",
           "tuxpaint": "tuxpaint", "openclipart": "openclipart"}


@dataclass
class Plan:
    """The benchmark without features: per split the items and their 5 caption lines each.

    ``concept_of``: merged concept id per image id; ``n_distinct``: distinct captions per image id
    (before cycling); ``notes``: counts for the data card.
    """

    items: dict[str, list[Item]]
    captions: dict[str, list[list[str]]]
    concept_of: dict[str, str]
    n_distinct: dict[str, int]
    notes: dict = field(default_factory=dict)


def _seed_for(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % 2**32


def _merge_concepts(items: Sequence[Item]) -> dict[str, str]:
    """Union-find: images sharing a source concept or a name key form one concept.

    Returns image id -> merged concept id (the smallest source concept id of the group, and the
    sources' ids joined with ``+`` when a group spans several)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for it in items:
        for n in it.names:
            key = caption_key(n)
            if key:
                union(it.concept, "name:" + " ".join(sorted(key)))
    members: dict[str, set[str]] = defaultdict(set)
    for it in items:
        members[find(it.concept)].add(it.concept)
    label = {root: "+".join(sorted(ms)) for root, ms in members.items()}
    return {it.image_id: label[find(it.concept)] for it in items}


def _tag_phrases(tags: Sequence[str], taken: Container[frozenset[str]], n: int, rng: random.Random,
                 max_words: int = 12, min_single: int = N_CAP) -> list[str]:
    """Up to ``n`` phrases of 2–4 distinct tags (random order, at most ``max_words`` words) whose word
    sets are not in ``taken`` and differ from each other; when fewer than ``min_single`` come out
    (a concept with 1–3 tags), single tags are added up to that number."""
    out: list[str] = []
    seen: set[frozenset[str]] = set()
    tags = list(tags)
    if not tags:
        return out
    for _ in range(20 * n if len(tags) >= 2 else 0):
        if len(out) >= n:
            break
        phrase = " ".join(rng.sample(tags, rng.randint(2, min(4, len(tags)))))
        key = caption_key(phrase)
        if key and key not in taken and key not in seen and len(vocab_fmt.tokenize(phrase)) <= max_words:
            seen.add(key)
            out.append(phrase)
    # Too few tags for enough phrases: single tags complete the pool up to `min_single` phrases.
    for tag in rng.sample(tags, len(tags)):
        if len(out) >= min(min_single, n):
            break
        key = caption_key(tag)
        if key and key not in taken and key not in seen and len(vocab_fmt.tokenize(tag)) <= max_words:
            seen.add(key)
            out.append(tag)
    return out


def plan_split(items: Sequence[Item], cfg: CaptionsConfig, seed: int = 0) -> Plan:
    """Assign images to train / dev / test and choose their 5 caption lines (the rules of the module
    docstring). Deterministic in ``seed``; independent of the order of ``items``."""
    items = sorted(items, key=lambda it: it.image_id)
    ids = [it.image_id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise ValueError(f"image id {dup!r} appears twice in the corpus")
    concept_of = _merge_concepts(items)
    by_concept: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        by_concept[concept_of[it.image_id]].append(it)

    # Which concepts use each caption key: first the fixed texts (captions and names) ...
    users: dict[frozenset[str], set[str]] = defaultdict(set)
    for c, its in by_concept.items():
        for text in [x for it in its for x in it.captions + it.names]:
            users[caption_key(text)].add(c)
    # ... then a tag-phrase pool per concept (shared by its designers; generator seeded by the concept
    # id), in concept order, each phrase claiming a word set no other concept uses: pooled phrases are
    # unique to their concept, so collisions can only come from the fixed texts.
    pools: dict[str, list[str]] = {}
    for c in sorted(by_concept):
        its = by_concept[c]
        tags = list(dict.fromkeys(t for it in its for t in it.tags))
        pools[c] = _tag_phrases(tags, users, cfg.phrase_pool, random.Random(_seed_for(seed, c)))
        for text in pools[c]:
            users[caption_key(text)].add(c)

    # Concepts fit for dev/test: one source family, none train-only, 5 clean distinct captions.
    eligible: dict[str, list[tuple[Item, list[str]]]] = {}
    n_multi = 0
    for c in sorted(by_concept):
        its = by_concept[c]
        if len({_FAMILY[it.source] for it in its}) > 1:
            n_multi += 1
            continue
        if any(it.train_only for it in its):
            continue
        fits = []
        for it in its:
            clean = [x for x in distinct(list(it.captions) + pools[c]) if users[caption_key(x)] == {c}]
            if len(clean) >= N_CAP:
                fits.append((it, clean[:N_CAP]))
        if fits:
            eligible[c] = fits

    rng = np.random.default_rng(seed)
    order = sorted(eligible)
    rng.shuffle(order)
    want = cfg.test + cfg.dev
    n_test, n_dev = cfg.test, cfg.dev
    if len(order) < want:  # too few: test keeps its size (the 1K protocol) where it can; dev shrinks
        n_test = min(cfg.test, len(order) - min(cfg.dev, len(order) // 10))
        n_dev = min(cfg.dev, len(order) - n_test)
    eval_concepts = {"test": order[:n_test], "dev": order[n_test:n_test + n_dev]}

    out_items: dict[str, list[Item]] = {s: [] for s in SPLITS}
    out_caps: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
    n_distinct: dict[str, int] = {}
    for split in ("test", "dev"):
        chosen = []
        for c in eval_concepts[split]:
            fits = eligible[c]
            chosen.append(fits[int(rng.integers(len(fits)))])
        for it, caps in sorted(chosen, key=lambda p: p[0].image_id):
            out_items[split].append(it)
            out_caps[split].append(list(caps))
            n_distinct[it.image_id] = N_CAP
    held = set(eval_concepts["test"]) | set(eval_concepts["dev"])

    # Train tag phrases are drawn afresh, free of the claims above (a train concept may share a
    # phrase with another train concept) but never equal to a dev/test caption; no single-tag fill-up
    # (a lone "flag" on every flag says less than cycling the real captions).
    eval_keys = {caption_key(x) for s in ("dev", "test") for caps in out_caps[s] for x in caps}
    train_pools = {
        c: _tag_phrases(list(dict.fromkeys(t for it in its for t in it.tags)), eval_keys, cfg.phrase_pool,
                        random.Random(_seed_for(seed, "train " + c)), min_single=0)
        for c, its in sorted(by_concept.items()) if c not in held
    }
    train_pool = [it for it in items if concept_of[it.image_id] not in held]
    n_dropped_designers = sum(len(by_concept[c]) for c in held) - len(held)
    if cfg.train is not None and cfg.train < len(train_pool):
        pick = np.sort(rng.choice(len(train_pool), size=cfg.train, replace=False))
        train_pool = [train_pool[i] for i in pick]
    for it in train_pool:
        c = concept_of[it.image_id]
        pool = train_pools[c] if it.tags else []  # tag phrases only for images that carry tags (emoji)
        k = [x.image_id for x in by_concept[c]].index(it.image_id)  # designer index within the concept
        shift = (3 * k) % len(pool) if pool else 0
        caps = distinct(list(it.captions) + pool[shift:] + pool[:shift])[:N_CAP]
        n_distinct[it.image_id] = len(caps)
        out_items["train"].append(it)
        out_caps["train"].append([caps[j % len(caps)] for j in range(N_CAP)])  # cycled to 5 lines

    notes = {
        "concepts": len(by_concept),
        "concepts_multi_source": n_multi,
        "concepts_eligible_for_eval": len(eligible),
        "eval_shortfall": max(0, want - len(order)),
        "images_dropped_other_designers_of_eval_concepts": n_dropped_designers,
        "train_images_with_5_distinct": sum(n_distinct[it.image_id] >= N_CAP for it in out_items["train"]),
    }
    return Plan(out_items, out_caps, concept_of, n_distinct, notes)
