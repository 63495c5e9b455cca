"""Run a function in several local processes joined by ``torch.distributed`` (gloo), as ``torchrun`` would.

Each process gets the variables torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT`` on a free port), one torch thread, the CPU, and calls ``fn(rank, *args)`` after
:func:`xmlib.core.distributed.init`. A process that fails fails the call with its traceback; one that
hangs is killed after ``timeout`` seconds.
"""

from __future__ import annotations

import os
import socket
import time

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, fn, world: int, port: int, args: tuple) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "XMLIB_DEVICE": "cpu",
                       "XMLIB_PROGRESS": "0", "OMP_NUM_THREADS": "1"})
    from xmlib.core import distributed
    from xmlib.core.device import set_cpu_threads

    set_cpu_threads(1, torch.device("cpu"))

    distributed.init(timeout_s=60)
    try:
        fn(rank, *args)
    finally:
        distributed.shutdown()


def run_ranks(fn, *args, world: int = 2, timeout: float = 180.0) -> None:
    """Call ``fn(rank, *args)`` in ``world`` processes (``fn`` must be importable: a module-level function)."""
    ctx = mp.start_processes(_entry, args=(fn, world, free_port(), args), nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
            raise TimeoutError(f"{fn.__name__} did not finish in {timeout:.0f} s on {world} processes")
