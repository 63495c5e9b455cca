"""Readers and writers of the papers' on-disk formats, on tiny files written in those formats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xmlib.data.formats import FormatError
from xmlib.data.formats import deepranking_triplets as dr
from xmlib.data.formats import mediaeval as me
from xmlib.data.formats import scan_precomp as sp
from xmlib.data.formats import vocab as vb


# ------------------------------------------------------------------------------- SCAN precomp
def _captions(n_images: int) -> list[str]:
    return [f"image {i} caption {k}" for i in range(n_images) for k in range(5)]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("mmap", [True, False])
def test_precomp_round_trip(tmp_path, dtype, mmap):
    rng = np.random.default_rng(0)
    ims = rng.standard_normal((4, 3, 6)).astype(dtype)
    caps = _captions(4)
    sp.write_split(tmp_path, "test", ims, caps)
    on_disk = np.load(tmp_path / "test_ims.npy", allow_pickle=False)
    assert on_disk.dtype == dtype and on_disk.shape == (4, 3, 6)
    # the captions file is plain text, one caption a line (checked with a plain read, not our reader)
    assert (tmp_path / "test_caps.txt").read_text(encoding="utf-8").split("\n")[:-1] == caps

    s = sp.read_split(tmp_path, "test", mmap=mmap)
    assert s.n_images == 4 and s.n_captions == 20 and s.n_regions == 3 and s.feature_dim == 6
    assert s.images.dtype == (dtype if mmap else np.float32)
    np.testing.assert_array_equal(s.image_features(), ims.astype(np.float32))
    assert s.image_features([1, 3]).dtype == np.float32
    assert s.captions == caps
    assert s.image_of_caption.tolist() == [i // 5 for i in range(20)]
    assert s.captions_of_image(2) == caps[10:15]
    assert s.image_stride == 1


def test_precomp_writer_strips_and_casts(tmp_path):
    ims = np.ones((1, 2, 2), dtype=np.float64)
    sp.write_split(tmp_path, "dev", ims, ["  a ", "b", "c", "d", "e\t"])
    s = sp.read_split(tmp_path, "dev")
    assert s.images.dtype == np.float32 and s.captions == ["a", "b", "c", "d", "e"]
    sp.write_split(tmp_path, "dev", ims, list("abcde"), dtype="float16")
    assert sp.read_split(tmp_path, "dev").images.dtype == np.float16


def test_precomp_reads_five_copies_per_image(tmp_path):
    base = np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4)
    np.save(tmp_path / "train_ims.npy", np.repeat(base, 5, axis=0))  # (15, 2, 4): one row per caption
    (tmp_path / "train_caps.txt").write_text("\n".join(_captions(3)) + "\n", encoding="utf-8")
    s = sp.read_split(tmp_path, "train")
    assert s.image_stride == 5 and s.n_images == 3
    np.testing.assert_array_equal(s.image_features(), base)


def test_precomp_one_row_per_caption_must_be_copies(tmp_path):
    np.save(tmp_path / "train_ims.npy", np.random.default_rng(1).random((10, 2, 4), dtype=np.float32))
    (tmp_path / "train_caps.txt").write_text("\n".join(_captions(2)) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match="not copies of one image"):
        sp.read_split(tmp_path, "train")


def test_precomp_crlf_and_trailing_newline(tmp_path):
    np.save(tmp_path / "test_ims.npy", np.zeros((1, 1, 2), np.float32))
    (tmp_path / "test_caps.txt").write_bytes(b"a dog\r\nb\r\nc\r\nd\r\ne\r\n")
    assert sp.read_split(tmp_path, "test").captions == ["a dog", "b", "c", "d", "e"]


def test_precomp_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="test_ims.npy"):
        sp.read_split(tmp_path, "test")
    np.save(tmp_path / "test_ims.npy", np.zeros((1, 1, 2), np.float32))
    with pytest.raises(FileNotFoundError, match="test_caps.txt"):
        sp.read_split(tmp_path, "test")


def test_precomp_wrong_ndim(tmp_path):
    np.save(tmp_path / "test_ims.npy", np.zeros((2, 8), np.float32))
    (tmp_path / "test_caps.txt").write_text("\n".join(_captions(2)), encoding="utf-8")
    with pytest.raises(FormatError, match=r"test_ims\.npy has shape \(2, 8\).*\(N_img, R, D\)"):
        sp.read_split(tmp_path, "test")
    with pytest.raises(FormatError, match=r"test_ims\.npy.*ims\[:, None, :\]"):
        sp.write_split(tmp_path, "test", np.zeros((2, 8)), _captions(2))


def test_precomp_caption_count_names_both_counts(tmp_path):
    np.save(tmp_path / "test_ims.npy", np.zeros((3, 1, 2), np.float32))
    (tmp_path / "test_caps.txt").write_text("\n".join(_captions(3)[:14]) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"test_caps\.txt has 14 captions but .*test_ims\.npy has 3 images"):
        sp.read_split(tmp_path, "test")
    with pytest.raises(FormatError, match=r"14 captions for 3 images"):
        sp.write_split(tmp_path, "test", np.zeros((3, 1, 2)), _captions(3)[:14])


def test_precomp_empty_caption(tmp_path):
    np.save(tmp_path / "test_ims.npy", np.zeros((1, 1, 2), np.float32))
    (tmp_path / "test_caps.txt").write_text("a\nb\n  \nd\ne\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"test_caps\.txt: line 3 is empty"):
        sp.read_split(tmp_path, "test")
    with pytest.raises(FormatError, match="caption 2 .* is empty"):
        sp.write_split(tmp_path, "test", np.zeros((1, 1, 2)), ["a", "b", " ", "d", "e"])
    with pytest.raises(FormatError, match="line break"):
        sp.write_split(tmp_path, "test", np.zeros((1, 1, 2)), ["a", "b\nc", "c", "d", "e"])


def test_precomp_writer_refuses_nan_and_keeps_old_files(tmp_path):
    sp.write_split(tmp_path, "test", np.zeros((1, 1, 2)), list("abcde"))
    bad = np.full((1, 1, 2), np.nan)
    with pytest.raises(FormatError, match="NaN"):
        sp.write_split(tmp_path, "test", bad, list("vwxyz"))
    assert sp.read_split(tmp_path, "test").captions == list("abcde")
    with pytest.raises(FormatError, match="NaN or inf"):  # 1e6 overflows float16
        sp.write_split(tmp_path, "test", np.full((1, 1, 2), 1e6), list("abcde"), dtype="float16")


def test_coco_folds_partition_testall(tmp_path):
    folds = sp.coco_1k_folds(5000)
    assert len(folds) == 5
    imgs = np.concatenate([np.fromiter(f.images, int) for f in folds])
    caps = np.concatenate([np.fromiter(f.captions, int) for f in folds])
    np.testing.assert_array_equal(imgs, np.arange(5000))
    np.testing.assert_array_equal(caps, np.arange(25000))
    for f in folds:
        assert len(f.images) == 1000 and len(f.captions) == 5000
        # every caption of the fold belongs to an image of the fold (caption i ↔ image i // 5)
        assert {c // 5 for c in f.captions} == set(f.images)
    five_k = sp.coco_5k(5000)
    assert five_k.images == range(5000) and five_k.captions == range(25000)
    with pytest.raises(ValueError, match="5000"):
        sp.coco_1k_folds(4500)


def test_coco_fold_subset_on_a_small_split(tmp_path):
    ims = np.arange(6 * 1 * 2, dtype=np.float32).reshape(6, 1, 2)
    sp.write_split(tmp_path, "testall", ims, _captions(6))
    s = sp.read_split(tmp_path, "testall")
    folds = sp.coco_1k_folds(s, fold_size=2)
    assert len(folds) == 3
    sub = s.subset(folds[1])
    np.testing.assert_array_equal(sub.image_features(), ims[2:4])
    assert sub.captions == _captions(6)[10:20] and sub.image_of_caption.tolist() == [i // 5 for i in range(10)]
    assert s.subset(sp.coco_5k(s)).n_images == 6


# ---------------------------------------------------------------------------------- vocabulary
def test_tokenize_rule():
    assert vb.tokenize("A Dog's  ball, RED-hot_pepper!") == ["a", "dog's", "ball", "red", "hot", "pepper"]
    assert vb.tokenize("Café’s piñata 2x") == ["café's", "piñata", "2x"]
    assert vb.tokenize("  ...  ") == []
    assert vb.tokenize("Two dogs, one ball.", punctuation=True) == ["two", "dogs", ",", "one", "ball", "."]
    assert vb.tokenize("a_b", punctuation=True) == ["a", "_", "b"]


def test_build_vocab_threshold_and_order():
    caps = ["a dog", "a cat", "A dog runs", "a bird", "the cat"]
    v = vb.build_vocab(caps, threshold=2)
    # counts: a 4, dog 2, cat 2, runs 1, bird 1, the 1 → ties alphabetical
    assert v.idx2word == ("<pad>", "<start>", "<end>", "<unk>", "a", "cat", "dog")
    assert (v("<pad>"), v("<start>"), v("<end>"), v("<unk>")) == (0, 1, 2, 3)
    assert vb.build_vocab(caps, threshold=1).idx2word[4:] == ("a", "cat", "dog", "bird", "runs", "the")
    # the threshold keeps exactly the words counted at least that often (plain-loop reference)
    counts: dict[str, int] = {}
    for c in caps:
        for w in c.lower().split():
            counts[w] = counts.get(w, 0) + 1
    for t in (1, 2, 3, 4, 5):
        assert set(vb.build_vocab(caps, threshold=t).idx2word[4:]) == {w for w, n in counts.items() if n >= t}


def test_encode_decode_and_strict():
    v = vb.build_vocab(["a dog runs", "a dog"], threshold=1)
    ids = vb.encode("A dog flies", v)
    assert ids == [1, v("a"), v("dog"), vb.UNK_ID, 2]
    assert vb.decode(ids, v) == "a dog <unk>"
    assert vb.decode(ids, v, skip_special=False) == "<start> a dog <unk> <end>"
    assert vb.encode("a dog runs", v, max_len=2) == [1, v("a"), v("dog"), 2]
    assert vb.encode("", v) == [1, 2]
    with pytest.raises(vb.UnknownWordError, match="'flies'") as info:
        vb.encode("A dog flies", v, strict=True)
    assert info.value.word == "flies"
    ids_b, lengths = vb.pad_batch([[1, 5, 2], [1, 2]])
    assert ids_b.tolist() == [[1, 5, 2], [1, 2, 0]] and lengths.tolist() == [3, 2]


def test_vocab_file_round_trip(tmp_path):
    v = vb.build_vocab(["red apple", "green apple", "red car"], threshold=1)
    p = vb.save_vocab(v, tmp_path / "vocab.json")
    obj = json.loads(p.read_text())
    assert set(obj) == {"word2idx", "idx2word", "idx"} and obj["idx"] == len(v)
    assert obj["idx2word"]["0"] == "<pad>" and all(isinstance(k, str) for k in obj["idx2word"])
    assert vb.load_vocab(p) == v


@pytest.mark.parametrize("field", ["word2idx", "idx2word", "idx"])
def test_vocab_missing_field(tmp_path, field):
    obj = vb.build_vocab(["a b"], threshold=1).to_json()
    del obj[field]
    p = tmp_path / "vocab.json"
    p.write_text(json.dumps(obj))
    with pytest.raises(FormatError, match=rf"vocab\.json: field '{field}' is missing"):
        vb.load_vocab(p)


def test_vocab_inconsistent_files(tmp_path):
    p = tmp_path / "v.json"
    obj = vb.build_vocab(["a b"], threshold=1).to_json()
    obj["word2idx"]["a"] = 5
    p.write_text(json.dumps(obj))
    with pytest.raises(FormatError, match="disagree"):
        vb.load_vocab(p)
    obj = vb.build_vocab(["a b"], threshold=1).to_json()
    obj["idx"] = 9
    p.write_text(json.dumps(obj))
    with pytest.raises(FormatError, match="0..8"):
        vb.load_vocab(p)
    obj = {"word2idx": {"x": 0}, "idx2word": {"0": "x"}, "idx": 1}
    p.write_text(json.dumps(obj))
    with pytest.raises(FormatError, match="<pad>"):
        vb.load_vocab(p)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        vb.load_vocab(tmp_path / "nope.json")


# ----------------------------------------------------------------------------- MediaEval layout
def _mediaeval_example():
    df = pd.DataFrame(
        {
            "query_id": ["12", "12", "12", "007", "007"],
            "img_id": ["31", "5", "0042", "5", "9"],
            "rel": [1, 0, 1, 0, 1],
            "desm_feature": np.array([0.5, 0.25, 0.125, 1.0, 2.0], np.float32),
            "bm25_feature": np.array([3.0, 1.5, 0.1, 0.0, 7.25], np.float32),
            "note": ["x", "y", "z", "u", "v"],
        }
    )
    rng = np.random.default_rng(0)
    # the image lists are in another order than the CSV and hold an extra image
    visual = {
        "12": (["0042", "77", "31", "5"], rng.standard_normal((4, 3)).astype(np.float32)),
        "007": (["9", "5"], rng.standard_normal((2, 3)).astype(np.float32)),
    }
    return df, visual


def test_mediaeval_round_trip(tmp_path):
    df, visual = _mediaeval_example()
    me.write_mediaeval(tmp_path, "train", df, visual, folds=[["12"], ["007"]], meta={"source": "test"},
                       feature_dir="efficientnet_lite0")
    assert (tmp_path / "interactions" / "interactions_train.csv").is_file()
    assert (tmp_path / "DeepFeatures/train/efficientnet_lite0/12_PreLogits.npy").is_file()
    assert (tmp_path / "DeepFeatures/train/imlist/007_imlist.txt").read_text() == "9\n5\n"
    d = me.read_mediaeval(tmp_path, "train")
    assert d.query_ids == ["12", "007"] and len(d) == 2
    assert d.feature_names == ("bm25_feature", "desm_feature")  # sorted, as the DCMM code uses them
    q = d["12"]
    assert q.img_ids == ["31", "5", "0042"]  # strings kept, "0042" not 42
    np.testing.assert_array_equal(q.rel, [1, 0, 1])
    np.testing.assert_array_equal(q.features, np.float32([[3.0, 0.5], [1.5, 0.25], [0.1, 0.125]]))
    assert q.features.dtype == np.float32 and q.visual.dtype == np.float32
    ids12, arr12 = visual["12"]
    for n, img in enumerate(q.img_ids):  # plain-loop reference for the re-ordering
        np.testing.assert_array_equal(q.visual[n], arr12[ids12.index(img)])
    assert d.qrels == {"12": {"31": 1, "5": 0, "0042": 1}, "007": {"5": 0, "9": 1}}
    assert d.folds == [["12"], ["007"]] and d.meta == {"source": "test"} and d.visual_dim == 3


def test_mediaeval_reads_released_style_files(tmp_path):
    """Files laid out by hand like the released subset: integer ids, no qrels/folds/meta files."""
    (tmp_path / "interactions").mkdir()
    (tmp_path / "interactions" / "interactions_test.csv").write_text(
        "query_id,img_id,rel,f1_feature,f2_feature\n3,100,1,0.5,1\n3,101,0,0.25,2\n"
    )
    feat = tmp_path / "DeepFeatures" / "test"
    (feat / "inception_resnet").mkdir(parents=True)
    (feat / "imlist").mkdir()
    np.save(feat / "inception_resnet" / "3_PreLogits.npy", np.array([[0.0, 1.0], [2.0, 3.0]], np.float32))
    (feat / "imlist" / "3_imlist.txt").write_text("101\n100\n")
    d = me.read_mediaeval(tmp_path, "test")
    np.testing.assert_array_equal(d["3"].visual, [[2.0, 3.0], [0.0, 1.0]])
    assert d.qrels == {"3": {"100": 1, "101": 0}} and d.folds is None and d.meta == {}


def test_mediaeval_missing_feature_and_rel_columns(tmp_path):
    df, visual = _mediaeval_example()
    with pytest.raises(FormatError, match=r"interactions_train\.csv: no LTR feature columns.*'_feature'"):
        me.write_mediaeval(tmp_path, "train", df.drop(columns=["desm_feature", "bm25_feature"]), visual)
    with pytest.raises(FormatError, match=r"interactions_train\.csv: column\(s\) \['rel'\] missing"):
        me.write_mediaeval(tmp_path, "train", df.drop(columns=["rel"]), visual)
    me.write_mediaeval(tmp_path, "train", df, visual)
    csv = tmp_path / "interactions" / "interactions_train.csv"
    pd.read_csv(csv, dtype=str).drop(columns=["rel"]).to_csv(csv, index=False)
    with pytest.raises(FormatError, match=r"interactions_train\.csv: column\(s\) \['rel'\] missing"):
        me.read_mediaeval(tmp_path, "train")


def test_mediaeval_row_count_mismatch(tmp_path):
    df, visual = _mediaeval_example()
    me.write_mediaeval(tmp_path, "train", df, visual)
    (tmp_path / "DeepFeatures/train/imlist/12_imlist.txt").write_text("0042\n77\n31\n")
    with pytest.raises(FormatError, match=r"12_PreLogits\.npy has 4 rows but .*12_imlist\.txt lists 3 images"):
        me.read_mediaeval(tmp_path, "train")
    with pytest.raises(FormatError, match=r"12_PreLogits\.npy: .*\(4, D\), got \(3, 3\)"):
        me.write_mediaeval(tmp_path, "train", df, {**visual, "12": (visual["12"][0], visual["12"][1][:3])})


def test_mediaeval_image_missing_from_imlist(tmp_path):
    df, visual = _mediaeval_example()
    me.write_mediaeval(tmp_path, "train", df, visual)
    np.save(tmp_path / "DeepFeatures/train/inception_resnet/007_PreLogits.npy", np.zeros((2, 3), np.float32))
    (tmp_path / "DeepFeatures/train/imlist/007_imlist.txt").write_text("9\n6\n")
    with pytest.raises(FormatError, match=r"query '007': image '5' .*not in .*007_imlist\.txt"):
        me.read_mediaeval(tmp_path, "train")
    with pytest.raises(FormatError, match=r"query '007' image '5' is in the interactions but has no visual row"):
        me.write_mediaeval(tmp_path / "b", "train", df, {**visual, "007": (["9", "6"], np.zeros((2, 3)))})


def test_mediaeval_missing_query_files(tmp_path):
    df, visual = _mediaeval_example()
    me.write_mediaeval(tmp_path, "train", df, visual)
    (tmp_path / "DeepFeatures/train/imlist/007_imlist.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"007_imlist\.txt is missing"):
        me.read_mediaeval(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"interactions_test\.csv is missing"):
        me.read_mediaeval(tmp_path, "test")
    with pytest.raises(FormatError, match="visual features for query '007' are missing"):
        me.write_mediaeval(tmp_path, "train", df, {"12": visual["12"]})


def test_mediaeval_qrels_disagree(tmp_path):
    df, visual = _mediaeval_example()
    bad = {"12": {"31": 1, "5": 1, "0042": 1}, "007": {"9": 1}}
    with pytest.raises(FormatError, match=r"qrels_train\.json: qrels give query '12' image '5' rel 1 .* says 0"):
        me.write_mediaeval(tmp_path, "train", df, visual, qrels=bad)
    # judged images outside the candidate lists are allowed; a missing judgement counts as rel 0
    ok = {"12": {"31": 1, "0042": 1, "999": 1}, "007": {"9": 1}}
    me.write_mediaeval(tmp_path, "train", df, visual, qrels=ok)
    assert me.read_mediaeval(tmp_path, "train").qrels["12"] == {"31": 1, "0042": 1, "999": 1}
    (tmp_path / "qrels_train.json").write_text(json.dumps(bad))
    with pytest.raises(FormatError, match=r"qrels_train\.json: .*query '12' image '5'"):
        me.read_mediaeval(tmp_path, "train")


def test_mediaeval_bad_values(tmp_path):
    df, visual = _mediaeval_example()
    d2 = df.copy()
    d2.loc[1, "bm25_feature"] = np.nan
    with pytest.raises(FormatError, match="'bm25_feature' has a missing"):
        me.write_mediaeval(tmp_path, "train", d2, visual)
    d3 = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    with pytest.raises(FormatError, match="query '12' lists image '31' twice"):
        me.write_mediaeval(tmp_path, "train", d3, visual)
    d4 = df.assign(query_id=df["query_id"].replace("12", "big cats"))
    with pytest.raises(FormatError, match="query id 'big cats' cannot name files"):
        me.write_mediaeval(tmp_path, "train", d4, visual)
    with pytest.raises(FormatError, match="folds must be disjoint"):
        me.write_mediaeval(tmp_path, "train", df, visual, folds=[["12"], ["12", "007"]])


def test_make_query_folds_partition():
    qids = [str(i) for i in range(23)]
    folds = me.make_query_folds(qids, 5, seed=3)
    assert len(folds) == 5 and sorted(q for f in folds for q in f) == sorted(qids)
    assert {len(f) for f in folds} <= {4, 5}
    assert me.make_query_folds(qids, 5, seed=3) == folds


# ---------------------------------------------------------------------- Deep Ranking triplets
def test_triplets_round_trip(tmp_path):
    recs = [
        dr.TripletRecord("grinning face", "google/1f600.png", "twitter/1f600.png", "google/1f601.png"),
        ("red car", "http://example.org/a.jpg", "http://example.org/b.jpg", "http://example.org/c.jpg"),
    ]
    p = dr.write_query_and_triplets(tmp_path / "query_and_triplets.txt", recs)
    assert p.read_text().split("\n")[:-1] == [
        "grinning face", "google/1f600.png", "twitter/1f600.png", "google/1f601.png",
        "red car", "http://example.org/a.jpg", "http://example.org/b.jpg", "http://example.org/c.jpg",
    ]
    got = dr.read_query_and_triplets(p)
    assert got[0] == recs[0] and got[1] == dr.TripletRecord(*recs[1])
    assert [r.line for r in got] == [1, 5]
    assert got[1].images == recs[1][1:]
    assert dr.resolve_image(got[0].positive, tmp_path) == tmp_path / "twitter" / "1f600.png"
    assert dr.resolve_image(got[1].negative, tmp_path) == "http://example.org/c.jpg"


def test_triplets_released_style_file(tmp_path):
    p = tmp_path / "query_and_triplets.txt"
    p.write_bytes(b"black car\r\nhttp://t0.gstatic.com/a\r\nhttp://t0.gstatic.com/b\r\nhttp://t0.gstatic.com/c\r\n\r\n")
    (r,) = dr.read_query_and_triplets(p)
    assert r.query_text == "black car" and r.negative == "http://t0.gstatic.com/c"


def test_triplets_incomplete_record(tmp_path):
    p = tmp_path / "query_and_triplets.txt"
    p.write_text("q1\na\nb\nc\nq2\nd\ne\n")
    with pytest.raises(FormatError, match=r"query_and_triplets\.txt: 7 lines .*record 2, starting at line 5\) has only 3"):
        dr.read_query_and_triplets(p)


def test_triplets_blank_field_and_shifted_record(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("q1\na\n\nc\n")
    with pytest.raises(FormatError, match=r"t\.txt, line 3: field 'positive' of record 1"):
        dr.read_query_and_triplets(p)
    p.write_text("q1\nhttp://x/a\nhttp://x/b\nhttp://x/c\nhttp://x/d\nq2\nhttp://x/e\nhttp://x/f\n")
    with pytest.raises(FormatError, match=r"t\.txt, line 5: record 2 should start with the query text"):
        dr.read_query_and_triplets(p)
    p.write_text("\n\n")
    with pytest.raises(FormatError, match="no records"):
        dr.read_query_and_triplets(p)


def test_triplets_writer_refuses_bad_fields(tmp_path):
    p = tmp_path / "t.txt"
    with pytest.raises(FormatError, match="field 'negative'.*blank"):
        dr.write_query_and_triplets(p, [("q", "a.png", "b.png", " ")])
    with pytest.raises(FormatError, match="line break"):
        dr.write_query_and_triplets(p, [("q\nx", "a.png", "b.png", "c.png")])
    with pytest.raises(FormatError, match="relative POSIX path"):
        dr.write_query_and_triplets(p, [("q", "../a.png", "b.png", "c.png")])
    with pytest.raises(FormatError, match="relative POSIX path"):
        dr.write_query_and_triplets(p, [("q", "/abs/a.png", "b.png", "c.png")])
    assert not p.exists()


# ------------------------------------------------------------------------ property: encode/decode
_WORDS = ["a", "dog", "red", "car", "café", "don't", "2"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_WORDS + ["zebra", ",", "!"]), max_size=12), st.booleans())
def test_encode_decode_property(words, upper):
    vocab = vb.build_vocab([" ".join(_WORDS)], threshold=1)
    text = " ".join(w.upper() if upper else w for w in words)
    ids = vb.encode(text, vocab)
    toks = vb.tokenize(text)
    assert len(ids) == len(toks) + 2 and ids[0] == vb.START_ID and ids[-1] == vb.END_ID
    assert vb.decode(ids, vocab) == " ".join(t if t in vocab else "<unk>" for t in toks)
    assert vb.encode(text, vocab, max_len=3) == ids[: min(len(toks), 3) + 1] + [vb.END_ID]
