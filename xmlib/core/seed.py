"""Seeding: the same command on CPU gives the same numbers."""

from __future__ import annotations

import random

import numpy as np
import torch

from xmlib.core.device import set_deterministic


def seed_everything(seed: int, *, deterministic: bool = True) -> np.random.Generator:
    """Seed Python, NumPy and torch (all devices); return a NumPy ``Generator`` for this run.

    With ``deterministic``, the accelerator is asked for deterministic kernels
    (:func:`xmlib.core.device.set_deterministic`; nothing to do on a CPU-only machine).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every accelerator
    if deterministic:
        set_deterministic()
    return np.random.default_rng(seed)
