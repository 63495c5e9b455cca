"""Reader of Fashion-MNIST (Debian ``dataset-fashion-mnist``): 70,000 28 x 28 greyscale product
images in 10 classes, from the package's idx files.

Public API: :func:`load_fashion_mnist`, :class:`FashionMNIST`, :func:`read_idx`, :data:`CLASSES`.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmlib.data.assets import FASHION_MNIST_DIR, AssetError

__all__ = ["CLASSES", "FashionMNIST", "load_fashion_mnist", "read_idx"]

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


@dataclass
class FashionMNIST:
    """Fashion-MNIST in memory: images uint8 (N, 28, 28); labels int64 (N,) in 0..9 (names in
    ``class_names``); split ``<U5`` (N,) ``"train"`` (the first 60,000) / ``"test"``."""

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: tuple[str, ...] = CLASSES

    @property
    def category(self) -> np.ndarray:
        """The category of each image for Deep Ranking: its class label."""
        return self.labels


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (optionally gzipped): big-endian magic, dims, then uint8 data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # a truncated or damaged archive
        raise AssetError(f"{path}: the gzip data is damaged ({exc}); delete the extracted 'fashion-mnist' folder "
                         "and fetch it again (`python -m xmlib.data fetch fashion-mnist`)") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise AssetError(f"{path} is not an idx file of unsigned bytes (magic {data[:4].hex()})")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    n = int(np.prod(dims))
    if len(data) - offset != n:
        raise AssetError(f"{path}: header says {dims} ({n} bytes) but {len(data) - offset} bytes follow")
    return np.frombuffer(data, dtype=np.uint8, count=n, offset=offset).reshape(dims)


def load_fashion_mnist(*, cache: str | os.PathLike | None = None) -> FashionMNIST:
    """Fashion-MNIST from the ``fashion-mnist`` asset (fetched on demand into ``cache``, default
    :func:`xmlib.core.paths.cache_dir`)."""
    from xmlib.data.assets import fetch

    folder = Path(fetch("fashion-mnist", cache=cache)) / FASHION_MNIST_DIR

    def find(stem: str) -> Path:
        hits = sorted(folder.rglob(f"{stem}*"))
        if not hits:
            raise AssetError(f"fashion-mnist: no file {stem}* under {folder}; fetch the asset again")
        return hits[0]

    parts = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(find(f"{prefix}-images-idx3-ubyte"))
        y = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
        if x.shape[0] != y.shape[0]:
            raise AssetError(f"fashion-mnist {split}: {x.shape[0]} images but {y.shape[0]} labels")
        parts.append((x, y.astype(np.int64), np.full(len(y), split, dtype="<U5")))
    return FashionMNIST(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                        np.concatenate([p[2] for p in parts]))
