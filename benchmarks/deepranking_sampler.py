"""Throughput of Deep Ranking's triplet samplers and of one training step.

    python benchmarks/deepranking_sampler.py            # all measurements (a few minutes on 2 cores)
    python benchmarks/deepranking_sampler.py --quick    # smaller populations, fewer steps

Measures
- offline relevance-weighted sampler: triplets/s on an emoji-sized population (default 4,500 images in
  99 categories, dense golden-like relevance), and its relevance memory;
- buffered (reservoir) sampler: images/s streamed into the buffers and triplets/s, on a
  Fashion-MNIST-sized stream (default 70,000 images, 10 classes) with a relevance callable, with the
  paper's acceptance rule and with the rescaled one;
- a training step of the default profile (multiscale, cached 1280-d ConvNet features): images/s
  (3 images per triplet, forward + backward + SGD step); optionally (``--finetune``) the ``paper``
  profile's step with EfficientNet-Lite0 fine-tuned at 224 px.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from xmlib.core.config import resolve_config
from xmlib.core.device import describe_device, get_device, synchronize
from xmlib.deepranking.config import PROFILES, Config
from xmlib.deepranking.network import build_network, efficientnet_lite0_backbone
from xmlib.deepranking.sampler import BufferedTripletSampler, CategoryRelevance, OfflineTripletSampler, Triplets
from xmlib.deepranking.training import TripletData, make_optimizer, triplet_step


def synthetic_relevance(n: int, n_cat: int, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    cats = rng.integers(0, n_cat, n)
    z = rng.normal(size=(n, dim)) + 1.0
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return cats, z


def bench_offline(n: int, n_cat: int, triplets: int, cfg: Config) -> dict:
    cats, z = synthetic_relevance(n, n_cat)
    t0 = time.perf_counter()
    rel = CategoryRelevance.from_function(cats, lambda r, c: np.clip(z[r] @ z[c].T, 0, 1))
    build = time.perf_counter() - t0
    s = OfflineTripletSampler(rel, cfg.t_p, cfg.t_r, cfg.out_of_class_fraction, cfg.max_failures, seed=0)
    s.sample(100)
    t0 = time.perf_counter()
    s.sample(triplets)
    dt = time.perf_counter() - t0
    return {"images": n, "categories": n_cat, "triplets_per_s": round(triplets / dt),
            "relevance_build_s": round(build, 2), "relevance_MB": round(rel.memory_bytes() / 2**20, 1),
            "rejected_per_triplet": round(s.stats.rejected / s.stats.triplets, 2)}


def bench_buffered(n: int, n_cat: int, triplets: int, cfg: Config, capacity: int, rescale: bool) -> dict:
    cats, z = synthetic_relevance(n, n_cat)
    # r_i = Σ_{j in c_i, j ≠ i} max(0, cos): computed per class in chunks (the stream brings r_i with each image)
    total = np.zeros(n)
    for c in range(n_cat):
        idx = np.flatnonzero(cats == c)
        for s0 in range(0, len(idx), 2048):
            block = np.clip(z[idx[s0:s0 + 2048]] @ z[idx].T, 0, 1)
            total[idx[s0:s0 + 2048]] = block.sum(1) - 1.0

    def r(i: int, j: int) -> float:
        return 0.0 if cats[i] != cats[j] or i == j else min(1.0, max(0.0, float(z[i] @ z[j])))

    s = BufferedTripletSampler(r, capacity, cfg.t_p, cfg.t_r, cfg.out_of_class_fraction, cfg.max_failures,
                               max_proposals=100_000, rescale=rescale, seed=0)
    t0 = time.perf_counter()
    s.extend(range(n), cats.tolist(), total.tolist())
    stream = time.perf_counter() - t0
    s.sample(20)
    before = s.stats.proposals
    t0 = time.perf_counter()
    s.sample(triplets)
    dt = time.perf_counter() - t0
    return {"images": n, "categories": n_cat, "capacity": capacity, "rescale": rescale,
            "stream_images_per_s": round(n / stream), "triplets_per_s": round(triplets / dt, 1),
            "proposals_per_triplet": round((s.stats.proposals - before) / triplets, 1),
            "buffered_images": s.memory_items()}


def bench_train(profile: str, steps: int, batch: int | None, finetune_backbone=None) -> dict:
    cfg = resolve_config(Config, PROFILES, profile, {"batch_size": batch} if batch else {})
    device = get_device()
    torch.manual_seed(0)
    model = build_network(cfg, convnet=finetune_backbone).to(device)
    n = 512
    images = torch.rand(n, 3, cfg.image_size, cfg.image_size)
    feats = None if cfg.convnet == "finetune" else torch.rand(n, 1280)
    data = TripletData(images, feats)
    opt = make_optimizer(cfg, model)
    rng = np.random.default_rng(0)

    def one():
        idx = rng.integers(0, n, (3, cfg.batch_size))
        t = Triplets(idx[0], idx[1], idx[2], np.zeros(cfg.batch_size, bool))
        opt.zero_grad(set_to_none=True)
        loss = triplet_step(model.train(), data, t, cfg.gap)
        loss.backward()
        opt.step()

    one()  # warm-up
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    synchronize(device)
    dt = time.perf_counter() - t0
    return {"profile": profile, "image_size": cfg.image_size, "convnet": cfg.convnet, "batch_triplets": cfg.batch_size,
            "images_per_s": round(3 * cfg.batch_size * steps / dt, 1), "s_per_step": round(dt / steps, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--finetune", action="store_true", help="also time the paper profile (EfficientNet fine-tuned at 224 px)")
    args = ap.parse_args()
    cfg = resolve_config(Config, PROFILES, "default")
    q = args.quick
    out = {"device": describe_device(), "cpu_threads": torch.get_num_threads()}
    out["offline"] = bench_offline(1500 if q else 4500, 99, 2000 if q else 10000, cfg)
    out["buffered"] = [
        bench_buffered(7000 if q else 70000, 10, 200 if q else 1000, cfg, capacity=cfg.buffer_size, rescale=True),
        bench_buffered(7000 if q else 70000, 10, 20 if q else 50, cfg, capacity=cfg.buffer_size, rescale=False),
        bench_buffered(4500, 99, 500 if q else 2000, cfg, capacity=cfg.buffer_size, rescale=False),
    ]
    out["train"] = [bench_train("default", 3 if q else 10, None)]
    if args.finetune:
        out["train"].append(bench_train("paper", 2, 4 if get_device().type == "cpu" else None,
                                        finetune_backbone=efficientnet_lite0_backbone(224)))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
