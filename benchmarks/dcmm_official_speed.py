"""One DCMM training step (forward + BPR loss + backward) three ways on the same inputs: the released
code's step (re-stated in :mod:`dcmm_official_reference`), xmlib's batched step and xmlib's
per-query loop.

xmlib runs with the released code's switches (``OFFICIAL_CODE``), so the three compute the same
function; the script first checks that (eval-mode scores and BPR gradients of the same weights), then
times the steps interleaved (official, batched, loop, official, ...) with one torch thread, and
prints the median ms per step, the peak memory of one step, and the ratios official/xmlib and
loop/batched from the same run.

- official step: per query, the k-NN graph of the visual features and the z-score of the text
  features (the release's dataset transform runs on every access); the batch concatenated into one
  edge-list graph; the model; BPR; backward.
- xmlib batched: ``data.select(batch)`` from the padded data set (as ``train_ranker`` does), the
  model on the padded batch, ``bpr_loss`` (mean over the batch's pairs), backward.
- xmlib loop: the same, one query at a time (each query's pair sum divided by the batch's pair
  count, backward per query; the gradients add up to the batched ones).

Peak memory: the peak resident set size (RSS) during the warm-up step above the RSS just before it
(Linux: ``VmHWM`` reset through ``/proc/self/clear_refs``, freed heap returned first with
``malloc_trim``), in MiB; elsewhere ``ru_maxrss`` growth, which only sees new peaks of the process.

    .venv/bin/python benchmarks/dcmm_official_speed.py            # 16 queries x 250-300, D = 1536, k = 10 and 100
    .venv/bin/python benchmarks/dcmm_official_speed.py --quick    # 4 queries x 120-150, D = 256
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import resource
import statistics
import subprocess
import time
from pathlib import Path

import dcmm_official_reference as official  # the script's own folder is on sys.path
import numpy as np
import torch

from xmlib.core.device import set_cpu_threads
from xmlib.dcmm.batching import pad_queries
from xmlib.dcmm.config import OFFICIAL_CODE, Config
from xmlib.dcmm.data import QueryList, make_synthetic_queries
from xmlib.dcmm.loss import bpr_loss, pair_mask
from xmlib.dcmm.models import build_model

CPU = torch.device("cpu")
CHECK_QUERIES = 3


# ----------------------------------------------------------------------------------------- memory
def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _can_reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _status("VmHWM")
        return True
    except OSError:
        return False


RESET_PEAK = _can_reset_peak()
MEMORY_NOTE = ("peak RSS during the warm-up step above the RSS before it (VmHWM reset via /proc/self/clear_refs)" if RESET_PEAK
               else "growth of ru_maxrss over one step (only new process-wide peaks count)")


def peak_mib(fn) -> float:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    if RESET_PEAK:
        before = _status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        fn()
        return (_status("VmHWM") - before) / 2 ** 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


# ----------------------------------------------------------------------------------------- data
def make_lists(n_queries: int, lo: int, hi: int, visual_dim: int, n_text: int, seed: int) -> list[QueryList]:
    """Synthetic candidate lists with lengths drawn uniformly in [lo, hi]."""
    rng = np.random.default_rng(seed)
    out = []
    for q in make_synthetic_queries(n_queries, hi, seed=seed, n_text=n_text, visual_dim=visual_dim):
        n = int(rng.integers(lo, hi + 1))
        out.append(QueryList(q.qid, q.doc_ids[:n], q.text[:n], q.visual[:n], q.rel[:n]))
    return out


# ----------------------------------------------------------------------------------------- steps
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4 queries x 120-150 candidates, D = 256")
    p.add_argument("--n-queries", type=int, default=16)
    p.add_argument("--lengths", default="250,300", help="candidate list lengths, lo,hi (uniform)")
    p.add_argument("--visual-dim", type=int, default=1536, help="D (Inception-ResNet pre-logits in the paper)")
    p.add_argument("--text-dim", type=int, default=4, help="F (the release's MediaEval in_dim)")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--conv-channels", type=int, default=32)
    p.add_argument("--n-conv", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--ks", default="10,100")
    p.add_argument("--models", default="cos,edge")
    p.add_argument("--repeats", type=int, default=3, help="timed steps of each kind (after one warm-up step)")
    args = p.parse_args()
    if args.quick:
        args.n_queries, args.lengths, args.visual_dim = 4, "120,150", 256
    set_cpu_threads(1)
    lo, hi = map(int, args.lengths.split(","))
    print(f"start: {load()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread; {args.n_queries} queries x {lo}-{hi} "
          f"candidates, D = {args.visual_dim}, F = {args.text_dim}, c = {args.hidden}, conv {args.conv_channels} "
          f"x {args.n_conv}, dropout {args.dropout} (train mode), float32; median of {args.repeats} interleaved steps")
    print(f"memory: {MEMORY_NOTE}, MiB")
    qs = make_lists(args.n_queries, lo, hi, args.visual_dim, args.text_dim, seed=0)
    graphs = official.make_graphs([q.text for q in qs], [q.visual for q in qs], [q.rel for q in qs])
    data = pad_queries(qs, device=CPU, zscore_ddof=1)           # padded once, as train_ranker's data set
    everything = list(range(len(qs)))
    for k in map(int, args.ks.split(",")):
        for g in args.models.split(","):
            cfg = Config(hidden=args.hidden, conv_channels=args.conv_channels, n_conv=args.n_conv, k=k,
                         dropout=args.dropout, **OFFICIAL_CODE)
            torch.manual_seed(0)
            xm = build_model(f"dcmm-{g}", cfg, in_dim=args.text_dim, visual_dim=args.visual_dim)
            off = official.OfficialDCMM(args.text_dim, args.hidden, args.conv_channels, args.n_conv, edge=g == "edge",
                                        visual_dim=args.visual_dim, dropout=args.dropout)
            off.load_state_dict(xm.state_dict())
            check = agreement(xm, off, qs, k)
            xm.train(), off.train()
            n_pairs = int(pair_mask(data.rel, data.mask).sum())

            def official_step():
                official.train_step(off, graphs, k)

            def official_transform():                           # its per-query k-NN + z-score and the collation
                official.transform_and_collate(graphs, k)

            def batched_step():
                xm.zero_grad(set_to_none=True)
                batch = data.select(everything)
                bpr_loss(xm(batch), batch.rel, batch.mask, "mean").backward()

            def loop_step():
                xm.zero_grad(set_to_none=True)
                for b in everything:
                    one = data.select([b])
                    (bpr_loss(xm(one), one.rel, one.mask, "sum") / n_pairs).backward()

            steps = {"official": official_step, "transform": official_transform, "batched": batched_step, "loop": loop_step}
            mem = {name: peak_mib(fn) for name, fn in steps.items()}   # the warm-up step, measured for memory
            times = {name: [] for name in steps}
            for _ in range(args.repeats):
                for name, fn in steps.items():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
            print(f"DCMM-{g:4s} k = {k:3d} | ms per step: official {ms['official']:8.1f} (of which its per-query "
                  f"transform {ms['transform']:6.1f}), xmlib batched {ms['batched']:6.1f}, xmlib loop {ms['loop']:6.1f} | "
                  f"peak MiB: official {mem['official']:.0f}, batched {mem['batched']:.0f}, loop {mem['loop']:.0f} | "
                  f"official/batched {ms['official'] / ms['batched']:5.1f}x, official/loop {ms['official'] / ms['loop']:5.1f}x, "
                  f"loop/batched {ms['loop'] / ms['batched']:4.2f}x | check: {check}", flush=True)
    print(f"end: {load()}")


def agreement(xm, off, qs, k) -> str:
    """Eval-mode scores and BPR gradients of the same weights, official vs xmlib batched, in float64 (in
    float32, rounding can swap two near-equal similarities at the k-th neighbour), on the first
    ``CHECK_QUERIES`` queries (the release's float64 edge tensors would not fit in memory for all).

    Gradients can differ by ~1e-10 where pair margins are large (k = 100): the release's
    BCE-with-logits forms each pair's gradient as σ(Δ) − 1, which loses digits when σ(Δ) ≈ 1;
    xmlib's softplus(−Δ) does not (with softplus in the reference they agree to ~1e-16)."""
    import copy

    qs = qs[:CHECK_QUERIES]
    xm, off = copy.deepcopy(xm).double().eval(), copy.deepcopy(off).double().eval()
    data = pad_queries(qs, device=CPU, dtype=torch.float64, zscore_ddof=1)
    graphs = official.make_graphs([q.text for q in qs], [q.visual for q in qs], [q.rel for q in qs], torch.float64)
    s_x = xm(data)
    bpr_loss(s_x, data.rel, data.mask, "mean").backward()
    gb = official.transform_and_collate(graphs, k)
    s_o = off(gb)
    official.official_bpr(s_o, gb.y, gb.batch, gb.n_graphs).backward()
    flat = torch.cat([s_x[b, : len(q)] for b, q in enumerate(qs)]).detach()
    score_diff = float((flat - s_o.detach()).abs().max() / s_o.detach().abs().max())
    gx = torch.cat([p.grad.flatten() for p in xm.parameters()])
    go = torch.cat([p.grad.flatten() for p in off.parameters()])
    grad_diff = float((gx - go).norm() / go.norm())
    return f"{len(qs)} queries, float64: scores rel. {score_diff:.0e}, grads rel. {grad_diff:.0e}"


if __name__ == "__main__":
    main()
