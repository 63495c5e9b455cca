"""Batches of SCAN precomp training data gathered from the memory-mapped features, optionally by
``torch.utils.data.DataLoader`` workers.

The papers' Flickr30K features are 8.6 GB (COCO 33 GB): :func:`xmlib.data.formats.scan_precomp.read_split`
memory-maps them and nothing reads a whole split. :class:`PrecompBatches` is a map-style dataset whose
item b is batch b of an epoch (the caption indices :func:`xmlib.sgraf.train.epoch_batches` chose) with
its images' region features gathered from the map as float32; :func:`batch_loader` runs it in
``workers`` processes, in order, so the batches are the same for any number of workers.

Pages of a memory map that were read stay in the process's resident memory (as file-backed pages)
until the kernel needs them back; ``release_pages`` (default) asks the kernel to drop them from the
mapping after each batch (:func:`xmlib.core.io.release_pages`; the file stays in the page cache), so the
resident memory of a training process does not grow to the size of the file over an epoch.
"""

from __future__ import annotations

import multiprocessing
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from xmlib.core.io import release_pages

__all__ = ["PrecompBatches", "batch_loader"]


class PrecompBatches(torch.utils.data.Dataset):
    """Item b = ``(caption indices (B,) int64, region features (B, K, D) float32)`` of ``batches[b]``.

    images: (N_img, K, D) features, memory-mapped or in memory (any float dtype); caption j belongs to
    image ``j // captions_per_image``. rows: one slice per batch (a DDP rank's share of the global batch):
    only those captions' images are gathered (the indices stay the whole batch's).
    """

    def __init__(self, images: np.ndarray, batches: Sequence[np.ndarray], *, captions_per_image: int = 5,
                 rows: Sequence[slice] | None = None, release: bool = True):
        if images.ndim != 3:
            raise ValueError(f"images must be (N_img, K, D) region features, got shape {images.shape}")
        self.images = images
        self.batches = [np.asarray(b, dtype=np.int64) for b in batches]
        self.captions_per_image = captions_per_image
        if rows is not None and len(rows) != len(self.batches):
            raise ValueError(f"rows must give one slice per batch ({len(self.batches)}), got {len(rows)}")
        self.rows = rows
        self.release = release

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> tuple[np.ndarray, torch.Tensor]:
        caps = self.batches[b]
        img = caps // self.captions_per_image  # (B,)
        if self.rows is not None:
            img = img[self.rows[b]]  # (b,) this process's rows of the batch
        feats = torch.from_numpy(np.asarray(self.images[img], dtype=np.float32))  # (B, K, D) a copy
        if self.release:
            release_pages(self.images)
        return caps, feats


def batch_loader(images: np.ndarray, batches: Sequence[np.ndarray], *, workers: int = 0, captions_per_image: int = 5,
                 rows: Sequence[slice] | None = None, prefetch: int = 2) -> Iterable[tuple[np.ndarray, torch.Tensor]]:
    """The batches with their features, in order: gathered here (``workers`` = 0) or by a
    ``DataLoader`` with ``workers`` processes (``prefetch`` batches ahead each); ``rows``: see
    :class:`PrecompBatches`. Workers inherit the
    memory map (the "fork" start method where the platform has it), they never copy the array."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0 = gather in this process), got {workers}")
    ds = PrecompBatches(images, batches, captions_per_image=captions_per_image, rows=rows)
    if workers == 0:
        return _InProcess(ds)
    ctx = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    return torch.utils.data.DataLoader(ds, batch_size=None, shuffle=False, num_workers=workers,
                                       prefetch_factor=prefetch, multiprocessing_context=ctx,
                                       collate_fn=_keep, generator=torch.Generator().manual_seed(0))
    # its own generator: a DataLoader otherwise draws its workers' seed from torch's global generator,
    # which would change the dropout masks of the training that follows (the items here are not random)


def _keep(item):
    return item


class _InProcess:
    """The dataset's items in order, gathered in this process (with a length for progress bars)."""

    def __init__(self, ds: PrecompBatches):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __iter__(self) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        return (self.ds[b] for b in range(len(self.ds)))
