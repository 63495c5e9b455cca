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


def test_matmul_gflops_onednn_backend_and_a_bad_backend_name():
    from xmlib.core import device

    with pytest.raises(ValueError, match="'torch' or 'onednn'"):
        device.matmul_gflops(n=64, rounds=1, backend="blas")
    if not device.onednn_available():
        pytest.skip("this torch build has no oneDNN linear")
    assert 0 < device.matmul_gflops(n=64, rounds=2, backend="onednn") < float("inf")


@pytest.fixture
def gemm_choice(monkeypatch):
    """Set XMLIB_CPU_GEMM for one test and forget the process's decision before and after."""
    from xmlib.core import device

    def choose(value):
        monkeypatch.setenv("XMLIB_CPU_GEMM", value)
        monkeypatch.setattr(device, "_CPU_GEMM", None)
        return device.cpu_gemm()

    return choose  # monkeypatch restores the process's own decision afterwards


def test_cpu_gemm_reads_its_environment_variable_and_names_a_bad_value(gemm_choice, monkeypatch):
    from xmlib.core import device

    assert gemm_choice("torch") == "torch"
    with pytest.raises(ValueError, match="XMLIB_CPU_GEMM must be one of auto, torch, onednn"):
        gemm_choice("blas")
    # auto: oneDNN on AMD with AVX-512 (MKL runs AVX2 code there), torch's MKL on Intel, whatever the flags
    monkeypatch.setattr(device, "onednn_available", lambda: True)
    monkeypatch.setattr(device, "_cpu_vendor_flags", lambda: ("AuthenticAMD", {"avx2", "avx512f"}))
    assert gemm_choice("auto") == "onednn"
    monkeypatch.setattr(device, "_cpu_vendor_flags", lambda: ("AuthenticAMD", {"avx2"}))
    assert gemm_choice("auto") == "torch"
    monkeypatch.setattr(device, "_cpu_vendor_flags", lambda: ("GenuineIntel", {"avx2", "avx512f"}))
    assert gemm_choice("auto") == "torch"
    monkeypatch.setattr(device, "onednn_available", lambda: False)
    with pytest.raises(RuntimeError, match="no oneDNN linear"):
        gemm_choice("onednn")


def test_linear_is_f_linear_through_onednn_and_falls_back_where_onednn_cannot_go(gemm_choice, monkeypatch):
    from xmlib.core import device

    if not device.onednn_available():
        pytest.skip("this torch build has no oneDNN linear")
    calls = []
    real = device._onednn_linear
    monkeypatch.setattr(device, "_onednn_linear", lambda *a: calls.append(a[0].shape) or real(*a))
    gemm_choice("onednn")
    gen = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(3, 700, 64, generator=gen), torch.randn(48, 64, generator=gen), torch.randn(48, generator=gen)
    ref = torch.nn.functional.linear(x.double(), w.double(), b.double())
    for bias in (b, None):
        got = device.linear(x, w, bias)
        want = ref if bias is not None else ref - b.double()
        assert got.dtype == torch.float32 and got.shape == (3, 700, 48)
        assert (got.double() - want).abs().max() < 1e-4  # float32 rounding of 64-term sums
    assert len(calls) == 2  # 3·700·64·48 = 6.5M multiply-adds: both through oneDNN
    # float64, autograd, small products and the torch choice: F.linear itself (bit-identical)
    assert torch.equal(device.linear(x.double(), w.double(), b.double()), ref)
    xg = x.clone().requires_grad_()
    out = device.linear(xg, w, b)
    out.sum().backward()
    assert torch.equal(xg.grad, torch.ones(3, 700, 48) @ w)
    small = x[:, :10]
    assert torch.equal(device.linear(small, w, b), torch.nn.functional.linear(small, w, b))
    gemm_choice("torch")
    assert torch.equal(device.linear(x, w, b), torch.nn.functional.linear(x, w, b))
    assert len(calls) == 2
