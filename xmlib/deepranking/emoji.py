"""Adapter: the emoji benchmark (:mod:`xmlib.data.benchmarks.emoji`) as Deep Ranking training data.

- images: the benchmark's uint8 (N, S, S, 3) pictures → float (N, 3, s, s) in [0, 1] at the network's
  ``image_size`` s (area/bilinear resize when S ≠ s);
- cached ConvNet features: the benchmark's pooled EfficientNet-Lite0 features ``cnn`` (N, 1280), computed
  at 224 px on the unshifted image (the frozen ConvNet branch of the CPU profile);
- relevance: the golden relevance r_ij (:class:`~xmlib.deepranking.golden.GoldenRelevance`) over the
  **training** images only, per category, as a :class:`~xmlib.deepranking.sampler.CategoryRelevance` in local ids;
  the sampler's triplets are mapped back to global image ids by :class:`MappedSampler`;
- evaluation: similarity precision and score-at-top-K on the benchmark's val/test triplets, the gallery of
  a query being the images of its split.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from xmlib.deepranking.config import Config
from xmlib.deepranking.golden import GoldenRelevance
from xmlib.deepranking.sampler import BufferedTripletSampler, CategoryRelevance, OfflineTripletSampler, SamplerStats, Triplets
from xmlib.deepranking.training import TripletData, embed
from xmlib.metrics.triplets import scaled_top_k, score_at_top_k, similarity_precision


def images_to_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N, S, S, 3) → float32 (N, 3, size, size) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear", align_corners=None)
    return x


class MappedSampler:
    """Wraps a sampler over local ids 0..n−1 so that its triplets are global image ids ``index[local]``."""

    def __init__(self, sampler: OfflineTripletSampler | BufferedTripletSampler, index: np.ndarray):
        self.sampler, self.index = sampler, np.asarray(index, dtype=np.int64)

    @property
    def stats(self) -> SamplerStats:
        return self.sampler.stats

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> Triplets:
        """The wrapped sampler's triplets (drawn with ``rng``, default its own generator), in global ids."""
        t = self.sampler.sample(batch_size, rng)
        return Triplets(self.index[t.query], self.index[t.positive], self.index[t.negative], t.out_of_class)


def training_relevance(bench, cfg: Config | None = None) -> tuple[CategoryRelevance, np.ndarray]:
    """Golden relevance among the training images: (CategoryRelevance in local ids, global ids of them).

    r_ij is the golden-feature relevance of Sec. 5.1 of Deep Ranking (in the chapter :math:numref:`eq-dr-golden`).

    The golden weights come from a :class:`~xmlib.deepranking.config.Config` when given
    (:meth:`GoldenRelevance.from_config`: w_cnn = ``golden_alpha``, w_color = 1 − ``golden_alpha``,
    w_concept = ``golden_concept``), else the paper's rule at equal weights (w_concept = 0).
    """
    golden = GoldenRelevance.from_config(bench, cfg) if cfg is not None else GoldenRelevance.of(bench)
    train = np.asarray(bench.train_idx, dtype=np.int64)
    cats = bench.category[train]
    blocks = {}
    for c in np.unique(cats):
        local = np.flatnonzero(cats == c)
        blocks[int(c)] = golden.relevance_matrix(train[local])
    return CategoryRelevance(cats, blocks), train


def emoji_data(bench, image_size: int) -> TripletData:
    """All N images with their cached ConvNet features."""
    return TripletData(images_to_tensor(bench.images, image_size), torch.from_numpy(np.asarray(bench.cnn, np.float32)))


def gallery_k(bench, split: str, k: int = 30) -> int:
    """K of score-at-top-K for ``split``: the paper's ``k`` of 1,000 images scaled to the split's gallery
    (its images; :func:`~xmlib.metrics.triplets.scaled_top_k`)."""
    return scaled_top_k(len(bench.indices(split)), k)


@torch.no_grad()
def evaluate(model, data: TripletData, bench, split: str = "val", k: int | None = None) -> dict[str, float]:
    """Similarity precision (overall and per triplet type) and score-at-top-K (key ``score_at_top_k``) on
    ``split``'s triplets; the gallery of a query is its split, ``k`` defaults to :func:`gallery_k`."""
    from xmlib.data.benchmarks.emoji import TRIPLET_TYPES

    trip, kind, _ = bench.triplets_of(split)
    emb = embed(model, data)
    gallery = bench.meta["split"].to_numpy()
    k = gallery_k(bench, split) if k is None else k
    out = {"precision": similarity_precision(emb, trip), "score_at_top_k": score_at_top_k(emb, trip, k=k, gallery=gallery)}
    for t, name in enumerate(TRIPLET_TYPES):
        if (kind == t).any():
            out[f"precision_{name}"] = similarity_precision(emb, trip[kind == t])
    return out
