"""QueryList validation, the synthetic generator, and the MediaEval'17 → QueryList adapter."""

import numpy as np
import pandas as pd
import pytest
import torch

from xmlib.data.formats.mediaeval import read_mediaeval, write_mediaeval
from xmlib.dcmm.batching import pad_queries
from xmlib.dcmm.data import QueryList, load_queries, make_synthetic_queries


def test_querylist_rejects_bad_shapes():
    with pytest.raises(ValueError, match="text must be"):
        QueryList("q", ["a", "b"], np.zeros((3, 2)), np.zeros((2, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="duplicate doc ids"):
        QueryList("q", ["a", "a"], np.zeros((2, 2)), np.zeros((2, 4)), np.zeros(2))


def test_synthetic_lists_are_seeded_and_mixed():
    a = make_synthetic_queries(6, 20, seed=3, visual_dim=8)
    b = make_synthetic_queries(6, 20, seed=3, visual_dim=8)
    assert all(np.array_equal(x.visual, y.visual) and x.doc_ids == y.doc_ids for x, y in zip(a, b))
    assert all(0 < q.n_pos < len(q) for q in a)
    ids = [d for q in a for d in q.doc_ids]
    assert len(set(ids)) == len(ids)


def test_padding_masks_ragged_lists():
    qs = make_synthetic_queries(3, 10, seed=0, visual_dim=8, ragged=True)
    data = pad_queries(qs, device=torch.device("cpu"))
    assert data.mask.sum(1).tolist() == [len(q) for q in qs]
    norms = data.visual.norm(dim=-1)[data.mask]
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-5, rtol=0)
    assert data.sim[~data.mask].abs().sum() == 0
    sub = data.select([2])
    assert sub.mask.shape[1] == len(qs[2]) and sub.qids == [qs[2].qid]


def test_load_queries_from_mediaeval_layout(tmp_path):
    rng = np.random.default_rng(0)
    rows, visual = [], {}
    for q in ("q1", "q2", "q3"):
        ids = [f"{q}img{i}" for i in range(5)]
        for i, img in enumerate(ids):
            rows.append({"query_id": q, "img_id": img, "rel": int(i % 2), "bm25_feature": float(i),
                         "len_feature": float(10 - i)})
        visual[q] = (ids[::-1], rng.normal(size=(5, 6)).astype(np.float32))   # .npy in another order
    meta = {"feature_sets": {"weak": ["bm25_feature"]}, "query_sets": {"all": ["q1", "q2", "q3"], "some": ["q1", "q3"]}}
    write_mediaeval(tmp_path, "train", pd.DataFrame(rows), visual, folds=[["q1"], ["q2"], ["q3"]], meta=meta,
                    feature_dir="feat")
    data = read_mediaeval(tmp_path, "train")
    got = load_queries(data, feature_set="weak", query_set="some")
    assert [q.qid for q in got.queries] == ["q1", "q3"] and got.folds == [["q1"], ["q3"]]
    q3 = got.queries[1]
    assert q3.text[:, 0].tolist() == [0, 1, 2, 3, 4] and q3.rel.tolist() == [0, 1, 0, 1, 0]
    ids, arr = visual["q3"]
    np.testing.assert_array_equal(q3.visual[0], arr[ids.index("q3img0")])        # rows re-aligned
    assert got.column("bm25") == 0
    everything = load_queries(data, feature_set=None, query_set=None)
    assert len(everything.queries) == 3 and everything.queries[0].text.shape == (5, 2)
    with pytest.raises(KeyError, match="feature_sets"):
        load_queries(data, feature_set="strong")


def test_load_queries_reads_a_plain_mediaeval_folder(tmp_path):
    """The paper's data: a MediaEval'17 folder without our meta.json sets, read by path and split."""
    rng = np.random.default_rng(1)
    rows, visual = [], {}
    for q in ("7", "8"):
        ids = [f"{q}_{i}" for i in range(4)]
        for i, img in enumerate(ids):
            rows.append({"query_id": q, "img_id": img, "rel": int(i == 0), "a_feature": float(i), "b_feature": 1.0})
        visual[q] = (ids, rng.normal(size=(4, 3)).astype(np.float32))
    write_mediaeval(tmp_path, "test", pd.DataFrame(rows), visual, feature_dir="inception_resnet")
    got = load_queries(str(tmp_path), feature_set="all", query_set="all", split="test")
    assert [q.qid for q in got.queries] == ["7", "8"] and got.feature_names == ["a_feature", "b_feature"]
    assert got.folds is None
    with pytest.raises(KeyError, match="feature_sets"):
        load_queries(str(tmp_path), feature_set="weak", split="test")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_centre_visual_per_query_matches_loop(dtype):
    qs = make_synthetic_queries(3, 8, seed=2, visual_dim=5, ragged=True)
    data = pad_queries(qs, device=torch.device("cpu"), dtype=dtype, centre_visual="query")
    for b, q in enumerate(qs):
        v = q.visual.astype(np.float64) - q.visual.astype(np.float64).mean(0)
        v = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-6)
        n = len(q)
        torch.testing.assert_close(data.sim[b, :n, :n], torch.as_tensor(v @ v.T, dtype=dtype))
        assert data.sim[b, n:].abs().sum() == 0 and data.visual[b, n:].abs().sum() == 0
    plain = pad_queries(qs, device=torch.device("cpu"), dtype=dtype)
    assert (plain.sim[plain.mask[:, :, None] & plain.mask[:, None, :]] >= 0).all()   # non-negative features
    assert (data.sim < -0.05).any()                                                 # centred: negative edges
    with pytest.raises(ValueError, match="centre_visual"):
        pad_queries(qs, centre_visual="global")
