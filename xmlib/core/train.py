"""A small training loop shared by the three chapters.

What it takes care of, so each chapter's notebook only says what is specific to its paper:

- progress bars (``tqdm.auto``; kept out of the rendered book);
- gradient clipping and an optional per-epoch learning-rate scheduler;
- model selection on a *validation* metric (``evaluate`` must never look at test data);
- a checkpoint after every epoch, written atomically, with optimiser, scheduler and RNG state, so an
  interrupted run resumes where it stopped and ends with the same numbers as an uninterrupted one.

Under ``torchrun`` (:mod:`xmlib.core.distributed`) every rank runs this loop on its own part of each
batch (the ``step`` it is given does the splitting and the DistributedDataParallel call); ``model`` is
the plain model. Rank 0 alone writes the checkpoints (atomically), which also keep every rank's RNG
state; every rank resumes from the same file at the same epoch. The logged ``train_loss`` is the mean
over the ranks, so every rank keeps the same history and selects the same epoch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import numpy as np
import torch

from xmlib.core import distributed
from xmlib.core.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from xmlib.core.progress import progress
from xmlib.core.seed import seed_everything


@dataclass
class FitResult:
    """What :func:`fit` returns: one dict per epoch, and which epoch was selected."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float | None = None
    resumed_from: int | None = None
    seconds: float = 0.0

    def column(self, key: str) -> list[float]:
        return [row[key] for row in self.history if key in row]


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batches: Callable[[int], Iterable[Any]],
    step: Callable[[Any], torch.Tensor],
    evaluate: Callable[[], dict[str, float]] | None = None,
    select: str | None = None,
    mode: Literal["max", "min"] = "max",
    scheduler: Any | None = None,
    clip_grad_norm: float | None = None,
    checkpoint_dir: str | Path | None = None,
    fingerprint: str = "",
    restore_best: bool = True,
    desc: str = "train",
    max_steps: int = 0,
) -> FitResult:
    """Train ``model`` for ``epochs`` epochs.

    ``batches(epoch)`` yields the epoch's batches (derive its randomness from the epoch number so a
    resumed run sees the same batches); ``step(batch)`` returns the loss to minimise. After each epoch
    ``evaluate()`` returns validation metrics; the epoch with the best ``select`` metric is kept and,
    with ``restore_best``, loaded back into ``model`` at the end.

    ``max_steps`` > 0 caps the optimiser steps of the whole run (counted over epochs, kept across a
    resume): the epoch in which the cap is reached stops after that step, is evaluated and checkpointed
    as any other, and no later epoch runs. ``0`` = no cap (``epochs`` alone decides).
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if select is not None and evaluate is None:
        raise ValueError("select= needs evaluate= (a function returning validation metrics)")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0 (0 = no cap), got {max_steps}")

    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch = 0
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    last_path = ckpt_dir / "last.pt" if ckpt_dir else None
    best_path = ckpt_dir / "best.pt" if ckpt_dir else None

    if last_path is not None and last_path.exists():
        state = load_checkpoint(last_path)
        if state.get("fingerprint", "") != fingerprint:
            raise RuntimeError(
                f"checkpoint {last_path} belongs to another configuration "
                f"({state.get('fingerprint')!r} != {fingerprint!r}); delete {ckpt_dir} or choose another folder"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        _restore_rng(state)
        result.history = list(state["history"])
        result.best_epoch = state.get("best_epoch")
        result.best_score = state.get("best_score")
        start_epoch = int(state["epoch"]) + 1
        result.resumed_from = start_epoch
        if best_path is not None and best_path.exists():
            best_state = load_checkpoint(best_path)["model"]

    steps_done = int(result.history[-1].get("steps", 0)) if result.history else 0
    t0 = time.perf_counter()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    for epoch in progress(range(start_epoch, epochs), desc=desc, total=epochs, initial=start_epoch):
        if max_steps and steps_done >= max_steps:
            break  # the step cap was reached in an earlier epoch
        model.train()
        total, count = 0.0, 0
        for batch in progress(batches(epoch), desc=f"epoch {epoch}"):
            if max_steps and steps_done >= max_steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss = step(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(_non_finite_loss_message(loss, epoch, batch, model))
            loss.backward()
            if clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            total += float(loss.detach())
            count += 1
            steps_done += 1
        if scheduler is not None:
            scheduler.step()
        row: dict[str, float] = {"epoch": epoch, "train_loss": distributed.mean_over_ranks(total / max(count, 1)),
                                 "steps": steps_done}
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                row.update({k: float(v) for k, v in evaluate().items()})
        result.history.append(row)

        if select is not None:
            if select not in row:
                raise KeyError(f"evaluate() returned {sorted(row)}, which has no {select!r} to select on")
            score = row[select]
            better = result.best_score is None or (score > result.best_score if mode == "max" else score < result.best_score)
            if better and not math.isnan(score):
                result.best_epoch, result.best_score = epoch, score
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if best_path is not None and distributed.is_main():
                    save_checkpoint(best_path, model=best_state, epoch=epoch, score=score, fingerprint=fingerprint)
        if last_path is not None:
            rngs = distributed.all_objects(rng_state())  # every rank takes part; rank 0 writes
            if distributed.is_main():
                save_checkpoint(
                    last_path,
                    model=model.state_dict(),
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict() if scheduler is not None else None,
                    rng=rngs[0],
                    rng_ranks=rngs,
                    epoch=epoch,
                    history=result.history,
                    best_epoch=result.best_epoch,
                    best_score=result.best_score,
                    fingerprint=fingerprint,
                )
    if last_path is not None:
        distributed.barrier()  # the last checkpoint is on disk before any rank returns
    result.seconds = time.perf_counter() - t0
    if restore_best and best_state is not None:
        model.load_state_dict({k: v.to(device) for k, v in best_state.items()})
    return result


def _restore_rng(state: dict[str, Any]) -> None:
    """This rank's RNG state from a checkpoint: its own when the checkpoint was written by as many ranks;
    after a change of the number of processes, rank 0's, and on the other ranks a seed derived from
    (epoch, rank) (the run goes on reproducibly, but not as the uninterrupted run would have)."""
    per_rank = state.get("rng_ranks") or [state["rng"]]
    rank, world = distributed.rank(), distributed.world_size()
    if len(per_rank) == world:
        set_rng_state(per_rank[rank])
        return
    set_rng_state(state["rng"])
    if rank > 0:
        seed_everything(distributed.rank_seed(int(state["epoch"]), rank))


def count_parameters(model: torch.nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, as the papers' tables count them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _non_finite_values(obj: Any, where: str = "batch") -> str | None:
    """Where a batch (tensors, arrays, nested tuples / lists / dicts / dataclasses) holds NaN or inf, or None."""
    if isinstance(obj, torch.Tensor):
        return where if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else None
    if isinstance(obj, np.ndarray):
        return where if obj.dtype.kind in "fc" and not np.isfinite(obj).all() else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = ((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
    else:
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (tuple, list)) else ()
    return next((w for k, v in items if (w := _non_finite_values(v, f"{where}[{k!r}]"))), None)


def _non_finite_loss_message(loss: torch.Tensor, epoch: int, batch: Any, model: torch.nn.Module) -> str:
    """Why the loss is NaN / inf: the inputs (name the data to check), the weights, or the step size."""
    head = f"loss became {loss.item()} at epoch {epoch}"
    bad_input = _non_finite_values(batch)
    if bad_input is not None:
        return (f"{head}: the inputs hold NaN or inf ({bad_input}); the data is at fault, not the training. "
                "Check the features the data files hold (the readers of xmlib.data.formats reject them)")
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return f"{head}: the model's weights hold NaN or inf after the previous step; lower the learning rate (lr)"
    return f"{head} with finite inputs and weights; lower the learning rate (lr) or check the loss function"

