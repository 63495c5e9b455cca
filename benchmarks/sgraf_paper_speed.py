"""SGRAF scoring at the paper's size, against the official code's per-caption loop (issue 11).

Paper dimensions by default: d = 1024, m = 256, K = 36 regions, 3 SGR steps, a block of 100 images ×
500 captions whose lengths follow Flickr30K's (see :func:`caption_lengths`). One thread, the same
inputs and weights for every form, rounds interleaved, the best round of each kept. Three forms:

- ``official``: the released ``EncoderSimilarity`` evaluation re-stated here from its published
  structure (a Python loop over captions, each against every image of the block; SCAN attention with
  LeakyReLU(0.1) and L2 contexts; three full graph-reasoning steps, each with its own query, key and
  node linears and their biases; ε added to every norm). The model runs with ``OFFICIAL_CODE`` and
  random non-zero biases, so all three forms compute the same function (checked: max |diff|);
- ``per_caption``: :meth:`~xmlib.sgraf.model.SGRAFModel.score_per_caption` (xmlib's fused SGR, one
  caption at a time);
- ``score_matrix``: :func:`~xmlib.sgraf.model.score_matrix` (captions of one length per tile, tiles
  bounded in bytes).

It prints seconds, pairs/s, the useful GFLOP/s and their fraction of this machine's float32 matmul peak
(:func:`xmlib.core.device.matmul_gflops`, a 2048³ product on one thread through torch's MKL and through
oneDNN, measured before, between and after the rounds; every fraction in the report is taken against the best
of them: on AMD processors oneDNN's is about twice MKL's, and xmlib's large products use it,
:func:`xmlib.core.device.cpu_gemm`), the ratios against the official loop and against ``per_caption``, and
the peak memory each form adds (VmHWM − VmRSS of a forked child that runs it once).
``--train-step`` also times one training step of ``--batch`` images × captions (forward, hardest-negative
hinge, backward) in the block form, the per-caption form and the ``hardest_pairs`` form
(:meth:`~xmlib.sgraf.model.SGRAFModel.hardest_block`; for SAF with its batch norm's block statistics
computed in tiles), with the memory each adds; ``--train-only`` skips the evaluation forms. In training
mode the per-caption form normalises SAF's logits over one caption's pairs at a time (the official
code's statistics), the two others over the whole block.

    python benchmarks/sgraf_paper_speed.py                       # SGR and SAF, 100 x 500, paper dims
    python benchmarks/sgraf_paper_speed.py --aggregators sgr --rounds 2 --train-step
    python benchmarks/sgraf_paper_speed.py --images 20 --captions 50 --dim 256 --sim-dim 64   # quick look
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from xmlib.core.config import resolve_config
from xmlib.core.device import cpu_gemm, matmul_gflops, onednn_available, set_cpu_threads
from xmlib.core.io import atomic_write_json
from xmlib.sgraf.config import OFFICIAL_CODE, PROFILES, Config
from xmlib.sgraf.encoders import length_mask
from xmlib.sgraf.loss import contrastive_loss
from xmlib.sgraf.model import SGRAFModel, score_matrix


def caption_lengths(n: int, seed: int = 0) -> torch.Tensor:
    """Token counts (``<start>``/``<end>`` included) shaped like Flickr30K's captions: 12.3 words on
    average with a long right tail, i.e. about 14 tokens, most between 8 and 22; drawn from a log-normal
    (median 13.3 tokens, σ = 0.33) rounded and clipped to 6..30 tokens, the range the issue measured."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.normal(np.log(13.3), 0.33, size=n))
    return torch.from_numpy(np.clip(np.rint(x), 6, 30).astype(np.int64))


def peak_gflops(peaks: dict[str, float], rounds: int = 2) -> float:
    """This core's float32 matmul peak now: :func:`~xmlib.core.device.matmul_gflops` through torch's ``mm``
    (MKL) and through oneDNN where the build has it; ``peaks`` keeps the best of each library seen so far.
    Returns the best of all (the machine's peak: on AMD processors MKL's sgemm runs AVX2 code and oneDNN
    can be twice as fast)."""
    for backend in ("torch", "onednn") if onednn_available() else ("torch",):
        peaks[backend] = max(peaks.get(backend, 0.0), matmul_gflops(rounds=rounds, backend=backend))
    return max(peaks.values())


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def useful_flops(cfg: Config, lengths: torch.Tensor, n_img: int, k: int) -> float:
    """Multiply-adds × 2 that one evaluation of every pair needs (nothing for padding, xmlib's fused
    SGR: W_outᵀW_in once per node, the last step for the global node only)."""
    d, m, steps = cfg.embed_size, cfg.sim_dim, cfg.sgr_steps
    total = 0.0
    for n in lengths.tolist():
        p = n + 1
        f = 2 * n * k * d * 2  # attention scores and contexts
        f += 2 * (n + 1) * d * m  # Eq. (1): local and global projections
        if cfg.aggregator == "sgr":
            f += (steps - 1) * (2 * 2 * p * m * m + 2 * 2 * p * p * m)  # full steps: two m×m products, logits, Σ e s
            f += 2 * 2 * m * m + 2 * 2 * p * m  # last step, global node only
        else:
            f += 2 * p * m * 2  # SAF: W_f and the weighted sum
        total += f
    return total * n_img


def _l2norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The released ``l2norm``: ``x / (sqrt(Σ x²) + 1e-8)`` written with the same four operations."""
    return torch.div(x, torch.pow(x, 2).sum(dim=dim, keepdim=True).sqrt() + 1e-8)


def official_loop(model: SGRAFModel, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """The released evaluation, one caption at a time against every image (see the module docstring).

    The same operations in the same order as the released ``EncoderSimilarity.forward``: the caption's
    words repeated for every image, its global vector pooled inside the loop, SCAN attention with its
    transposes, ``l2norm`` as pow-sum-sqrt-add-div, three full graph-reasoning steps with separate query,
    key and node linears."""
    cfg, nodes = model.cfg, model.nodes
    regions, img_glob = enc["regions"], enc["img_glob"]
    n_img = regions.shape[0]
    cols = []
    for c in range(enc["words"].shape[0]):
        n = int(enc["lengths"][c])
        cap_i = enc["words"][c, :n].unsqueeze(0)  # (1, n, d)
        cap_expand = cap_i.repeat(n_img, 1, 1)  # (n_img, n, d)
        cap_glo = model.txt_enc.pool(cap_i)[0]  # (1, d): the caption's global vector, pooled per caption
        # SCAN attention, text to image
        attn = torch.bmm(regions, cap_expand.transpose(1, 2))  # (n_img, K, n)
        attn = _l2norm(F.leaky_relu(attn, 0.1), 2)  # over the words
        attn = torch.softmax(attn.transpose(1, 2).contiguous() * cfg.lambda_softmax, dim=2)  # (n_img, n, K)
        ctx = torch.bmm(regions.transpose(1, 2), attn.transpose(1, 2).contiguous()).transpose(1, 2)  # (n_img, n, d)
        ctx = _l2norm(ctx, -1)
        s_loc = _l2norm(nodes.w_local(torch.pow(torch.sub(ctx, cap_expand), 2)), -1)
        s_glo = _l2norm(nodes.w_global(torch.pow(torch.sub(img_glob, cap_glo), 2)), -1)
        s = torch.cat([s_glo.unsqueeze(1), s_loc], 1)  # (n_img, 1 + n, m)
        if cfg.aggregator == "sgr":
            for step in model.aggregate.steps:
                edge = torch.softmax(torch.bmm(step.w_in(s), step.w_out(s).permute(0, 2, 1)), dim=-1)
                s = torch.relu(step.w_r(torch.bmm(edge, s)))
            vec = s[:, 0, :]
            head = model.aggregate.score
        else:
            saf = model.aggregate
            a = torch.sigmoid(saf.bn(saf.w_f(s).squeeze(-1)))
            a = torch.div(a, torch.abs(a).sum(dim=-1, keepdim=True) + 1e-8)  # the released l1norm
            vec = _l2norm(torch.sum(a.unsqueeze(-1) * s, 1), -1)
            head = saf.score
        cols.append(torch.sigmoid(head(vec)))
    return torch.cat(cols, 1)


def make_model(cfg: Config, seed: int = 0) -> SGRAFModel:
    torch.manual_seed(seed)
    model = SGRAFModel(cfg.model(), 1000)
    with torch.no_grad():  # trained checkpoints have non-zero biases: so must the benchmark
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.05)
    return model.eval()


def make_encoded(n_img: int, n_cap: int, k: int, d: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    nrm = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    lengths = caption_lengths(n_cap, seed)
    words = nrm(torch.randn(n_cap, int(lengths.max()), d, generator=g))
    return {"regions": nrm(torch.randn(n_img, k, d, generator=g)), "img_glob": nrm(torch.randn(n_img, d, generator=g)),
            "words": words, "txt_glob": nrm(torch.randn(n_cap, d, generator=g)), "lengths": lengths}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _child(fn, queue) -> None:
    set_cpu_threads(1)
    try:  # hand the parent's freed heap back to the system, so that the call's memory shows up as new pages
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets this process's peak RSS (VmHWM) to its RSS now
        f.write("5")
    before = _rss_kib("VmRSS")
    fn()
    queue.put((_rss_kib("VmHWM") - before) / 1024)


def peak_mib(fn) -> float:
    """Memory (MiB) that one call of ``fn`` adds at its peak, measured in a forked child process (its
    freed heap trimmed and its peak RSS reset first: VmHWM after − VmRSS before)."""
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn, q))
    p.start()
    out = q.get()
    p.join()
    return out


def train_forms(model: SGRAFModel, batch: int, k: int, d: int, buckets: int, seed: int = 1):
    """The two training forms from encoded features (leaf tensors that need gradients): block, per caption."""
    enc = make_encoded(batch, batch, k, d, seed)
    leaves = {name: t.clone().requires_grad_(name != "lengths") for name, t in enc.items()}

    def block():
        s = model.score_block(leaves["regions"], leaves["img_glob"], leaves["words"], leaves["txt_glob"],
                              leaves["lengths"], buckets=buckets)
        contrastive_loss(s, 0.2, True).backward()

    def per_caption():
        s = model.score_per_caption(leaves["regions"], leaves["img_glob"], leaves["words"], leaves["txt_glob"],
                                    leaves["lengths"])
        contrastive_loss(s, 0.2, True).backward()

    def hardest_pairs():  # every pair without autograd, then autograd through the <= 3B pairs the loss reads
        # (SAF: its batch norm's block statistics in tiles, differentiated tile by tile in the backward pass)
        s = model.hardest_block(leaves["regions"], leaves["img_glob"], leaves["words"], leaves["txt_glob"],
                                leaves["lengths"])
        contrastive_loss(s, 0.2, True).backward()

    return {"block": block, "per_caption": per_caption, "hardest_pairs": hardest_pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--aggregators", default="sgr,saf")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--captions", type=int, default=500)
    ap.add_argument("--regions", type=int, default=36)
    ap.add_argument("--dim", type=int, default=1024, help="d (embed_size)")
    ap.add_argument("--sim-dim", type=int, default=256, help="m (sim_dim)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each form is kept")
    ap.add_argument("--train-step", action="store_true", help="also time one training step, block vs per caption")
    ap.add_argument("--train-only", action="store_true", help="only the training step (implies --train-step)")
    ap.add_argument("--batch", type=int, default=128, help="images = captions of the training step")
    ap.add_argument("--buckets", type=int, default=0, help="caption length groups of the block training step "
                                                          "(0 = one per distinct length; see SGRAFModel.score_block)")
    ap.add_argument("--out", default="", help="also write the report as JSON here (the SGRAF chapter reads "
                                              "benchmarks/results/sgraf_paper_speed.json)")
    args = ap.parse_args()
    set_cpu_threads(1)
    os.environ.setdefault("XMLIB_PROGRESS", "0")  # no progress bars in the report
    print(f"load average at start: {os.getloadavg()}; torch {torch.__version__}, 1 thread; "
          f"xmlib's large float32 products: {cpu_gemm()}", flush=True)
    peaks: dict[str, float] = {}
    peak = peak_gflops(peaks, rounds=5)
    print("float32 matmul peak (2048^3): " + ", ".join(f"{v:.1f} GFLOP/s ({k})" for k, v in peaks.items()), flush=True)
    enc = make_encoded(args.images, args.captions, args.regions, args.dim)
    ln = enc["lengths"].float()
    print(f"{args.images} images x {args.captions} captions, lengths {int(ln.min())}..{int(ln.max())} tokens "
          f"(mean {ln.mean():.1f}); d={args.dim}, m={args.sim_dim}, K={args.regions}", flush=True)
    report = {"peak_gflops": peak, "load_start": os.getloadavg(), "results": {}, "batch": args.batch,
              "images": args.images, "captions": args.captions}
    for agg in args.aggregators.split(","):
        cfg = resolve_config(Config, PROFILES, "paper", {"aggregator": agg, "embed_size": args.dim,
                                                         "sim_dim": args.sim_dim, "num_regions": args.regions,
                                                         "word_dim": 32, **OFFICIAL_CODE})
        model = make_model(cfg)
        with torch.no_grad():  # global vectors from the model's own pooling, as the released loop recomputes them
            enc["img_glob"] = model.img_enc.pool(enc["regions"])[0]
            enc["txt_glob"] = model.txt_enc.pool(enc["words"], length_mask(enc["lengths"], enc["words"].shape[1]))[0]
        res = {}
        if not args.train_only:  # the evaluation forms
            forms = {
                "official": lambda: official_loop(model, enc),
                "per_caption": lambda: model.score_per_caption(enc["regions"], enc["img_glob"], enc["words"],
                                                               enc["txt_glob"], enc["lengths"]),
                "score_matrix": lambda: score_matrix(model, enc),
            }
            best, outs = {f: float("inf") for f in forms}, {}
            with torch.no_grad():
                for _ in range(args.rounds):
                    peak = peak_gflops(peaks)  # this machine is shared: keep the best peak seen
                    for name, fn in forms.items():
                        t0 = time.perf_counter()
                        outs[name] = fn()
                        best[name] = min(best[name], time.perf_counter() - t0)
                mem = {name: peak_mib(fn) for name, fn in forms.items()}
            flops = useful_flops(cfg, enc["lengths"], args.images, args.regions)
            ref = outs["official"].double()
            for name in forms:
                diff = float((outs[name].double() - ref).abs().max())
                res[name] = {"seconds": best[name], "pairs_per_s": args.images * args.captions / best[name],
                             "useful_gflops": flops / best[name] / 1e9, "of_peak": flops / best[name] / 1e9 / peak,
                             "peak_mib": mem[name], "max_abs_diff_vs_official": diff}
                print(f"{agg} {name:12s}: {best[name]:6.2f} s, {res[name]['pairs_per_s']:8,.0f} pairs/s, "
                      f"{res[name]['useful_gflops']:5.1f} useful GFLOP/s ({100 * res[name]['of_peak']:4.1f}% of peak), "
                      f"+{mem[name]:7.1f} MiB, max |diff| vs official {diff:.1e}", flush=True)
            res["score_matrix_vs_official"] = best["official"] / best["score_matrix"]
            res["score_matrix_vs_per_caption"] = best["per_caption"] / best["score_matrix"]
            res["per_caption_vs_official"] = best["official"] / best["per_caption"]
            print(f"{agg}: score_matrix = {res['score_matrix_vs_official']:.2f}x official, "
                  f"{res['score_matrix_vs_per_caption']:.2f}x per_caption; per_caption = "
                  f"{res['per_caption_vs_official']:.2f}x official", flush=True)
        if args.train_step or args.train_only:
            model.train()
            train = train_forms(model, args.batch, args.regions, args.dim, args.buckets)
            tbest = {f: float("inf") for f in train}
            for _ in range(max(1, args.rounds - 1)):
                for name, fn in train.items():
                    model.zero_grad(set_to_none=True)
                    tbest[name] = min(tbest[name], _timed(fn))
            tmem = {name: peak_mib(fn) for name, fn in train.items()}
            model.eval()
            res["train_step"] = {name: {"seconds": tbest[name], "peak_mib": tmem[name]} for name in train}
            for name in train:
                if name == "per_caption":
                    continue
                print(f"{agg} training step {args.batch}x{args.batch}: {name} {tbest[name]:.2f} s (+{tmem[name]:.0f} MiB), "
                      f"per caption {tbest['per_caption']:.2f} s (+{tmem['per_caption']:.0f} MiB): "
                      f"{tbest['per_caption'] / tbest[name]:.2f}x faster, "
                      f"{tmem[name] / tmem['per_caption']:.2f} of the memory", flush=True)
        report["results"][agg] = res
    report["load_end"] = os.getloadavg()
    # one yardstick for every fraction: the best peak of the whole run (the lines above printed each one
    # against the best peak known when it was measured)
    peak = report["peak_gflops"] = peak_gflops(peaks)
    report["peak_gflops_by_library"], report["cpu_gemm"] = dict(peaks), cpu_gemm()
    for agg, res in report["results"].items():
        for name, form in res.items():
            if isinstance(form, dict) and "useful_gflops" in form:
                form["of_peak"] = form["useful_gflops"] / peak
                print(f"{agg} {name:12s}: {100 * form['of_peak']:4.1f}% of the run's best peak ({peak:.1f} GFLOP/s)")
    print(f"load average at end: {report['load_end']}")
    report["command"] = "python benchmarks/sgraf_paper_speed.py " + " ".join(sys.argv[1:])
    report["machine"] = f"{os.cpu_count()} cores; torch {torch.__version__}; 1 thread"
    print(json.dumps(report, default=float))
    if args.out:
        atomic_write_json(args.out, json.loads(json.dumps(report, default=float)))


if __name__ == "__main__":
    main()
