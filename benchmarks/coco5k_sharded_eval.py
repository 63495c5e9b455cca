"""COCO 5K-shaped evaluation of SGRAF: the 5,000 × 25,000 score matrix on one process and sharded over
several (``torchrun``, gloo), compared.

Writes a COCO-shaped ``test`` split (5,000 images × 36 regions × 2,048 float32, 25,000 captions; the
synthetic generator of ``python -m xmlib.data synth --like coco``, only this split, 1.5 GB) once under
``--out``, builds one SGR model from the ``paper`` profile (seeded, untrained: equality does not need
training; ``--embed``/``--sim``/``--steps`` shrink its width, and ``--global-only`` keeps only the
global node (Table 3's "global only, no reasoning"), so that 125 M pairs fit in minutes on a CPU: the
rows a rank scores, the gathering and the tiles do not depend on the model), then scores the split

- in one process (``sharded=False``), and
- in ``--world`` processes started by ``torchrun`` (each rank encodes and scores its rows of images
  against every caption, tiles bounded by ``--max-mib``; the rows are gathered on every rank),

and prints the largest difference between the two matrices, whether the R@K of every rank equal those of
the one process, each process's wall time and peak RSS, and the load. The JSON result goes to ``--json``.

    python benchmarks/coco5k_sharded_eval.py                       # 5,000 images, 2 ranks
    python benchmarks/coco5k_sharded_eval.py --images 50 --out /tmp/c  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from xmlib.core import distributed
from xmlib.core.config import resolve_config
from xmlib.core.device import set_cpu_threads
from xmlib.metrics.retrieval import retrieval_metrics
from xmlib.sgraf.config import PROFILES, Config
from xmlib.sgraf.train import init_model, load_precomp, score_split


def write_test_split(out: Path, n_images: int, seed: int = 0) -> Path:
    """The COCO-shaped ``test`` split and a vocabulary of its words (once; kept for the next run)."""
    from xmlib.data import synth
    from xmlib.data.formats.vocab import SPECIAL_TOKENS, Vocabulary, save_vocab

    shape = synth.SHAPES["coco"]
    vocab_path = out / shape.vocab_name
    if vocab_path.is_file():
        return vocab_path
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter = synth._write_precomp_split(out, "test", 2, n_images, shape, seed,
                                                 synth.concept_patterns(seed, shape.dim), synth.concept_words())
    save_vocab(Vocabulary(SPECIAL_TOKENS + tuple(sorted(w for w in counts if w not in SPECIAL_TOKENS))), vocab_path)
    return vocab_path


def score(args: argparse.Namespace, sharded: bool) -> dict:
    from xmlib.data.formats.vocab import load_vocab

    set_cpu_threads(1, torch.device("cpu"))
    vocab = load_vocab(args.out / "coco_precomp_vocab.json")
    changes = {"embed_size": args.embed, "sim_dim": args.sim, "sgr_steps": args.steps, "aggregator": "sgr"}
    if args.global_only:
        changes.update(use_local=False, sgr_steps=0)
    cfg = resolve_config(Config, PROFILES, "paper", changes)
    model = init_model(cfg, len(vocab), torch.device("cpu")).eval()
    data = load_precomp(args.out, "test", vocab, max_words=cfg.max_words)  # memory-mapped features
    t0 = time.perf_counter()
    scores = score_split(model, data, max_bytes=args.max_mib * 2**20, sharded=sharded)
    seconds = time.perf_counter() - t0
    return {"scores": scores, "metrics": retrieval_metrics(scores, data.captions_per_image), "seconds": seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rank": distributed.rank(), "world": distributed.world_size()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/xmlib-coco5k"), help="folder of the test split")
    ap.add_argument("--images", type=int, default=5000, help="test images (5 captions each)")
    ap.add_argument("--world", type=int, default=2, help="processes of the sharded run")
    ap.add_argument("--embed", type=int, default=32, help="joint space d (paper: 1024)")
    ap.add_argument("--sim", type=int, default=8, help="similarity vectors m (paper: 256)")
    ap.add_argument("--steps", type=int, default=1, help="SGR steps (paper: 3)")
    ap.add_argument("--global-only", action="store_true", help="the global node only, no reasoning (fast)")
    ap.add_argument("--max-mib", type=int, default=64, help="a tile's intermediates, MiB (max_bytes)")
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    ap.add_argument("--rank-out", type=Path, help=argparse.SUPPRESS)  # set for the torchrun children
    args = ap.parse_args()
    if args.rank_out is not None:  # one rank of the sharded run
        distributed.init()
        try:
            got = score(args, sharded=True)
        finally:
            distributed.shutdown()
        got["scores"] = got["scores"].numpy() if got["rank"] == 0 else None
        if got["rank"] == 0:
            np.save(args.rank_out / "sharded.npy", got.pop("scores"), allow_pickle=False)
        else:
            got.pop("scores")
        (args.rank_out / f"rank{got['rank']}.json").write_text(json.dumps(got))
        return
    load0 = os.getloadavg()
    write_test_split(args.out, args.images)
    work = args.out / "ranks"
    work.mkdir(exist_ok=True)
    for f in work.glob("*"):
        f.unlink()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.world}", __file__,
           "--out", str(args.out), "--embed", str(args.embed), "--sim", str(args.sim), "--steps", str(args.steps),
           "--max-mib", str(args.max_mib), "--rank-out", str(work), *(["--global-only"] if args.global_only else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XMLIB_DEVICE": "cpu", "XMLIB_PROGRESS": "0"}
    t0 = time.perf_counter()
    ranks_run = subprocess.Popen(cmd, env=env)  # the ranks, while this process scores the whole matrix alone
    one = score(args, sharded=False)
    if ranks_run.wait() != 0:
        raise SystemExit(f"the sharded run failed (exit {ranks_run.returncode}): {' '.join(cmd)}")
    sharded_wall = time.perf_counter() - t0
    sharded = torch.from_numpy(np.load(work / "sharded.npy", allow_pickle=False))
    ranks = [json.loads((work / f"rank{r}.json").read_text()) for r in range(args.world)]
    diff = float((sharded - one["scores"]).abs().max())
    same = all(r["metrics"] == one["metrics"] for r in ranks)
    result = {
        "command": " ".join(["python", "benchmarks/coco5k_sharded_eval.py", *sys.argv[1:]]),
        "shape": list(one["scores"].shape),
        "model": {"embed_size": args.embed, "sim_dim": args.sim, "sgr_steps": 0 if args.global_only else args.steps,
                  "use_local": not args.global_only},
        "max_mib": args.max_mib, "max_abs_diff": diff, "metrics_identical_on_every_rank": same,
        "rsum": one["metrics"]["rsum"],
        "one_process": {"seconds": round(one["seconds"], 1), "peak_rss_mib": round(one["peak_rss_mib"])},
        "ranks": [{"rank": r["rank"], "seconds": round(r["seconds"], 1), "peak_rss_mib": round(r["peak_rss_mib"])}
                  for r in ranks],
        "wall_s_both_runs_side_by_side": round(sharded_wall, 1), "load_start": load0, "load_end": os.getloadavg(),
        "machine": f"{os.cpu_count()} cores; torch {torch.__version__}; 1 thread per process",
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if diff > 1e-6 or not same:
        raise SystemExit(f"the sharded matrix differs from one process: max |diff| {diff:.3g}, R@K identical: {same}")


if __name__ == "__main__":
    main()
