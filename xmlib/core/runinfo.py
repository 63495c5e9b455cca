"""Run records: the resolved config, seed, device and package versions, written next to the outputs.

Each notebook calls :func:`start_run` right after resolving its config. It writes ``run.json`` in the
run's output folder and returns a :class:`RunInfo` whose rich display shows the same facts on the
rendered page.
"""

from __future__ import annotations

import html
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from xmlib.core.config import BaseConfig
from xmlib.core.device import describe_device, get_device
from xmlib.core.io import atomic_write_json
from xmlib.core.paths import project_root, runs_dir
from xmlib.core.seed import seed_everything

PACKAGES = ("xmlib", "torch", "numpy", "scipy", "pandas", "matplotlib", "pytrec-eval-terrier", "bm25s",
            "sentence-transformers", "efficientnet-lite-pytorch", "papermill", "jupyter-book")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=project_root(),
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


@dataclass
class RunInfo:
    chapter: str
    profile: str
    config: BaseConfig
    out_dir: Path
    record: dict[str, Any]

    def _repr_markdown_(self) -> str:
        cfg = ", ".join(f"`{k}={v}`" for k, v in self.config.to_dict().items())
        vers = ", ".join(f"{k} {v}" for k, v in self.record["versions"].items())
        return (
            f"**Run record** — chapter `{self.chapter}`, profile **`{self.profile}`**, "
            f"seed {self.record['seed']}, device {self.record['device']}, commit {self.record['commit'] or 'n/a'}.\n\n"
            f"Config: {cfg}\n\nVersions: {vers}\n\n(Saved to `runs/{self.out_dir.relative_to(runs_dir())}/run.json`.)"
        )

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td><code>{html.escape(str(k))}</code></td><td><code>{html.escape(str(v))}</code></td></tr>"
                       for k, v in self.config.to_dict().items())
        vers = ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in self.record["versions"].items())
        return (
            f"<details class='xmlib-run'><summary><b>Run record</b>: profile <code>{html.escape(self.profile)}</code>, "
            f"seed {self.record['seed']}, device {html.escape(self.record['device'])}</summary>"
            f"<table>{rows}</table><p>{vers}</p>"
            f"<p>commit {html.escape(str(self.record['commit'] or 'n/a'))}; saved to "
            f"<code>runs/{html.escape(str(self.out_dir.relative_to(runs_dir())))}/run.json</code></p></details>"
        )


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
        "versions": package_versions(),
        "commit": git_commit(),
        "platform": f"{platform.system()} {platform.machine()}",
        "argv": sys.argv[:1],
    }
    atomic_write_json(out_dir / "run.json", record)
    return RunInfo(chapter, profile, config, out_dir, record)
