"""Shared test settings.

Unit tests work on tiny tensors: one torch thread avoids thread start-up and oversubscription costs on
small, shared CPUs (and keeps float reductions in one order).
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
