"""R@K, medr, meanr and rSum against a slow argsort reference; ties; the COCO 5-fold 1K averaging."""

import numpy as np
import pytest
import torch

from xmlib.metrics.retrieval import average_metrics, coco_1k, i2t_ranks, recall_hits, retrieval_metrics, t2i_ranks


def slow_reference(s, c=5):
    """SCAN-style loops: sort each row / column, find the positives' positions."""
    n_img, n_cap = s.shape
    r_i2t = []
    for i in range(n_img):
        order = list(np.argsort(-s[i], kind="stable"))
        r_i2t.append(min(order.index(j) for j in range(c * i, c * i + c)))
    r_t2i = []
    for j in range(n_cap):
        order = list(np.argsort(-s[:, j], kind="stable"))
        r_t2i.append(order.index(j // c))
    out = {}
    for name, r in (("i2t", np.array(r_i2t)), ("t2i", np.array(r_t2i))):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * np.mean(r < k)
        out[f"{name}_medr"] = np.floor(np.median(r)) + 1
        out[f"{name}_meanr"] = r.mean() + 1
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_slow_reference(dtype, seed):
    rng = np.random.default_rng(seed)
    n = 30
    s = rng.standard_normal((n, 5 * n)).astype(dtype)
    s[np.arange(n), 5 * np.arange(n) + rng.integers(0, 5, n)] += rng.uniform(0, 3, n).astype(dtype)  # some signal
    got, want = retrieval_metrics(s), slow_reference(s)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k]), k
    assert retrieval_metrics(torch.from_numpy(s)) == got  # tensors too


def test_ranks_by_hand_and_ties_count_against_the_query():
    # 2 images, 2 captions per image
    s = np.array([[0.9, 0.1, 0.95, 0.2],
                  [0.3, 0.4, 0.5, 0.6]])
    assert i2t_ranks(s, 2).tolist() == [1, 0]  # image 0's best own caption (0.9) is beaten by caption 2
    assert t2i_ranks(s, 2).tolist() == [0, 1, 1, 0]
    flat = np.zeros((3, 15))
    assert i2t_ranks(flat).tolist() == [10, 10, 10] and (t2i_ranks(flat) == 2).all()
    m = retrieval_metrics(flat)
    assert m["i2t_r10"] == 0.0 and m["t2i_r1"] == 0.0 and m["i2t_medr"] == 11


def test_perfect_scores():
    n = 12
    s = -np.ones((n, 5 * n))
    for i in range(n):
        s[i, 5 * i:5 * i + 5] = 1.0
    m = retrieval_metrics(s)
    assert m["rsum"] == 600.0 and m["i2t_medr"] == 1 and m["t2i_meanr"] == 1


def test_coco_1k_averages_folds_and_sums_averaged_recalls():
    rng = np.random.default_rng(3)
    s = rng.standard_normal((40, 200))
    for i in range(40):
        s[i, 5 * i] += rng.uniform(0, 4)
    folds = [retrieval_metrics(s[f:f + 10, 5 * f:5 * f + 50]) for f in range(0, 40, 10)]
    got = coco_1k(s, fold_size=10)
    for k in ("i2t_r1", "t2i_r10", "i2t_medr", "t2i_meanr"):
        assert got[k] == pytest.approx(np.mean([f[k] for f in folds]))
    recall_keys = [f"{d}_r{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)]
    assert got["rsum"] == pytest.approx(sum(got[k] for k in recall_keys))
    assert got["rsum"] != folds[-1]["rsum"]  # not the last fold's (the SCAN summary bug)
    assert average_metrics(folds) == got
    with pytest.raises(ValueError, match="folds of 7"):
        coco_1k(s, fold_size=7)


def test_bad_shape_is_named():
    with pytest.raises(ValueError, match="5 captions per image"):
        retrieval_metrics(np.zeros((3, 14)))


def test_recall_hits_per_query_give_rsum_and_feed_the_replication_engine():
    """Each query's hits (K = 1, 5, 10) from the plain ranks; their means are the R@K, and the SGRAF
    chapter's outcomes give the same rSum through the replication engine."""
    from xmlib.sgraf.experiment import RSUM, outcomes

    rng = np.random.default_rng(5)
    n, c = 20, 5
    s = rng.standard_normal((n, c * n))
    s[np.arange(n), c * np.arange(n)] += rng.uniform(0, 3, n)
    r_i2t = [min(list(np.argsort(-s[i], kind="stable")).index(j) for j in range(c * i, c * i + c)) for i in range(n)]
    r_t2i = [list(np.argsort(-s[:, j], kind="stable")).index(j // c) for j in range(c * n)]
    h_i, h_t = recall_hits(s)
    assert (h_i == np.array([[r < k for k in (1, 5, 10)] for r in r_i2t])).all()
    assert (h_t == np.array([[r < k for k in (1, 5, 10)] for r in r_t2i])).all()
    rsum = retrieval_metrics(s)["rsum"]
    assert 100 * (h_i.mean(0).sum() + h_t.mean(0).sum()) == pytest.approx(rsum)
    t = s + rng.standard_normal(s.shape)
    two = outcomes([s, t], (0, 1))
    assert two.per_seed(RSUM) == pytest.approx([rsum, retrieval_metrics(t)["rsum"]])
