"""A stream of images for Deep Ranking's buffered online sampler (Sec. 5.1 of Wang et al., CVPR 2014).

The paper trains on ~12M images without ever holding them: images stream past per-category buffers
and triplets are drawn from the buffers. This module is that stream, read from disk:

- ``{root}/image_list.tsv`` — a header line ``image<TAB>category<TAB>relevance``, then one image a
  line: its path (or id), its category (an integer) and its total relevance r_i (> 0, the weight of
  the weighted reservoir);
- ``{root}/golden.npy`` — float32 (N, G) unit-norm golden features, row k ↔ the k-th image of the list;
  ``r_ij = max(0, g_i · g_j)`` within a category (:class:`GoldenRelevance`), read from the memory map
  only for the images the buffers hold.

API
---
- :class:`ImageStream` — a ``torch.utils.data.IterableDataset`` of ``(index, category, relevance)``,
  read line by line (each DataLoader worker takes every ``num_workers``-th line), so memory does not
  grow with the number of images.
- :class:`GoldenRelevance` — ``r(i, j)`` from the golden features, two rows read per call.
- :func:`stream_batches` — training batches: before each batch offer the next ``offer_per_step``
  images of the stream to the sampler (:meth:`BufferedTripletSampler.extend`), then draw
  ``batch_size`` triplets with the generator given (:meth:`~BufferedTripletSampler.sample`). Memory is
  O(categories × buffer capacity).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from xmlib.data.formats._common import FormatError, require_file

__all__ = ["GOLDEN_NAME", "LIST_NAME", "GoldenRelevance", "ImageStream", "golden_relevance", "stream_batches"]

LIST_NAME = "image_list.tsv"
GOLDEN_NAME = "golden.npy"
HEADER = "image\tcategory\trelevance"
_FIX = "rewrite it (python -m xmlib.data synth --like deepranking writes this layout)"


def golden_relevance(a: np.ndarray, b: np.ndarray) -> float:
    """r_ij = max(0, g_i · g_j) of two unit-norm golden features."""
    return max(0.0, float(np.dot(a, b)))


class GoldenRelevance:
    """``r(i, j)`` for images ``i``, ``j`` of one category from ``{root}/golden.npy``.

    Only the two rows asked for are read, with ``os.pread`` at their offset in the file (through the
    page cache, not a memory map: the pages of a map that were read would stay in this process's
    resident memory, which would then grow with the number of images that ever passed the buffers).
    """

    def __init__(self, root: str | os.PathLike):
        from xmlib.core.io import load_npy_checked

        self.path = Path(root) / GOLDEN_NAME
        require_file(self.path, "float32 (N, G) golden features, row k = the k-th image of the list", _FIX)
        mapped = load_npy_checked(self.path, mmap_mode="r", fix=_FIX)  # checks the header; only its layout is kept
        if mapped.ndim != 2 or mapped.dtype != np.float32 or not mapped.flags.c_contiguous:
            raise FormatError(f"{self.path} has shape {mapped.shape}, dtype {mapped.dtype}; expected C-ordered float32 "
                              f"(N, G) golden features. {_FIX}")
        self.shape = tuple(int(x) for x in mapped.shape)
        self._offset = int(mapped.offset)
        self._row = self.shape[1] * 4
        del mapped
        self._fd: int | None = None
        self._pid = -1

    def __len__(self) -> int:
        return self.shape[0]

    def row(self, i: int) -> np.ndarray:
        """Golden feature g_i, (G,) float32."""
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"image {i} is outside {self.path} ({self.shape[0]} rows)")
        if self._fd is None or self._pid != os.getpid():  # one descriptor per process (DataLoader workers fork)
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return np.frombuffer(os.pread(self._fd, self._row, self._offset + i * self._row), dtype=np.float32)

    def __call__(self, i: int, j: int) -> float:
        return golden_relevance(self.row(i), self.row(j))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)


class ImageStream(torch.utils.data.IterableDataset):
    """``(index, category, relevance)`` of every image of ``{root}/image_list.tsv``, in file order.

    ``limit``: stop after that many images (0 = all). Under a ``DataLoader`` with workers, worker w of
    W yields the lines k with ``k % W == w`` (each image once over all workers).
    """

    def __init__(self, root: str | os.PathLike, *, limit: int = 0):
        super().__init__()
        self.path = Path(root) / LIST_NAME
        require_file(self.path, f"one image a line after the header {HEADER!r}", _FIX)
        if limit < 0:
            raise ValueError(f"limit must be >= 0 (0 = every image), got {limit}")
        self.limit = limit

    def __iter__(self) -> Iterator[tuple[int, int, float]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        with open(self.path, encoding="utf-8", newline="") as fh:
            head = fh.readline().rstrip("\r\n")
            if head != HEADER:
                raise FormatError(f"{self.path}, line 1: header is {head!r}; expected {HEADER!r}. {_FIX}")
            for k, line in enumerate(fh):
                if self.limit and k >= self.limit:
                    return
                if k % workers != worker:
                    continue
                yield self._parse(line, k)

    def _parse(self, line: str, k: int) -> tuple[int, int, float]:
        parts = line.rstrip("\r\n").split("\t")
        where = f"{self.path}, line {k + 2}"
        if len(parts) != 3 or not parts[0]:
            raise FormatError(f"{where}: expected 3 tab-separated fields (image, category, relevance), got {len(parts)}. {_FIX}")
        try:
            cat, rel = int(parts[1]), float(parts[2])
        except ValueError as exc:
            raise FormatError(f"{where}: category must be an integer and relevance a number ({exc}). {_FIX}") from exc
        if not np.isfinite(rel) or rel <= 0:
            raise FormatError(f"{where}: relevance r_i = {parts[2]} must be a positive finite number. {_FIX}")
        return k, cat, rel


def stream_batches(sampler, images: Iterable[tuple[int, int, float]], *, steps: int, batch_size: int,
                   offer_per_step: int, rng: np.random.Generator, warmup: int = 0):
    """Yield ``steps`` batches of triplets from ``sampler`` (a :class:`BufferedTripletSampler`) while
    ``images`` streams into it: ``warmup`` images first, then ``offer_per_step`` before each batch.
    When the stream ends, the remaining batches come from the buffers as they are."""
    it = iter(images)

    def offer(n: int) -> None:
        items, cats, weights = [], [], []
        for _ in range(n):
            item = next(it, None)
            if item is None:
                break
            items.append(int(item[0]))
            cats.append(int(item[1]))
            weights.append(float(item[2]))
        if items:  # one call per step: the sampler may offer them together
            sampler.extend(items, cats, weights)

    offer(warmup)
    for _ in range(steps):
        offer(offer_per_step)
        yield sampler.sample(batch_size, rng)
