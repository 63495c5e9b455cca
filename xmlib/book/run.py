"""Execute the book's Jupytext notebooks with papermill, one named profile at a time.

    python -m xmlib.book.run --profile smoke            # every notebook in _toc.yml order
    python -m xmlib.book.run notebooks/00_building_blocks.py --profile default -p epochs 3
    python -m xmlib.book.run --profile smoke --install  # then copy the executed notebooks into notebooks/

Each text notebook ``notebooks/NAME.py`` is converted in memory (jupytext), its ``parameters`` cell
gets ``profile`` and ``overrides`` injected (papermill), and it runs in a fresh kernel. The executed
notebook is cached in ``_build/executed/<profile>/NAME.ipynb`` with a stamp: the hash of the source,
the parameters, and the hash of every ``xmlib`` module the run imported (recorded by a last cell that
the runner appends and removes again). A notebook whose stamp matches is not run again, so editing
one chapter's library code re-runs that chapter only. A notebook that raises makes the command fail
(exit 1); its partial output is kept as ``NAME.failed.ipynb`` for reading, never installed into the book.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from xmlib.book import timings
from xmlib.core.io import atomic_path, atomic_write_json, remove_stale_parts
from xmlib.core.paths import project_root

PROFILES = ("smoke", "default", "paper")


def toc_notebooks(root: Path) -> list[Path]:
    """Notebook sources in the order of ``_toc.yml`` (entries under ``notebooks/``)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(str(node["file"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    out = []
    for f in files:
        src = root / (Path(f).with_suffix("").as_posix() + ".py")
        if f.startswith("notebooks/"):
            if not src.exists():
                raise FileNotFoundError(f"_toc.yml lists {f} but {src} does not exist")
            out.append(src)
    return out


DEPS_MARKER = "XMLIB_MODULES="
INPUTS_MARKER = "XMLIB_INPUTS="
# Appended to every run, removed from the saved notebook: which xmlib modules did the run import, and
# which other files did it declare as inputs (xmlib.book.inputs.record)? Then finish the run records
# (wall time, data builds read: xmlib.core.runinfo.finish_runs), which updates the record shown on the page.
DEPS_CELL = (
    "import json as _json, sys as _sys\n"
    f"print({DEPS_MARKER!r} + _json.dumps(sorted(getattr(_m, '__file__', None) or '' for _k, _m in list(_sys.modules.items())\n"
    "      if _k == 'xmlib' or _k.startswith('xmlib.'))))\n"
    f"print({INPUTS_MARKER!r} + _json.dumps(sorted(getattr(_sys.modules.get('xmlib.book.inputs'), 'INPUTS', ()))))\n"
    "getattr(_sys.modules.get('xmlib.core.runinfo'), 'finish_runs', lambda: None)()"
)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_key(source: Path, profile: str, overrides: dict[str, Any]) -> str:
    """Hash of the notebook's text and its parameters."""
    h = hashlib.sha256()
    h.update(source.read_bytes())
    h.update(json.dumps({"profile": profile, "overrides": overrides}, sort_keys=True).encode())
    return h.hexdigest()


def deps_unchanged(stamp: dict[str, Any], root: Path) -> bool:
    """True when every library file the last run imported still has the hash it had then."""
    deps = stamp.get("deps")
    if not isinstance(deps, dict):  # a stamp from before dependency tracking
        return False
    for rel, digest in deps.items():
        path = root / rel
        if not path.is_file() or file_hash(path) != digest:
            return False
    return True


def _pop_deps(nb_path: Path, root: Path) -> dict[str, str]:
    """Remove the appended dependency cell from the executed notebook; return {file: sha256}."""
    nb = json.loads(nb_path.read_text())
    cell = nb["cells"].pop()
    text = "".join("".join(o.get("text", [])) for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    lines = {ln.split("=", 1)[0] + "=": ln.split("=", 1)[1] for ln in text.splitlines() if "=" in ln}
    files = json.loads(lines[DEPS_MARKER]) if DEPS_MARKER in lines else []
    inputs = json.loads(lines[INPUTS_MARKER]) if INPUTS_MARKER in lines else []
    with atomic_path(nb_path) as tmp:
        tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    deps = {}
    for f in files:
        path = Path(f).resolve()
        try:
            rel = path.relative_to(root.resolve())
        except ValueError:
            continue  # an installed copy outside the checkout: not tracked
        deps[rel.as_posix()] = file_hash(path)
    for f in inputs:  # files the notebook read (kept by absolute path when outside the checkout)
        path = Path(f).resolve()
        try:
            key = path.relative_to(root.resolve()).as_posix()
        except ValueError:
            key = str(path)
        if path.is_file():
            deps[key] = file_hash(path)
    return deps


def read_stamp(path: Path) -> dict[str, Any]:
    """The stamp of an executed notebook; ``{}`` (the notebook runs again) when it is missing or
    unreadable, e.g. cut short by a full disk."""
    if not path.exists():
        return {}
    try:
        stamp = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        print(f"[xmlib.book.run] ignoring the unreadable stamp {path} ({exc}); the notebook runs again", file=sys.stderr)
        return {}
    return stamp if isinstance(stamp, dict) else {}


def executed_dir(root: Path, profile: str) -> Path:
    return root / "_build" / "executed" / profile


def execute(source: Path, profile: str, overrides: dict[str, Any], out: Path, *, timeout: int | None = None) -> float:
    """Run one text notebook with papermill into ``out``; return seconds. Raises on a cell error."""
    import jupytext
    import nbformat
    import papermill as pm

    nb = jupytext.read(source)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise ValueError(f"{source} has no cell tagged 'parameters' (add `# %% tags=[\"parameters\"]`)")
    nb.cells.append(nbformat.v4.new_code_cell(DEPS_CELL, metadata={"tags": ["remove-cell"]}))
    failed = out.with_name(out.stem + ".failed.ipynb")
    t0 = time.perf_counter()
    # The kernel inherits these: reproducible set iteration order, and no progress bars stored in the
    # executed notebook (they are for people watching a run, not for the rendered page).
    env_before = {k: os.environ.get(k) for k in ("PYTHONHASHSEED", "XMLIB_PROGRESS")}
    os.environ.update({"PYTHONHASHSEED": "0", "XMLIB_PROGRESS": "0"})
    try:
        with atomic_path(out) as tmp:
            try:
                pm.execute_notebook(
                    nb,
                    str(tmp),
                    parameters={"profile": profile, "overrides": overrides},
                    kernel_name="python3",
                    cwd=str(source.parent),
                    progress_bar=False,
                    execution_timeout=timeout,
                    request_save_on_cell_execute=False,
                )
            except Exception:
                if tmp.exists():
                    shutil.copyfile(tmp, failed)
                raise
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if failed.exists():
        failed.unlink()
    return time.perf_counter() - t0


def after_of(source: Path) -> list[str]:
    """The notebooks (stems) that must have run before ``source``: its Jupytext header's
    ``xmlib: {after: [...]}`` (a page that reads the chapters' results, e.g. the scorecard). Only the
    runner's ``--jobs`` needs it: run one at a time, the ``_toc.yml`` order already holds it."""
    import jupytext

    meta = jupytext.read(source).metadata.get("xmlib", {})
    after = meta.get("after", []) if isinstance(meta, dict) else None
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise SystemExit(f"{source}: the header's `xmlib: after:` must be a list of notebook names, got {after!r}")
    return after


def _kept(source: Path, profile: str, overrides: dict[str, Any], root: Path) -> tuple[str, float] | None:
    """When the executed notebook is there and its stamp matches the source, the parameters and every
    library file and input the last run read: record it as unchanged and return ("unchanged", its
    seconds); else None (it must run)."""
    out = executed_dir(root, profile) / (source.stem + ".ipynb")
    stamp = read_stamp(out.with_suffix(".stamp.json"))
    if not (out.exists() and stamp.get("key") == source_key(source, profile, overrides) and deps_unchanged(stamp, root)):
        return None
    timings.record(profile, "notebooks", source.stem, 0.0, status="unchanged", kept=stamp.get("seconds", 0.0),
                   beside=int(stamp.get("beside", 0)), root=root)
    return "unchanged", stamp.get("seconds", 0.0)


def _run_one(source: Path, profile: str, overrides: dict[str, Any], root: Path, *, force: bool,
             beside: int = 0) -> tuple[str, float]:
    """Run one notebook unless its stamp says it is unchanged; return (status, seconds)."""
    if not force and (kept := _kept(source, profile, overrides, root)) is not None:
        return kept
    out = executed_dir(root, profile) / (source.stem + ".ipynb")
    stamp_path = out.with_suffix(".stamp.json")
    key = source_key(source, profile, overrides)
    print(f"[xmlib.book.run] {source.name} (profile={profile}) ...", flush=True)
    try:
        seconds = execute(source, profile, overrides, out)
    except Exception as exc:  # papermill's error already names the failing cell
        print(f"[xmlib.book.run] FAILED {source.name}: {type(exc).__name__}: {str(exc)[:4000]}", file=sys.stderr, flush=True)
        print(f"[xmlib.book.run] partial output: {out.with_name(out.stem + '.failed.ipynb')}", file=sys.stderr)
        if stamp_path.exists():
            stamp_path.unlink()
        return "FAILED", 0.0
    deps = _pop_deps(out, root)
    atomic_write_json(stamp_path, {"key": key, "profile": profile, "overrides": overrides, "seconds": round(seconds, 1),
                                   "source": source.relative_to(root).as_posix(), "deps": deps, "beside": beside})
    timings.record(profile, "notebooks", source.stem, seconds, beside=beside, root=root)
    return "ran", seconds


def _last_seconds(profile: str, root: Path, stem: str) -> float:
    entry = timings.load(profile, root)["steps"].get(f"notebooks/{stem}") or {}
    return float(entry.get("seconds", 0.0) if entry.get("status") == "ran" else entry.get("kept_seconds", 0.0))


def _run_parallel(sources: list[Path], profile: str, overrides: dict[str, Any], root: Path, *, force: bool,
                  jobs: int) -> dict[Path, tuple[str, float]]:
    """Run ``sources`` with up to ``jobs`` notebooks at once, each in its own runner process (and
    kernel); a notebook waits for the ones its header names (:func:`after_of`). The longest by the
    last recorded time start first (``_toc.yml`` order when nothing is recorded). Every kernel keeps
    its own pool of training workers: several notebooks at once fill the cores that one notebook's
    start, its last jobs and its analysis leave idle. Unchanged notebooks are skipped here, before any
    process starts; a page that waits is checked when its turn comes (its inputs may just have changed)."""
    import signal
    import subprocess

    stems = {s.stem for s in sources}
    needs = {s: {a for a in after_of(s) if a in stems} for s in sources}
    pending = sorted(sources, key=lambda s: -_last_seconds(profile, root, s.stem))  # stable: toc order on ties
    running: dict[subprocess.Popen, Path] = {}
    results: dict[Path, tuple[str, float]] = {}

    def finished() -> set[str]:
        return {s.stem for s in results}

    def forward(signum, frame):  # make's SIGTERM: the children stop their kernels (KeyboardInterrupt), then we stop
        for proc in running:
            proc.send_signal(signal.SIGINT)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while pending or running:
            while len(running) < jobs and (ready := [s for s in pending if not (needs[s] - finished())]):
                source = ready[0]  # an unchanged one is done at once and may free a page that waits on it
                pending.remove(source)
                if not force and (kept := _kept(source, profile, overrides, root)) is not None:
                    results[source] = kept
                    continue
                cmd = [sys.executable, "-m", "xmlib.book.run", str(source), "--profile", profile,
                       "--overrides-json", json.dumps(overrides), "--beside", str(jobs - 1), "--no-summary"]
                env = {**os.environ, "XMLIB_ROOT": str(root)}  # the child's project is this runner's
                running[subprocess.Popen(cmd + (["--force"] if force else []), cwd=root, env=env)] = source
            if not running:
                if pending:  # waiting on a notebook that is not among the sources cannot happen (needs ⊆ stems)
                    raise RuntimeError(f"notebooks waiting on each other: {[s.name for s in pending]}")
                break
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                source = running.pop(proc)
                if proc.returncode == 0:
                    out = executed_dir(root, profile) / (source.stem + ".ipynb")
                    results[source] = ("ran", float(read_stamp(out.with_suffix(".stamp.json")).get("seconds", 0.0)))
                else:
                    results[source] = ("FAILED", 0.0)
    except BaseException:
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in running:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return results


def run(
    sources: Sequence[Path],
    profile: str,
    overrides: dict[str, Any] | None = None,
    *,
    force: bool = False,
    install: bool = False,
    root: Path | None = None,
    jobs: int = 1,
    beside: int = 0,
    summary: bool = True,
) -> int:
    """Execute ``sources`` (skipping unchanged ones), up to ``jobs`` at once; return the number of failures.
    ``beside`` (recorded with each time): how many other notebooks a calling runner lets run at once."""
    root = root or project_root()
    overrides = overrides or {}
    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {jobs}")
    out_dir = executed_dir(root, profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_parts(out_dir):  # left by a run that was killed (its writer is gone)
        print(f"[xmlib.book.run] removed {stale.name}, a partial notebook of a run that was killed", file=sys.stderr)
    resolved = []
    for source in sources:
        source = Path(source).resolve()
        if not source.exists():
            raise SystemExit(f"{source} does not exist")
        resolved.append(source)
    if jobs > 1 and len(resolved) > 1:
        results = _run_parallel(resolved, profile, overrides, root, force=force, jobs=jobs)
    else:
        results = {s: _run_one(s, profile, overrides, root, force=force, beside=beside) for s in resolved}
    failures = sum(status == "FAILED" for status, _ in results.values())
    if summary and any(status == "ran" for status, _ in results.values()):  # how fast the machine ran (the record)
        machine = timings.probe(profile, root)
        print(f"[xmlib.book.run] this machine now: {machine['matmul_gflops']:.1f} GFLOP/s on one core "
              f"(float32 matrix product), {machine['cores']} cores")
    if summary:
        for source in resolved:
            status, seconds = results[source]
            print(f"[xmlib.book.run] {status:>9}  {seconds:7.1f} s  {source.name}")
    if install:
        if failures:
            print("[xmlib.book.run] not installing: a notebook failed", file=sys.stderr)
        else:
            install_executed(root, profile, resolved)
    return failures


def install_executed(root: Path, profile: str, sources: Sequence[Path]) -> None:
    """Copy the profile's executed notebooks next to their sources (where Jupyter Book reads them). A
    notebook already there with the same bytes is left alone (its time stamp too, which Sphinx reads)."""
    out_dir = executed_dir(root, profile)
    copied = 0
    for source in sources:
        source = Path(source).resolve()
        executed = out_dir / (source.stem + ".ipynb")
        if not executed.exists():
            raise SystemExit(f"{executed} is missing: run the notebooks with --profile {profile} first")
        target = source.with_suffix(".ipynb")
        if target.is_file() and target.stat().st_size == executed.stat().st_size \
                and target.read_bytes() == executed.read_bytes():
            continue
        with atomic_path(target) as tmp:
            shutil.copyfile(executed, tmp)
        copied += 1
    print(f"[xmlib.book.run] installed {copied} executed notebook(s) of profile {profile!r} into notebooks/ "
          f"({len(sources) - copied} already there)")


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xmlib.book.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="text notebooks (default: all in _toc.yml)")
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override one config value (YAML-parsed), e.g. -p epochs 3")
    parser.add_argument("--force", action="store_true", help="run even if unchanged")
    parser.add_argument("--install", action="store_true", help="copy executed notebooks into notebooks/ for the book")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("XMLIB_BOOK_JOBS", "1")),
                        help="notebooks run at once, each in its own kernel (default 1, or $XMLIB_BOOK_JOBS; "
                             "`make book` uses 2); a page waits for the notebooks its header names under `xmlib: after:`")
    parser.add_argument("--overrides-json", help=argparse.SUPPRESS)  # a parent runner's overrides, exactly
    parser.add_argument("--beside", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--no-summary", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = project_root()
    sources = args.notebooks or toc_notebooks(root)
    overrides = {name: _parse_value(value) for name, value in args.param}
    if args.overrides_json:
        overrides = {**json.loads(args.overrides_json), **overrides}
    failures = run(sources, args.profile, overrides, force=args.force, install=args.install, root=root, jobs=args.jobs,
                   beside=args.beside, summary=not args.no_summary)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
