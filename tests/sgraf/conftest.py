"""SGRAF tests run on tiny tensors: one torch thread avoids thread start-up and oversubscription costs."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
