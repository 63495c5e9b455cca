"""Tests of benchmark (a), clipart image search (xmlib.data.benchmarks.clipart), on fake corpora."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from xmlib.data.benchmarks import clipart as C
from xmlib.data.sources import openclipart

RDF = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">
  <metadata>
    <rdf:RDF xmlns:cc="http://web.resource.org/cc/" xmlns:dc="http://purl.org/dc/elements/1.1/"
             xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
      <cc:Work rdf:about="">
        {title}
        <dc:description>{description}</dc:description>
        <dc:subject><rdf:Bag>{keywords}</rdf:Bag></dc:subject>
      </cc:Work>
    </rdf:RDF>
  </metadata>
  <rect width="10" height="10" fill="red"/>
</svg>
"""


def write_svg(path: Path, title: str | None, description: str = "", keywords=()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = "" if title is None else f"<dc:title>{title}</dc:title>"
    kw = "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords)
    path.write_text(RDF.format(title=t, description=description, keywords=kw), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------- unit rules
def test_deleak_is_uniform():
    leaks = C.leak_terms(["animals", "animals/mammals/big_cats", "food/fruit", "food/breads_and_carbs"])
    # the same keywords on a tiger (own folder big_cats) and on an apple (own folder fruit)
    kws = ["Cat", "cats", "big cats", "Big_Cats", "tiger", "Fruits", "bread", "carb", "wild cat", "the", "x"]
    on_tiger = C.deleak_keywords(kws, leaks)
    on_apple = C.deleak_keywords(kws, leaks)
    assert on_tiger == on_apple == ["tiger", "wild cat"]
    # a plain loop: a keyword survives iff its analysed form is no folder word and no whole folder name
    words = {"animal", "mammal", "big", "cat", "fruit", "bread", "carb"}
    names = {("big", "cat"), ("bread", "carb")}
    expect = [k for k in kws if C.analyse(k) and tuple(C.analyse(k)) not in names
              and not (len(C.analyse(k)) == 1 and C.analyse(k)[0] in words)]
    assert on_tiger == expect


def test_relevance_rule():
    assert C.is_relevant(["animals/mammals/big_cats"], "animals/mammals")
    assert C.is_relevant(["animals/mammals"], "animals/mammals")
    assert not C.is_relevant(["animals/mammalsX"], "animals/mammals")  # a name prefix is not a subfolder
    assert not C.is_relevant(["animals"], "animals/mammals")  # the parent is not relevant
    assert C.is_relevant(["food/fruit", "animals/birds"], "animals")  # one of several folders suffices
    assert not C.is_relevant([], "animals")


def _img(folder: str, i: int) -> C.ClipartImage:
    return C.ClipartImage(f"id{folder}{i}", f"{folder}/{i}.svg", (folder,), "t", "", ())


def test_select_queries_threshold_and_top_level():
    images = ([_img("a/b", i) for i in range(6)] + [_img("a/b/c", i) for i in range(5)]
              + [_img("a", i) for i in range(30)] + [_img("d/e", i) for i in range(9)]
              + [_img("signs_and_symbols/flags/europe/france", i) for i in range(10)])
    qs = C.select_queries(images, min_images=10)
    assert [q.folder for q in qs] == ["a/b", "signs_and_symbols/flags", "signs_and_symbols/flags/europe",
                                      "signs_and_symbols/flags/europe/france"]
    assert [q.flag for q in qs] == [False, False, True, True]
    assert qs[0].text == "b" and qs[3].text == "flags of france"
    assert len({q.qid for q in qs}) == len(qs)


def test_folds_partition_and_deterministic():
    ids = [f"c{i:02d}" for i in range(1, 24)]
    f1 = C.query_folds(ids, 5, seed=3)
    assert f1 == C.query_folds(list(reversed(ids)), 5, seed=3)
    assert len(f1) == 5 and sorted(q for f in f1 for q in f) == sorted(ids)
    assert sum(len(f) for f in f1) == len(ids)  # disjoint
    assert max(map(len, f1)) - min(map(len, f1)) <= 1
    assert C.query_folds(ids, 5, seed=4) != f1
    with pytest.raises(ValueError):
        C.query_folds(ids[:3], 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rank_scores_keeps_stored_order_among_ties(dtype):
    s = np.array([0.0, 2.0, 0.0, 2.0, 1.0], dtype=dtype)
    r = C.rank_scores(s)
    assert len(set(r.tolist())) == len(s)
    order = list(np.argsort(-r))
    # plain loop: by score, ties by row position
    expect = sorted(range(len(s)), key=lambda i: (-float(s[i]), i))
    assert order == expect == [1, 3, 4, 0, 2]


# ------------------------------------------------------------------------------------- fake build
FAKE = {  # folder -> (title words of the relevant images, keywords)
    "animals/cats": ("cat", ["cats", "kitten", "animals"]),
    "animals/birds": ("bird", ["birds", "wings"]),
    "food/fruit": ("fruit", ["fruit", "apple"]),
    "food/bread": ("bread", ["bread", "loaf"]),
    "tools/hammers": ("hammer", ["hammers", "nail"]),
    "tools/saws": ("saw", ["saws", "wood"]),
}


def _fake_corpus(root: Path) -> dict[str, Path]:
    """The two OpenClipart assets under ``root`` in the packages' layout: {asset name: folder}."""
    from PIL import Image

    roots = {"openclipart-svg": root / "openclipart-svg", "openclipart-png": root / "openclipart-png"}
    svg, png = openclipart.svg_folder(roots["openclipart-svg"]), openclipart.png_folder(roots["openclipart-png"])
    for k, (folder, (word, kws)) in enumerate(FAKE.items()):
        for i in range(10):
            title = f"{word} drawing {i}" if i % 2 == 0 else f"picture {i}"
            write_svg(svg / folder / f"{word}_{i}.svg", title, "", kws)
            (png / folder).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (20 * k, 10 * i, 100)).save(png / folder / f"{word}_{i}.png")
    for i in range(3):  # an excluded folder
        write_svg(svg / "shapes/stars" / f"star_{i}.svg", "cat star", "", ["star"])
    os.symlink("../../food/fruit/fruit_0.svg", svg / "animals/birds/fruit_link.svg")  # a de-duplicated copy
    (png / "animals/birds").mkdir(parents=True, exist_ok=True)
    (svg / "tools/hammers/broken.svg").write_text("<svg><metadata>", encoding="utf-8")  # unparseable: skipped
    return roots


def _fake_text_encoder(texts):
    out = np.zeros((len(texts), 16))
    for r, t in enumerate(texts):
        for w in C.analyse(t):
            out[r, int(hashlib.md5(w.encode()).hexdigest(), 16) % 16] += 1.0
    return out + 1e-3


def _fake_visual(img_id: str) -> np.ndarray:
    return np.random.default_rng(int(hashlib.md5(img_id.encode()).hexdigest()[:8], 16)).normal(size=12)


def _fake_images(paths):
    return np.stack([_fake_visual(Path(p).as_posix()) for p in paths])


def test_smoke_build_on_fake_corpus_round_trips(tmp_path):
    roots = _fake_corpus(tmp_path / "pkg")
    png = openclipart.png_folder(roots["openclipart-png"])
    out = C.build("smoke", out_dir=tmp_path / "bench", seed=1, roots=roots,
                  text_encoder=_fake_text_encoder, feature_fn=_fake_images)
    data = C.load(out)
    meta = data.meta
    assert meta["counts"]["svgs_skipped"] == 1 and "broken.svg" in meta["skipped_svgs"][0]["svg"]
    assert data.feature_names == tuple(sorted(f + "_feature" for f in C.FEATURES))
    assert set(meta["feature_sets"]["weak"]) < set(meta["feature_sets"]["strong"]) == set(data.feature_names)
    assert data.folds is not None and sorted(q for f in data.folds for q in f) == sorted(data.query_ids)
    assert 5 <= len(data) <= 6
    images = {r["img_id"]: r for r in __import__("pandas").read_csv(out / "images.csv", dtype=str,
                                                                     keep_default_na=False).to_dict("records")}
    leaks = C.leak_terms(["animals", "animals/cats", "animals/birds", "food", "food/fruit", "food/bread",
                          "tools", "tools/hammers", "tools/saws", "shapes", "shapes/stars"])
    for q in data:
        folder = meta["queries"][q.query_id]["folder"]
        assert len(q) == 20 and q.visual.shape == (20, 12) and q.features.shape == (20, len(C.FEATURES))
        assert 0 < q.rel.sum() < len(q)
        for img_id, rel, vis in zip(q.img_ids, q.rel, q.visual):
            row = images[img_id]
            assert not row["folders"].startswith("shapes/stars")
            assert rel == int(C.is_relevant(row["folders"].split(";"), folder))
            np.testing.assert_allclose(vis, _fake_visual((png / row["png"]).as_posix()), rtol=1e-6)
            # uniform de-leaking: no kept keyword is a folder word, on any image
            assert all(tuple(C.analyse(k)) not in leaks for k in filter(None, row["keywords"].split(";")))
        # rows are shuffled: the stored order is not the first-stage order
        rank = q.features[:, data.feature_names.index("first_stage_rank_feature")]
        assert sorted(rank.tolist()) == list(range(1, 21)) and rank.tolist() != list(range(1, 21))
    # the de-duplicated link: one document, in both folders
    link = [r for r in images.values() if r["svg"] == "food/fruit/fruit_0.svg"]
    assert not link or link[0]["folders"] == "animals/birds;food/fruit"
    # surviving non-folder keywords exist (de-leaking is not "drop everything")
    assert any("kitten" in r["keywords"] or "loaf" in r["keywords"] for r in images.values())

    st = C.stats(out)
    assert st["all"]["queries"] == len(data) and st["all"]["candidates_mean"] == 20
    for ranker in ("first_stage", "bm25", "minilm"):
        assert 0.0 <= st["all"][ranker]["map"] <= 1.0

    # idempotent: a second call does no work (encoders that would fail are not called)
    def boom(_):
        raise AssertionError("rebuilt although the stamp matches")

    stamp = (out / "stamp.json").read_text()
    assert C.build("smoke", out_dir=out, seed=1, roots=roots, text_encoder=boom, feature_fn=boom) == out
    assert (out / "stamp.json").read_text() == stamp
    # a different seed rebuilds: same queries and candidates, other row order
    C.build("smoke", out_dir=out, seed=2, roots=roots, text_encoder=_fake_text_encoder, feature_fn=_fake_images)
    data2 = C.load(out)
    q0 = data.query_ids[0]
    assert sorted(data2[q0].img_ids) == sorted(data[q0].img_ids)
    assert json.loads((out / "stamp.json").read_text())["seed"] == 2

    ex = C.examples(out, 2, n_images=2)
    assert len(ex) == 2 and all(Path(e["png"]).exists() for x in ex for e in x["relevant"] + x["non_relevant"])


def test_bad_profile_and_missing_build(tmp_path):
    with pytest.raises(ValueError, match="unknown clipart profile"):
        C.build("huge", out_dir=tmp_path, roots={"openclipart-svg": tmp_path, "openclipart-png": tmp_path})
    with pytest.raises(FileNotFoundError, match="build"):
        C.load(tmp_path / "nothing")


def _assets_present() -> bool:
    try:
        from xmlib.data.assets import is_fetched

        return is_fetched("openclipart-svg") and is_fetched("openclipart-png")
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _assets_present(), reason="OpenClipart assets not fetched (python -m xmlib.data fetch)")
def test_real_smoke_subset():
    out = C.build("smoke")
    data = C.load(out)
    assert len(data) >= 5 and data.visual_dim == 1280
    st = C.stats(out)
    assert st["all"]["candidates_mean"] == C.PROFILES["smoke"]["n_candidates"]
    assert 0.0 < st["all"]["first_stage"]["map"] < 1.0
    for q in data:
        assert 0 < q.rel.sum() and np.isfinite(q.visual).all()
