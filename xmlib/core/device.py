"""The one place that decides where tensors live.

Every model and every notebook asks :func:`get_device`; nothing else in the project mentions the
accelerator. ``XMLIB_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``) overrides the automatic choice.
"""

from __future__ import annotations

import os

import torch


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


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (for honest timings in benchmark scripts)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def max_memory_bytes(device: torch.device) -> int | None:
    """Peak memory allocated on ``device`` so far, or None where it is not tracked (CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None
