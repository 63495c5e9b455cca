"""Deep Ranking's recipe and its training runs for the chapter's seeds.

:func:`train` is the whole recipe of the chapter for one seed: the golden relevance of the training
images (Sec. 5), the sampler (offline, or the online buffers), the network of Fig. 3 with its
embedding started from the ConvNet's principal directions (``init="convnet"``), and SGD on the mean
hinge of Eq. (3) with the epoch chosen on the **validation** triplets. :func:`train_and_test` is the
job of :mod:`xmlib.core.jobs`: it trains, embeds every image and scores the test triplets
(correct or not, and each triplet's share of score-at-top-K). :func:`oasis_run` does the same for the
OASIS baseline trained on the same sampler's triplets. :func:`outcomes` stacks seeds for the
replication engine (clusters = the query's emoji: its triplets are not independent).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from xmlib.core.device import get_device
from xmlib.core.seed import seed_everything
from xmlib.core.train import FitResult
from xmlib.deepranking.config import Config
from xmlib.deepranking.emoji import MappedSampler, emoji_data, gallery_k, training_relevance
from xmlib.deepranking.network import build_network, convnet_pca
from xmlib.deepranking.training import TripletData, embed, make_sampler, train_deep_ranking
from xmlib.metrics.triplets import similarity_precision, triplet_outcomes
from xmlib.replication import Metric, Outcomes

JOB = "xmlib.deepranking.experiment:train_and_test"
OASIS_JOB = "xmlib.deepranking.experiment:oasis_run"


@lru_cache(maxsize=2)
def benchmark(profile: str):
    """The emoji benchmark (loaded once per process)."""
    from xmlib.data.benchmarks import emoji

    return emoji.load(profile)


@lru_cache(maxsize=4)
def _data(profile: str, image_size: int) -> TripletData:
    return emoji_data(benchmark(profile), image_size)


@lru_cache(maxsize=2)
def pca_basis(profile: str, embed_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, P) of the training images' ConvNet features: the same start for every model."""
    bench = benchmark(profile)
    return convnet_pca(bench.cnn[bench.train_idx], embed_dim)


def test_split(bench) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Test triplets (T, 3), their type (0 in-class, 1 out-of-class), the query's emoji (the bootstrap
    cluster) and K of score-at-top-K scaled to the test gallery."""
    trip, kind, _ = bench.triplets_of("test")
    return trip, kind, bench.concept_id[trip[:, 0]], gallery_k(bench, "test")


def train(cfg: Config, seed: int, checkpoint_dir: str | Path | None = None,
          device: torch.device | None = None) -> tuple[torch.nn.Module, FitResult, Any, TripletData]:
    """The chapter's recipe for one seed: (model, fit result, sampler, the images it embeds)."""
    device = device or get_device()
    cfg = cfg.replace(seed=seed)
    seed_everything(seed)
    bench = benchmark(cfg.benchmark)
    data = _data(cfg.benchmark, cfg.image_size)
    if cfg.convnet == "finetune":
        data = TripletData(data.images, None)  # the network runs (and trains) its ConvNet on the images
    rel, ids = training_relevance(bench, cfg)
    sampler = MappedSampler(make_sampler(cfg, rel), ids)
    model = build_network(cfg).to(device)
    if cfg.init == "convnet":
        model.init_from_convnet(basis=pca_basis(cfg.benchmark, cfg.embed_dim))
    val_trip, _, _ = bench.triplets_of("val")
    val_ids = np.unique(val_trip)
    val_local = np.searchsorted(val_ids, val_trip)
    val_data = TripletData(data.images[val_ids], None if data.features is None else data.features[val_ids])

    def val_precision() -> dict[str, float]:
        return {"precision": similarity_precision(embed(model, val_data), val_local)}

    result = train_deep_ranking(cfg, model, data, sampler, evaluate=val_precision, select="precision",
                                checkpoint_dir=checkpoint_dir, desc=f"deep ranking, seed {seed}")
    return model, result, sampler, data


def train_and_test(cfg: Config, seed: int, workdir: Path) -> dict[str, Any]:
    """The job of one seed: train (:func:`train`), embed every image, score the test triplets."""
    model, result, sampler, data = train(cfg, seed, checkpoint_dir=workdir)
    bench = benchmark(cfg.benchmark)
    trip, _, _, k = test_split(bench)
    emb = embed(model, data)
    correct, top = triplet_outcomes(emb, trip, k=k, gallery=bench.meta["split"].to_numpy())
    stats = sampler.stats
    inner = getattr(sampler, "sampler", sampler)
    return {"correct": correct.astype(np.int8), "top": top.astype(np.int8), "emb": emb.float(),
            "history": result.history, "best_epoch": result.best_epoch, "best_score": result.best_score,
            "proposals": int(stats.proposals), "triplets": int(stats.triplets),
            "memory_items": int(inner.memory_items()) if hasattr(inner, "memory_items") else len(bench.train_idx)}


def oasis_run(cfg: Config, seed: int, workdir: Path) -> dict[str, Any]:
    """OASIS on the PCA-reduced ConvNet features, trained on the sampler's triplets of ``seed``; its
    aggressiveness C is chosen on the validation triplets. Returns the test outcomes."""
    from xmlib.deepranking import baselines as B
    from xmlib.deepranking.sampler import OfflineTripletSampler

    cfg = cfg.replace(seed=seed)
    bench = benchmark(cfg.benchmark)
    mu, vh = pca_basis(cfg.benchmark, cfg.embed_dim)
    cnn = torch.nn.functional.normalize(torch.as_tensor(bench.cnn, dtype=torch.float64), dim=1)
    z = ((cnn - mu) @ vh.T).numpy()  # (N, oasis_dim)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    rel, ids = training_relevance(bench, cfg)
    sampler = MappedSampler(OfflineTripletSampler(rel, cfg.t_p, cfg.t_r, cfg.out_of_class_fraction, cfg.max_failures,
                                                  seed=seed), ids)
    trip_train = sampler.sample(min(cfg.epochs * cfg.steps_per_epoch * cfg.batch_size, 20000)).as_array()
    val_trip, _, _ = bench.triplets_of("val")
    fits = {}
    for c in (0.01, 0.1):
        o = B.OASIS(z.shape[1], c=c).fit(z, trip_train)
        fits[c] = (o, similarity_precision(torch.as_tensor(z), val_trip, distance=o.distance))
    best_c = max(fits, key=lambda c: fits[c][1])
    trip, _, _, k = test_split(bench)
    correct, top = triplet_outcomes(torch.as_tensor(z), trip, k=k, gallery=bench.meta["split"].to_numpy(),
                                    distance=fits[best_c][0].distance)
    return {"correct": correct.astype(np.int8), "top": top.astype(np.int8), "c": best_c,
            "val_precision": float(fits[best_c][1]), "dim": int(z.shape[1])}


def stream_run(cfg: Config, steps: int | None = None) -> dict[str, Any]:
    """The buffered online sampler of Sec. 5.1 over the image stream in ``cfg.stream_dir``
    (:mod:`xmlib.data.image_stream`): the whole list goes by once over ``steps`` batches (default: the
    step cap ``max_steps``, else ``epochs × steps_per_epoch``) of ``batch_size`` triplets, with the
    chapter's buffer size, T_p, T_r and out-of-class fraction. Returns what went by and what the buffers
    held; every drawn in-class triplet is checked against the golden relevance (r⁺ − r⁻ ≥ T_r). The
    stream holds golden features, not pictures: no network is trained on it."""
    import time

    from xmlib.data.image_stream import GoldenRelevance as StreamRelevance
    from xmlib.data.image_stream import ImageStream, stream_batches
    from xmlib.deepranking.sampler import BufferedTripletSampler

    if not cfg.stream_dir:
        raise ValueError("stream_dir is empty: set it to a folder in the image-stream layout "
                         "(python -m xmlib.data synth --like deepranking --out DIR writes one)")
    rel = StreamRelevance(cfg.stream_dir)
    n = len(rel)
    steps = steps or cfg.max_steps or cfg.epochs * cfg.steps_per_epoch
    sampler = BufferedTripletSampler(rel, capacity=cfg.buffer_size, t_p=cfg.t_p, t_r=cfg.t_r,
                                     out_of_class_fraction=cfg.out_of_class_fraction, max_failures=cfg.max_failures,
                                     rescale=cfg.online_rescale, seed=cfg.seed)
    t0 = time.perf_counter()
    drawn, violations = 0, 0
    for batch in stream_batches(sampler, ImageStream(cfg.stream_dir), steps=steps, batch_size=cfg.batch_size,
                                offer_per_step=-(-n // steps), rng=np.random.default_rng([cfg.seed, 0])):
        drawn += len(batch.query)
        for q, p, m, out in zip(batch.query, batch.positive, batch.negative, batch.out_of_class):
            if not out and rel(int(q), int(p)) - rel(int(q), int(m)) < cfg.t_r - 1e-6:
                violations += 1
    return {"images in the stream": n, "images streamed": int(sampler.seen), "categories": len(sampler.buffers),
            "buffer per category": cfg.buffer_size, "images buffered": int(sampler.memory_items()),
            "steps": steps, "triplets drawn": drawn, "in-class triplets breaking T_r": violations,
            "seconds": round(time.perf_counter() - t0, 1)}


# ----------------------------------------------------------------------------------- for the verdicts
def precision_metric() -> Metric:
    """Similarity precision in % (the mean of per-triplet correctness × 100)."""
    return Metric("precision %", "mean", 100.0, 1.0)


def score_metric(n_triplets: int, k: int) -> Metric:
    """Score-at-top-K as the mean share per triplet × the number of triplets (one point = 1 % of them)."""
    return Metric(f"score@{k}", "mean", float(n_triplets), n_triplets / 100.0)


def outcomes(per_seed: Sequence[np.ndarray], seeds: Sequence[int | None], clusters: np.ndarray) -> Outcomes:
    """Per-seed, per-triplet values (correct, or the share of score-at-top-K) with their query clusters."""
    return Outcomes({"triplets": np.stack([np.asarray(v, dtype=np.float64) for v in per_seed])}, tuple(seeds),
                    {"triplets": np.asarray(clusters)})
