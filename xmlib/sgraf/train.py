"""Training and evaluating one SGRAF model (SGR, SAF or an ablation) on SCAN precomp data.

- :class:`CaptionData`: image region features (N_img, K, D) and the padded token ids of the 5·N_img
  captions (caption j ↔ image j // 5); from plain arrays and id lists (:meth:`CaptionData.from_token_lists`)
  or from a precomp folder and a vocabulary (:func:`load_precomp`).
- :func:`epoch_batches`: the caption indices of every batch of an epoch, derived from (seed, epoch), so
  a resumed run sees the same batches.
- :func:`train_model`: Adam, gradient-norm clipping, the step learning-rate schedule, the best epoch by
  dev rSum, a checkpoint after every epoch (resumes after interruption) — through
  :func:`xmlib.core.train.fit`.
- :func:`score_split`: the full (N_img, 5·N_img) score matrix of a split, in bounded-memory blocks;
  :func:`evaluate`: that matrix's R@K / rSum / medr / meanr.

The ``paper`` profile with ``data_dir`` set trains on Flickr30K / COCO precomp with the paper's
hyperparameters: ``python -m xmlib.sgraf.train --profile paper --data-dir DIR --vocab VOCAB.json``.

Several processes (``torchrun --nproc-per-node N -m xmlib.sgraf.train ...``, :mod:`xmlib.core.distributed`):

- **training** (:class:`GatheredScores`): ``batch_size`` is the *global* batch (the paper's 128 whatever
  the number of GPUs); each rank takes a contiguous slice of it, encodes its images and captions, and
  receives every rank's caption encodings; it scores its images against all the batch's captions (its
  rows of the (B, B) score matrix: B²/N pairs, the memory that grows) and the rows are gathered. Every
  rank then computes the paper's loss over the whole (B, B) matrix, so the in-batch negatives (hardest or
  all) are those of the global batch: N processes give the one-process update (up to float rounding),
  and one process is the paper's training unchanged. Dropout draws per rank (:func:`xmlib.core.distributed.seed_rank`);
  BatchNorm statistics cover the global batch on a GPU (SyncBatchNorm) and each rank's rows on CPU
  (SAF's one-channel batch norm always covers the rank's rows).
- **evaluation** (:func:`score_split`): the rows (images) of the score matrix are split across the
  ranks, each scores its rows with tiles bounded by ``max_bytes``, and the rows are gathered on every
  rank: the same matrix as one process.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from xmlib.core import distributed
from xmlib.core.config import resolve_config
from xmlib.core.device import autocast, get_device, require_memory, set_tf32
from xmlib.core.fingerprint import checkpoint_key
from xmlib.core.seed import seed_everything
from xmlib.core.train import FitResult, fit
from xmlib.metrics.retrieval import retrieval_metrics
from xmlib.sgraf.config import PROFILES, Config
from xmlib.sgraf.loader import batch_loader
from xmlib.sgraf.loss import contrastive_loss
from xmlib.sgraf.model import (
    BATCH_STATISTICS,
    EVAL_BYTES,
    KEEP_BYTES,
    SCORE_BYTES,
    STATISTICS_TILES,
    SGRAFModel,
    encode_split,
    kept_pair_bytes,
    pair_bytes,
    score_matrix,
)


@dataclass(frozen=True)
class CaptionData:
    """Images and captions of one split.

    images: (N_img, K, D) region features (any float dtype, memory-mapped is fine); tokens: (N_cap, L)
    int64 ids padded with 0; lengths: (N_cap,) int64 (``<start>``/``<end>`` included).
    """

    images: np.ndarray
    tokens: torch.Tensor
    lengths: torch.Tensor
    captions_per_image: int = 5

    def __post_init__(self) -> None:
        if self.images.ndim != 3:
            raise ValueError(f"images must be (N_img, K, D) region features, got shape {self.images.shape}")
        if self.tokens.shape[0] != self.captions_per_image * self.images.shape[0]:
            raise ValueError(f"{self.tokens.shape[0]} captions for {self.images.shape[0]} images; need exactly "
                             f"{self.captions_per_image} per image (caption j of image j // {self.captions_per_image})")
        if self.lengths.shape != self.tokens.shape[:1] or int(self.lengths.min()) < 1:
            raise ValueError("lengths must be (N_cap,) with every caption at least one token long")

    @classmethod
    def from_token_lists(cls, images: np.ndarray, captions: Sequence[Sequence[int]], *, max_words: int = 0,
                         captions_per_image: int = 5) -> "CaptionData":
        """From id lists (``<start> … <end>``); ``max_words`` > 0 keeps the first max_words − 1 ids + the last."""
        seqs = [list(c) for c in captions]
        if any(len(s) == 0 for s in seqs):
            raise ValueError("every caption needs at least one token id")
        if max_words:
            seqs = [s if len(s) <= max_words else s[:max_words - 1] + s[-1:] for s in seqs]
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
        tokens = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.int64)
        for j, s in enumerate(seqs):
            tokens[j, :len(s)] = torch.tensor(s, dtype=torch.int64)
        return cls(images, tokens, lengths, captions_per_image)

    @property
    def n_images(self) -> int:
        return int(self.images.shape[0])

    def first_images(self, n: int) -> "CaptionData":
        """The first ``n`` images and their captions (0 or n ≥ N_img = all)."""
        if n <= 0 or n >= self.n_images:
            return self
        c = self.captions_per_image
        return CaptionData(self.images[:n], self.tokens[:c * n], self.lengths[:c * n], c)


def load_precomp(data_dir: str | Path, split: str, vocab, *, max_words: int = 0, mmap: bool = True) -> CaptionData:
    """Read ``{split}_ims.npy`` / ``{split}_caps.txt`` under ``data_dir`` and encode the captions with ``vocab``."""
    from xmlib.data.formats.scan_precomp import read_split
    from xmlib.data.formats.vocab import encode

    sp = read_split(data_dir, split, mmap=mmap)
    max_len = None if max_words == 0 else max_words - 2
    ids = [encode(c, vocab, max_len) for c in sp.captions]
    return CaptionData.from_token_lists(sp.images, ids)


def find_vocab(cfg: Config) -> Path:
    """The vocabulary JSON: ``cfg.vocab_path``, else the single ``*vocab*.json`` in ``cfg.data_dir``."""
    if cfg.vocab_path:
        return Path(cfg.vocab_path)
    found = sorted(Path(cfg.data_dir).glob("*vocab*.json"))
    if len(found) != 1:
        raise FileNotFoundError(f"found {len(found)} *vocab*.json files in {cfg.data_dir}; set vocab_path to the "
                                "SCAN vocabulary JSON (e.g. f30k_precomp_vocab.json)")
    return found[0]


def epoch_batches(n_images: int, epoch: int, *, batch_size: int, seed: int, captions_per_image: int = 5,
                  captions_per_epoch: int = 5) -> list[np.ndarray]:
    """Caption indices of each batch of ``epoch`` (a function of seed and epoch only).

    Each image contributes ``captions_per_epoch`` distinct captions (5 = every caption once, SCAN's
    epoch); the pairs are shuffled and cut into batches; a last batch of one pair is dropped.
    """
    rng = np.random.default_rng([seed, epoch])
    c = captions_per_image
    if captions_per_epoch >= c:
        caps = np.arange(c * n_images)
    else:
        pick = np.argsort(rng.random((n_images, c)), axis=1)[:, :captions_per_epoch]  # (N_img, k) distinct
        caps = (np.arange(n_images)[:, None] * c + pick).reshape(-1)
    caps = rng.permutation(caps)
    batches = [caps[s:s + batch_size] for s in range(0, len(caps), batch_size)]
    return [b for b in batches if len(b) > 1]


class GatheredScores(nn.Module):
    """The training forward under DistributedDataParallel: this rank's rows of the global batch's (B, B)
    score matrix, gathered into the whole matrix on every rank (see the module docstring).

    ``forward(images, tokens, lengths, all_lengths, sizes)``: this rank's images (b, K, D) and captions
    (b, L), ``all_lengths`` (B,) the lengths of the global batch's captions, ``sizes`` the rows of each
    rank; returns S (B, B) with the matching pairs on the diagonal, as :meth:`SGRAFModel.forward` does
    for the whole batch in one process.
    """

    def __init__(self, model: SGRAFModel):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                all_lengths: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        m = self.model
        regions, img_glob = m.encode_images(images)  # (b, K, d), (b, d)
        words, txt_glob = m.encode_captions(tokens, lengths)  # (b, L, d), (b, d)
        words = nn.functional.pad(words, (0, 0, 0, int(all_lengths.max()) - words.shape[1]))  # (b, L_max, d)
        words = distributed.gather_rows_grad(words, sizes)  # (B, L_max, d)
        txt_glob = distributed.gather_rows_grad(txt_glob, sizes)  # (B, d)
        rows = m.score_block(regions, img_glob, words, txt_glob, all_lengths, buckets=m.cfg.length_buckets)  # (b, B)
        return distributed.gather_rows_grad(rows, sizes)  # (B, B)


def make_step(model: SGRAFModel, data: CaptionData, cfg: Config, device: torch.device,
              hardest: Callable[[], bool] | None = None, ddp: nn.Module | None = None):
    """``step(batch) -> loss`` for :func:`xmlib.core.train.fit`; a batch is the caption indices, or
    ``(caption indices, this rank's images' features)`` as :func:`xmlib.sgraf.loader.batch_loader` yields it.

    ``hardest()`` says whether this step uses the hardest negatives (default: ``cfg.max_violation``);
    :func:`train_model` passes one that is False during the ``warmup_epochs``. ``ddp``: the
    DistributedDataParallel-wrapped :class:`GatheredScores` of ``model`` when several processes run;
    each rank then loads only its slice of the global batch ``caption_indices``. The forward pass runs
    under ``cfg.amp``'s autocast; the loss is computed in float32.
    """
    def step(batch) -> torch.Tensor:
        if isinstance(batch, tuple):  # (caption indices, their images' features) from xmlib.sgraf.loader
            caps, feats = batch
        else:
            caps, feats = batch, None
        img = caps // data.captions_per_image
        ids = torch.from_numpy(img).to(device) if cfg.mask_same_image else None
        max_violation = cfg.max_violation if hardest is None else hardest()
        mine = distributed.shard(len(caps)) if ddp is not None else slice(None)
        if feats is None:
            feats = torch.from_numpy(np.asarray(data.images[img[mine]], dtype=np.float32))
        images = feats.to(device)  # (b, K, D)
        idx = torch.from_numpy(caps)
        lengths = data.lengths[idx[mine]]
        tokens = data.tokens[idx[mine], : int(lengths.max())].to(device)
        with autocast(device, cfg.amp):
            if ddp is None and max_violation and cfg.hardest_pairs:  # SAF: block statistics in tiles, then ≤ 3B pairs
                scores = model.hardest_scores(images, tokens, lengths.to(device), ids)  # (B, B), graph on ≤ 3B pairs
            elif ddp is None:
                scores = model(images, tokens, lengths.to(device))  # (B, B)
            else:
                scores = ddp(images, tokens, lengths.to(device), data.lengths[idx].to(device),
                             distributed.shard_sizes(len(caps)))  # (B, B), the whole batch on every rank
        if scores.dtype == torch.bfloat16:
            scores = scores.float()
        return contrastive_loss(scores, cfg.margin, max_violation, ids)
    return step


@torch.no_grad()
def score_split(model: SGRAFModel, data: CaptionData, *, max_bytes: int = SCORE_BYTES,
                device: torch.device | None = None, sharded: bool | None = None) -> torch.Tensor:
    """The (N_img, 5·N_img) score matrix of a split, tile by tile (:func:`~xmlib.sgraf.model.score_matrix`:
    ``max_bytes`` bounds one tile's intermediates).

    ``sharded`` (default: when several processes run, :mod:`xmlib.core.distributed`): each rank encodes
    and scores only its contiguous rows of images (against every caption) and the rows are gathered on
    every rank; a rank's memory is its images' encodings, all captions' encodings, its rows of the
    matrix while scoring, the gathered matrix, and ``max_bytes``.
    """
    device = device or next(model.parameters()).device
    rows = distributed.shard(data.n_images) if (distributed.is_distributed() if sharded is None else sharded) else slice(None)
    images = data.images[rows]
    if len(images) == 0:  # more ranks than images: this rank has no rows
        return distributed.gather_rows(torch.empty(0, data.tokens.shape[0]))
    enc = encode_split(model, images, data.tokens, data.lengths, device=device)
    return distributed.gather_rows(score_matrix(model, enc, max_bytes=max_bytes))


def evaluate(model: SGRAFModel, data: CaptionData, *, max_bytes: int = SCORE_BYTES,
             device: torch.device | None = None, sharded: bool | None = None) -> dict[str, float]:
    """R@1/5/10 both ways, medr, meanr and rSum of one split (1K protocol for a 1000-image split); with
    several processes the matrix is scored in shards (:func:`score_split`) and every rank gets the metrics."""
    scores = score_split(model, data, max_bytes=max_bytes, device=device, sharded=sharded)
    return retrieval_metrics(scores, data.captions_per_image)


def step_bytes(cfg: Config, data: CaptionData) -> int:
    """An estimate of one training step's memory: ``batch_size²`` pairs (3 · ``batch_size`` with the
    hardest-negative pairs of :meth:`~xmlib.sgraf.model.SGRAFModel.hardest_scores`), each holding what
    :func:`~xmlib.sgraf.model.pair_bytes` counts for a caption of the data's mean length (autograd keeps
    about that much per pair: 5.1 GB estimated against 5.2 GB measured for SGR at the paper's size,
    ``benchmarks/sgraf_paper_speed.py --train-step``). With hardest pairs, SAF's batch norm
    (``aggregator`` ``"saf"`` or ``"joint"``) adds one tile's graph, :data:`~xmlib.sgraf.model.STATISTICS_TILES` ×
    :data:`~xmlib.sgraf.model.EVAL_BYTES` (the backward pass of its block statistics, :func:`~xmlib.sgraf.model.block_logit_statistics`, holds one
    tile at a time), and what its forward pass keeps for that backward pass:
    :func:`~xmlib.sgraf.model.kept_pair_bytes` per pair of the block, at most
    :data:`~xmlib.sgraf.model.KEEP_BYTES`."""
    length = max(1, round(float(data.lengths.float().mean())))
    pairs, extra, k = cfg.batch_size ** 2, 0, int(data.images.shape[1])
    if cfg.max_violation and cfg.hardest_pairs:
        pairs = 3 * cfg.batch_size  # SGRAFModel.hardest_scores: autograd keeps the pairs the loss reads
        # (the no-graph pass over every pair holds one tile at a time, within EVAL_BYTES)
        if cfg.aggregator in BATCH_STATISTICS:
            extra = STATISTICS_TILES * EVAL_BYTES + min(KEEP_BYTES, cfg.batch_size ** 2 * kept_pair_bytes(cfg, length, k))
    return pairs * pair_bytes(cfg, length, k) + extra


def check_step_fits(cfg: Config, data: CaptionData, device: torch.device) -> None:
    """Fail before allocating when a training step cannot fit in the memory ``device`` has free."""
    require_memory(step_bytes(cfg, data), device,
                   f"a training step of batch_size={cfg.batch_size} (embed_size={cfg.embed_size}, sim_dim={cfg.sim_dim})",
                   "lower batch_size (memory grows with its square, or linearly with hardest_pairs) or the dimensions, "
                   "or free memory")


def init_model(cfg: Config, vocab_size: int, device: torch.device | None = None) -> SGRAFModel:
    """A fresh model of ``cfg.model()``, initialised from ``cfg.seed`` (the same weights on every call and
    on every rank); then each rank's generators are seeded for its own dropout (:func:`~xmlib.core.distributed.seed_rank`:
    rank 0, and so a single process, keeps ``cfg.seed``)."""
    seed_everything(cfg.seed)
    model = SGRAFModel(cfg.model(), vocab_size).to(device or get_device())
    if distributed.is_distributed():
        distributed.seed_rank(cfg.seed)
    return model


def train_model(cfg: Config, train: CaptionData, dev: CaptionData, vocab_size: int, *,
                checkpoint_dir: str | Path | None = None, device: torch.device | None = None,
                epochs: int | None = None) -> tuple[SGRAFModel, FitResult]:
    """Train the model ``cfg`` describes; keep the epoch with the best dev rSum.

    Adam (``lr``), gradient-norm clipping (``grad_clip``), learning rate × ``lr_decay``
    every ``lr_step`` epochs (SGR's or SAF's schedule, :meth:`Config.schedule`), bidirectional hinge
    with hardest (or all) negatives (all of them during ``warmup_epochs``). With ``checkpoint_dir`` a
    run that was interrupted resumes where it stopped. ``epochs`` overrides the schedule's number of epochs (the learning-rate step stays).

    Under ``torchrun`` the model is wrapped in DistributedDataParallel (:class:`GatheredScores`: the
    global batch's in-batch negatives), rank 0 writes the checkpoints and the dev evaluation is sharded;
    see the module docstring. ``cfg.tf32`` and ``cfg.amp`` are applied through :mod:`xmlib.core.device`.
    """
    device = device or get_device()
    set_tf32(cfg.tf32, device)
    for name, data in (("train", train), ("dev", dev)):
        if data.images.shape[2] != cfg.img_dim:
            raise ValueError(f"{name} region features have D = {data.images.shape[2]} but img_dim = {cfg.img_dim}; "
                             f"set overrides={{'img_dim': {data.images.shape[2]}}}")
        if cfg.global_norm == "region" and data.images.shape[1] != cfg.num_regions:
            raise ValueError(f"{name} images have K = {data.images.shape[1]} regions but global_norm='region' needs "
                             f"num_regions = {cfg.num_regions}; set num_regions or use global_norm='feature'")
    n_epochs, lr_step = cfg.schedule()
    n_epochs = n_epochs if epochs is None else epochs
    if cfg.batch_size < distributed.world_size():
        raise ValueError(f"batch_size={cfg.batch_size} is the global batch, split over {distributed.world_size()} processes; "
                         "it needs at least one pair per process (raise batch_size or start fewer processes)")
    check_step_fits(cfg, train, device)
    train = train.first_images(cfg.max_train_images)
    dev = dev.first_images(cfg.dev_images)
    model = init_model(cfg, vocab_size, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True)  # one fused update: faster on CPU
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step, gamma=cfg.lr_decay) if lr_step > 0 else None

    current = {"epoch": 0}

    def batches(epoch: int):
        current["epoch"] = epoch  # the warm-up depends on the epoch (a resumed run calls this too)
        caps = epoch_batches(train.n_images, epoch, batch_size=cfg.batch_size, seed=cfg.seed,
                             captions_per_image=train.captions_per_image, captions_per_epoch=cfg.captions_per_epoch)
        # features gathered from the (memory-mapped) split, by loader_workers processes when > 0; each rank
        # gathers only its rows of the global batch
        rows = [distributed.shard(len(c)) for c in caps] if distributed.is_distributed() else None
        return batch_loader(train.images, caps, workers=cfg.loader_workers, captions_per_image=train.captions_per_image,
                            rows=rows)

    def hardest() -> bool:
        return cfg.max_violation and current["epoch"] >= cfg.warmup_epochs

    ddp = distributed.wrap(GatheredScores(model), device) if distributed.is_distributed() else None
    result = fit(model, optimizer, epochs=n_epochs, batches=batches, step=make_step(model, train, cfg, device, hardest, ddp),
                 evaluate=lambda: evaluate(model, dev, max_bytes=cfg.eval_mib * 2**20, device=device), select="rsum",
                 scheduler=scheduler, clip_grad_norm=cfg.grad_clip, checkpoint_dir=checkpoint_dir,
                 fingerprint=checkpoint_key(cfg, __name__), desc=f"train {cfg.aggregator}", max_steps=cfg.max_steps)
    model.eval()
    return model, result


def main(argv: Sequence[str] | None = None) -> None:
    """Train one model on a SCAN precomp folder and print its test metrics as JSON.

    Under ``torchrun --nproc-per-node N`` the N processes train one model with DDP (the global batch
    split across them), evaluate in shards, and rank 0 prints."""
    from xmlib.data.formats.vocab import load_vocab

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="paper", choices=sorted(PROFILES))
    ap.add_argument("--data-dir", required=True, help="SCAN precomp folder ({split}_ims.npy, {split}_caps.txt)")
    ap.add_argument("--vocab", default="", help="vocabulary JSON (default: the *vocab*.json in --data-dir)")
    ap.add_argument("--aggregator", default="sgr", choices=["sgr", "saf", "average"])
    ap.add_argument("--checkpoint-dir", default=None)
    ap.add_argument("--test-split", default="test")
    ap.add_argument("--amp", default="off", choices=["off", "bf16", "auto"], help="bf16 autocast (default: float32, the paper)")
    ap.add_argument("--tf32", action="store_true", help="TF32 matrix products on a GPU")
    args = ap.parse_args(argv)
    ctx = distributed.init()
    cfg = resolve_config(Config, PROFILES, args.profile,
                         {"data_dir": args.data_dir, "vocab_path": args.vocab, "aggregator": args.aggregator,
                          "amp": args.amp, "tf32": args.tf32})
    vocab = load_vocab(find_vocab(cfg))
    train = load_precomp(cfg.data_dir, "train", vocab, max_words=cfg.max_words)
    dev = load_precomp(cfg.data_dir, "dev", vocab, max_words=cfg.max_words)
    test = load_precomp(cfg.data_dir, args.test_split, vocab, max_words=cfg.max_words)
    model, result = train_model(cfg, train, dev, len(vocab), checkpoint_dir=args.checkpoint_dir, device=ctx.device)
    metrics = evaluate(model, test, max_bytes=cfg.eval_mib * 2**20, device=ctx.device)
    if distributed.is_main():
        print(json.dumps({"best_epoch": result.best_epoch, "dev_rsum": result.best_score, "test": metrics}, indent=2))
    distributed.shutdown()


if __name__ == "__main__":
    main()
