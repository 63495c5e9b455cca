import numpy as np
import pytest
import torch

from xmlib.metrics.triplets import (
    neighbour_ranks,
    precision_from_distances,
    scaled_top_k,
    score_at_top_k,
    similarity_precision,
    triplet_distances,
    triplet_outcomes,
)


def loop_metrics(x, triplets, k, gallery=None):
    """Plain-Python reference: precision and score-at-top-K."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)

    def d(a, b):
        return float(sum((x[a, t] - x[b, t]) ** 2 for t in range(x.shape[1])))

    correct = [d(q, p) < d(q, m) for q, p, m in triplets]
    score = 0
    for (q, p, m), ok in zip(triplets, correct):
        cand = [g for g in range(n) if g != q and (gallery is None or gallery[g] == gallery[q])]
        order = sorted(cand, key=lambda g: (d(q, g), g))
        top = set(order[:k])
        if p in top or m in top:
            score += 1 if ok else -1
    return sum(correct) / len(correct), score


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("use_gallery", [False, True])
def test_against_plain_loop(dtype, use_gallery):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    gallery = rng.integers(0, 3, size=40) if use_gallery else None
    trip = []
    while len(trip) < 60:
        q, p, m = rng.choice(40, 3, replace=False)
        if gallery is None or (gallery[p] == gallery[q] and gallery[m] == gallery[q]):
            trip.append((q, p, m))
    trip = np.array(trip)
    prec, score = loop_metrics(x, trip, 5, gallery)
    xt = torch.tensor(x, dtype=dtype)
    assert similarity_precision(xt, trip) == pytest.approx(prec)
    assert score_at_top_k(xt, trip, k=5, gallery=gallery) == score


def test_hand_example():
    # points on a line; query 0 at 0.0
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])
    trip = np.array([[0, 1, 2],  # correct, p+ rank 0
                     [0, 3, 1],  # incorrect, p− rank 0
                     [0, 4, 3],  # incorrect, neither in top-2 (ranks 3 and 2)
                     [0, 2, 4]])  # correct, p+ rank 1
    assert similarity_precision(x, trip) == 0.5
    rp, rn = neighbour_ranks(x, trip)
    assert rp.tolist() == [0, 2, 3, 1] and rn.tolist() == [1, 0, 2, 3]
    assert score_at_top_k(x, trip, k=2) == 1 - 1 + 1
    assert score_at_top_k(x, trip, k=4) == 1 - 1 - 1 + 1


def test_ties_count_as_incorrect_and_break_by_index():
    x = torch.zeros(4, 2)  # a constant embedding
    trip = np.array([[0, 1, 2], [0, 3, 1]])
    assert similarity_precision(x, trip) == 0.0
    rp, rn = neighbour_ranks(x, trip)
    assert rp.tolist() == [0, 2] and rn.tolist() == [1, 0]
    assert score_at_top_k(x, trip, k=1) == -2


def test_custom_distance_and_errors():
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    neg_dot = lambda a, b: -(a @ b.T)  # noqa: E731
    d_pos, d_neg = triplet_distances(x, [[0, 1, 2]], neg_dot)
    assert d_pos.item() == pytest.approx(-0.9) and d_neg.item() == 0.0
    assert similarity_precision(x, [[0, 1, 2]], neg_dot) == 1.0
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        similarity_precision(x, [[0, 1]])
    with pytest.raises(ValueError, match="indices"):
        similarity_precision(x, [[0, 1, 7]])
    with pytest.raises(ValueError, match="gallery"):
        score_at_top_k(x, [[0, 1, 2]], k=1, gallery=np.array([0, 0, 1]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_precision_from_distances_against_loop(dtype):
    rng = np.random.default_rng(4)
    a = rng.integers(0, 3, 60).astype(dtype)
    b = rng.integers(0, 3, 60).astype(dtype)
    for credit in (0.0, 0.5):
        want_d = sum(1.0 if x < y else credit if x == y else 0.0 for x, y in zip(a, b)) / 60
        want_s = sum(1.0 if x > y else credit if x == y else 0.0 for x, y in zip(a, b)) / 60
        assert precision_from_distances(a, b, tie_credit=credit) == pytest.approx(want_d)
        assert precision_from_distances(a, b, tie_credit=credit, higher_is_closer=True) == pytest.approx(want_s)
    # the embedding form is the distance form of its triplet distances
    x = torch.tensor(rng.normal(size=(10, 2)), dtype=torch.float64)
    trip = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]])
    assert similarity_precision(x, trip) == precision_from_distances(*triplet_distances(x, trip))
    with pytest.raises(ValueError, match="no triplets"):
        precision_from_distances([], [])
    with pytest.raises(ValueError, match="same length"):
        precision_from_distances([1.0], [1.0, 2.0])


def test_outcomes_match_the_metrics():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(30, 3)))
    trip = np.array([rng.choice(30, 3, replace=False) for _ in range(50)])
    correct, top = triplet_outcomes(x, trip, k=4)
    assert correct.mean() == pytest.approx(similarity_precision(x, trip))
    assert top.sum() == score_at_top_k(x, trip, k=4)
    assert scaled_top_k(1422) == 43 and scaled_top_k(51) == 2 and scaled_top_k(5) == 1
