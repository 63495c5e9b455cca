"""Training glue for the Deep Ranking chapter: optimiser, sampler and the loop (via :func:`xmlib.core.train.fit`).

One step: sample B triplets (Sec. 5.1), embed the 3B images with shared weights (Fig. 3), and minimise
the mean per-triplet hinge of Eq. (3); SGD with momentum carries λ of Eq. (4) as ``weight_decay``
(see :mod:`xmlib.deepranking.loss`).

Several processes (``torchrun``, :mod:`xmlib.core.distributed`): ``batch_size`` stays the *global* batch
of triplets. Every rank draws the same B triplets (the sampler and its generator are seeded alike), takes
its contiguous slice, embeds its 3·b images through DistributedDataParallel and returns
``Σ_slice hinge × world / B``; DDP's averaging of the gradients then gives the gradient of the batch
mean, so N processes make the one-process update (Eq. 3 has no in-batch negatives to share: each
triplet carries its own). Dropout and pixel shifts draw per rank; a ConvNet that is fine-tuned keeps
per-rank BatchNorm statistics on CPU and synchronised ones on a GPU (:func:`xmlib.core.distributed.wrap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from xmlib.core import distributed
from xmlib.core.device import activation_bytes, autocast, require_memory, set_tf32
from xmlib.core.fingerprint import checkpoint_key
from xmlib.core.train import FitResult, fit
from xmlib.deepranking.config import Config
from xmlib.deepranking.loss import triplet_hinge
from xmlib.deepranking.sampler import BufferedTripletSampler, CategoryRelevance, OfflineTripletSampler, Triplets


class TripletSampler(Protocol):
    """What training needs from a sampler: ``batch_size`` triplets drawn with the generator it is given."""

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> Triplets: ...


@dataclass
class TripletData:
    """The images a sampler's indices point into.

    images: (N, 3, S, S) float in [0, 1] (S = the network's image_size);
    features: (N, F) cached pooled ConvNet features of the same images, or None (the network runs its ConvNet).
    """

    images: torch.Tensor
    features: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, S, S), got {tuple(self.images.shape)}")
        if self.features is not None and len(self.features) != len(self.images):
            raise ValueError(f"features have {len(self.features)} rows for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        imgs = self.images[idx]
        feats = self.features[idx] if self.features is not None else None
        if device is not None:
            imgs = imgs.to(device)
            feats = feats.to(device) if feats is not None else None
        return imgs, feats


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def embed(model: torch.nn.Module, data: TripletData, batch_size: int = 256) -> torch.Tensor:
    """f(p) for every image, in eval mode: (N, embed_dim) on the CPU."""
    was = model.training
    model.eval()
    dev = _device(model)
    out = []
    for s in range(0, len(data), batch_size):
        imgs, feats = data.take(np.arange(s, min(s + batch_size, len(data))), dev)
        out.append(model(imgs, feats).cpu())
    model.train(was)
    return torch.cat(out)


def triplet_step(model: torch.nn.Module, data: TripletData, triplets: Triplets, gap: float,
                 rows: slice | None = None) -> torch.Tensor:
    """Mean Eq. (3) hinge of one batch of triplets (one forward pass over the 3B images).

    ``rows``: this rank's slice of the B triplets under DDP (``model`` is then the DDP-wrapped network);
    it returns its hinges' sum × world_size / B, whose mean over the ranks is the batch mean."""
    b = len(triplets.query)
    parts = [triplets.query, triplets.positive, triplets.negative]
    if rows is not None:
        parts = [np.asarray(p)[rows] for p in parts]
    k = len(parts[0])
    imgs, feats = data.take(np.concatenate(parts), _device(model))  # 3k images
    f = model(imgs, feats)  # (3k, d)
    f = f.float() if f.dtype == torch.bfloat16 else f  # the hinge in float32 under autocast
    if rows is None:
        return triplet_hinge(f[:k], f[k:2 * k], f[2 * k:], gap)
    return triplet_hinge(f[:k], f[k:2 * k], f[2 * k:], gap, reduction="sum") * (distributed.world_size() / b)


def step_bytes(cfg: Config, model: torch.nn.Module, data: TripletData) -> int | None:
    """An estimate of one training step's memory: the 3 × ``batch_size`` images of a batch, each keeping
    the outputs of every layer of the network (:func:`~xmlib.core.device.activation_bytes`, shapes only)
    and their gradients. None when the network cannot be sized in advance."""
    n = min(2, len(data))  # two images: a batch norm in training mode needs more than one
    imgs, feats = data.take(np.arange(n))
    sized = activation_bytes(model, imgs, feats)
    return None if sized is None else 2 * 3 * cfg.batch_size * sized // n


def check_step_fits(cfg: Config, model: torch.nn.Module, data: TripletData) -> None:
    """Fail before allocating when a training step cannot fit in the memory the model's device has free."""
    require_memory(step_bytes(cfg, model, data), _device(model),
                   f"a training step of batch_size={cfg.batch_size} triplets ({3 * cfg.batch_size} images of "
                   f"{data.images.shape[-1]} px)", "lower batch_size or image_size, or free memory")


def make_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.SGD:
    """Momentum SGD over the trainable parameters; ``weight_decay = λ`` (Eq. 4)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_sampler(cfg: Config, relevance: CategoryRelevance,
                 seed: int | None = None) -> OfflineTripletSampler | BufferedTripletSampler:
    """The sampler ``cfg.sampler`` names. The buffered one is filled by streaming every image once, in a
    seeded random order, with weight r_i; it then only calls ``relevance(i, j)`` on buffered images."""
    seed = cfg.seed if seed is None else seed
    common = dict(t_p=cfg.t_p, t_r=cfg.t_r, out_of_class_fraction=cfg.out_of_class_fraction,
                  max_failures=cfg.max_failures, seed=seed)
    if cfg.sampler == "offline":
        return OfflineTripletSampler(relevance, **common)
    s = BufferedTripletSampler(relevance, capacity=cfg.buffer_size, rescale=cfg.online_rescale, **common)
    order = np.random.default_rng(seed).permutation(len(relevance))
    s.extend(order.tolist(), relevance.categories[order].tolist(), relevance.total[order].tolist())
    return s


def train_deep_ranking(cfg: Config, model: torch.nn.Module, data: TripletData, sampler: TripletSampler,
                       evaluate: Callable[[], dict[str, float]] | None = None, select: str | None = None,
                       checkpoint_dir: str | Path | None = None, desc: str = "deep ranking") -> FitResult:
    """Train ``model`` for ``cfg.epochs`` × ``cfg.steps_per_epoch`` steps of ``cfg.batch_size`` triplets.

    Each epoch's triplets are drawn with a generator seeded from (cfg.seed, epoch), passed to
    ``sampler.sample``, so a resumed run sees the same triplets. Under ``torchrun`` every rank draws the
    same global batch and trains on its slice through DistributedDataParallel (see the module
    docstring). ``cfg.amp`` / ``cfg.tf32``: bf16 autocast and TF32 through :mod:`xmlib.core.device`.
    """
    device = _device(model)
    set_tf32(cfg.tf32, device)
    check_step_fits(cfg, model, data)
    optimizer = make_optimizer(cfg, model)
    net = model
    if distributed.is_distributed():
        if cfg.batch_size < distributed.world_size():
            raise ValueError(f"batch_size={cfg.batch_size} is the global batch of triplets, split over "
                             f"{distributed.world_size()} processes; raise it or start fewer processes")
        net = distributed.wrap(model, device)
        distributed.seed_rank(cfg.seed)  # each rank's own dropout and pixel shifts

    def step(t: Triplets) -> torch.Tensor:
        with autocast(device, cfg.amp):
            if net is model:
                return triplet_step(model, data, t, cfg.gap)
            return triplet_step(net, data, t, cfg.gap, rows=distributed.shard(len(t.query)))

    def batches(epoch: int):
        rng = np.random.default_rng([cfg.seed, epoch])
        for _ in range(cfg.steps_per_epoch):
            yield sampler.sample(cfg.batch_size, rng)

    return fit(model, optimizer, epochs=cfg.epochs, batches=batches,
               step=step, evaluate=evaluate, select=select,
               checkpoint_dir=checkpoint_dir, fingerprint=checkpoint_key(cfg, __name__), desc=desc,
               max_steps=cfg.max_steps)
