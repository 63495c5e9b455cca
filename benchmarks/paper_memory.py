"""Peak memory of the SGRAF data pipeline plus one training step at the paper's dimensions, on
Flickr30K-shaped synthetic data (issue 12's target: peak RSS <= 3 GB on CPU with memory-mapped features).

    python benchmarks/paper_memory.py [--out DIR] [--scale 1.0] [--batch-size 32] [--workers 2]
                                      [--aggregator sgr|saf|joint] [--pipeline-batches N] [--keep]

1. writes ``--like f30k`` synthetic SCAN precomp data at ``--scale`` (29,000 x 36 x 2048 float32 =
   8.6 GB at scale 1) in a child process, and reports that writer's peak RSS;
2. in a fresh child process: reads the train and dev splits (memory-mapped; the finite-value scan of
   every feature), encodes the captions, builds the paper profile's model (``img_dim`` 2048,
   ``embed_size`` 1024, ``sim_dim`` 256, ``--aggregator``: SGR by default), gathers one batch through ``xmlib.sgraf.loader`` with
   ``--workers`` DataLoader processes and runs one Adam step. It reports the peak RSS of that process
   (``ru_maxrss``, file-backed pages of the map included), of its loader workers, and the estimate of
   one step's memory (``xmlib.sgraf.train.step_bytes``); with ``--pipeline-batches N`` it then
   gathers N more batches of 128 through the loader alone (resident memory must not grow with the
   gigabytes read).
The synthetic files are deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

GB = 1024**3


def _peak_self() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB  # Linux: KiB


def _peak_children() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GB


def _write(out: str, scale: float) -> None:
    from xmlib.data.synth import synth

    t = time.perf_counter()
    synth("f30k", out, scale=scale, seed=0)
    print(json.dumps({"phase": "write", "seconds": round(time.perf_counter() - t, 1), "peak_rss_gb": round(_peak_self(), 3)}))


def _step(out: str, batch_size: int, workers: int, pipeline_batches: int, aggregator: str) -> None:
    import numpy as np
    import torch

    from xmlib.core.config import resolve_config
    from xmlib.core.device import set_cpu_threads
    from xmlib.data.formats.vocab import load_vocab
    from xmlib.sgraf.config import PROFILES, Config
    from xmlib.sgraf.loader import batch_loader
    from xmlib.sgraf.train import epoch_batches, find_vocab, init_model, load_precomp, make_step, step_bytes

    t = time.perf_counter()
    cfg = resolve_config(Config, PROFILES, "paper", {"data_dir": out, "batch_size": batch_size, "loader_workers": workers,
                                                     "aggregator": aggregator})
    set_cpu_threads(2)
    vocab = load_vocab(find_vocab(cfg))
    train = load_precomp(out, "train", vocab, max_words=cfg.max_words)
    dev = load_precomp(out, "dev", vocab, max_words=cfg.max_words)
    read_s = time.perf_counter() - t
    after_read = _peak_self()
    device = torch.device("cpu")
    model = init_model(cfg, len(vocab), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step = make_step(model, train, cfg, device)
    caps = epoch_batches(train.n_images, 0, batch_size=cfg.batch_size, seed=0)[:2]
    t = time.perf_counter()
    losses = []
    for batch in batch_loader(train.images, caps[:1], workers=workers):
        optimizer.zero_grad()
        loss = step(batch)
        loss.backward()
        optimizer.step()
        losses.append(round(loss.detach().item(), 4))
    step_s = time.perf_counter() - t
    t = time.perf_counter()
    read_gb = 0.0
    if pipeline_batches:  # the data pipeline alone over many batches: resident memory must stay flat
        caps = epoch_batches(train.n_images, 1, batch_size=128, seed=0)[:pipeline_batches]
        for _, feats in batch_loader(train.images, caps, workers=workers):
            read_gb += feats.numel() * 4 / GB
    pipeline_s = time.perf_counter() - t
    print(json.dumps({
        "phase": "pipeline+step", "train_images": train.n_images, "dev_images": dev.n_images,
        "features_on_disk_gb": round(train.images.nbytes / GB, 2), "is_memmap": isinstance(train.images, np.memmap),
        "batch_size": cfg.batch_size, "aggregator": cfg.aggregator, "hardest_pairs": cfg.hardest_pairs,
        "workers": workers, "embed_size": cfg.embed_size, "sim_dim": cfg.sim_dim,
        "read_seconds": round(read_s, 1), "step_seconds": round(step_s, 1), "loss": losses,
        "peak_rss_after_read_gb": round(after_read, 3), "peak_rss_gb": round(_peak_self(), 3),
        "peak_rss_loader_workers_gb": round(_peak_children(), 3),
        "step_bytes_estimate_gb": round(step_bytes(cfg, train) / GB, 3),
        "pipeline_batches_of_128": pipeline_batches, "pipeline_gathered_gb": round(read_gb, 2),
        "pipeline_seconds": round(pipeline_s, 1)}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/xmlib_paper_memory_f30k")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--aggregator", default="sgr", choices=("sgr", "saf", "joint"),
                    help="the model of the training step (SAF and joint: batch statistics over the block)")
    ap.add_argument("--pipeline-batches", type=int, default=0,
                    help="after the step, gather this many batches of 128 through the loader (no model)")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic files (and reuse them if present)")
    ap.add_argument("--phase", choices=("write", "step"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase == "write":
        _write(args.out, args.scale)
        return 0
    if args.phase == "step":
        _step(args.out, args.batch_size, args.workers, args.pipeline_batches, args.aggregator)
        return 0
    free = shutil.disk_usage(Path(args.out).parent).free / GB
    need = 1.05 * 29_000 * 36 * 2048 * 4 * args.scale / GB
    if free < need + 2:
        print(f"--out {args.out}: {free:.1f} GB free, {need:.1f} GB needed at --scale {args.scale}; lower --scale", file=sys.stderr)
        return 2
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    me = [sys.executable, __file__, "--out", args.out, "--scale", str(args.scale),
          "--batch-size", str(args.batch_size), "--workers", str(args.workers),
          "--pipeline-batches", str(args.pipeline_batches), "--aggregator", args.aggregator]
    try:
        if not (args.keep and (Path(args.out) / "train_ims.npy").is_file()):
            subprocess.run(me + ["--phase", "write"], check=True, env=env)
        subprocess.run(me + ["--phase", "step"], check=True, env=env)
    finally:
        if not args.keep:
            shutil.rmtree(args.out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
