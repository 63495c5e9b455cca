"""Benchmark (b), emoji fine-grained similarity: matching, split, triplet rules, baselines,
determinism, on a tiny fake corpus written in the three packages' layouts (plus a slow check on the
real smoke profile when the assets are fetched)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.data.emoji_fake import cheap_features, make_fake_corpus
from xmlib.data.benchmarks import emoji as E
from xmlib.data.sources.emoji import ASSET_OF
from xmlib.deepranking.golden import GoldenRelevance
from xmlib.metrics.triplets import precision_from_distances


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("emoji_fake")
    src = make_fake_corpus(root / "src")
    out = E.build("default", out_dir=root / "bench", seed=3, roots=src, feature_fn=cheap_features)
    bench = E.load(out)
    return root, src, out, bench


def test_matching_rule(fake):
    _, _, out, bench = fake
    counts = json.loads((out / "stats.json").read_text())["matching"]
    assert counts["matched_without_fe0f"] == 1          # 1F000-FE0F <-> OpenMoji 1F000
    assert counts["matched_exact"] == 18                # 17 plain + the Component record
    assert counts["excluded_category"] == 1
    assert counts["concepts"] == 18
    concepts = set(bench.meta["concept"])
    assert "1F000" in concepts and "1F999" not in concepts and "1F998" not in concepts and "1F3FB" not in concepts
    # every concept has exactly one image by each designer
    per = bench.meta.groupby("concept")["designer"].apply(sorted)
    assert all(v == sorted(E.DESIGNERS) for v in per)
    assert bench.images.shape == (54, 64, 64, 3) and bench.images.dtype == np.uint8


def test_near_duplicates(fake):
    bench = fake[3]
    dups = json.loads((bench.root / "near_duplicates.json").read_text())
    assert ["1F204", "1F205"] in dups
    # the brute-force definition on the stored images agrees
    m = bench.meta
    want = set()
    for d in E.DESIGNERS:
        idx = np.flatnonzero(m["designer"].to_numpy() == d)
        for a in idx:
            for b in idx:
                if m["concept"][a] < m["concept"][b]:
                    mad = np.abs(bench.images[a].astype(float) - bench.images[b].astype(float)).mean()
                    if mad < bench.config.duplicate_threshold:
                        want.add((m["concept"][a], m["concept"][b]))
    assert {tuple(p) for p in dups} == want


def test_split_has_no_concept_on_two_sides(fake):
    bench = fake[3]
    assert (bench.meta.groupby("concept")["split"].nunique() == 1).all()
    # stratified: 6 concepts per subcategory -> 2 test, 2 val, 2 train each
    tab = bench.meta.drop_duplicates("concept").groupby(["subcategory", "split"]).size()
    assert (tab == 2).all() and len(tab) == 9
    idx = np.concatenate([bench.train_idx, bench.val_idx, bench.test_idx])
    assert sorted(idx.tolist()) == list(range(len(bench.meta)))


def test_split_concepts_many_subcategories():
    rng = np.random.default_rng(0)
    sub = rng.choice([f"s{k}" for k in range(30)], size=600)
    cfg = E.EmojiConfig()
    a = E.split_concepts(sub, cfg, seed=1)
    assert (a == E.split_concepts(sub, cfg, seed=1)).all()
    assert (a != E.split_concepts(sub, cfg, seed=2)).any()
    for s in np.unique(sub):
        got = a[sub == s]
        n = len(got)
        if n < 4:
            assert (got == "train").all()
        else:
            assert (got == "test").sum() >= 2 and (got == "train").sum() >= 2


def _check_triplets(bench, split):
    trip, typ, pair = bench.triplets_of(split)
    assert trip.ndim == 2 and trip.shape[1] == 3 and len(trip) == len(typ) == len(pair) > 0
    m = bench.meta
    concept, designer = m["concept"].to_numpy(), m["designer"].to_numpy()
    sub, spl = m["subcategory"].to_numpy(), m["split"].to_numpy()
    hist = bench.color_hist.astype(np.float64)
    dups = {tuple(p) for p in json.loads((bench.root / "near_duplicates.json").read_text())}
    golden = GoldenRelevance.of(bench)
    blocked = lambda a, b: (a, b) in dups or (b, a) in dups  # noqa: E731
    for (q, p, n), t, k in zip(trip, typ, pair):
        assert not blocked(concept[q], concept[n])
        assert spl[q] == spl[p] == spl[n] == split
        assert concept[q] == concept[p] and designer[q] != designer[p]
        assert concept[n] != concept[q]
        assert E.PAIR_KINDS[k] == ("cross_style" if "openmoji" in (designer[q], designer[p]) else "same_style")
        if E.TRIPLET_TYPES[t] == "in_class":
            assert sub[n] == sub[q]
            # the negative is the colour nearest neighbour among same-subcategory other concepts (plain loop)
            best, best_j = -1.0, -1
            for j in range(len(m)):
                if spl[j] == split and sub[j] == sub[q] and concept[j] != concept[q] and not blocked(concept[q], concept[j]):
                    bc = float(np.sum(np.sqrt(hist[q] * hist[j])))
                    if bc > best + 1e-12:
                        best, best_j = bc, j
            assert n == best_j
        else:
            assert sub[n] != sub[q]
            assert golden.relevance(q, n) == 0.0


@pytest.mark.parametrize("split", ["val", "test"])
def test_every_triplet_follows_its_rule(fake, split):
    bench = fake[3]
    _check_triplets(bench, split)
    trip, typ, pair = bench.triplets_of(split)
    n_concepts = bench.meta.loc[bench.meta["split"] == split, "concept"].nunique()
    assert len(trip) == n_concepts * 6 * 2     # 6 ordered designer pairs x 2 types
    assert 3 * (pair == 0).sum() == 2 * len(trip)    # 4 of the 6 pairs involve OpenMoji


def test_cross_pairs_only(tmp_path, fake):
    src = fake[1]
    out = E.build("default", out_dir=tmp_path / "b", seed=3, roots=src, feature_fn=cheap_features,
                  overrides={"pairs": "cross", "out_of_class": "color_nn"})
    bench = E.load(out)
    assert bench.config.pairs == "cross" and bench.seed == 3  # config and seed come from the stamp
    assert (bench.test_pair == 0).all()
    _check_triplets(bench, "test")
    # a group without triplets has no precision (NaN), not an error
    assert np.isnan(E.baseline_precisions(bench)["cnn"]["same_style"])


def test_build_is_deterministic_and_idempotent(tmp_path, fake):
    src = fake[1]
    a = E.build("default", out_dir=tmp_path / "a", seed=3, roots=src, feature_fn=cheap_features)
    b = fake[2]
    for name in ("images.npy", "color_hist.npy", "cnn.npy", "test_triplets.npy", "val_triplets.npy",
                 "test_triplet_type.npy", "test_triplet_pair.npy"):
        assert np.array_equal(np.load(a / name), np.load(b / name)), name
    assert (a / "metadata.csv").read_text() == (b / "metadata.csv").read_text()
    assert (a / "test_query_and_triplets.txt").read_text() == (b / "test_query_and_triplets.txt").read_text()
    # a second call finds the stamp and does nothing
    mtime = (a / "images.npy").stat().st_mtime_ns

    def boom(paths):
        raise AssertionError("features recomputed on an up-to-date build")

    assert E.build("default", out_dir=a, seed=3, roots=src, feature_fn=boom) == a
    assert (a / "images.npy").stat().st_mtime_ns == mtime
    # another seed gives another split
    c = E.build("default", out_dir=tmp_path / "c", seed=4, roots=src, feature_fn=cheap_features)
    assert (a / "metadata.csv").read_text() != (c / "metadata.csv").read_text()


def test_deepranking_file_matches_arrays(fake):
    from xmlib.data.formats.deepranking_triplets import read_query_and_triplets, resolve_image

    _, _, out, bench = fake
    recs = read_query_and_triplets(out / "test_query_and_triplets.txt")
    assert len(recs) == len(bench.test_triplets)
    files = bench.meta["file"].to_numpy()
    for rec, (q, p, n) in zip(recs, bench.test_triplets):
        assert rec.images == (files[q], files[p], files[n])
        assert rec.query_text == bench.meta["name"][q]
        stored = np.asarray(Image.open(resolve_image(rec.positive, out)).convert("RGB"))
        assert np.array_equal(stored, bench.images[p])


def test_color_histograms_against_loop():
    rng = np.random.default_rng(1)
    ims = rng.integers(0, 256, size=(3, 8, 8, 3)).astype(np.uint8)
    ims[0, :4] = 255
    ims[2] = 255                                   # all background: falls back to every pixel
    h = E.color_histograms(ims, bins=4, white_threshold=240)
    for k in range(3):
        want = np.zeros(64)
        pix = ims[k].reshape(-1, 3)
        fg = [px for px in pix if not (px >= 240).all()] or list(pix)
        for px in fg:
            r, g, b = (int(v) * 4 // 256 for v in px)
            want[(r * 4 + g) * 4 + b] += 1
        assert np.allclose(h[k], want / want.sum())


def test_data_card_precision_counts_a_tie_one_half():
    rng = np.random.default_rng(2)
    sp = rng.integers(0, 3, 50).astype(float)
    sn = rng.integers(0, 3, 50).astype(float)
    want = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(sp, sn)) / 50
    assert precision_from_distances(sp, sn, tie_credit=0.5, higher_is_closer=True) == pytest.approx(want)


def test_baselines_and_stats(fake):
    bench = fake[3]
    s = E.stats(bench)
    assert s["concepts"] == 18 and s["concepts_with_2plus_designers"] == 18
    assert s["images_per_designer"] == {"google": 18, "twitter": 18, "openmoji": 18}
    assert s["test_triplets"]["total"] == s["test_triplets"]["in_class"] + s["test_triplets"]["out_of_class"]
    base = s["baselines"]["test"]
    for name in ("cnn", "color_hist", "raw_pixels", "golden"):
        assert 0.0 <= base[name]["all"] <= 1.0
    # the colour baseline scores 0 on in-class triplets whose positive is less colour-similar than the
    # mined negative, which (by construction) is every in-class triplet but ties and exact nearest positives
    trip, typ, _ = bench.triplets_of("test")
    hq = np.sqrt(bench.color_hist.astype(np.float64))
    m = typ == 0
    sp = (hq[trip[m, 0]] * hq[trip[m, 1]]).sum(1)
    sn = (hq[trip[m, 0]] * hq[trip[m, 2]]).sum(1)
    assert base["color_hist"]["in_class"] == pytest.approx(
        precision_from_distances(sp, sn, tie_credit=0.5, higher_is_closer=True))


def test_triplet_examples(fake):
    bench = fake[3]
    ims, labels, kinds = E.examples(bench, 4, kind="in_class")
    assert ims.shape == (4, 3, 64, 64, 3) and ims.dtype == np.uint8
    assert len(labels) == 4 and all(len(t) == 3 for t in labels) and set(kinds) == {"in_class"}
    assert labels[0][0].split(" · ")[0] == labels[0][1].split(" · ")[0]


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="pairs"):
        E.EmojiConfig(pairs="both")
    with pytest.raises(ValueError, match="subcategor"):
        E.build("default", out_dir="/nonexistent/never", overrides={"subcategoriez": ("x",)})


def _assets_fetched() -> bool:
    try:
        from xmlib.data.assets import is_fetched
    except ImportError:
        return False
    return all(is_fetched(a) for a in ASSET_OF.values())


@pytest.mark.slow
@pytest.mark.skipif(not _assets_fetched(), reason="emoji assets not fetched (python -m xmlib.data fetch)")
def test_real_smoke_profile():
    bench = E.load(E.build("smoke"))
    s = E.stats(bench, with_baselines=False)
    assert s["concepts"] == 68 and s["categories"] == 3
    assert s["test_triplets"]["total"] >= 150
    _check_triplets(bench, "test")
    assert bench.cnn.shape == (len(bench.meta), 1280)
