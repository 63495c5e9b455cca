"""Data command line.

- ``python -m xmlib.data prepare --profile smoke|default [--only NAME ...] [--seed S] [--force]``: fetch
  the pinned assets, then build the three benchmarks (clipart, emoji, captions) of that profile.
  Idempotent: a second run only checks (``--force`` rebuilds).
- ``python -m xmlib.data fetch [NAME ...]``: fetch the pinned open assets into the cache.
- ``python -m xmlib.data list``: show each asset and whether it is fetched.
- ``python -m xmlib.data synth --like f30k|coco|mediaeval|deepranking --out DIR [--scale F] [--seed N]``:
  paper-shaped synthetic data in the papers' formats (:mod:`xmlib.data.synth`).
"""

from __future__ import annotations

import argparse
import sys
import time

BENCHMARKS = ("clipart", "emoji", "captions")


def prepare(profile: str, seed: int = 0, benchmarks: tuple[str, ...] = BENCHMARKS, *,
            force: bool = False) -> dict[str, float]:
    """Fetch the assets, verify them and the cached features in full and build ``benchmarks`` for ``profile`` (``paper`` builds ``default``: the open
    data holds no more); return seconds per step."""
    import importlib

    from xmlib.core.manifest import remembering
    from xmlib.data import assets, features

    timings: dict[str, float] = {}
    with remembering():  # full checks hash only the files written since they last passed
        t0 = time.perf_counter()
        assets.fetch_all(verify=True)  # every extracted file against its sha256; a changed asset is extracted again
        timings["fetch"] = time.perf_counter() - t0
        t = time.perf_counter()
        features.verify_cache(full=True)  # every cached feature file against its sha256; bad ones are deleted
        from xmlib.data.benchmarks._build import verify_builds

        verify_builds(full=True)  # every built benchmark's files against their sha256; a bad build is built again
        timings["verify"] = time.perf_counter() - t
    build_profile = "smoke" if profile == "smoke" else "default"
    for name in benchmarks:
        module = importlib.import_module(f"xmlib.data.benchmarks.{name}")
        t = time.perf_counter()
        path = module.build(build_profile, seed=seed, force=force)
        timings[name] = time.perf_counter() - t
        print(f"[xmlib.data] {name:9s} {build_profile:8s} {timings[name]:7.1f} s  {path}", flush=True)
    return timings


def main(argv: list[str] | None = None) -> int:
    from xmlib.data import assets

    parser = argparse.ArgumentParser(prog="python -m xmlib.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_prep = sub.add_parser("prepare", help="fetch the assets and build the three benchmarks of a profile")
    p_prep.add_argument("--profile", default="default", choices=("smoke", "default", "paper"),
                        help="smoke subsets, or the full benchmarks (default and paper)")
    p_prep.add_argument("--seed", type=int, default=0)
    p_prep.add_argument("--only", nargs="*", choices=BENCHMARKS, help="build only these benchmarks")
    p_prep.add_argument("--force", action="store_true", help="rebuild even when a build is up to date")
    p_fetch = sub.add_parser("fetch", help="download, verify and extract assets (all by default)")
    p_fetch.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(assets.ASSETS)}")
    sub.add_parser("list", help="list the assets and whether each is fetched")
    p_synth = sub.add_parser("synth", help="write paper-shaped synthetic data in a paper's on-disk format")
    p_synth.add_argument("--like", required=True, choices=("f30k", "coco", "mediaeval", "deepranking"))
    p_synth.add_argument("--out", required=True, help="folder to write (created if missing)")
    p_synth.add_argument("--scale", type=float, default=1.0, help="multiply every count (0 < F <= 1; 0.01 for CI)")
    p_synth.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "synth":
        from xmlib.data.synth import synth

        try:
            out = synth(args.like, args.out, scale=args.scale, seed=args.seed)
        except ValueError as err:
            parser.error(str(err))
        print(f"[xmlib.data] synth {args.like} (scale {args.scale:g}, seed {args.seed}) written to {out}")
        return 0
    if args.cmd == "list":
        for name, a in assets.ASSETS.items():
            state = "fetched" if assets.is_fetched(name) else "missing"
            print(f"{name:16s} {state:8s} {a.spec:45s} {a.licence}")
        return 0
    t0 = time.perf_counter()
    try:
        if args.cmd == "prepare":
            timings = prepare(args.profile, args.seed, tuple(args.only) if args.only else BENCHMARKS, force=args.force)
            from xmlib.book import timings as book_timings

            for step, seconds in timings.items():  # the build's timing report (python -m xmlib.book.timings)
                book_timings.record(args.profile, "data", step, seconds)
            print(f"[xmlib.data] fetch {timings['fetch']:.1f} s; all done in {time.perf_counter() - t0:.1f} s")
            return 0
        roots = assets.fetch_all(args.names or None)
    except (assets.AssetError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, root in roots.items():
        print(f"{name:16s} {root}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
