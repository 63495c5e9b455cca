"""Several processes, one run: ``torch.distributed`` started by ``torchrun`` (no engine of our own).

``torchrun --nproc-per-node N -m xmlib.sgraf.train ...`` starts N processes with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`init` joins them into one process group
(gloo on CPU, nccl on a GPU: :func:`xmlib.core.device.distributed_backend`). Without those variables, or
with one process, nothing is started and every helper below answers for a single process (rank 0 of 1),
so the same code runs either way.

- :func:`rank`, :func:`world_size`, :func:`is_main`, :func:`barrier`;
- :func:`shard` — this rank's contiguous part of ``n`` rows (the sizes of ``numpy.array_split``);
- :func:`gather_rows` — every rank's rows (uneven counts allowed), concatenated in rank order, on every rank;
  :func:`gather_rows_grad` — the same inside autograd (the gradient of each rank's rows is the sum of
  every rank's gradient for them);
- :func:`rank_seed` / :func:`seed_rank` — each rank's seed: rank 0 keeps the run's seed (a one-process
  run is unchanged), the others derive theirs from (seed, rank);
- :func:`wrap` — ``DistributedDataParallel`` around a model when there are several processes.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from xmlib.core.device import distributed_backend, rank_device
from xmlib.core.seed import seed_everything

TIMEOUT_S = 600
"""Seconds a collective waits for the other ranks before failing (instead of hanging forever)."""


@dataclass(frozen=True)
class Context:
    """This process's place in the run: ``rank`` of ``world_size``, its ``local_rank`` on the node, its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer; torchrun sets it, unset it "
                         "to run one process") from None


def init(timeout_s: float = TIMEOUT_S) -> Context:
    """Join the process group ``torchrun`` describes in the environment (once); a no-op for one process.

    Returns this process's :class:`Context`; its device is :func:`xmlib.core.device.rank_device` of
    ``LOCAL_RANK`` (the GPU of that number when the run is on GPUs, else the CPU).
    """
    world, rank_, local = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank_ < world:
        raise ValueError(f"RANK={rank_} and WORLD_SIZE={world} are inconsistent (need 0 <= RANK < WORLD_SIZE)")
    device = rank_device(local)
    if world > 1 and not is_distributed():
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise RuntimeError(f"WORLD_SIZE={world} but {name} is not set; start the processes with torchrun")
        dist.init_process_group(distributed_backend(device), rank=rank_, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return Context(rank(), world_size(), local, device)


def shutdown() -> None:
    """Leave the process group (at the end of a run); nothing in a single process."""
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0 (the process that writes files and prints)."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (nothing in a single process)."""
    if is_distributed():
        dist.barrier()


def shard_sizes(n: int, world: int | None = None) -> list[int]:
    """Rows of each rank when ``n`` rows are split into contiguous parts (the first ``n % world`` get one more)."""
    world = world_size() if world is None else world
    if n < 0 or world < 1:
        raise ValueError(f"cannot split {n} rows over {world} ranks")
    return [n // world + (r < n % world) for r in range(world)]


def shard(n: int, rank_: int | None = None, world: int | None = None) -> slice:
    """This rank's contiguous rows of ``n`` (see :func:`shard_sizes`)."""
    rank_ = rank() if rank_ is None else rank_
    sizes = shard_sizes(n, world)
    start = sum(sizes[:rank_])
    return slice(start, start + sizes[rank_])


def _all_gather_padded(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """All ranks' ``x`` (rows ``sizes[r]`` on rank r, other dims equal), concatenated in rank order."""
    most = max(sizes)
    padded = x.new_zeros((most, *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of ``x`` concatenated in rank order, on every rank (the ranks may hold different
    numbers of rows; the other dimensions and the dtype must agree). ``x`` itself in a single process."""
    if not is_distributed():
        return x
    on = _comm_device(x)  # nccl moves GPU tensors only: a CPU matrix travels through this rank's GPU
    counts = torch.tensor([x.shape[0]], dtype=torch.int64, device=on)
    every = [torch.empty_like(counts) for _ in range(world_size())]
    dist.all_gather(every, counts)
    return _all_gather_padded(x.detach().to(on), [int(c) for c in every]).to(x.device)


def _comm_device(x: torch.Tensor) -> torch.device:
    """Where ``x`` must be for the backend: this rank's GPU for nccl, where it is for gloo."""
    return rank_device(_env_int("LOCAL_RANK", 0)) if dist.get_backend() == "nccl" else x.device


class _GatherRows(torch.autograd.Function):
    """all_gather forward; backward: each rank's rows get the sum of every rank's gradient for them."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
        ctx.sizes = sizes
        return _all_gather_padded(x, list(sizes))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # sum over the ranks of d(their loss)/d(all rows)
        return grad[shard(sum(ctx.sizes))], None


def gather_rows_grad(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """:func:`gather_rows` inside autograd, for rows counted in ``sizes`` (known to every rank, so nothing
    is exchanged to learn them). When every rank then computes the same loss L from the gathered rows,
    rank r's rows receive world_size · dL/d(rows); DistributedDataParallel's averaging of the parameters'
    gradients divides that by world_size again, so the update is the one-process update of L."""
    if not is_distributed():
        return x
    if x.shape[0] != sizes[rank()]:
        raise ValueError(f"rank {rank()} holds {x.shape[0]} rows but sizes says {sizes[rank()]}")
    return _GatherRows.apply(x, tuple(sizes))


def mean_over_ranks(value: float) -> float:
    """The mean of one number over the ranks (a logged loss); ``value`` in a single process."""
    if not is_distributed():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    t = t.to(_comm_device(t))
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def all_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (small picklable data, e.g. RNG states), in rank order; ``[obj]`` in one process.

    The objects travel between the run's own processes; nothing is read from a file."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def rank_seed(seed: int, rank_: int | None = None) -> int:
    """The seed of ``rank_`` (default: this rank): ``seed`` itself on rank 0, so a one-process run is the
    run it always was; on rank r > 0 a number derived from (seed, r) by ``numpy.random.SeedSequence``
    (no collision with another run's seed + r)."""
    rank_ = rank() if rank_ is None else rank_
    if rank_ == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank_]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def seed_rank(seed: int, *, deterministic: bool = True) -> np.random.Generator:
    """:func:`xmlib.core.seed.seed_everything` with this rank's seed (:func:`rank_seed`): per-rank
    randomness (dropout, augmentation) differs between ranks and is reproducible."""
    return seed_everything(rank_seed(seed), deterministic=deterministic)


def wrap(model: torch.nn.Module, device: torch.device | None = None) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when several processes run, else ``model`` itself.

    Every rank starts from rank 0's weights (DDP broadcasts them); gradients are averaged over the ranks
    after each backward pass. On a GPU the BatchNorm layers become ``SyncBatchNorm`` (statistics over the
    whole global batch, as in one process); on CPU, where torch has no SyncBatchNorm, each rank's
    BatchNorm sees only its own rows.
    """
    if not is_distributed():
        return model
    device = device or next(model.parameters()).device
    if device.type != "cpu":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type != "cpu" and device.index is not None else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
