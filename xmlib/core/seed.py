"""Seeding: the same command on CPU gives the same numbers."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from xmlib.core.device import accelerator_available


def seed_everything(seed: int, *, deterministic: bool = True) -> np.random.Generator:
    """Seed Python, NumPy and torch (all devices); return a NumPy ``Generator`` for this run.

    With ``deterministic`` and an accelerator present, torch is asked for deterministic kernels where
    they exist (a warning, not an error, where an op has none, so that the accelerator path still
    runs). CPU kernels are deterministic already, so on a CPU-only machine this step is skipped (it
    costs several seconds of imports).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every accelerator
    if deterministic and accelerator_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch ``Generator`` seeded independently of the global state."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen
