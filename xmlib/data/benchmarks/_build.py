"""Build once: how every benchmark is configured, built, found and checked.

A benchmark ``NAME`` (``clipart``, ``emoji``, ``captions``) lives in
``cache_dir()/benchmarks/NAME/<profile>/`` (:func:`bench_dir`). Its folder holds ``stamp.json``:

    {"benchmark": NAME, "version": VERSION, "config": {...}, "fingerprint": "...", "seed": 0,
     "inputs": {asset: sha256 | folder}, ..., "built": "2025-...Z",
     "files": {relative path: {"bytes": ..., "sha256": ...}}}

— the builder's :data:`VERSION` (bumped when the output changes for the same config), the resolved
config (a frozen :class:`~xmlib.core.config.BaseConfig`), the seed and a stamp of every input asset
(its pinned sha256, or the resolved folder when ``roots=`` points elsewhere, as in tests). A folder
whose stamp equals the one a call would write (``built`` aside) is up to date: :func:`build_once`
returns it at once. Otherwise it builds into a temporary folder next to the target, writes the stamp
last and renames the folder into place, under a lock, so that an interrupted build leaves nothing a
later call trusts and two processes never build the same folder at once; the temporary folders of a
killed build (``.NAME.<pid>.<random>.part``) are removed by the next build once their writer is gone.
``files`` records every file's size and sha256: a current build must have all of them at their sizes
(:func:`is_built`), and ``prepare`` checks the hashes (:func:`verify_builds`); a bad file is named and
the benchmark built again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

from xmlib.core.config import BaseConfig, ConfigError, resolve_config
from xmlib.core.io import DataFormatError, atomic_write_json, file_lock, remove_stale_parts, temp_dir
from xmlib.core.manifest import file_entry, file_problem
from xmlib.core.paths import cache_dir

__all__ = ["STAMP", "bench_dir", "resolve", "check_seed", "input_stamps", "make_stamp", "read_stamp",
           "file_entries", "file_problems", "is_built", "verify_builds", "build_once", "locate"]

STAMP = "stamp.json"
# The builds this process located, {"NAME/<folder name>": (folder, stamp)}: the run record lists them
# (xmlib.core.runinfo reads this without importing anything from here).
LOCATED: dict[str, tuple[Path, dict[str, Any]]] = {}
C = TypeVar("C", bound=BaseConfig)


def bench_dir(name: str, profile: str) -> Path:
    """``cache_dir()/benchmarks/<name>/<profile>``: where :func:`build_once` puts a profile's build."""
    return cache_dir() / "benchmarks" / name / profile


def resolve(cls: type[C], profiles: Mapping[str, Mapping[str, Any]], name: str, profile: str,
            overrides: Mapping[str, Any] | None = None) -> C:
    """The config of ``profile`` with ``overrides`` (:func:`~xmlib.core.config.resolve_config`); an
    unknown profile is an error that names the benchmark and the profiles it has."""
    if profile not in profiles:
        raise ConfigError(f"unknown {name} profile {profile!r}; choose one of {sorted(profiles)}")
    return resolve_config(cls, profiles, profile, overrides)


def check_seed(seed: Any) -> int:
    """``seed`` as a non-negative int, or a ValueError naming it."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return seed


def input_stamps(names: Iterable[str], roots: Mapping[str, str | os.PathLike] | None = None) -> dict[str, str]:
    """A stamp per input asset: its pinned sha256 (the fetched asset) or, for a folder given in
    ``roots``, that folder resolved (tests and users with their own copy)."""
    from xmlib.data.assets import ASSETS

    roots = roots or {}
    return {n: str(Path(roots[n]).resolve()) if n in roots else ASSETS[n].sha256 for n in sorted(names)}


def make_stamp(name: str, version: int, cfg: BaseConfig, seed: int, inputs: Mapping[str, str],
               **extra: Any) -> dict[str, Any]:
    """The stamp a build of benchmark ``name`` writes (see the module docstring); ``extra`` adds
    other things the output depends on (e.g. the feature extractor)."""
    stamp = {"benchmark": name, "version": int(version), "config": cfg.to_dict(), "fingerprint": cfg.fingerprint(),
             "seed": int(seed), "inputs": dict(inputs), **extra}
    return json.loads(json.dumps(stamp))  # as it reads back from the file (lists, not tuples)


_STAMP_KEYS = ("benchmark", "version", "config", "fingerprint", "seed", "inputs")


def rebuild_hint(name: str) -> str:
    """The fix for a damaged file of a built benchmark ``name``: the command that builds it again."""
    return f"rebuild the benchmark (`python -m xmlib.data prepare --profile PROFILE --only {name} --force`)"


def read_stamp(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The stamp of a built folder, or None (no build there, an unreadable stamp, or one in another
    format, e.g. written before the benchmarks shared this module)."""
    try:
        stamp = json.loads((Path(folder) / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and all(k in stamp for k in _STAMP_KEYS) else None


_RECORDED = ("built", "files")  # what a build records about itself (not part of what it was asked for)


def file_entries(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"bytes", "sha256"}}`` of every file of a build folder but its stamp."""
    return {p.relative_to(folder).as_posix(): file_entry(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != STAMP}


def file_problems(folder: str | os.PathLike, *, full: bool = False) -> list[tuple[Path, str]]:
    """``(path, problem)`` of every file of a build that its stamp's ``files`` record does not match:
    missing or another size (cheap), or (``full``) another sha256. A stamp without ``files`` (a build
    from before they were recorded) has none."""
    folder = Path(folder)
    stamp = read_stamp(folder) or {}
    found = []
    for rel, entry in (stamp.get("files") or {}).items():
        problem = file_problem(folder / rel, entry, full=full)
        if problem:
            found.append((folder / rel, problem))
    return found


def is_built(folder: str | os.PathLike, stamp: Mapping[str, Any]) -> bool:
    """True when ``folder`` holds a build with this stamp (what it records about itself aside) whose
    files are all there with their recorded sizes; a damaged file is named and the build is not current."""
    old = read_stamp(folder)
    if old is None or {k: v for k, v in old.items() if k not in _RECORDED} != dict(stamp):
        return False
    bad = file_problems(folder)
    for path, problem in bad:
        print(f"[xmlib.data] {path}: {problem}; the benchmark is built again", flush=True)
    return not bad


def verify_builds(*, full: bool = True) -> list[tuple[Path, str]]:
    """Check every built benchmark under the cache against its stamp's ``files`` (sha256 when ``full``);
    a build with a bad file is named and its stamp removed, so that the next build of it starts over.
    Returns ``(path, problem)`` of each bad file."""
    root = cache_dir() / "benchmarks"
    bad = []
    for stamp_path in sorted(root.glob(f"*/*/{STAMP}")) if root.is_dir() else ():
        found = file_problems(stamp_path.parent, full=full)
        for path, problem in found:
            print(f"[xmlib.data] {path}: {problem}; the benchmark is built again", flush=True)
        if found:
            stamp_path.unlink(missing_ok=True)
            bad.extend(found)
    return bad


def build_once(out: str | os.PathLike, stamp: Mapping[str, Any], write: Callable[[Path], None], *,
               force: bool = False) -> Path:
    """Return ``out`` holding the build ``stamp`` describes, calling ``write(folder)`` only if needed.

    ``write`` fills an empty temporary folder next to ``out``; the stamp is written after it and the
    folder renamed to ``out`` (an older build there is removed). ``force=True`` rebuilds an up-to-date
    folder. Concurrent calls for one ``out`` take turns; the second finds the first's build.
    """
    out = Path(out)
    if not force and is_built(out, stamp):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(out.parent)  # temporary folders of killed builds (of any profile)
    with file_lock(out.parent / f".{out.name}.lock"):
        if not force and is_built(out, stamp):  # built by another process while we waited
            return out
        for stale in out.parent.glob(f".{out.name}.*.part"):  # left by an interrupted build (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = temp_dir(out.parent, out.name)
        os.chmod(tmp, 0o755)
        try:
            write(tmp)
            atomic_write_json(tmp / STAMP, {**stamp, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                            "files": file_entries(tmp)})
            if out.exists():
                old = temp_dir(out.parent, f"{out.name}-old")
                os.rmdir(old)
                os.replace(out, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return out


def locate(name: str, profiles: Mapping[str, Any], profile_or_path: str | os.PathLike, version: int,
           build: Callable[[str], Path] | None = None) -> Path:
    """The folder of a current build (its stamp has this ``version``). ``profile_or_path`` is a profile
    name (its :func:`bench_dir`) or a folder; a profile with no current build is built with
    ``build(profile)`` when given (a build with another seed or overrides is read as it is). A folder
    without a current build is an error that says how to build it."""
    p = Path(profile_or_path)
    profile = profile_or_path if isinstance(profile_or_path, str) and profile_or_path in profiles else None
    if profile is not None and not p.exists():
        p = bench_dir(name, profile)
    stamp = read_stamp(p)
    if stamp is not None and stamp["benchmark"] == name and stamp["version"] == version:
        bad = file_problems(p)
        if not bad:
            LOCATED[f"{name}/{p.name}"] = (p, stamp)  # the run record lists the builds a run read
            return p
        if profile is None or build is None or p != bench_dir(name, profile):
            path, problem = bad[0]
            raise DataFormatError(path=path, problem=problem, expected="the file as the build recorded it",
                                  fix=rebuild_hint(name))
        return build(profile)  # build_once names the bad file and builds again
    if profile is not None and build is not None and p == bench_dir(name, profile):
        return build(profile)
    found = "nothing" if stamp is None else f"a {stamp['benchmark']} build of version {stamp['version']}"
    hint = profile or "default"
    raise FileNotFoundError(
        f"{p} holds no current {name} benchmark (found {found}; this code writes version {version}): build "
        f"it with `python -m xmlib.data prepare --profile {hint} --only {name}` or "
        f"xmlib.data.benchmarks.{name}.build({hint!r})")
