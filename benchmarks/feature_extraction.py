"""Where EfficientNet-Lite0 feature extraction spends its time, one stage at a time.

    python benchmarks/feature_extraction.py                  # 100 pictures of each kind, 1 and 2 threads
    python benchmarks/feature_extraction.py --per-kind 200 --threads 2

Pictures come from the fetched assets in ``cache_dir()`` (the kinds ``prepare`` featurises): emoji
PNGs (Google, Twitter: 64 px, scaled up), OpenMoji SVGs (rasterised with cairosvg) and OpenClipart
PNGs (large: decoded and scaled down). Stages, each timed on its own:

- ``load``: decode / rasterise and fit to 224 x 224 (:func:`xmlib.data.images.load_image`), per kind;
- ``to_tensor``: the normalised (B, 3, 224, 224) batch (:func:`xmlib.data.features.preprocess` on the
  loaded pictures);
- ``network``: the frozen feature map at several batch sizes, per torch thread count;
- ``compute``: :func:`xmlib.data.features._compute` end to end (loading overlapped with the network),
  the path ``prepare`` takes, per thread count and loader.

Nothing is written to the cache. Prints one JSON object (images/s per stage and the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from xmlib.core.device import cpu_threads
from xmlib.core.paths import cache_dir
from xmlib.data import features
from xmlib.data.images import load_image


def sample_pictures(per_kind: int, seed: int = 0) -> dict[str, list[Path]]:
    """``per_kind`` fetched pictures of each kind, drawn with ``seed`` (sorted lists, so runs agree)."""
    assets = cache_dir() / "assets"
    globs = {"emoji_png": [("emoji-google", "*.png"), ("emoji-twitter", "*.png")],
             "openmoji_svg": [("openmoji", "*.svg")],
             "clipart_png": [("openclipart-png", "*.png")]}
    rng = np.random.default_rng(seed)
    out = {}
    for kind, pats in globs.items():
        found = sorted(p for asset, pat in pats for p in (assets / asset).rglob(pat))
        if not found:
            raise SystemExit(f"no {kind} pictures under {assets}: fetch the assets first "
                             "(`python -m xmlib.data fetch`)")
        pick = rng.choice(len(found), size=min(per_kind, len(found)), replace=False)
        out[kind] = [found[i] for i in sorted(pick)]
    return out


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def time_load(paths: list[Path]) -> float:
    t = time.perf_counter()
    for p in paths:
        load_image(p, 224)
    return rate(len(paths), time.perf_counter() - t)


def time_network(n: int, batch: int, repeats: int = 2) -> float:
    fmap = features._frozen_feature_map("cpu", 224)
    x = torch.randn(batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fmap(x)  # warm-up (first call of a frozen graph optimises it)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(max(1, n // batch)):
                fmap(x)
            best = min(best, time.perf_counter() - t)
    return rate(max(1, n // batch) * batch, best)


class _NullBar:
    def update(self, n: int) -> None:
        pass


def time_compute(paths: list[Path], batch: int, **kwargs) -> float:
    t = time.perf_counter()
    features._compute(paths, 224, batch, torch.device("cpu"), _NullBar(), **kwargs)
    return rate(len(paths), time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=100, help="pictures of each kind (default 100)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (default 1 2)")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64], help="network batch sizes")
    parser.add_argument("--skip", nargs="*", default=[], choices=["load", "network", "compute"])
    args = parser.parse_args()
    pics = sample_pictures(args.per_kind)
    every = [p for kind in pics for p in pics[kind]]
    result: dict = {"pictures": {k: len(v) for k, v in pics.items()}, "load_avg_before": os.getloadavg()}
    if "load" not in args.skip:
        result["load_images_per_s"] = {kind: time_load(paths) for kind, paths in pics.items()}
        loaded = [load_image(p, 224) for p in every[:64]]
        t = time.perf_counter()
        features.preprocess(loaded)
        result["to_tensor_images_per_s"] = rate(len(loaded), time.perf_counter() - t)
    for n in args.threads:
        with cpu_threads(n):
            if "network" not in args.skip:
                result[f"network_images_per_s_{n}t"] = {b: time_network(128, b) for b in args.batches}
            if "compute" not in args.skip:
                result[f"compute_images_per_s_{n}t"] = time_compute(every, 32)
    result["load_avg_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
