"""Benchmark (c), open captions: the split rules on a tiny fake corpus laid out like the real assets.

The fake corpus has emoji (three designers per concept), a flag, Tux Paint stamps (one shares its
name with an emoji), an alphabet stamp that must be skipped, and OpenClipart SVGs with good and junk
titles. Features are a cheap deterministic fake keyed by the file name.
"""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xmlib.data.benchmarks import captions as C
from xmlib.data.formats import scan_precomp
from xmlib.data.formats.vocab import SPECIAL_TOKENS, load_vocab

ANIMALS = ["cat", "dog", "fox", "owl", "bee", "cow", "pig", "ant", "bat", "eel", "elk", "hen", "yak",
           "emu", "ram", "doe"]
WORDS = ["red", "blue", "green", "happy", "small", "big", "fast", "slow", "round", "tall", "soft", "loud",
         "wild", "cold", "warm", "dark", "light", "young", "old", "brave", "calm", "shy", "wet", "dry"]


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (8, 8), colour + (255,)).save(path)


def _svg(path: Path, title: str = "", description: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><metadata>'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:cc="http://web.resource.org/cc/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"><cc:Work rdf:about="">'
        f"<dc:title>{title}</dc:title><dc:description>{description}</dc:description>"
        "<dc:subject><rdf:Bag><rdf:li>kw</rdf:li></rdf:Bag></dc:subject>"
        "<dc:creator><cc:Agent><dc:title>Someone Else</dc:title></cc:Agent></dc:creator>"
        '</cc:Work></rdf:RDF></metadata><rect width="8" height="8" fill="red"/></svg>',
        encoding="utf-8",
    )


def make_corpus(root: Path) -> dict[str, Path]:
    """Write the fake assets under ``root``; return {asset name: folder}."""
    rng = random.Random(0)
    roots = {n: root / n for n in ("emoji-google", "emoji-twitter", "openmoji", "tuxpaint-stamps",
                                   "openclipart-svg", "openclipart-png")}
    emoji, om = [], []
    for i, animal in enumerate(ANIMALS):
        code = f"1F{400 + i:03X}"
        tags = rng.sample(WORDS, 6) + [animal]
        emoji.append({"name": f"{animal.upper()} FACE", "unified": code, "image": f"{code.lower()}.png",
                      "category": "Animals & Nature", "subcategory": "animal-mammal",
                      "has_img_google": True, "has_img_twitter": True})
        om.append({"hexcode": code, "annotation": f"{animal} face", "tags": ", ".join(tags[:4]),
                   "openmoji_tags": ", ".join(tags[4:])})
    emoji[1]["name"], om[1]["annotation"] = "DOG", "dog"  # the same concept as the Tux Paint dog
    # a flag: train only
    emoji.append({"name": "Wonderland Flag", "unified": "1F1FC-1F1F1", "image": "1f1fc-1f1f1.png",
                  "category": "Flags", "subcategory": "country-flag"})
    om.append({"hexcode": "1F1FC-1F1F1", "annotation": "flag: Wonderland", "tags": "flag, red, blue, wild",
               "openmoji_tags": "country, banner"})
    for name in ("emoji-google", "emoji-twitter"):
        pkg = roots[name] / "package"
        pkg.mkdir(parents=True)
        (pkg / "emoji.json").write_text(json.dumps(emoji), encoding="utf-8")
        designer = name.split("-")[1]
        for j, e in enumerate(emoji):
            _png(pkg / "img" / designer / "64" / e["image"], (10 * j, 100, 200 if designer == "google" else 50))
    data = roots["openmoji"] / "package" / "data"
    data.mkdir(parents=True)
    (data / "openmoji.json").write_text(json.dumps(om), encoding="utf-8")
    for o in om:
        _svg(roots["openmoji"] / "package" / "color" / "svg" / f"{o['hexcode']}.svg")

    stamps = roots["tuxpaint-stamps"] / "usr/share/tuxpaint/stamps"
    for rel, caption in [("animals/dog", "A dog."), ("vehicles/red_bus", "A big red bus."),
                         ("food/cake", "A cake for a party!"), ("symbols/alphabets/english/a", "The letter A.")]:
        _png(stamps / f"{rel}.png", (200, 10, 10))
        (stamps / f"{rel}.txt").write_text(f"{caption}\nfr.utf8=Une chose.\n", encoding="utf-8")
    (stamps / "food/ghost.txt").write_text("A stamp without an image.\n", encoding="utf-8")

    svg = roots["openclipart-svg"] / "usr/share/openclipart/svg"
    png = roots["openclipart-png"] / "usr/share/openclipart/png"
    clip = [("animals/happy_owl", "Happy Owl", "owl face"), ("food/red_apple", "Red Apple", ""),
            ("animals/junk1", "Clipart by Someone - owl", ""), ("animals/junk2", "owl_2", ""),
            ("animals/junk3", "drawing.svg", ""), ("animals/junk4", "Dog 2", ""),
            ("special/gradients/g", "Blue Light", ""), ("animals/fox", "fox face", "")]
    for rel, title, desc in clip:
        _svg(svg / f"{rel}.svg", title, desc)
        _png(png / f"{rel}.png", (0, 200, 0))
    return roots


def fake_features(paths) -> np.ndarray:
    """(N, 49, 1280) float16, a function of each file's name only."""
    out = np.empty((len(paths), C.N_REGIONS, C.FEATURE_DIM), np.float16)
    for i, p in enumerate(paths):
        rng = np.random.default_rng(zlib.crc32(Path(p).as_posix().split("assets/")[-1].encode()))
        out[i] = rng.standard_normal((C.N_REGIONS, C.FEATURE_DIM)).astype(np.float16)
    return out


SIZES = {"train": None, "dev": 3, "test": 5}


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("XMLIB_CACHE", str(tmp_path / "cache"))
    roots = make_corpus(tmp_path / "cache" / "assets")
    calls = []

    def feats(paths):
        calls.append(len(paths))
        return fake_features(paths)

    return {"roots": roots, "calls": calls, "tmp": tmp_path, "feats": feats}


def build(corpus, **kwargs):
    """The smoke profile of the benchmark on the fake corpus (split sizes as ``overrides``)."""
    return C.build("smoke", roots=corpus["roots"], feature_fn=corpus["feats"], **kwargs)


def _meta(out: Path) -> dict:
    return json.loads((out / "meta.json").read_text(encoding="utf-8"))


def test_collect_corpus_reads_every_source(corpus):
    items, notes = C.collect_corpus(corpus["roots"])
    by_source = {s: [it for it in items if it.source == s] for s in C.SOURCES}
    assert len(by_source["emoji-google"]) == len(ANIMALS) + 1 == len(by_source["openmoji"])
    tux = {it.captions[0] for it in by_source["tuxpaint"]}
    assert tux == {"A dog.", "A big red bus.", "A cake for a party!"}  # no alphabet, no image-less stamp
    clip = sorted(it.captions for it in by_source["openclipart"])
    assert clip == [("Happy Owl", "owl face"), ("Red Apple",), ("fox face",)]
    assert notes["openclipart_dropped"]["junk title"] == 4 and notes["openclipart_dropped"]["skipped folder"] == 1


def test_no_concept_on_two_sides_and_train_only_sources(corpus):
    out = build(corpus, overrides=SIZES)
    meta = _meta(out)
    concepts = {s: {r["concept"] for r in meta["images"][s]} for s in C.SPLITS}
    assert not concepts["train"] & concepts["dev"]
    assert not concepts["train"] & concepts["test"]
    assert not concepts["dev"] & concepts["test"]
    assert meta["counts"]["test"]["images"] == 5 and meta["counts"]["dev"]["images"] == 3
    for s in ("dev", "test"):
        assert len(concepts[s]) == len(meta["images"][s])  # one image per concept
        for r in meta["images"][s]:
            assert r["source"] in ("emoji-google", "emoji-twitter", "openmoji")
            assert all(part.startswith("emoji:") for part in r["concept"].split("+"))
            assert r["concept"] != "emoji:1F1FC-1F1F1"
    # the dog emoji shares its name with the Tux Paint dog: one merged concept, kept in train
    dog = [r for r in meta["images"]["train"] if r["source"] == "tuxpaint" and r["id"].endswith("dog.png")]
    assert dog and dog[0]["concept"] == "emoji:1F191+tuxpaint:animals/dog"
    # every image of an eval concept is gone from train (other designers dropped, not leaked)
    train_ids = {r["id"] for r in meta["images"]["train"]}
    for s in ("dev", "test"):
        for r in meta["images"][s]:
            code = r["concept"].split(":")[1].lower()
            assert not any(code in i for i in train_ids)


def test_eval_captions_distinct_and_not_shared(corpus):
    out = build(corpus, overrides=SIZES)
    meta = _meta(out)
    items, _ = C.collect_corpus(corpus["roots"])
    plan = C.plan_split(items, C.CaptionsConfig(**SIZES), 0)
    # every text of every other concept: corpus names and captions plus all written caption lines
    texts_of: dict[frozenset, set[str]] = {}
    for it in items:
        for t in it.names + it.captions:
            texts_of.setdefault(C.caption_key(t), set()).add(plan.concept_of[it.image_id])
    for s in C.SPLITS:
        sp = scan_precomp.read_split(out, s)
        for i, r in enumerate(meta["images"][s]):
            for t in sp.captions_of_image(i):
                texts_of.setdefault(C.caption_key(t), set()).add(r["concept"])
    for s in ("dev", "test"):
        sp = scan_precomp.read_split(out, s)
        for i, r in enumerate(meta["images"][s]):
            caps = sp.captions_of_image(i)
            assert len({C.caption_key(c) for c in caps}) == 5, caps
            for c in caps:
                assert texts_of[C.caption_key(c)] == {r["concept"]}, (c, texts_of[C.caption_key(c)])
            assert "owl face" not in caps  # the owl emoji's name is an OpenClipart description


def test_files_round_trip_through_the_precomp_reader(corpus):
    out = build(corpus, overrides=SIZES)
    meta = _meta(out)
    for s in C.SPLITS:
        sp = scan_precomp.read_split(out, s, mmap=False)
        n = meta["counts"][s]["images"]
        assert sp.n_images == n and sp.n_captions == 5 * n
        assert (sp.n_regions, sp.feature_dim) == (49, 1280)
        assert np.load(scan_precomp.ims_path(out, s)).dtype == np.float16
        paths = C.image_paths(out, s)
        assert len(paths) == n and all(p.is_file() for p in paths)
        np.testing.assert_array_equal(sp.images, fake_features(paths).astype(np.float32))
        assert sp.captions == [c for r in range(n) for c in sp.captions_of_image(r)]
    vocab = load_vocab(out / "vocab.json")
    assert vocab.idx2word[:4] == SPECIAL_TOKENS and meta["vocab_size"] == len(vocab)
    # train images with one distinct caption repeat it five times (Tux Paint: one sentence each)
    tr = scan_precomp.read_split(out, "train")
    for i, r in enumerate(meta["images"]["train"]):
        caps = tr.captions_of_image(i)
        assert len({C.caption_key(c) for c in caps}) == r["distinct_captions"]
        if r["source"] == "tuxpaint":
            assert r["distinct_captions"] == 1 and len(set(caps)) == 1
    st = C.stats(out)
    assert st["test"]["captions"] == 25 and st["vocab_size"] == len(vocab)
    assert 0.0 <= st["test_words_unseen_in_train"] <= 1.0
    ex = C.examples(out, 2, split="test")
    assert len(ex) == 2 and all(e["path"].is_file() and len(e["captions"]) == 5 for e in ex)


def test_plan_coverage_agrees_with_the_built_files(corpus):
    """The plan-level coverage (no features) equals what stats() measures on the written files."""
    items, _ = C.collect_corpus(corpus["roots"])
    sizes = dict(SIZES, vocab_threshold=2)
    cov = C.plan_coverage(C.plan_split(items, C.CaptionsConfig(**sizes), 0), thresholds=(1, 2))
    st = C.stats(build(corpus, overrides=sizes))
    assert cov["train_images"] == st["train"]["images"] and cov["test_images"] == st["test"]["images"] == 5
    assert cov["test_words_unseen_in_train"] == st["test_words_unseen_in_train"] == cov["unk_at_1"]
    assert cov["unk_at_2"] == st["test_words_unk"] >= cov["unk_at_1"]
    assert 0.0 < cov["unk_at_2"] < 1.0  # the fixture has both known and unknown test words


def test_deterministic_from_seed_and_idempotent(corpus):
    tmp = corpus["tmp"]
    a = build(corpus, out_dir=tmp / "a", overrides=SIZES, seed=0)
    b = build(corpus, out_dir=tmp / "b", overrides=SIZES, seed=0)
    c = build(corpus, out_dir=tmp / "c", overrides=SIZES, seed=1)
    for s in C.SPLITS:
        for f in (f"{s}_caps.txt", f"{s}_images.txt", f"{s}_ims.npy"):
            assert (a / f).read_bytes() == (b / f).read_bytes()
    assert (a / "test_images.txt").read_text() != (c / "test_images.txt").read_text()
    n_calls = len(corpus["calls"])
    assert build(corpus, out_dir=a, overrides=SIZES, seed=0) == a and len(corpus["calls"]) == n_calls
    build(corpus, out_dir=a, overrides=SIZES, seed=0, force=True)
    assert len(corpus["calls"]) == n_calls + 1


def test_plan_ignores_item_order_and_subsamples_train(corpus):
    items, _ = C.collect_corpus(corpus["roots"])
    p1 = C.plan_split(items, C.CaptionsConfig(**SIZES), 3)
    shuffled = list(items)
    random.Random(5).shuffle(shuffled)
    p2 = C.plan_split(shuffled, C.CaptionsConfig(**SIZES), 3)
    assert p1.captions == p2.captions and p1.items == p2.items
    small = C.plan_split(items, C.CaptionsConfig(train=7, dev=2, test=4), 0)
    assert [len(small.items[s]) for s in C.SPLITS] == [7, 2, 4]
    with pytest.raises(ValueError, match="unknown captions profile"):
        C.build("huge")


@pytest.mark.slow
def test_real_smoke_build():
    from xmlib.data import assets

    names = [a for a_, _ in C.SOURCES.values() for a in a_]
    if not all(assets.is_fetched(n) for n in names):
        pytest.skip("assets not fetched (python -m xmlib.data fetch)")
    out = C.build("smoke")
    st = C.stats(out)
    assert [st[s]["images"] for s in C.SPLITS] == [200, 50, 100]
    sp = C.load("smoke", "test")
    assert (sp.n_images, sp.n_regions, sp.feature_dim) == (100, 49, 1280)
    assert np.isfinite(sp.image_features()).all()
    assert st["vocab_size"] > 4
