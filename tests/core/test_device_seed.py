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


def test_cpu_threads_are_set_on_cpu_and_restored_and_left_alone_on_cuda():
    from xmlib.core.device import cpu_threads, set_cpu_threads

    start = torch.get_num_threads()
    want = 2 if start == 1 else 1
    with cpu_threads(want, torch.device("cpu")):
        assert torch.get_num_threads() == want
    assert torch.get_num_threads() == start
    with cpu_threads(0, torch.device("cpu")):  # 0 = leave torch's setting
        assert torch.get_num_threads() == start
    with cpu_threads(want, torch.device("cuda")):  # a no-op where the accelerator does the work
        assert torch.get_num_threads() == start
    old = set_cpu_threads(want, torch.device("cpu"))
    try:
        assert old == start and torch.get_num_threads() == want
    finally:
        set_cpu_threads(old, torch.device("cpu"))
    with pytest.raises(ValueError, match="cpu_threads"):
        set_cpu_threads(-1, torch.device("cpu"))


def test_determinism_is_asked_of_the_accelerator_only(monkeypatch):
    from xmlib.core import device

    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(device, "accelerator_available", lambda: False)
    seed_everything(1)
    assert calls == []
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # a setting of the user's own is kept
    monkeypatch.setattr(device, "accelerator_available", lambda: True)
    seed_everything(1)
    assert calls == [((True,), {"warn_only": True})]
    assert device.os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    seed_everything(1, deterministic=False)
    assert len(calls) == 1


def test_matmul_gflops_times_one_thread_and_restores_the_thread_count(monkeypatch):
    from xmlib.core import device

    seen = []
    real_mm = torch.mm

    def mm(a, b, out=None):  # the thread count and the shapes each timed product runs with
        seen.append((torch.get_num_threads(), tuple(a.shape), tuple(out.shape)))
        return real_mm(a, b, out=out)

    monkeypatch.setattr(device.torch, "mm", mm)
    with device.cpu_threads(2, torch.device("cpu")):
        gflops = device.matmul_gflops(n=64, rounds=3)
        assert torch.get_num_threads() == 2
    assert seen == [(1, (64, 64), (64, 64))] * 3
    assert 0 < gflops < float("inf")
    with pytest.raises(ValueError, match="rounds >= 1"):
        device.matmul_gflops(n=64, rounds=0)
