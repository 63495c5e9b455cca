"""Run records: the resolved config, seed, device, hardware, data builds and package versions, written
next to the outputs.

Each notebook calls :func:`start_run` right after resolving its config. It writes ``run.json`` in the
run's output folder and returns a :class:`RunInfo` whose rich display shows the same facts on the
rendered page: a one-line summary (profile, seed, device, commit and whether the tree was dirty, the
data builds, the wall time) and, folded under it, the config and the versions. When the notebook ends,
:func:`finish_runs` (called by the book's runner, :mod:`xmlib.book.run`, after the last cell; or by the
reader) adds the wall time and the stamp of every benchmark build the run read (:func:`data_read`,
noted by the benchmark readers), rewrites ``run.json`` and updates the summary shown at the top.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from xmlib.core.config import BaseConfig
from xmlib.core.device import accelerator_names, describe_device, get_device
from xmlib.core.io import atomic_write_json
from xmlib.core.paths import project_root, runs_dir
from xmlib.core.seed import seed_everything

PACKAGES = ("xmlib", "torch", "numpy", "scipy", "pandas", "matplotlib", "pytrec-eval-terrier", "bm25s",
            "sentence-transformers", "efficientnet-lite-pytorch", "papermill", "jupyter-book")

# Where the benchmark readers note the builds they return (xmlib.data.benchmarks._build.LOCATED), read
# from sys.modules so that nothing in the data code imports this module (whose edits then retrain nothing).
BUILDS_MODULE = "xmlib.data.benchmarks._build"
# Runs started in this process and not finished yet (finish_runs completes them).
_OPEN: list["RunInfo"] = []


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git(*args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def git_commit() -> str | None:
    out = _git("rev-parse", "--short", "HEAD")
    return out.strip() or None if out is not None else None


def git_dirty() -> bool | None:
    """True when tracked files differ from the commit or files git does not ignore are untracked (the
    results may then not be those of the commit); None outside a git checkout."""
    out = _git("status", "--porcelain")
    return None if out is None else bool(out.strip())


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what the platform reports) and core count."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name}, {os.cpu_count() or '?'} cores"


def hardware() -> dict[str, Any]:
    """What the run ran on: the CPU model and the model of every visible GPU (an empty list: none)."""
    return {"cpu": cpu_model(), "gpus": accelerator_names()}


def stamp_hash(stamp: dict[str, Any]) -> str:
    """A short hash of a benchmark build's stamp without its build time: equal for builds with the same
    config, seed, inputs and file hashes (the stamp lists every file's sha256)."""
    body = {k: v for k, v in stamp.items() if k != "built"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]


def data_read() -> dict[str, dict[str, Any]]:
    """The benchmark builds this process has read (``locate`` notes each in ``LOCATED``), each with its
    folder, builder version, build time and :func:`stamp_hash`."""
    located = getattr(sys.modules.get(BUILDS_MODULE), "LOCATED", {})
    return {key: {"benchmark": key.split("/")[0], "folder": str(folder), "version": stamp.get("version"),
                  "built": stamp.get("built"), "hash": stamp_hash(stamp)}
            for key, (folder, stamp) in sorted(located.items())}


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)" if seconds >= 60 else f"{seconds:.1f} s"


@dataclass
class RunInfo:
    chapter: str
    profile: str
    config: BaseConfig
    out_dir: Path
    record: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)

    @property
    def display_id(self) -> str:
        return f"xmlib-run-{self.chapter}-{self.out_dir.name}"

    def summary(self) -> str:
        """The one line shown above the folded record (plain text)."""
        r = self.record
        commit = r.get("commit") or "n/a"
        dirty = {True: " (uncommitted changes)", False: "", None: ""}[r.get("dirty")]
        gpus = r.get("hardware", {}).get("gpus") or []
        data = ", ".join(f"{k} {v['hash'][:8]}" for k, v in sorted(r.get("data", {}).items())) or "none recorded"
        wall = _fmt_seconds(r["wall_seconds"]) if "wall_seconds" in r else "not finished"
        return (f"profile {self.profile} · seed {r['seed']} · {r['device']}"
                f"{' · GPU ' + ', '.join(gpus) if gpus else ''} · commit {commit}{dirty} · data {data} · wall time {wall}")

    def _repr_markdown_(self) -> str:
        cfg = ", ".join(f"`{k}={v}`" for k, v in self.config.to_dict().items())
        vers = ", ".join(f"{k} {v}" for k, v in self.record["versions"].items())
        return (f"**Run record**: {self.summary()}.\n\nCPU {self.record['hardware']['cpu']}.\n\nConfig: {cfg}\n\n"
                f"Versions: {vers}\n\n(Saved to `runs/{self.out_dir.relative_to(runs_dir())}/run.json`.)")

    def _repr_html_(self) -> str:
        r = self.record
        rows = "".join(f"<tr><td><code>{html.escape(str(k))}</code></td><td><code>{html.escape(str(v))}</code></td></tr>"
                       for k, v in self.config.to_dict().items())
        vers = ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in r["versions"].items())
        data = "".join(f"<li><code>{html.escape(k)}</code>: build of {html.escape(str(v['built']))}, stamp hash "
                       f"<code>{html.escape(v['hash'])}</code></li>" for k, v in sorted(r.get("data", {}).items()))
        return (
            f"<details class='xmlib-run'><summary><b>Run record</b>: {html.escape(self.summary())}</summary>"
            f"<p>CPU: {html.escape(r['hardware']['cpu'])}; GPU: {html.escape(', '.join(r['hardware']['gpus']) or 'none')}; "
            f"platform {html.escape(r['platform'])}</p>"
            + (f"<p>Data builds read:</p><ul>{data}</ul>" if data else "")
            + f"<table>{rows}</table><p>{vers}</p>"
            f"<p>commit {html.escape(str(r['commit'] or 'n/a'))}"
            f"{' with uncommitted changes' if r.get('dirty') else ''}; saved to "
            f"<code>runs/{html.escape(str(self.out_dir.relative_to(runs_dir())))}/run.json</code></p></details>"
        )

    def _bundle(self) -> dict[str, str]:
        return {"text/html": self._repr_html_(), "text/markdown": self._repr_markdown_(),
                "text/plain": f"Run record: {self.summary()}"}

    def _ipython_display_(self) -> None:
        # Shown with a display id, so finish() can replace it in place with the finished record.
        from IPython.display import display
        display(self._bundle(), raw=True, display_id=self.display_id)

    def finish(self) -> None:
        """Add the wall time since :func:`start_run` and the data builds read, rewrite ``run.json``
        and update the record shown on the page."""
        self.record["wall_seconds"] = round(time.perf_counter() - self.started, 1)
        self.record["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.record["data"] = data_read()
        atomic_write_json(self.out_dir / "run.json", self.record)
        _OPEN[:] = [r for r in _OPEN if r is not self]
        try:
            from IPython.display import update_display
        except ImportError:  # outside IPython: the file is the record
            return
        update_display(self._bundle(), raw=True, display_id=self.display_id)


def finish_runs() -> None:
    """Finish every run this process started (the book's runner calls this after a notebook's last cell)."""
    for run in list(_OPEN):
        run.finish()


def start_run(chapter: str, profile: str, config: BaseConfig, seed: int | None = None) -> RunInfo:
    """Seed everything, make the run folder ``runs/<chapter>/<profile>-<fingerprint>/`` and record the run."""
    seed = int(getattr(config, "seed", 0) if seed is None else seed)
    seed_everything(seed)
    out_dir = runs_dir() / chapter / f"{profile}-{config.fingerprint()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "chapter": chapter,
        "profile": profile,
        "seed": seed,
        "config": config.to_dict(),
        "config_class": type(config).__name__,
        "device": describe_device(get_device()),
        "hardware": hardware(),
        "versions": package_versions(),
        "commit": git_commit(),
        "dirty": git_dirty(),
        "platform": f"{platform.system()} {platform.machine()}",
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[:1],
    }
    atomic_write_json(out_dir / "run.json", record)
    run = RunInfo(chapter, profile, config, out_dir, record)
    _OPEN[:] = [r for r in _OPEN if r.out_dir != out_dir] + [run]
    return run
