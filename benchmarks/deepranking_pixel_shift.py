"""Deep Ranking's pixel-shift augmentation: one window slice per image against the per-pixel index gather
it replaced (same inputs, same offsets, one thread, interleaved rounds).

The gather form reads every output pixel through four broadcast index tensors; the library cuts each
image's window out of the replicate-padded batch with a slice, which copies whole rows. Both give the
same tensor (checked here, and bit for bit in tests/deepranking/test_network.py).

    python benchmarks/deepranking_pixel_shift.py                     # the default profile's batch: 96 images of 64 px
    python benchmarks/deepranking_pixel_shift.py --images 192 --side 224 --shift 16
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from xmlib.core.device import set_cpu_threads
from xmlib.deepranking.network import pixel_shift


def gather_shift(images: torch.Tensor, s: int, generator: torch.Generator) -> torch.Tensor:
    """The earlier form: every output pixel read through broadcast row/column indices."""
    b, c, h, w = images.shape
    padded = F.pad(images, (s, s, s, s), mode="replicate")
    off = torch.randint(0, 2 * s + 1, (b, 2), generator=generator)
    rows = off[:, 0:1] + torch.arange(h)
    cols = off[:, 1:2] + torch.arange(w)
    bi = torch.arange(b)[:, None, None, None]
    ci = torch.arange(c)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=96, help="images per step (3 × the batch of triplets)")
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--shift", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=50, help="calls per form and round")
    args = ap.parse_args()
    set_cpu_threads(1)
    x = torch.rand(args.images, 3, args.side, args.side, generator=torch.Generator().manual_seed(0))
    same = torch.equal(pixel_shift(x, args.shift, torch.Generator().manual_seed(1)),
                       gather_shift(x, args.shift, torch.Generator().manual_seed(1)))
    forms = {"gather (before)": gather_shift, "slices (xmlib)": pixel_shift}
    best = {k: float("inf") for k in forms}
    for _ in range(args.rounds):
        for name, f in forms.items():
            g = torch.Generator().manual_seed(2)
            t = time.perf_counter()
            for _ in range(args.calls):
                f(x, args.shift, g)
            best[name] = min(best[name], (time.perf_counter() - t) / args.calls)
    print(f"{args.images} images of {args.side} px, shift ±{args.shift}; load {os.getloadavg()[0]:.1f}; same output: {same}")
    for name, t in best.items():
        print(f"  {name:16s} {1e3 * t:8.2f} ms per call (best of {args.rounds} rounds)")
    print(f"  ratio {best['gather (before)'] / best['slices (xmlib)']:.1f}x")


if __name__ == "__main__":
    main()
