"""GPU check of the chapters' ``paper`` profiles on paper-shaped random tensors (issue 12).

For each profile it runs ``--steps`` training steps (after two warm-up steps) in float32 and under bf16
autocast, from the same weights and the same batch, and prints:

- ``step_s``: median seconds of one training step (forward, loss, backward, optimiser);
- ``eval_per_s``: SGRAF: image–caption pairs scored per second by :func:`xmlib.sgraf.model.score_matrix`
  over an ``--eval-images`` × 5·``--eval-images`` block; Deep Ranking: images embedded per second;
- ``peak_gib``: the most GPU memory torch held during the training steps;
- AMP agreement: the training loss after the steps in each precision, and, for the float32-trained
  weights scored in both precisions, the largest and mean |bf16 − float32| score (SGRAF) or embedding
  (Deep Ranking) difference and the fraction of rankings that agree (each image's best caption; each
  triplet's order D⁺ < D⁻).

Profiles: ``sgraf-sgr`` and ``sgraf-saf`` (Flickr30K shapes: a global batch of 128 pairs, K = 36 regions
of D = 2048, captions of Flickr30K's lengths, an 8,481-word vocabulary; d = 1024, m = 256) and
``deepranking`` (224 px, EfficientNet-Lite0 fine-tuned (random weights: only shapes matter here), a 4,096-d
embedding, 32 triplets = 96 images per step). DCMM's models are small (a few thousand parameters per
query list) and are not checked: they train on a CPU, without DDP.

On a machine without CUDA it says so and exits 0. ``--device cpu --tiny`` runs the same code on small
shapes on the CPU (a check of the script, not of a GPU; its numbers mean nothing for a GPU run).

    python benchmarks/gpu_check.py                       # every profile, 20 steps each
    python benchmarks/gpu_check.py --profiles sgraf-sgr --steps 50 --eval-images 1000 --json out.json
    python benchmarks/gpu_check.py --device cpu --tiny --steps 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from xmlib.core.config import resolve_config
from xmlib.core.device import accelerator_available, autocast, describe_device, get_device, peak_memory, reset_peak_memory, set_tf32, synchronize
from xmlib.core.io import atomic_write_json

PROFILE_NAMES = ("sgraf-sgr", "sgraf-saf", "deepranking")
F30K_VOCAB = 8481  # words in SCAN's Flickr30K vocabulary
TINY_SGRAF = {"img_dim": 64, "embed_size": 32, "sim_dim": 16, "word_dim": 16, "batch_size": 8}
TINY_DR = {"image_size": 64, "embed_dim": 32, "shallow_channels": 8, "batch_size": 4}


def _timed_steps(step, steps: int, device: torch.device) -> tuple[list[float], list[float]]:
    """Two warm-up steps, then ``steps`` timed ones: (seconds of each, loss of each)."""
    for _ in range(2):
        step()
    synchronize(device)
    reset_peak_memory(device)
    times, losses = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    return times, losses


def _gib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**30, 3)


def sgraf_check(aggregator: str, args, device: torch.device) -> dict:
    from xmlib.sgraf.config import PROFILES, Config
    from xmlib.sgraf.loss import contrastive_loss
    from xmlib.sgraf.model import SGRAFModel, encode_split, score_matrix

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sgraf_paper_speed import caption_lengths  # Flickr30K-shaped caption lengths

    cfg = resolve_config(Config, PROFILES, "paper", {"aggregator": aggregator, **(TINY_SGRAF if args.tiny else {})})
    k, vocab = (6, 50) if args.tiny else (cfg.num_regions, F30K_VOCAB)
    gen = torch.Generator().manual_seed(0)

    def captions(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = caption_lengths(n, seed=n)
        tokens = torch.randint(4, vocab, (n, int(lengths.max())), generator=gen)
        return tokens * (torch.arange(tokens.shape[1])[None] < lengths[:, None]), lengths  # (n, L) padded with 0

    b = cfg.batch_size
    images = torch.rand(b, k, cfg.img_dim, generator=gen).to(device)  # (B, K, D): BUTD features are >= 0
    tokens, lengths = captions(b)
    tokens, lengths = tokens.to(device), lengths.to(device)
    n_eval = args.eval_images
    eval_images = torch.rand(n_eval, k, cfg.img_dim, generator=gen)
    eval_tokens, eval_lengths = captions(5 * n_eval)

    def train(amp: str) -> tuple[SGRAFModel, dict]:
        torch.manual_seed(0)
        model = SGRAFModel(cfg.model(), vocab).to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

        def step() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            with autocast(device, amp):
                scores = model(images, tokens, lengths)  # (B, B)
            loss = contrastive_loss(scores.float(), cfg.margin, True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            return loss.detach()

        times, losses = _timed_steps(step, args.steps, device)
        return model, {"step_s": statistics.median(times), "peak_gib": _gib(peak_memory(device)), "final_loss": losses[-1]}

    def score(model: SGRAFModel, amp: str) -> tuple[torch.Tensor, float]:
        synchronize(device)
        t0 = time.perf_counter()
        with autocast(device, amp):
            enc = encode_split(model, eval_images, eval_tokens, eval_lengths, device=device)
            s = score_matrix(model, enc, max_bytes=args.eval_mib * 2**20)  # (n, 5n) float32
        synchronize(device)
        return s, s.numel() / (time.perf_counter() - t0)

    model, fp32 = train("off")
    _, bf16 = train("bf16")
    s32, rate32 = score(model, "off")
    s16, rate16 = score(model, "bf16")
    diff = (s16 - s32).abs()
    return {"fp32": {**fp32, "eval_per_s": rate32}, "bf16": {**bf16, "eval_per_s": rate16},
            "agreement": {"max_abs_score_diff": float(diff.max()), "mean_abs_score_diff": float(diff.mean()),
                          "same_best_caption": float((s16.argmax(1) == s32.argmax(1)).float().mean()),
                          "final_loss_fp32": fp32["final_loss"], "final_loss_bf16": bf16["final_loss"]},
            "shapes": {"batch": b, "regions": k, "img_dim": cfg.img_dim, "embed_size": cfg.embed_size,
                       "sim_dim": cfg.sim_dim, "eval_pairs": int(s32.numel())}}


def deepranking_check(args, device: torch.device) -> dict:
    from xmlib.deepranking.config import PROFILES, Config
    from xmlib.deepranking.loss import triplet_hinge
    from xmlib.deepranking.network import build_network, efficientnet_lite0_backbone, tiny_cnn
    from xmlib.deepranking.training import make_optimizer

    cfg = resolve_config(Config, PROFILES, "paper", TINY_DR if args.tiny else {})
    b, side = cfg.batch_size, cfg.image_size
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(3 * b, 3, side, side, generator=gen).to(device)  # (3B, 3, S, S): queries, positives, negatives
    eval_images = torch.rand(args.eval_images, 3, side, side, generator=gen)

    def train(amp: str):
        torch.manual_seed(0)
        convnet = tiny_cnn(16) if args.tiny else efficientnet_lite0_backbone(cfg.convnet_image_size, pretrained=False)
        model = build_network(cfg, convnet=convnet).to(device).train()
        opt = make_optimizer(cfg, model)

        def step() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            with autocast(device, amp):
                f = model(images)  # (3B, d)
            f = f.float()
            loss = triplet_hinge(f[:b], f[b:2 * b], f[2 * b:], cfg.gap)
            loss.backward()
            opt.step()
            return loss.detach()

        times, losses = _timed_steps(step, args.steps, device)
        return model, {"step_s": statistics.median(times), "peak_gib": _gib(peak_memory(device)), "final_loss": losses[-1]}

    @torch.no_grad()
    def embed(model, amp: str) -> tuple[torch.Tensor, float]:
        model.eval()
        synchronize(device)
        t0 = time.perf_counter()
        with autocast(device, amp):
            f = torch.cat([model(eval_images[s:s + 64].to(device)).float().cpu() for s in range(0, len(eval_images), 64)])
        synchronize(device)
        return f, len(eval_images) / (time.perf_counter() - t0)

    model, fp32 = train("off")
    _, bf16 = train("bf16")
    f32, rate32 = embed(model, "off")
    f16, rate16 = embed(model, "bf16")
    idx = torch.randint(0, len(f32), (3, 10_000), generator=gen)

    def order(f: torch.Tensor) -> torch.Tensor:  # D(q, p) < D(q, n) for random triplets
        return ((f[idx[0]] - f[idx[1]]) ** 2).sum(1) < ((f[idx[0]] - f[idx[2]]) ** 2).sum(1)

    diff = (f16 - f32).abs()
    return {"fp32": {**fp32, "eval_per_s": rate32}, "bf16": {**bf16, "eval_per_s": rate16},
            "agreement": {"max_abs_embedding_diff": float(diff.max()), "mean_abs_embedding_diff": float(diff.mean()),
                          "same_triplet_order": float((order(f16) == order(f32)).float().mean()),
                          "final_loss_fp32": fp32["final_loss"], "final_loss_bf16": bf16["final_loss"]},
            "shapes": {"triplets": b, "image_size": side, "embed_dim": cfg.embed_dim, "eval_images": len(eval_images)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", default=",".join(PROFILE_NAMES), help=f"comma-separated, of {PROFILE_NAMES}")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per profile and precision")
    ap.add_argument("--eval-images", type=int, default=200, help="images of the evaluation block (SGRAF: × 5 captions)")
    ap.add_argument("--eval-mib", type=int, default=1024, help="SGRAF score_matrix's max_bytes, in MiB")
    ap.add_argument("--device", default=None, help="default: CUDA when present (xmlib.core.device.get_device)")
    ap.add_argument("--tiny", action="store_true", help="small shapes (a check of the script on a CPU)")
    ap.add_argument("--tf32", action="store_true", help="TF32 matrix products in the float32 runs")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    names = [p.strip() for p in args.profiles.split(",") if p.strip()]
    unknown = sorted(set(names) - set(PROFILE_NAMES))
    if unknown or args.steps < 1 or args.eval_images < 2:
        ap.error(f"unknown profiles {unknown} (choose from {PROFILE_NAMES})" if unknown else "--steps >= 1 and --eval-images >= 2")
    if args.device is None and not accelerator_available():
        print("gpu_check: this machine has no CUDA device; nothing to check (run it on a GPU machine, or "
              "`--device cpu --tiny` to check the script itself)")
        return 0
    device = get_device(args.device)
    set_tf32(args.tf32, device)
    results = {"device": describe_device(device), "torch": torch.__version__, "steps": args.steps, "tf32": args.tf32,
               "tiny": args.tiny, "profiles": {}}
    for name in names:
        t0 = time.perf_counter()
        out = deepranking_check(args, device) if name == "deepranking" else sgraf_check(name.split("-")[1], args, device)
        out["seconds"] = round(time.perf_counter() - t0, 1)
        results["profiles"][name] = out
        print(json.dumps({name: out}), flush=True)
    print(f"\n{'profile':<12} {'prec':<5} {'step s':>9} {'eval /s':>11} {'peak GiB':>9} {'final loss':>11}")
    for name, out in results["profiles"].items():
        for prec in ("fp32", "bf16"):
            r = out[prec]
            peak = "n/a" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
            print(f"{name:<12} {prec:<5} {r['step_s']:>9.4f} {r['eval_per_s']:>11.0f} {peak:>9} {r['final_loss']:>11.4f}")
        print(f"{'':<12} agreement {json.dumps({k: round(v, 6) for k, v in out['agreement'].items()})}")
    if args.json:
        atomic_write_json(args.json, results)
    return 0 if all(np.isfinite([out[p]["final_loss"] for out in results["profiles"].values() for p in ("fp32", "bf16")])) else 1


if __name__ == "__main__":
    sys.exit(main())
