"""How long each stage of the last book build took: the data (per benchmark), each notebook, Sphinx.

    python -m xmlib.book.timings report --profile default    # print the last build's times
    python -m xmlib.book.timings page --profile default      # write the table the reproducing page shows
    python -m xmlib.book.timings time --profile default --stage sphinx --step "jupyter-book build" -- CMD ...
    python -m xmlib.book.timings probe --profile default     # measure this machine's speed into the record

``make book`` (and ``make test`` for ``smoke``) records every stage as it runs: ``python -m xmlib.data
prepare`` its fetch, verification and each benchmark; the notebook runner each notebook (``ran`` with
its time, or ``unchanged`` with the time of the run it kept); ``time`` wraps the Sphinx build. The
record is ``_build/timings/<profile>.json``, one entry per step, replaced when the step runs again, so
it always describes the last build of each step. ``page`` writes ``_build/timings/page.md``, which
the reproducing page includes (the Sphinx time shown there is the previous build's: the page is
written before Sphinx runs).

``time --stamp FILE`` skips its command when nothing it reads changed: the stamp (written in the
output folder after a successful run) holds a digest of every file of the project tree (the build,
run, environment and cache folders left out; :func:`tree_digest`) and of the command line. ``make
book`` uses it for Sphinx, so a second build with nothing changed does not render the book again; the
pages then keep the timing table of the build that rendered them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from xmlib.core.io import atomic_write_json, atomic_write_text, file_lock
from xmlib.core.paths import project_root

STAGES = ("data", "notebooks", "sphinx")
PAGE = "page.md"


def record_path(profile: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "_build" / "timings" / f"{profile}.json"


def load(profile: str, root: Path | None = None) -> dict:
    """The record of ``profile`` (empty when nothing was built yet; an unreadable one counts as empty)."""
    path = record_path(profile, root)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"profile": profile, "steps": {}}
    return doc if isinstance(doc.get("steps"), dict) else {"profile": profile, "steps": {}}


def record(profile: str, stage: str, step: str, seconds: float, *, status: str = "ran", kept: float | None = None,
           beside: int = 0, root: Path | None = None) -> None:
    """Store one step's time: ``status`` ``ran`` (``seconds`` this build), or ``unchanged`` with ``kept``,
    the seconds of the earlier run whose output this build reused. ``beside``: how many other steps
    the build let run at the same time (the notebook runner's ``--jobs`` minus one). Safe when several
    processes record at once (a lock around the read and the write)."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
    entry = {"stage": stage, "step": step, "seconds": round(float(seconds), 1), "status": status,
             "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    if kept is not None:
        entry["kept_seconds"] = round(float(kept), 1)
    if beside:
        entry["beside"] = int(beside)
    _update(profile, root, lambda doc: doc["steps"].__setitem__(f"{stage}/{step}", entry))


def _update(profile: str, root: Path | None, change) -> None:
    """Apply ``change(doc)`` to the record of ``profile`` and write it back, under the record's lock (several
    processes record at once)."""
    path = record_path(profile, root)
    with file_lock(path.with_name(f".{path.name}.lock")):
        doc = load(profile, root)
        doc["profile"] = profile
        change(doc)
        atomic_write_json(path, doc)


def probe(profile: str, root: Path | None = None) -> dict:
    """Measure how fast this machine runs now and keep it with the record: its core count and one core's
    float32 matrix-product speed (:func:`xmlib.core.device.matmul_gflops`, about a second). The notebook
    runner calls it after a build that ran notebooks, so every timing table says how fast its machine
    was: on a shared machine that speed moves from hour to hour, and the times with it."""
    from xmlib.core.device import matmul_gflops  # torch: only when a build ran something

    machine = {"cores": os.cpu_count(), "matmul_gflops": round(matmul_gflops(), 1),
               "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    _update(profile, root, lambda doc: doc.__setitem__("machine", machine))
    return machine


def machine_line(profile: str, root: Path | None = None) -> str:
    """One sentence on the machine of the last build (empty when none was measured)."""
    m = load(profile, root).get("machine")
    if not isinstance(m, dict) or "matmul_gflops" not in m:
        return ""
    return (f"Machine: {m.get('cores', '?')} cores; one core multiplied float32 matrices at {m['matmul_gflops']:.1f} "
            f"GFLOP/s, measured at {str(m.get('when', ''))[:16].replace('T', ' ')} UTC, after the notebooks ran. "
            "On a shared machine this speed changes from hour to hour, and the times above change with it, often "
            "by more: training that moves memory more than it multiplies slows more than this product does.")


def wall_seconds(entries: Sequence[dict]) -> dict[str, float]:
    """Wall-clock seconds per stage: the data steps and Sphinx run one after another (their sum); the
    notebooks may run side by side, so theirs is from the first one's start to the last one's end (each
    entry is written when its step ends, ``when``, after ``seconds``)."""
    out: dict[str, float] = {}
    for stage in STAGES:
        stage_entries = [e for e in entries if e.get("stage") == stage]
        if not stage_entries:
            continue
        ran = [e for e in stage_entries if e.get("status") == "ran" and e.get("seconds", 0) > 0]
        if stage != "notebooks" or len(ran) < 2:
            out[stage] = sum(e["seconds"] for e in stage_entries)
            continue
        try:
            ends = [dt.datetime.fromisoformat(e["when"]).timestamp() for e in ran]
        except (KeyError, ValueError):
            out[stage] = sum(e["seconds"] for e in stage_entries)
            continue
        starts = [end - e["seconds"] for end, e in zip(ends, ran)]
        out[stage] = min(sum(e["seconds"] for e in stage_entries), max(ends) - min(starts))
    return out


def rows(profile: str, root: Path | None = None) -> list[dict]:
    """The steps in build order (data, notebooks, Sphinx), each with its stage, step, seconds, status."""
    steps = list(load(profile, root)["steps"].values())
    return sorted(steps, key=lambda e: STAGES.index(e["stage"]) if e.get("stage") in STAGES else len(STAGES))


def minutes(seconds: float) -> str:
    return f"{seconds:,.0f} s ({seconds / 60:.1f} min)" if seconds >= 60 else f"{seconds:.1f} s"


def report(profile: str, root: Path | None = None) -> str:
    """A plain-text table of the last build's steps and the total per stage."""
    entries = rows(profile, root)
    if not entries:
        return f"no build of profile {profile!r} recorded yet ({record_path(profile, root)})"
    lines = [f"time of each stage of the last {profile!r} build:"]
    totals: dict[str, float] = {}
    for e in entries:
        note = e["status"] if e["status"] == "ran" else f"{e['status']} (ran in {e.get('kept_seconds', 0):.1f} s before)"
        lines.append(f"  {e['stage']:9s} {e['step']:28s} {e['seconds']:8.1f} s  {note}")
        totals[e["stage"]] = totals.get(e["stage"], 0.0) + e["seconds"]
    lines.append("  " + ", ".join(f"{stage} {minutes(s)}" for stage, s in totals.items())
                 + f"; total {minutes(sum(totals.values()))}")
    wall = wall_seconds(entries)
    if wall != totals:
        lines.append("  wall clock (notebooks side by side): " + ", ".join(f"{stage} {minutes(s)}" for stage, s in wall.items())
                     + f"; total {minutes(sum(wall.values()))}")
    if machine := machine_line(profile, root):
        lines.append("  " + machine)
    return "\n".join(lines)


def page(profile: str, root: Path | None = None) -> str:
    """The Markdown the reproducing page includes: one row per step of the last build."""
    entries = rows(profile, root)
    if not entries:
        return (f"No build of the `{profile}` profile was recorded on this machine yet: the table fills in after "
                "the first `make book`.\n")
    out = [f"Profile `{profile}`, as recorded by the build of this copy of the book (`python -m xmlib.book.timings "
           f"report --profile {profile}` prints it). A step that was up to date took almost no time; the time "
           "of the run it kept is given beside it. The Sphinx row is the previous build's.", "",
           "| stage | step | seconds | status | when (UTC) |", "|---|---|---:|---|---|"]
    for e in entries:
        status = e["status"] if e["status"] == "ran" else f"{e['status']} (ran in {e.get('kept_seconds', 0):.0f} s)"
        out.append(f"| {e['stage']} | {e['step']} | {e['seconds']:.1f} | {status} | {e['when'][:16].replace('T', ' ')} |")
    total = sum(e["seconds"] for e in entries)
    out.append(f"| **total** | | **{total:.0f}** | {total / 60:.1f} min | |")
    wall = sum(wall_seconds(entries).values())
    if wall < total - 0.5:
        out.append(f"| **wall clock** | notebooks side by side | **{wall:.0f}** | {wall / 60:.1f} min | |")
    if machine := machine_line(profile, root):
        out += ["", machine]
    return "\n".join(out) + "\n"


SKIPPED_DIRS = frozenset({".git", ".venv", "_build", "runs", "__pycache__", ".ipynb_checkpoints", ".pytest_cache",
                          ".ruff_cache", ".hypothesis", "node_modules", ".gl", ".whl"})
"""Folders of the project tree that hold no input of the book: version control, the environment, build
outputs (the timing record and page included), training runs and tool caches."""


def tree_digest(root: Path, extra: Sequence[str] = ()) -> str:
    """sha256 over the relative path and bytes of every file under ``root`` (outside :data:`SKIPPED_DIRS`,
    ``*.egg-info``, ``*.pyc`` and ``*.failed.ipynb``), in sorted order, and the strings ``extra``."""
    h = hashlib.sha256()
    for item in extra:
        h.update(f"extra\0{item}\0".encode())
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        files += [Path(dirpath, f) for f in filenames if not f.endswith((".pyc", ".failed.ipynb"))]
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        if not path.is_file():  # a dangling link or a socket: not an input
            continue
        h.update(f"file\0{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _stamp_matches(stamp: Path, digest: str) -> float | None:
    """The seconds of the stamped run when ``stamp`` holds ``digest`` and its folder still has an
    ``index.html`` (a build that was deleted or never finished does not count), else None."""
    try:
        doc = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("digest") != digest or not (stamp.parent / "index.html").is_file():
        return None
    return float(doc.get("seconds", 0.0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xmlib.book.timings", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("report", "page", "time", "probe"):
        p = sub.add_parser(name)
        p.add_argument("--profile", default="default", choices=("smoke", "default", "paper"))
        if name == "time":
            p.add_argument("--stage", required=True, choices=STAGES)
            p.add_argument("--step", required=True)
            p.add_argument("--stamp", type=Path, help="skip the command when the project tree and the command line are "
                           "as at the run that wrote this stamp (written after a successful run; delete it to force)")
            p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run and time")
    args = parser.parse_args(argv)
    if args.cmd == "report":
        print(report(args.profile))
        return 0
    if args.cmd == "probe":
        m = probe(args.profile)
        print(f"[xmlib.book.timings] this machine: {m['cores']} cores, {m['matmul_gflops']:.1f} GFLOP/s on one core "
              "(float32 matrix product)")
        return 0
    if args.cmd == "page":
        atomic_write_text(record_path(args.profile).with_name(PAGE), page(args.profile))
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("time: give the command after --, e.g. time --stage sphinx --step build -- jupyter-book build .")
    digest = tree_digest(project_root(), [" ".join(command)]) if args.stamp else ""
    if args.stamp and (kept := _stamp_matches(args.stamp, digest)) is not None:
        record(args.profile, args.stage, args.step, 0.0, status="unchanged", kept=kept)
        print(f"[xmlib.book.timings] {args.step}: not run, nothing it reads changed since it wrote {args.stamp} "
              f"(delete that file to run it anyway)", flush=True)
        return 0
    t0 = time.perf_counter()
    rc = subprocess.call(command)
    seconds = time.perf_counter() - t0
    if rc == 0:
        record(args.profile, args.stage, args.step, seconds)
        if args.stamp:
            atomic_write_json(args.stamp, {"digest": digest, "command": command, "seconds": round(seconds, 1)})
    elif args.stamp and args.stamp.exists():
        args.stamp.unlink()  # a failed build leaves its folder half rewritten: the next one runs
    return rc


if __name__ == "__main__":
    sys.exit(main())
