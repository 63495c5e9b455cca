"""SGRAF scoring speed: the batched images × captions block against the official per-caption loop.

Both forms score the same random inputs with the same (random) model and must agree; the script
prints pairs per second of each and their ratio. Optionally it also times one training step
(B × B pairs, forward + backward + Adam) and the full N_img × 5·N_img evaluation matrix (encoding
included), at the book's default sizes unless told otherwise.

    python benchmarks/sgraf_batched_vs_loop.py                       # SGR and SAF, 100 × 500 pairs
    python benchmarks/sgraf_batched_vs_loop.py --train-step --full-eval
    python benchmarks/sgraf_batched_vs_loop.py --profile paper --regions 36 --images 50

Timings depend on the machine and on what else runs on it: compare numbers from one run only.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from xmlib.core.config import resolve_config
from xmlib.core.device import describe_device, get_device, set_cpu_threads, synchronize
from xmlib.sgraf.config import PROFILES, Config
from xmlib.sgraf.loss import contrastive_loss
from xmlib.sgraf.model import SGRAFModel, encode_split, score_matrix


def make_inputs(n_img: int, n_cap: int, regions: int, img_dim: int, vocab: int, min_len: int, max_len: int,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_img, regions, img_dim, generator=g)
    lengths = torch.randint(min_len, max_len + 1, (n_cap,), generator=g)
    tokens = torch.randint(4, vocab, (n_cap, max_len), generator=g) * (torch.arange(max_len)[None] < lengths[:, None])
    return images, tokens, lengths


def timed(fn, device: torch.device, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        synchronize(device)
        t0 = time.perf_counter()
        out = fn()
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_block_vs_loop(model: SGRAFModel, images, tokens, lengths, device, repeat: int, max_bytes: int) -> dict:
    enc = encode_split(model, images.numpy(), tokens, lengths, device=device)
    n_pairs = images.shape[0] * tokens.shape[0]
    with torch.no_grad():
        t_loop, loop = timed(lambda: model.score_per_caption(enc["regions"], enc["img_glob"], enc["words"],
                                                             enc["txt_glob"], enc["lengths"]), device, repeat)
        t_block, block = timed(lambda: score_matrix(model, enc, max_bytes=max_bytes), device, repeat)
    diff = float((loop.float().cpu() - block).abs().max())
    torch.testing.assert_close(block, loop.float().cpu(), rtol=1e-4, atol=1e-5)
    return {"pairs": n_pairs, "loop_pairs_per_s": n_pairs / t_loop, "block_pairs_per_s": n_pairs / t_block,
            "speedup": t_loop / t_block, "max_abs_diff": diff}


def bench_train_step(model: SGRAFModel, cfg: Config, device, repeat: int, min_len: int, max_len: int) -> dict:
    b = cfg.batch_size
    images, tokens, lengths = make_inputs(b, b, cfg.num_regions, cfg.img_dim, 1000, min_len, max_len, seed=1)
    images, tokens, lengths = images.to(device), tokens.to(device), lengths.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = contrastive_loss(model(images, tokens, lengths), cfg.margin, cfg.max_violation)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        return loss

    step()  # warm-up
    t, _ = timed(step, device, repeat)
    model.eval()
    return {"batch": b, "pairs": b * b, "seconds_per_step": t}


def bench_full_eval(model: SGRAFModel, cfg: Config, n_img: int, device, min_len: int, max_len: int) -> dict:
    images, tokens, lengths = make_inputs(n_img, 5 * n_img, cfg.num_regions, cfg.img_dim, 1000, min_len, max_len, seed=2)
    synchronize(device)
    t0 = time.perf_counter()
    enc = encode_split(model, images.numpy(), tokens, lengths, device=device)
    scores = score_matrix(model, enc, max_bytes=cfg.eval_mib * 2**20)
    synchronize(device)
    sec = time.perf_counter() - t0
    return {"images": n_img, "captions": 5 * n_img, "seconds": sec, "pairs_per_s": scores.numel() / sec}


def main() -> None:
    ap = argparse.ArgumentParser(description="SGRAF batched block scoring vs the per-caption loop")
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES))
    ap.add_argument("--aggregators", default="sgr,saf")
    ap.add_argument("--images", type=int, default=100, help="images in the block-vs-loop comparison")
    ap.add_argument("--captions", type=int, default=500, help="captions in the block-vs-loop comparison")
    ap.add_argument("--regions", type=int, default=None, help="K (default: the profile's num_regions)")
    ap.add_argument("--min-len", type=int, default=3, help="shortest caption in tokens, <start>/<end> included")
    ap.add_argument("--max-len", type=int, default=9, help="longest caption (our open captions: mean ≈ 5.5 tokens)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--no-loop", action="store_true", help="skip the block-vs-loop comparison")
    ap.add_argument("--train-step", action="store_true", help="also time one training step (batch_size² pairs)")
    ap.add_argument("--full-eval", type=int, nargs="?", const=1000, default=0,
                    help="also time the full N × 5N evaluation (default N = 1000)")
    args = ap.parse_args()
    overrides = {} if args.regions is None else {"num_regions": args.regions}
    base = resolve_config(Config, PROFILES, args.profile, overrides)
    device = get_device()
    set_cpu_threads(args.threads, device)
    print(f"device {describe_device(device)}; profile {args.profile}: d={base.embed_size}, m={base.sim_dim}, "
          f"K={base.num_regions}, D={base.img_dim}, captions {args.min_len}..{args.max_len} tokens")
    results = {}
    for agg in args.aggregators.split(","):
        cfg = base.replace(aggregator=agg)
        torch.manual_seed(0)
        model = SGRAFModel(cfg.model(), 1000).to(device).eval()
        res = {}
        if not args.no_loop:
            images, tokens, lengths = make_inputs(args.images, args.captions, cfg.num_regions, cfg.img_dim, 1000,
                                                  args.min_len, args.max_len)
            r = res["block_vs_loop"] = bench_block_vs_loop(model, images, tokens, lengths, device, args.repeat,
                                                           cfg.eval_mib * 2**20)
            print(f"{agg}: loop {r['loop_pairs_per_s']:,.0f} pairs/s, block {r['block_pairs_per_s']:,.0f} pairs/s, "
                  f"ratio {r['speedup']:.2f}x (max |diff| {r['max_abs_diff']:.1e})", flush=True)
        if args.train_step:
            res["train_step"] = bench_train_step(model, cfg, device, args.repeat, args.min_len, args.max_len)
            print(f"{agg}: one training step ({cfg.batch_size}x{cfg.batch_size} pairs) "
                  f"{res['train_step']['seconds_per_step']:.2f} s", flush=True)
        if args.full_eval:
            res["full_eval"] = bench_full_eval(model, cfg, args.full_eval, device, args.min_len, args.max_len)
            f = res["full_eval"]
            print(f"{agg}: full {f['images']}x{f['captions']} evaluation {f['seconds']:.1f} s "
                  f"({f['pairs_per_s']:,.0f} pairs/s)", flush=True)
        results[agg] = res
    print(json.dumps({"device": describe_device(device), "cpu_threads": torch.get_num_threads(),
                      "config": {k: getattr(base, k) for k in ("embed_size", "sim_dim", "num_regions", "img_dim")},
                      "results": results}, default=float))


if __name__ == "__main__":
    main()
