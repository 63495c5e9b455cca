"""Batched (padded + masked) DCMM against a one-query-at-a-time loop on the same data.

Checks that both give the same scores (and the same BPR gradients), then times a forward pass and a
training step (forward + BPR, Eq. 7, + backward) over all queries each way.

    .venv/bin/python benchmarks/dcmm_batched_vs_loop.py                 # default: 60 x 50, D = 1280
    .venv/bin/python benchmarks/dcmm_batched_vs_loop.py --ragged --threads 1
    XMLIB_DEVICE=cuda .venv/bin/python benchmarks/dcmm_batched_vs_loop.py
"""

from __future__ import annotations

import argparse
import time

import torch

from xmlib.core.device import describe_device, get_device, set_cpu_threads, synchronize
from xmlib.dcmm.batching import pad_queries
from xmlib.dcmm.config import Config
from xmlib.dcmm.data import make_synthetic_queries
from xmlib.dcmm.loss import bpr_loss
from xmlib.dcmm.models import build_model


def timed(fn, device, repeats):
    fn()  # warm-up
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-queries", type=int, default=60)
    p.add_argument("--n-docs", type=int, default=50)
    p.add_argument("--visual-dim", type=int, default=1280)
    p.add_argument("--methods", default="dcmm-cos,dcmm-edge")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--n-conv", type=int, default=2)
    p.add_argument("--ragged", action="store_true", help="list lengths vary in [n_docs/2, n_docs]")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    p.add_argument("--float64", action="store_true")
    args = p.parse_args()
    device = get_device()
    set_cpu_threads(args.threads, device)
    dtype = torch.float64 if args.float64 else torch.float32
    qs = make_synthetic_queries(args.n_queries, args.n_docs, seed=0, visual_dim=args.visual_dim, ragged=args.ragged)
    data = pad_queries(qs, device=device, dtype=dtype)
    singles = [pad_queries([q], device=device, dtype=dtype) for q in qs]   # padded once, outside the timing
    print(f"device {describe_device(device)}, {args.n_queries} queries x <= {args.n_docs} docs, "
          f"D = {args.visual_dim}, k = {args.k}, {args.n_conv} conv layers, {dtype}")
    cfg = Config(k=args.k, n_conv=args.n_conv, dropout=0.0)
    for method in args.methods.split(","):
        torch.manual_seed(0)
        model = build_model(method, cfg, in_dim=data.text.shape[-1], visual_dim=args.visual_dim).to(device, dtype)

        def batched_forward():
            with torch.no_grad():
                return model(data)

        def loop_forward():
            with torch.no_grad():
                return [model(s)[0] for s in singles]

        def batched_step():
            model.zero_grad()
            bpr_loss(model(data), data.rel, data.mask, "sum").backward()

        def loop_step():
            model.zero_grad()
            for s in singles:
                bpr_loss(model(s), s.rel, s.mask, "sum").backward()

        b, loop = batched_forward(), loop_forward()
        diff = max(float((b[i, : len(q)] - loop[i]).abs().max()) for i, q in enumerate(qs))
        batched_step()
        gb = [prm.grad.clone() for prm in model.parameters()]
        loop_step()
        gl = torch.cat([prm.grad.flatten() for prm in model.parameters()])
        gdiff = float((torch.cat([g.flatten() for g in gb]) - gl).norm() / gl.norm())   # relative, all params
        tb, tl = timed(batched_forward, device, args.repeats), timed(loop_forward, device, args.repeats)
        sb, sl = timed(batched_step, device, args.repeats), timed(loop_step, device, args.repeats)
        print(f"{method:10s} same scores: max |diff| = {diff:.2e}; same BPR gradients: relative diff (norm) = {gdiff:.1e}")
        print(f"{'':10s} forward     batched {tb * 1e3:8.1f} ms   loop {tl * 1e3:8.1f} ms   loop/batched = {tl / tb:5.1f}x")
        print(f"{'':10s} train step  batched {sb * 1e3:8.1f} ms   loop {sl * 1e3:8.1f} ms   loop/batched = {sl / sb:5.1f}x")


if __name__ == "__main__":
    main()
