"""Peak memory of Deep Ranking's streaming input: an image list streamed through the buffered online
sampler (issue 12: memory flat in the number of images, O(categories x buffer)).

    python benchmarks/deepranking_stream.py [--images 100000 1000000] [--categories 1000] [--capacity 64]

For each count, synthetic Deep Ranking data (``xmlib.data.synth.write_deepranking``: ``image_list.tsv``
+ memory-mapped ``golden.npy``) is written in a child process, then a fresh child process streams every
image of the list (:class:`xmlib.data.image_stream.ImageStream`) into a
:class:`~xmlib.deepranking.sampler.BufferedTripletSampler` (through its public ``offer``/``sample``
only) while drawing triplet batches (:func:`~xmlib.data.image_stream.stream_batches`), and reports its
peak RSS (``ru_maxrss``), its RSS right after the imports, the buffered items and the time. The files
are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1024**2


def _rss_now() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    return float("nan")


def _stream(root: str, capacity: int, batch_size: int) -> None:
    import numpy as np

    from xmlib.data.image_stream import GoldenRelevance, ImageStream, stream_batches
    from xmlib.deepranking.sampler import BufferedTripletSampler

    base = _rss_now()
    rel = GoldenRelevance(root)
    n = len(rel)
    sampler = BufferedTripletSampler(rel, capacity=capacity, t_p=1.0, t_r=0.05, rescale=True, seed=0)
    steps = 50
    per_step = -(-n // steps)  # the whole stream goes by over the steps
    t = time.perf_counter()
    drawn = 0
    for batch in stream_batches(sampler, ImageStream(root), steps=steps, batch_size=batch_size,
                                offer_per_step=per_step, rng=np.random.default_rng(0), warmup=10 * capacity):
        drawn += len(batch.query)
    secs = time.perf_counter() - t
    print(json.dumps({"images": n, "streamed": sampler.seen, "categories": len(sampler.buffers), "capacity": capacity,
                      "buffered_items": sampler.memory_items(), "triplets_drawn": drawn, "seconds": round(secs, 1),
                      "images_per_s": round(sampler.seen / secs), "rss_after_imports_mb": round(base),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--categories", type=int, default=1000)
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--stream", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stream:
        _stream(args.stream, args.capacity, args.batch_size)
        return 0
    for n in args.images:
        folder = tempfile.mkdtemp(prefix=f"xmlib_dr_stream_{n}_")
        try:
            code = ("import sys; from xmlib.data.synth import write_deepranking; "
                    f"write_deepranking(sys.argv[1], n_images={n}, n_categories={args.categories})")
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code, folder], check=True)
            print(json.dumps({"images": n, "write_seconds": round(time.perf_counter() - t, 1)}), flush=True)
            subprocess.run([sys.executable, __file__, "--stream", folder, "--capacity", str(args.capacity),
                            "--batch-size", str(args.batch_size)], check=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
