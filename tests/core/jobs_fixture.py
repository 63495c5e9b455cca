"""Importable job functions for tests/core/test_jobs.py (spawned workers import them by name)."""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xmlib.core.config import BaseConfig, analysis_field


@dataclass(frozen=True)
class ToyConfig(BaseConfig):
    seed: int = 0
    width: int = 3
    n_boot: int = analysis_field(100)
    log: str = analysis_field("")  # a file that every run appends a line to (counts the runs)
    delay: float = analysis_field(0.0)  # seconds each run sleeps first (keeps submitted jobs in flight)


def toy(cfg: ToyConfig, seed: int, workdir: Path) -> dict:
    """'Train': draw from the global RNG (seeded by the runner) and count the call."""
    busy = workdir / "busy"  # two runs that share a work folder must never overlap
    if busy.exists():
        raise RuntimeError(f"{workdir} is being trained by another run")
    busy.touch()
    time.sleep(cfg.delay)
    if cfg.log:
        with open(cfg.log, "a") as fh:
            fh.write(f"{seed}\n")
    w = torch.randn(cfg.width)
    (workdir / "weights.txt").write_text(" ".join(f"{v:.6f}" for v in w.tolist()))
    busy.unlink()
    return {"weights": w, "names": np.array(["a", "b"]), "threads": torch.get_num_threads(), "seed": seed,
            "history": [{"epoch": 0, "loss": 1.0}]}


def broken(cfg: ToyConfig, seed: int, workdir: Path) -> dict:
    raise ValueError("no data for this toy")
