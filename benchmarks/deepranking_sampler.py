"""Throughput of Deep Ranking's triplet samplers (whole-batch draws against the per-triplet reference) and of
one training step.

    python benchmarks/deepranking_sampler.py --out benchmarks/results/deepranking_sampler.json
    python benchmarks/deepranking_sampler.py --quick --no-train     # smaller populations, a smoke run

Measures, in one run, each new form next to the per-triplet reference it replaces (``sample_one`` and one
``offer`` per image, the code before the batch draws; the ratio is new / reference, interleaved rounds,
best of each):

- offline relevance-weighted sampler: triplets/s at the chapter's size (1,500 emoji, 99 categories) and
  at the emoji benchmark's full size (4,500), in batches of 32 (a training step) and of 65,536;
- buffered (reservoir) sampler with the paper's acceptance rule (``rescale=False``) and the chapter's
  rescaled one: images/s streamed into the buffers and triplets/s, on the emoji-sized population
  (4,500 images, 99 categories) and on the Fashion-MNIST-sized stream (70,000 images, 10 classes), with
  the default profile's buffers (32) and the paper profile's (200);
- a stream of 1,000,000 images (``--stream``) into the buffers: images/s, the Python heap traced after 10 %,
  50 % and 100 % of the stream (flat: the buffers are O(categories × capacity)), then triplets/s;
- a training step of the default profile (multiscale, cached 1280-d ConvNet features): images/s
  (3 images per triplet, forward + backward + SGD step); optionally (``--finetune``) the ``paper``
  profile's step with EfficientNet-Lite0 fine-tuned at 224 px.

The relevance is synthetic: r_ij = clip(z_i · z_j, 0, 1) within a category for unit vectors z (16-d); the
reference calls it once per pair, the batch sampler through its elementwise form. Prints one JSON object
(and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import sys
import time
import tracemalloc

import numpy as np
import torch

from xmlib.core.config import resolve_config
from xmlib.core.device import describe_device, get_device, synchronize
from xmlib.core.io import atomic_write_json
from xmlib.deepranking.config import PROFILES, Config
from xmlib.deepranking.network import build_network, efficientnet_lite0_backbone
from xmlib.deepranking.sampler import BufferedTripletSampler, CategoryRelevance, OfflineTripletSampler, Triplets
from xmlib.deepranking.training import TripletData, make_optimizer, triplet_step

DIM = 16


def synthetic_relevance(n: int, n_cat: int, dim: int = DIM, seed: int = 0):
    rng = np.random.default_rng(seed)
    cats = rng.integers(0, n_cat, n)
    z = rng.normal(size=(n, dim)) + 1.0
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return cats, z


def best_rate(fn, count: int, rounds: int) -> float:
    """Best of ``rounds`` timings of ``fn()`` (which handles ``count`` things), as things per second."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return count / best


def compare(forms: dict, rounds: int) -> dict:
    """Interleaved rounds of {name: (fn, count)}: the best rate of each, and new / reference ratios."""
    best = {k: float("inf") for k in forms}
    for _ in range(rounds):
        for k, (fn, count) in forms.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], (time.perf_counter() - t0) / count)
    out = {f"{k}_per_s": round(1.0 / v, 1) for k, v in best.items()}
    for k in forms:
        if k != "reference" and "reference" in forms:
            out[f"{k}_vs_reference"] = round(best["reference"] / best[k], 1)
    return out


def bench_offline(n: int, n_cat: int, cfg: Config, ref_triplets: int, rounds: int) -> dict:
    cats, z = synthetic_relevance(n, n_cat)
    t0 = time.perf_counter()
    rel = CategoryRelevance.from_function(cats, lambda r, c: np.clip(z[r] @ z[c].T, 0, 1))
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = OfflineTripletSampler(rel, cfg.t_p, cfg.t_r, cfg.out_of_class_fraction, cfg.max_failures, seed=0)
    sampler_build = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    s.sample(100)
    big = 1 << 16
    forms = {
        "reference": (lambda: [s.sample_one(rng) for _ in range(ref_triplets)], ref_triplets),
        "batch_32": (lambda: [s.sample(32, rng) for _ in range(big // 32 // 8)], big // 8),
        f"batch_{big}": (lambda: s.sample(big, rng), big),
    }
    return {"images": n, "categories": n_cat, "relevance_build_s": round(build, 2),
            "sampler_build_s": round(sampler_build, 2), "relevance_MB": round(rel.memory_bytes() / 2**20, 1),
            **compare(forms, rounds),
            "rejected_per_triplet": round(s.stats.rejected / s.stats.triplets, 2)}


def class_totals(cats: np.ndarray, z: np.ndarray, n_cat: int) -> np.ndarray:
    """r_i = Σ_{j in c_i, j ≠ i} clip(z_i · z_j, 0, 1), per class in chunks (the stream brings r_i with each image)."""
    total = np.zeros(len(cats))
    for c in range(n_cat):
        idx = np.flatnonzero(cats == c)
        for s0 in range(0, len(idx), 2048):
            block = np.clip(z[idx[s0:s0 + 2048]] @ z[idx].T, 0, 1)
            total[idx[s0:s0 + 2048]] = block.sum(1) - 1.0
    return total


def relevance_forms(cats: np.ndarray, z: np.ndarray):
    """r(i, j) one pair per call (the reference's) and its elementwise form over index arrays."""

    def r(i: int, j: int) -> float:
        return 0.0 if cats[i] != cats[j] or i == j else min(1.0, max(0.0, float(z[i] @ z[j])))

    def pairs(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        dot = (np.take(z, i, axis=0) * np.take(z, j, axis=0)).sum(axis=1)
        return np.where((cats[i] == cats[j]) & (i != j), np.clip(dot, 0.0, 1.0), 0.0)

    return r, pairs


def heap_stream(cats: list, weights: list, capacity: int, seed: int = 0) -> dict:
    """The per-image reference of the stream: one Efraimidis–Spirakis key and one heap update per image in
    Python (what ``BufferedTripletSampler.extend`` did before it took arrays)."""
    rng = np.random.default_rng(seed)
    heaps: dict = {}
    for i, (c, w) in enumerate(zip(cats, weights)):
        u = rng.random() or 0.5
        key = math.log(u) / w if w > 0 else -math.inf
        h = heaps.setdefault(c, [])
        if len(h) < capacity:
            heapq.heappush(h, (key, i))
        elif key > h[0][0]:
            heapq.heapreplace(h, (key, i))
    return heaps


def bench_buffered(n: int, n_cat: int, cfg: Config, capacity: int, rescale: bool, ref_triplets: int,
                   rounds: int, big: int) -> dict:
    cats, z = synthetic_relevance(n, n_cat)
    total = class_totals(cats, z, n_cat)
    r, pairs = relevance_forms(cats, z)

    def make():
        return BufferedTripletSampler(r, capacity, cfg.t_p, cfg.t_r, cfg.out_of_class_fraction, cfg.max_failures,
                                      max_proposals=1_000_000, rescale=rescale, seed=0, relevance_pairs=pairs)

    stream = compare({
        "reference": (lambda: heap_stream(cats.tolist(), total.tolist(), capacity), n),
        "batch": (lambda: make().extend(np.arange(n), cats, total), n),
    }, rounds)
    s = make()
    s.extend(np.arange(n), cats, total)
    rng = np.random.default_rng(1)
    s.sample(100, rng)
    before, t_before = s.stats.proposals, s.stats.triplets
    forms = {
        "reference": (lambda: [s.sample_one(rng) for _ in range(ref_triplets)], ref_triplets),
        "batch_32": (lambda: [s.sample(32, rng) for _ in range(64)], 2048),
        f"batch_{big}": (lambda: s.sample(big, rng), big),
    }
    res = compare(forms, rounds)
    return {"images": n, "categories": n_cat, "capacity": capacity, "rescale": rescale,
            "stream_images_per_s": stream["batch_per_s"], "stream_reference_images_per_s": stream["reference_per_s"],
            "stream_vs_reference": stream["batch_vs_reference"], "triplets": res,
            "proposals_per_triplet": round((s.stats.proposals - before) / max(1, s.stats.triplets - t_before), 1),
            "buffered_images": s.memory_items()}


def stream_vectors(ids: np.ndarray) -> np.ndarray:
    """Unit 16-d vectors computed from the image ids (no table: a 1M-image stream needs no O(N) memory)."""
    k = np.arange(DIM)
    z = 1.0 + np.sin(np.outer(ids, 0.7 + 0.37 * k) + 1.3 * k)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def bench_stream(n: int, n_cat: int, cfg: Config, capacity: int, rescale: bool, chunk: int, big: int) -> dict:
    """Stream n images (category id % n_cat) chunk by chunk; weights r_i ≈ (n_c − 1)·clip(z_i · z̄_c, 0, 1)
    with z̄_c the class mean (a stand-in for the exact sums, which a 1M stream would bring along)."""
    sample_ids = np.arange(min(n, 20_000))
    zs = stream_vectors(sample_ids)
    means = np.stack([zs[sample_ids % n_cat == c].mean(0) for c in range(n_cat)])
    per_class = n / n_cat

    def pairs(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        dot = (stream_vectors(i) * stream_vectors(j)).sum(axis=1)
        return np.where((i % n_cat == j % n_cat) & (i != j), np.clip(dot, 0.0, 1.0), 0.0)

    def run(trace: bool) -> tuple[BufferedTripletSampler, float, list]:
        s = BufferedTripletSampler(None, capacity, cfg.t_p, cfg.t_r, cfg.out_of_class_fraction, cfg.max_failures,
                                   max_proposals=10_000_000, rescale=rescale, seed=0, relevance_pairs=pairs)
        marks, spent = [], 0.0
        if trace:
            tracemalloc.start()
        for s0 in range(0, n, chunk):
            ids = np.arange(s0, min(n, s0 + chunk))
            c = ids % n_cat
            w = (per_class - 1) * np.clip((stream_vectors(ids) * means[c]).sum(1), 0.0, 1.0)
            t0 = time.perf_counter()
            s.extend(ids, c, w)
            spent += time.perf_counter() - t0
            del ids, c, w
            if trace:
                marks.append((s.seen, tracemalloc.get_traced_memory()[0]))
        if trace:
            tracemalloc.stop()
        return s, spent, marks

    s, spent, _ = run(False)
    _, _, marks = run(True)
    heap = {}
    for frac in (0.1, 0.5, 1.0):
        seen, cur = next(m for m in marks if m[0] >= frac * n)
        heap[f"after_{seen}_images_MiB"] = round(cur / 2**20, 3)
    rng = np.random.default_rng(1)
    s.sample(100, rng)
    before, t_before = s.stats.proposals, s.stats.triplets
    res = compare({"batch_32": (lambda: [s.sample(32, rng) for _ in range(64)], 2048),
                   f"batch_{big}": (lambda: s.sample(big, rng), big)}, 2)
    return {"images": n, "categories": n_cat, "capacity": capacity, "rescale": rescale, "chunk": chunk,
            "stream_images_per_s": round(n / spent), "traced_heap": heap,
            "buffer_bytes": sum(b.nbytes() for b in s.buffers.values()), "buffered_images": s.memory_items(),
            "triplets": res,
            "proposals_per_triplet": round((s.stats.proposals - before) / max(1, s.stats.triplets - t_before), 1)}


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
    ap.add_argument("--quick", action="store_true", help="a Fashion-MNIST-sized stream of 7,000, fewer rounds")
    ap.add_argument("--smoke", action="store_true", help="tiny populations: checks that the script runs (tests)")
    ap.add_argument("--stream", type=int, default=1_000_000, help="images of the long stream (0: skip it)")
    ap.add_argument("--no-train", action="store_true", help="skip the training step")
    ap.add_argument("--finetune", action="store_true", help="also time the paper profile (EfficientNet fine-tuned at 224 px)")
    ap.add_argument("--out", default="", help="also write the JSON here (e.g. benchmarks/results/deepranking_sampler.json)")
    args = ap.parse_args()
    default, paper = (resolve_config(Config, PROFILES, p) for p in ("default", "paper"))
    q = args.quick or args.smoke
    rounds = 1 if q else 3
    emoji, n_emoji = (300, 20) if args.smoke else (4500, 99)
    out = {"command": "python benchmarks/deepranking_sampler.py " + " ".join(sys.argv[1:]),
           "device": describe_device(), "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "load_start": os.getloadavg(),
           "config": {"t_p": default.t_p, "t_r": default.t_r, "out_of_class_fraction": default.out_of_class_fraction,
                      "max_failures": default.max_failures}}
    out["offline"] = [bench_offline(emoji if args.smoke else 1500, n_emoji, default, 200 if q else 5000, rounds)]
    if not q:
        out["offline"].append(bench_offline(4500, 99, default, 5000, rounds))
    fashion = 1000 if args.smoke else 7000 if q else 70000
    out["buffered"] = [
        bench_buffered(emoji, n_emoji, default, default.buffer_size, False, 100 if q else 1000, rounds, 1 << 14),
        bench_buffered(emoji, n_emoji, default, paper.buffer_size, False, 100 if q else 500, rounds, 1 << 12),
        bench_buffered(fashion, 10, default, default.buffer_size, False, 10 if q else 20, rounds, 1 << 14),
        bench_buffered(fashion, 10, default, paper.buffer_size, False, 10 if q else 20, rounds, 1 << 12),
        bench_buffered(fashion, 10, default, default.buffer_size, True, 100 if q else 500, rounds, 1 << 14),
    ]
    if args.stream:
        out["stream"] = [bench_stream(args.stream, 10, default, paper.buffer_size, False,
                                      min(1 << 16, max(1000, args.stream // 16)), 1 << 12)]
    if not args.no_train:
        out["train"] = [bench_train("default", 3 if q else 10, None)]
        if args.finetune:
            out["train"].append(bench_train("paper", 2, 4 if get_device().type == "cpu" else None,
                                            finetune_backbone=efficientnet_lite0_backbone(224)))
    out["load_end"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    if args.out:
        atomic_write_json(args.out, out)


if __name__ == "__main__":
    main()
