import numpy as np
import pandas as pd
import pytest
import torch

from xmlib.deepranking.emoji import MappedSampler, images_to_tensor, training_relevance
from xmlib.deepranking.golden import GoldenRelevance
from xmlib.deepranking.sampler import OfflineTripletSampler, check_triplets


class FakeBench:
    """The attributes of xmlib.data.benchmarks.emoji.EmojiBenchmark that the adapter uses."""

    def __init__(self, n=24, seed=0):
        rng = np.random.default_rng(seed)
        self.category = np.repeat([0, 1, 2], n // 3)
        self.concept_id = np.arange(n) // 2  # two designers per concept
        self.meta = pd.DataFrame({"split": np.where(np.arange(n) % 4 == 0, "test", "train")})
        self.train_idx = np.flatnonzero(self.meta["split"].to_numpy() == "train")
        self.cnn = rng.random((n, 5))
        hist = rng.random((n, 8))
        self.color_hist = hist / hist.sum(1, keepdims=True)

    def golden_dot(self, i, j, w_cnn=0.5, w_color=0.5):
        """g_i . g_j in a plain form: w_cnn cos(f_i, f_j) + w_color BC(h_i, h_j)."""
        f, h = self.cnn, self.color_hist
        cos = f[i] @ f[j] / np.linalg.norm(f[i]) / np.linalg.norm(f[j])
        return w_cnn * cos + w_color * np.sum(np.sqrt(h[i] * h[j]))


def test_images_to_tensor_layout_and_range():
    img = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    img[1, :, :, 0] = 255
    x = images_to_tensor(img, 8)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    assert x[1, 0].min() == 1.0 and x[1, 1:].max() == 0.0 and x[0].max() == 0.0
    assert images_to_tensor(img, 4).shape == (2, 3, 4, 4)


def test_mapped_sampler_returns_global_training_ids_with_valid_triplets():
    bench = FakeBench()
    rel, train = training_relevance(bench)
    assert len(rel) == len(train)
    s = MappedSampler(OfflineTripletSampler(rel, t_p=10.0, t_r=0.01, out_of_class_fraction=0.3, seed=0), train)
    t = s.sample(200, np.random.default_rng(3))  # the generator is passed in, as train_deep_ranking does
    assert set(np.concatenate([t.query, t.positive, t.negative])) <= set(train.tolist())

    def r_global(i, j):
        if bench.category[i] != bench.category[j] or i == j:
            return 0.0
        return float(bench.golden_dot(i, j))

    check_triplets(t, bench.category, r_global, 0.01)
    assert s.stats.triplets == 200


def test_training_relevance_takes_the_golden_weights_from_the_config():
    from xmlib.core.config import resolve_config
    from xmlib.deepranking.config import PROFILES, Config

    bench = FakeBench()
    seen = {}
    of = GoldenRelevance.of

    def recording_of(b, **kw):
        seen.update(kw)
        return of(b, **kw)

    cfg = resolve_config(Config, PROFILES, "smoke", {"golden_alpha": 0.3, "golden_concept": 7.0})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GoldenRelevance, "of", staticmethod(recording_of))
        rel, train = training_relevance(bench, cfg)
    assert seen == {"cnn": 0.3, "color": 0.7, "concept": 7.0}
    assert len(rel) == len(train)
    # the blocks hold r_ij with those weights (plain loop), the concept bonus included
    cats = bench.category[train]
    for c, block in rel.blocks.items():
        ids = train[cats == c]
        for a, i in enumerate(ids):
            for b, j in enumerate(ids):
                want = 0.0 if i == j else bench.golden_dot(i, j, 0.3, 0.7) + 7.0 * (bench.concept_id[i] == bench.concept_id[j])
                assert block[a, b] == pytest.approx(want, rel=1e-5)
