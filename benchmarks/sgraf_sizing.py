"""Sizing the SGRAF chapter's CPU profile: train one model and print its dev rSum per epoch.

The chapter's budget admonition quotes dev numbers measured with this script (never test numbers:
the test split is not read). Each run trains the ``default`` profile with the given overrides on the
open captions benchmark (built with ``python -m xmlib.data prepare --profile default``).

    python benchmarks/sgraf_sizing.py                                     # the profile as it is
    python benchmarks/sgraf_sizing.py --set epochs=14 --set lr_step=11
    python benchmarks/sgraf_sizing.py --set max_violation=True --set warmup_epochs=2 --set epochs=7
    python benchmarks/sgraf_sizing.py --vocab-threshold 4                 # SCAN's vocabulary threshold

Prints one JSON line: the overrides, vocabulary size, dev rSum per epoch, the best epoch and the
training time in seconds. Measured on 2 cores with one torch thread per run.
"""

from __future__ import annotations

import argparse
import ast
import json
import time

from xmlib.core.config import resolve_config
from xmlib.core.device import set_cpu_threads
from xmlib.data.benchmarks import captions
from xmlib.data.formats.scan_precomp import read_split
from xmlib.data.formats.vocab import load_vocab
from xmlib.sgraf.config import PROFILES, Config
from xmlib.sgraf.train import load_precomp, train_model


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as aggregator=saf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES))
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a Config override")
    ap.add_argument("--vocab-threshold", type=int, default=0,
                    help="rebuild the vocabulary from the train captions with this count threshold, as the "
                         "benchmark builder does (0 = the benchmark's vocab.json)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    overrides = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set needs NAME=VALUE, got {item!r}")
        overrides[name] = _value(value)
    set_cpu_threads(args.threads)
    cfg = resolve_config(Config, PROFILES, args.profile, overrides)
    data_dir = captions.build("smoke" if args.profile == "smoke" else "default")
    vocab = load_vocab(data_dir / "vocab.json")
    if args.vocab_threshold:
        vocab = captions.train_vocabulary(read_split(data_dir, "train").captions, args.vocab_threshold)
    train = load_precomp(data_dir, "train", vocab, max_words=cfg.max_words)
    dev = load_precomp(data_dir, "dev", vocab, max_words=cfg.max_words)
    t0 = time.perf_counter()
    _, res = train_model(cfg, train, dev, len(vocab))
    print(json.dumps({"overrides": overrides, "vocab_threshold": args.vocab_threshold or "benchmark",
                      "vocab": len(vocab), "dev_images": min(cfg.dev_images or dev.n_images, dev.n_images),
                      "dev_rsum_per_epoch": [round(x, 1) for x in res.column("rsum")],
                      "best_epoch": res.best_epoch + 1, "best_dev_rsum": round(res.best_score, 1),
                      "train_seconds": round(time.perf_counter() - t0)}))


if __name__ == "__main__":
    main()
