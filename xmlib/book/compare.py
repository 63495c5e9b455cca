"""Set a rerun's tables beside another run's: which verdicts and which numbers differ.

    python -m xmlib.book.compare RUNS_A RUNS_B                  # e.g. /tmp/my-runs runs
    python -m xmlib.book.compare runs/dcmm/smoke-2c1c9c904c /tmp/my-runs/dcmm --rtol 1e-6

Each chapter writes its tables as CSV files into its run folder ``runs/<chapter>/<profile>-<hash>/``
(next to ``run.json``, :mod:`xmlib.core.runinfo`). ``RUNS_A`` and ``RUNS_B`` are each a runs folder
(``runs/``, or what ``XMLIB_RUNS`` pointed at), one chapter's folder or one run folder. The runs of the
two sides are paired by chapter and profile (when a side holds several runs of one chapter and profile,
for instance with other values, its most recent is taken and the other folders are named). For each pair
the command prints the configuration values that differ, the replication table's claims side by side
with their verdicts and effects, then, for every CSV table of the pair (``timings.csv`` aside), the cells that differ. A cell
counts as equal when its text is equal, or when it differs only in numbers that agree within
``--rtol`` / ``--atol`` (so ``0.6117538858501161`` and ``0.6117538858501163`` are the same). The
exit status is 0 when nothing differs, 1 when something does, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

REPLICATION = "replication.csv"
NOT_RESULTS = {"timings.csv"}  # how long each part took: differs between machines, not a result
NUMBER = re.compile(r"[-+−]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    differences: int = 0

    def add(self, line: str, *, differs: bool = False) -> None:
        self.lines.append(line)
        self.differences += int(differs)


def find_runs(path: Path) -> dict[tuple[str, str], list[Path]]:
    """{(chapter, profile): run folders, newest first} under ``path`` (a runs folder, a chapter's folder or
    a run folder: any folder holding ``run.json``)."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder: give a runs folder (e.g. runs/), a chapter's folder or a run folder")
    found: dict[tuple[str, str], list[Path]] = {}
    for record in sorted(path.rglob("run.json")):
        folder = record.parent
        if "cache" in folder.relative_to(path).parts:  # training checkpoints, not tables
            continue
        try:
            doc = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{record}: not a readable run record ({exc}); remove it or rerun that chapter") from exc
        key = (str(doc.get("chapter", folder.parent.name)), str(doc.get("profile", folder.name.split("-")[0])))
        found.setdefault(key, []).append(folder)
    for folders in found.values():
        folders.sort(key=lambda f: (f / "run.json").stat().st_mtime, reverse=True)
    return found


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [row for row in csv.reader(fh)]


def _numbers(text: str) -> tuple[str, list[float]]:
    """The text with its numbers replaced by ``#``, and the numbers."""
    values = [float(m.replace("−", "-").replace(",", "")) for m in NUMBER.findall(text)]
    return NUMBER.sub("#", text), values


def same_cell(a: str, b: str, rtol: float, atol: float) -> bool:
    if a == b:
        return True
    (skel_a, nums_a), (skel_b, nums_b) = _numbers(a), _numbers(b)
    return skel_a == skel_b and len(nums_a) == len(nums_b) and all(
        math.isclose(x, y, rel_tol=rtol, abs_tol=atol) for x, y in zip(nums_a, nums_b))


def _keyed(rows: list[list[str]]) -> dict[str, list[str]]:
    """Rows after the header keyed by their first cell (a repeated key gets ``#2``, ``#3``...)."""
    out: dict[str, list[str]] = {}
    for row in rows[1:]:
        key = row[0] if row else ""
        name, n = key, 1
        while name in out:
            n += 1
            name = f"{key}#{n}"
        out[name] = row
    return out


def compare_table(a: list[list[str]], b: list[list[str]], rtol: float, atol: float) -> list[str]:
    """The differences between two tables, one line each (empty: the same)."""
    header_a, header_b = (a[0] if a else []), (b[0] if b else [])
    if header_a != header_b:
        return [f"columns differ: {header_a} vs {header_b}"]
    rows_a, rows_b = _keyed(a), _keyed(b)
    out = [f"row {k!r} only in A" for k in rows_a if k not in rows_b]
    out += [f"row {k!r} only in B" for k in rows_b if k not in rows_a]
    for key in (k for k in rows_a if k in rows_b):
        ra, rb = rows_a[key], rows_b[key]
        for j in range(1, max(len(ra), len(rb))):
            va, vb = (ra[j] if j < len(ra) else ""), (rb[j] if j < len(rb) else "")
            if not same_cell(va, vb, rtol, atol):
                column = header_a[j] if j < len(header_a) else str(j)
                out.append(f"{key} | {column}: {va or '–'} → {vb or '–'}")
    return out


def compare_replication(a: list[list[str]], b: list[list[str]], rtol: float, atol: float, report: Report) -> None:
    """The claims side by side: verdict and effect of A and B, marked where they differ."""
    header = a[0] if a else []
    if "verdict" not in header or header != (b[0] if b else []):
        report.add(f"  {REPLICATION}: the two tables have different columns; compared cell by cell below")
        return
    verdict, effect = header.index("verdict"), next((i for i, h in enumerate(header) if h.startswith("effect")), None)
    rows_a, rows_b = _keyed(a), _keyed(b)
    changed = [k for k in rows_a if k in rows_b and rows_a[k][verdict] != rows_b[k][verdict]]
    report.add(f"  verdicts: {len(rows_a)} claims in A, {len(rows_b)} in B; {len(changed)} verdict(s) differ",
               differs=bool(changed))
    for key in dict.fromkeys([*rows_a, *rows_b]):
        ra, rb = rows_a.get(key), rows_b.get(key)
        va, vb = (ra[verdict] if ra else "(absent)"), (rb[verdict] if rb else "(absent)")
        ea = ra[effect] if ra and effect is not None else ""
        eb = rb[effect] if rb and effect is not None else ""
        mark = "≠" if va != vb else ("~" if not same_cell(ea, eb, rtol, atol) else "=")
        report.add(f"  {mark} {key[:70]}\n      A: {va:14s} {ea}\n      B: {vb:14s} {eb}", differs=(ra is None or rb is None))


def _config_diff(a: Path, b: Path) -> list[str]:
    try:
        ca = json.loads((a / "run.json").read_text(encoding="utf-8")).get("config", {})
        cb = json.loads((b / "run.json").read_text(encoding="utf-8")).get("config", {})
    except (OSError, ValueError):
        return ["(a run record is unreadable)"]
    return [f"{k}: {ca.get(k, '–')} → {cb.get(k, '–')}" for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)]


def compare_runs(a: Path, b: Path, *, rtol: float = 1e-9, atol: float = 0.0) -> Report:
    """Compare every table of the runs under ``a`` with those under ``b``."""
    runs_a, runs_b = find_runs(a), find_runs(b)
    report = Report()
    if not runs_a or not runs_b:
        empty = a if not runs_a else b
        raise FileNotFoundError(f"{empty} holds no run (no run.json below it): rerun a chapter with "
                                "`python -m xmlib.book.run notebooks/NN.py --profile P`, or give the folder its runs went to")
    for key in sorted(set(runs_a) | set(runs_b)):
        chapter, profile = key
        if key not in runs_a or key not in runs_b:
            report.add(f"{chapter} / {profile}: only in {'A' if key in runs_a else 'B'}", differs=True)
            continue
        fa, fb = runs_a[key][0], runs_b[key][0]
        report.add(f"{chapter} / {profile}: A {fa}  B {fb}")
        for side, folders in (("A", runs_a[key]), ("B", runs_b[key])):
            if len(folders) > 1:
                report.add(f"  ({side} also has {', '.join(f.name for f in folders[1:])}; the newest is compared)")
        config = _config_diff(fa, fb)
        report.add("  config: " + ("the same" if not config else "differs: " + "; ".join(config)), differs=bool(config))
        tables_a = {p.name for p in fa.glob("*.csv")}
        tables_b = {p.name for p in fb.glob("*.csv")}
        if REPLICATION in tables_a & tables_b:
            compare_replication(read_rows(fa / REPLICATION), read_rows(fb / REPLICATION), rtol, atol, report)
        for name in sorted(tables_a | tables_b):
            if name in NOT_RESULTS:
                report.add(f"  {name}: not compared (times, not results)")
                continue
            if name not in tables_a or name not in tables_b:
                report.add(f"  {name}: only in {'A' if name in tables_a else 'B'}", differs=True)
                continue
            diffs = compare_table(read_rows(fa / name), read_rows(fb / name), rtol, atol)
            report.add(f"  {name}: " + ("the same" if not diffs else f"{len(diffs)} difference(s)"), differs=bool(diffs))
            report.lines += [f"    {d}" for d in diffs[:40]] + ([f"    ... and {len(diffs) - 40} more"] if len(diffs) > 40 else [])
    report.add(f"{report.differences} difference(s)" if report.differences else "no differences")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xmlib.book.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="runs folder, chapter folder or run folder (A)")
    parser.add_argument("b", type=Path, help="runs folder, chapter folder or run folder (B)")
    parser.add_argument("--rtol", type=float, default=1e-9, help="relative tolerance for numbers (default 1e-9)")
    parser.add_argument("--atol", type=float, default=0.0, help="absolute tolerance for numbers (default 0)")
    args = parser.parse_args(argv)
    if args.rtol < 0 or args.atol < 0:
        parser.error("--rtol and --atol must be >= 0")
    try:
        report = compare_runs(args.a, args.b, rtol=args.rtol, atol=args.atol)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines))
    return 1 if report.differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
