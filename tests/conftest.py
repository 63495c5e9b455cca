"""Shared test settings.

Unit tests work on tiny tensors: one torch thread avoids thread start-up and oversubscription costs on
small, shared CPUs (and keeps float reductions in one order).
"""

import pytest
import torch

from xmlib.core.device import cpu_threads


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with cpu_threads(1, torch.device("cpu")):
        yield
