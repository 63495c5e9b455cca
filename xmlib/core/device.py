"""The one place that decides where tensors live, how many CPU threads torch uses, and how
deterministic the accelerator's kernels are.

Every model and every notebook asks :func:`get_device`; nothing else in the project mentions the
accelerator. ``XMLIB_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``) overrides the automatic choice.

- :func:`set_cpu_threads` / :func:`cpu_threads` — torch's CPU thread count (each chapter's
  ``cpu_threads`` config field); a no-op when the work runs on CUDA.
- :func:`set_deterministic` — deterministic accelerator kernels (called by
  :func:`xmlib.core.seed.seed_everything`); a no-op on a CPU-only machine.
- :func:`distributed_backend` / :func:`rank_device` — the ``torch.distributed`` backend for a device
  (gloo on CPU, nccl on CUDA) and the device of one ``torchrun`` process (:mod:`xmlib.core.distributed`).
- :func:`autocast` / :func:`set_tf32` — the GPU speed switches (each chapter's ``amp`` and ``tf32``
  config fields): bf16 autocast and TF32 matrix products, off on CPU by default.
- :func:`linear` / :func:`cpu_gemm` — large float32 products without autograd through oneDNN on processors
  where torch's MKL runs below the hardware (AMD with AVX-512), the same as ``F.linear`` elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator

import torch
import torch.nn.functional as F


def accelerator_available() -> bool:
    """True when a CUDA device can be used."""
    return torch.cuda.is_available()


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the device: ``prefer`` if given, else ``$XMLIB_DEVICE``, else CUDA when present, else CPU.

    Asking for CUDA on a machine without it is an error that says so, rather than a silent fallback.
    """
    choice = prefer or os.environ.get("XMLIB_DEVICE") or ("cuda" if accelerator_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not accelerator_available():
        raise RuntimeError(
            f"device {choice!r} was asked for (argument or XMLIB_DEVICE) but this machine has no CUDA "
            "device; use 'cpu' or unset XMLIB_DEVICE"
        )
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {choice!r}: use 'cpu' or 'cuda[:N]'")
    return device


def describe_device(device: torch.device | None = None) -> str:
    """A human-readable name for the run record, e.g. ``cpu (2 threads)`` or ``cuda:0 (NVIDIA H100)``."""
    device = device or get_device()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def accelerator_names() -> list[str]:
    """The model name of every CUDA device this process can see (empty on a CPU-only machine), for
    the run record."""
    if not accelerator_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (for honest timings in benchmark scripts)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_cpu_threads(n: int, device: torch.device | None = None) -> int:
    """Let torch use ``n`` CPU threads; return the previous count (to restore it).

    ``n = 0`` leaves torch's setting, and so does a CUDA ``device`` (default: :func:`get_device`),
    where the CPU only feeds the accelerator. Small models on a shared CPU are often fastest with one
    thread: thread start-up and oversubscription cost more than they save.
    """
    if n < 0:
        raise ValueError(f"cpu_threads must be >= 0 (0 = leave torch's setting), got {n}")
    old = torch.get_num_threads()
    device = device if device is not None else get_device()
    if n > 0 and device.type == "cpu":
        torch.set_num_threads(n)
    return old


@contextlib.contextmanager
def cpu_threads(n: int, device: torch.device | None = None) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads (see :func:`set_cpu_threads`), restored afterwards."""
    old = set_cpu_threads(n, device)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def matmul_gflops(n: int = 2048, rounds: int = 5, backend: str = "torch") -> float:
    """This CPU core's float32 matrix-product speed in GFLOP/s: the best of ``rounds`` timed n × n
    products on one torch thread (the thread count is restored). The yardstick of the benchmarks'
    "fraction of peak" and of the build's timing record, where it says how fast the machine ran: on a
    shared machine it moves from hour to hour, and every time measured with it moves the same way.

    ``backend``: ``"torch"`` times ``torch.mm`` (MKL's sgemm in the pinned torch), ``"onednn"`` the same
    product through oneDNN (:func:`linear`'s fast path). On AMD processors MKL runs its AVX2 kernels
    whatever the processor offers, so the two can differ by 2× (see :func:`cpu_gemm`); the machine's
    float32 peak is the larger."""
    if n < 1 or rounds < 1:
        raise ValueError(f"matmul_gflops needs n >= 1 and rounds >= 1, got n={n}, rounds={rounds}")
    if backend not in ("torch", "onednn"):
        raise ValueError(f"backend must be 'torch' or 'onednn', got {backend!r}")
    if backend == "onednn" and not onednn_available():
        raise RuntimeError("this torch build has no oneDNN linear (torch.ops.mkldnn._linear_pointwise); "
                           "time backend='torch' instead")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        if backend == "torch":
            out = a @ b  # warm-up: the library's threads and buffers

            def product():
                torch.mm(a, b, out=out)
        else:
            def product():
                _onednn_linear(a, b, None)
            product()
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            product()
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return 2 * n ** 3 / best / 1e9


CPU_GEMMS = ("auto", "torch", "onednn")
"""Values of ``XMLIB_CPU_GEMM`` (:func:`cpu_gemm`)."""

ONEDNN_MIN_MACS = 2 ** 21
"""Smallest product (rows × in × out multiply-adds) that :func:`linear` hands to oneDNN: below it the call's
fixed cost outweighs the faster kernel (a 64 × 64 × 16 product ran 3× slower through oneDNN, one of
1,024 × 64 × 16 at the same speed, 4,096 × 1,024 × 256 2.2× faster; AMD EPYC, one thread)."""


def onednn_available() -> bool:
    """True when this torch build exposes oneDNN's linear on dense tensors (``mkldnn._linear_pointwise``)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _cpu_vendor_flags() -> tuple[str, set[str]]:
    """(vendor id, ISA flags) of the first processor in ``/proc/cpuinfo``; ("", set()) where it cannot be read."""
    vendor, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if vendor and flags:
                    break
    except OSError:
        pass
    return vendor, flags


_CPU_GEMM: str | None = None


def cpu_gemm() -> str:
    """The library that :func:`linear` uses for large float32 products on a CPU: ``"torch"`` (``F.linear``,
    MKL's sgemm in the pinned torch) or ``"onednn"``.

    ``XMLIB_CPU_GEMM`` chooses (``torch``, ``onednn`` or ``auto``, the default). ``auto`` takes oneDNN on x86
    processors that are not Intel's and have AVX-512: MKL picks its kernels by vendor and runs AVX2 code there
    (on an AMD EPYC with AVX-512 a 2048³ product ran at 101 GFLOP/s through MKL and 226 through oneDNN, one
    thread), while oneDNN picks by instruction set. The choice depends on the processor only, never on a
    timing, so the same machine always computes the same numbers; the two libraries round differently (the
    same float32 precision). Decided once per process."""
    global _CPU_GEMM
    if _CPU_GEMM is None:
        choice = os.environ.get("XMLIB_CPU_GEMM", "auto").strip().lower() or "auto"
        if choice not in CPU_GEMMS:
            raise ValueError(f"XMLIB_CPU_GEMM must be one of {', '.join(CPU_GEMMS)}, got {choice!r}")
        if choice == "onednn" and not onednn_available():
            raise RuntimeError("XMLIB_CPU_GEMM=onednn but this torch build has no oneDNN linear; unset it or use 'torch'")
        if choice == "auto":
            vendor, flags = _cpu_vendor_flags()
            choice = "onednn" if (onednn_available() and vendor not in ("", "GenuineIntel")
                                  and "avx512f" in flags) else "torch"
        _CPU_GEMM = choice
    return _CPU_GEMM


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` = x Wᵀ + b, through oneDNN where :func:`cpu_gemm` says so and the product
    is large (:data:`ONEDNN_MIN_MACS`): float32 CPU tensors and no autograd graph being recorded (oneDNN's
    linear has no backward). Anything else (float64 checks, CUDA, training) is ``F.linear`` itself."""
    if (x.dtype != torch.float32 or x.device.type != "cpu" or weight.dtype != torch.float32
            or weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]
            or x.numel() * weight.shape[0] < ONEDNN_MIN_MACS
            or (bias is not None and (bias.dtype != torch.float32 or bias.ndim != 1))
            or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                             or (bias is not None and bias.requires_grad)))
            or cpu_gemm() != "onednn"):
        return F.linear(x, weight, bias)
    return _onednn_linear(x, weight, bias)


def set_deterministic() -> None:
    """Ask for deterministic accelerator kernels where they exist.

    A warning, not an error, where an op has none, so that the accelerator path still runs. CPU
    kernels are deterministic already, so on a machine without CUDA nothing is done (the switch costs
    several seconds of imports).
    """
    if accelerator_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def available_memory(device: torch.device | None = None) -> int | None:
    """Bytes a new allocation can take on ``device`` now: free GPU memory on CUDA, ``MemAvailable`` of
    ``/proc/meminfo`` on a CPU (None where the system does not say)."""
    device = device or get_device()
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def activation_bytes(model: torch.nn.Module, *inputs: object) -> int | None:
    """Bytes of the outputs of every leaf module in one forward pass of ``model`` on ``inputs``, found
    on the ``meta`` device (shapes only: nothing is computed or allocated); a step's autograd keeps about
    this much. None when the model cannot run there (then nothing can be said in advance)."""
    import copy

    try:
        meta = copy.deepcopy(model).to("meta")
        args = [x.to("meta") if isinstance(x, torch.Tensor) else x for x in inputs]
    except Exception:  # sizing is advice: a model it cannot copy to meta is simply not checked
        return None
    total = [0]

    def count(_module, _inputs, out) -> None:
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel() * t.element_size()

    handles = [m.register_forward_hook(count) for m in meta.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            meta(*args)
    except Exception:  # any operation without a meta kernel (or that needs real data): no estimate
        return None
    finally:
        for h in handles:
            h.remove()
    return total[0]


def require_memory(need: int | None, device: torch.device, what: str, fix: str) -> None:
    """Raise MemoryError before allocating when ``need`` bytes exceed what ``device`` has free (nothing
    when either is unknown). ``what`` names the step and its settings, ``fix`` the parameter to lower."""
    free = available_memory(device)
    if need is not None and free is not None and need > free:
        gib = 2.0 ** 30
        raise MemoryError(f"{what} needs about {need / gib:.1f} GiB, but {device} has {free / gib:.1f} GiB free; {fix}")


def distributed_backend(device: torch.device) -> str:
    """The ``torch.distributed`` backend for processes that compute on ``device``: nccl on CUDA, gloo on CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(local_rank: int) -> torch.device:
    """The device of the ``torchrun`` process with this ``LOCAL_RANK``: GPU number ``local_rank`` when the
    run is on CUDA (:func:`get_device`), made that process's current GPU; else the CPU."""
    device = get_device()
    if device.type != "cuda":
        return device
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} CUDA devices; "
                           "start at most that many processes per node (torchrun --nproc-per-node)")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


AMP_MODES = ("off", "bf16", "auto")
"""Values of the ``amp`` config fields: ``off`` = float32 (the papers'); ``bf16`` = bf16 autocast on any
device; ``auto`` = bf16 autocast where the device computes it fast (a CUDA GPU with bf16), float32 elsewhere."""


def amp_dtype(device: torch.device, mode: str) -> torch.dtype | None:
    """The autocast dtype of ``mode`` (:data:`AMP_MODES`) on ``device``, or None (float32, no autocast)."""
    if mode not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {mode!r}")
    if mode == "bf16":
        return torch.bfloat16
    if mode == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device, mode: str = "off") -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` as ``mode`` (:func:`amp_dtype`) decides; a no-op context when it says float32.

    Losses should be computed from the scores cast back to float32 (autocast keeps reductions in float32)."""
    dtype = amp_dtype(device, mode)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_tf32(enabled: bool, device: torch.device | None = None) -> None:
    """TF32 matrix products and convolutions on a CUDA ``device`` (default :func:`get_device`); nothing on CPU."""
    device = device if device is not None else get_device()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
        torch.backends.cudnn.allow_tf32 = bool(enabled)


def reset_peak_memory(device: torch.device) -> None:
    """Start counting :func:`peak_memory` afresh on a CUDA ``device`` (nothing on CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int | None:
    """Bytes torch held at most on a CUDA ``device`` since :func:`reset_peak_memory`; None on CPU."""
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
