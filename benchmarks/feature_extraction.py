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
  the path ``prepare`` takes ("fast"), against the plain path it replaced ("plain": each picture
  ``to_tensor``-ed and stacked, the C allocator left as it is), interleaved, per thread count.

The machine is shared, so besides images/s (wall clock) each stage reports images per CPU-second of
this process (user + system; less sensitive to other processes) and the page faults per picture.
Nothing is written to the cache. Prints one JSON object, with the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from xmlib.core.device import cpu_threads
from xmlib.core.paths import cache_dir
from xmlib.data import features
from xmlib.data.images import load_image, to_tensor


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


class Clock:
    """Wall time, CPU time (user + system) and minor page faults of this process over a block."""

    def __enter__(self):
        self.wall, self.usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        return self

    def __exit__(self, *exc):
        end = resource.getrusage(resource.RUSAGE_SELF)
        self.wall = time.perf_counter() - self.wall
        self.cpu = (end.ru_utime - self.usage.ru_utime) + (end.ru_stime - self.usage.ru_stime)
        self.sys = end.ru_stime - self.usage.ru_stime
        self.faults = end.ru_minflt - self.usage.ru_minflt

    def report(self, n: int) -> dict:
        return {"images_per_s": round(n / self.wall, 1), "images_per_cpu_s": round(n / self.cpu, 1),
                "sys_share": round(self.sys / self.cpu, 2), "faults_per_image": round(self.faults / n)}


def time_load(paths: list[Path]) -> dict:
    with Clock() as c:
        for p in paths:
            load_image(p, 224)
    return c.report(len(paths))


def time_network(n: int, batch: int, fast: bool) -> dict:
    fmap = features._frozen_feature_map("cpu", 224)
    x = torch.randn(batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    steps = max(1, n // batch)
    with torch.inference_mode(), features._reuse_freed_memory() if fast else contextlib.nullcontext():
        fmap(x)  # warm-up (the first calls of a frozen graph optimise it)
        with Clock() as c:
            for _ in range(steps):
                fmap(x)
    return c.report(steps * batch)


class _NullBar:
    def update(self, n: int) -> None:
        pass


def plain_compute(paths: list[Path], size: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The extraction as it was before the fast path: the reference that "plain" times."""
    feature_map = features._frozen_feature_map("cpu", size)
    batches = [paths[i: i + batch_size] for i in range(0, len(paths), batch_size)]

    def load(batch):
        return torch.stack([to_tensor(load_image(p, size)) for p in batch])

    pooled, grid = [], []
    with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode():
        pending = pool.submit(load, batches[0])
        for b in range(len(batches)):
            x = pending.result()
            pending = pool.submit(load, batches[b + 1]) if b + 1 < len(batches) else None
            fmap = feature_map(x.contiguous(memory_format=torch.channels_last))
            pooled.append(fmap.mean(dim=(2, 3)).numpy())
            grid.append(fmap.flatten(2).transpose(1, 2).numpy().astype(np.float16))
    return np.concatenate(pooled), np.concatenate(grid)


def time_compute(paths: list[Path], batch: int, fast: bool) -> tuple[dict, np.ndarray]:
    with Clock() as c:
        if fast:
            pooled, _ = features._compute(paths, 224, batch, torch.device("cpu"), _NullBar())
        else:
            pooled, _ = plain_compute(paths, 224, batch)
    return c.report(len(paths)), pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=100, help="pictures of each kind (default 100)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (default 1 2)")
    parser.add_argument("--batches", type=int, nargs="+", default=[32], help="network batch sizes (default 32, what prepare uses)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["load", "network", "compute"])
    args = parser.parse_args()
    pics = sample_pictures(args.per_kind)
    every = [p for kind in pics for p in pics[kind]]
    result: dict = {"pictures": {k: len(v) for k, v in pics.items()}, "load_avg_before": os.getloadavg()}
    if "load" not in args.skip:
        result["load"] = {kind: time_load(paths) for kind, paths in pics.items()}
        loaded = [load_image(p, 224) for p in every[:64]]
        with Clock() as c:
            torch.stack([to_tensor(im) for im in loaded])
        result["to_tensor_plain"] = c.report(len(loaded))
        with Clock() as c:
            features.preprocess(loaded)
        result["to_tensor_fast"] = c.report(len(loaded))
    with torch.inference_mode():  # trace, freeze and warm the network before any timing
        features._frozen_feature_map("cpu", 224)(torch.zeros(2, 3, 224, 224).contiguous(memory_format=torch.channels_last))
    for n in args.threads:
        with cpu_threads(n):
            for fast in (False, True, False, True):  # interleaved: plain, fast, plain, fast
                name = "fast" if fast else "plain"
                if "network" not in args.skip:
                    for b in args.batches:
                        result.setdefault(f"network_{n}t_batch{b}_{name}", []).append(time_network(128, b, fast))
                if "compute" not in args.skip:
                    report, pooled = time_compute(every, 32, fast)
                    result.setdefault(f"compute_{n}t_{name}", []).append(report)
                    result.setdefault("compute_pooled_sha", set()).add(hashlib.sha256(pooled.tobytes()).hexdigest()[:16])
    if "compute_pooled_sha" in result:  # one hash: the fast and plain paths gave the same bytes
        result["compute_pooled_sha"] = sorted(result["compute_pooled_sha"])
    result["load_avg_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
