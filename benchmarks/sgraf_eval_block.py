"""How the block size of SGRAF's ``score_matrix`` changes its speed (same model, same inputs, one thread).

``score_matrix`` scores tiles of captions of one length against as many images as keep the tile's
intermediates within ``max_bytes``. Larger tiles mean fewer Python steps and larger matrix products but
intermediates of (images, captions, words, d) that no longer fit in the CPU's caches. This script
trains one small SGR and one SAF model for one epoch on the open captions benchmark (``default``
build), encodes the first ``--images`` test images, and times ``score_matrix`` for several bounds,
interleaved, printing seconds and the largest difference
from the first setting's matrix.

    python benchmarks/sgraf_eval_block.py                 # default profile sizes, 300 test images
    python benchmarks/sgraf_eval_block.py --images 100 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from xmlib.core.config import resolve_config
from xmlib.core.device import set_cpu_threads
from xmlib.sgraf import experiment as X
from xmlib.sgraf.config import PROFILES, Config
from xmlib.sgraf.model import encode_split, score_matrix
from xmlib.sgraf.train import train_model

SETTINGS = [4, 8, 16, 32, 64, 256]  # max_bytes in MiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=300, help="test images scored (5 captions each)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds over the settings (the best is kept)")
    args = ap.parse_args()
    set_cpu_threads(1)
    print(f"load average at start: {os.getloadavg()}")
    cfg = resolve_config(Config, PROFILES, "default", {"max_train_images": 256})
    vocab, train, dev, test = X.load(cfg)
    part = test.first_images(args.images)
    for aggregator in ("sgr", "saf"):
        c = cfg.replace(aggregator=aggregator)
        with tempfile.TemporaryDirectory() as work:
            model, _ = train_model(c, train, dev, len(vocab), checkpoint_dir=work, epochs=1)
        enc = encode_split(model, part.images, part.tokens, part.lengths)
        best = {s: float("inf") for s in SETTINGS}
        diffs = {}
        ref = None
        for _ in range(args.repeats):
            for mib in SETTINGS:
                t0 = time.perf_counter()
                s = score_matrix(model, enc, max_bytes=mib * 2**20)
                best[mib] = min(best[mib], time.perf_counter() - t0)
                ref = s if ref is None else ref
                diffs[mib] = float((s - ref).abs().max())
        base = best[SETTINGS[0]]
        for mib, sec in best.items():
            print(f"{aggregator}: max_bytes {mib:4d} MiB: {sec:6.2f} s, {base / sec:4.2f}x the first setting "
                  f"(max |diff| {diffs[mib]:.1e})")
    print(f"load average at end: {os.getloadavg()}; torch {torch.__version__}, 1 thread")


if __name__ == "__main__":
    main()
