"""The Deep Ranking chapter's outcomes feed the replication engine with the paper's own metrics."""

import numpy as np
import pytest
import torch

from xmlib.deepranking.experiment import outcomes, precision_metric, score_metric
from xmlib.metrics.triplets import score_at_top_k, similarity_precision, triplet_outcomes


def test_outcomes_give_precision_and_score_at_top_k():
    rng = np.random.default_rng(0)
    trip = np.array([rng.choice(40, 3, replace=False) for _ in range(60)])
    clusters = trip[:, 0] % 9  # the query's "emoji"
    per_seed, tops = [], []
    embs = [torch.tensor(rng.normal(size=(40, 4))) for _ in range(3)]
    for x in embs:
        c, t = triplet_outcomes(x, trip, k=5)
        per_seed.append(c)
        tops.append(t)
    prec = outcomes(per_seed, (0, 1, 2), clusters)
    score = outcomes(tops, (0, 1, 2), clusters)
    assert prec.per_seed(precision_metric()) == pytest.approx([100 * similarity_precision(x, trip) for x in embs])
    assert score.per_seed(score_metric(len(trip), 5)) == pytest.approx([score_at_top_k(x, trip, k=5) for x in embs])
    assert score_metric(len(trip), 5).margin == pytest.approx(len(trip) / 100)  # one point = 1 % of the triplets
