import numpy as np
import pytest
import torch

from xmlib.core.device import describe_device, get_device
from xmlib.core.seed import seed_everything


def test_cpu_is_always_available(monkeypatch):
    monkeypatch.setenv("XMLIB_DEVICE", "cpu")
    assert get_device().type == "cpu"
    assert describe_device(torch.device("cpu")).startswith("cpu")


def test_asking_for_missing_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA"):
        get_device("cuda")
    monkeypatch.delenv("XMLIB_DEVICE", raising=False)
    assert get_device().type == "cpu"


def test_unsupported_device_type():
    with pytest.raises(ValueError, match="unsupported device"):
        get_device("meta")


def test_seed_everything_repeats_numbers():
    rng1 = seed_everything(7)
    a = (torch.rand(3), np.random.rand(2), rng1.random(2))
    rng2 = seed_everything(7)
    b = (torch.rand(3), np.random.rand(2), rng2.random(2))
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    with pytest.raises(ValueError):
        seed_everything(-1)
