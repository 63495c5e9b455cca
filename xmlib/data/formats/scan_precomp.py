"""SCAN "precomp" image–caption splits (the format SGRAF reads for Flickr30K and COCO).

API
---
- ``write_split(root, split, ims, captions, *, dtype=None) -> Path`` — write ``{split}_ims.npy`` and
  ``{split}_caps.txt`` atomically (float32, or float16 for our open benchmark).
- ``read_split(root, split, *, mmap=True) -> PrecompSplit`` — read and validate one split.
- ``PrecompSplit`` — ``images`` (N_img, R, D), ``captions`` (5 N_img strings), ``image_of_caption``
  (N_cap,) int64, ``captions_of_image(i)``, ``image_features(indices=None)`` (float32 copy),
  ``subset(fold)``; counts ``n_images``, ``n_captions``, ``n_regions``, ``feature_dim``.
- ``coco_1k_folds(split_or_n_images, fold_size=1000) -> list[Fold]`` — COCO 1K protocol (5 folds of
  ``testall``); ``coco_5k(split_or_n_images) -> Fold`` — the 5K protocol (all of ``testall``).
- ``Fold(images: range, captions: range)``; ``SPLITS``; ``CAPTIONS_PER_IMAGE`` = 5.

Format
------
``{root}/{split}_ims.npy`` holds the region features V = {v_1..v_K} of every image, shape
(N_img, R, D): float32 (36, 2048) BUTD features for Flickr30K / COCO; the project's open benchmark stores
the EfficientNet 7 × 7 grid as R = 49 regions of D = 1280 in float16 to halve the disk size.
``{root}/{split}_caps.txt`` holds one caption a line, exactly 5 consecutive lines per image: caption i
belongs to image ``i // 5``. Splits are ``train``, ``dev``, ``test`` and, for COCO, ``testall`` (5,000
images: the "5K" test set, whose five consecutive blocks of 1,000 images are the "1K" folds).

Some released precomp splits store one image row per caption (each image repeated 5 times, so
``len(ims) == len(caps)``). The reader detects that case, checks that the copies are identical (first
and last image) and keeps every 5th row, so ``images`` always has one row per image; the loaded
``PrecompSplit.image_stride`` says 5 when that happened.

Reading with ``mmap=True`` (the default) keeps the features memory-mapped in their on-disk dtype
(float16 stays float16: cast batches with ``image_features``); ``mmap=False`` loads a float32 copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from xmlib.core.io import atomic_save_npy, atomic_write_text, load_npy_checked, release_pages, require_finite
from xmlib.data.formats._common import FormatError, check_single_line, read_lines, require_file

__all__ = [
    "CAPTIONS_PER_IMAGE",
    "SPLITS",
    "Fold",
    "PrecompSplit",
    "caps_path",
    "coco_1k_folds",
    "coco_5k",
    "ims_path",
    "read_split",
    "write_split",
]

CAPTIONS_PER_IMAGE = 5
SPLITS = ("train", "dev", "test", "testall")
_DISK_DTYPES = (np.float16, np.float32, np.float64)


def ims_path(root: str | os.PathLike, split: str) -> Path:
    """``{root}/{split}_ims.npy``."""
    return Path(root) / f"{split}_ims.npy"


def caps_path(root: str | os.PathLike, split: str) -> Path:
    """``{root}/{split}_caps.txt``."""
    return Path(root) / f"{split}_caps.txt"


@dataclass(frozen=True)
class Fold:
    """Index ranges of one evaluation fold: images and their 5 × as many captions."""

    images: range
    captions: range


@dataclass(frozen=True, eq=False)
class PrecompSplit:
    """One split in SCAN precomp form.

    ``images``: (N_img, R, D) region features V (memory-mapped in the on-disk dtype, or float32);
    ``captions``: N_cap = 5 N_img strings, caption i of image ``i // 5``.
    """

    root: Path
    split: str
    images: np.ndarray
    captions: list[str]
    image_stride: int = 1  # 5 when the file held one image row per caption (see the module docstring)
    image_of_caption: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.captions) != CAPTIONS_PER_IMAGE * len(self.images):
            raise FormatError(
                f"split {self.split!r} under {self.root}: {len(self.captions)} captions for "
                f"{len(self.images)} images; need exactly {CAPTIONS_PER_IMAGE} per image"
            )
        # (N_cap,) caption i ↔ image i // 5
        object.__setattr__(
            self, "image_of_caption", np.arange(len(self.captions), dtype=np.int64) // CAPTIONS_PER_IMAGE
        )

    @property
    def n_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    @property
    def n_regions(self) -> int:
        """R (K in SGRAF): regions per image."""
        return int(self.images.shape[1])

    @property
    def feature_dim(self) -> int:
        """D: the dimension of one region feature."""
        return int(self.images.shape[2])

    def captions_of_image(self, i: int) -> list[str]:
        """The 5 captions of image ``i``."""
        if not 0 <= i < self.n_images:
            raise IndexError(f"image index {i} out of range for {self.n_images} images")
        return self.captions[CAPTIONS_PER_IMAGE * i : CAPTIONS_PER_IMAGE * (i + 1)]

    def image_features(self, indices: Sequence[int] | np.ndarray | slice | None = None) -> np.ndarray:
        """Region features of the given images (all by default) as a float32 array (n, R, D)."""
        sel = self.images if indices is None else self.images[indices]
        return np.asarray(sel, dtype=np.float32)

    def subset(self, fold: Fold) -> "PrecompSplit":
        """The images and captions of one fold (e.g. a COCO 1K fold) as a split of its own."""
        im, cap = fold.images, fold.captions
        if (
            im.step != 1
            or cap.step != 1
            or cap.start != CAPTIONS_PER_IMAGE * im.start
            or cap.stop != CAPTIONS_PER_IMAGE * im.stop
            or not (0 <= im.start <= im.stop <= self.n_images)
        ):
            raise ValueError(f"fold {fold} does not select whole images of this {self.n_images}-image split")
        return replace(self, images=self.images[im.start : im.stop], captions=self.captions[cap.start : cap.stop])


def write_split(
    root: str | os.PathLike,
    split: str,
    ims: np.ndarray,
    captions: Iterable[str],
    *,
    dtype: str | np.dtype | None = None,
) -> Path:
    """Write ``{split}_ims.npy`` and ``{split}_caps.txt`` under ``root`` (each file atomically).

    ims: (N_img, R, D) region features; dtype: on-disk dtype, float32 or float16 (default: float16 if
    ``ims`` is float16, else float32). captions: exactly 5 per image, in image order; surrounding
    whitespace is stripped, and an empty caption or one with a line break is refused. Returns ``root``.
    """
    root = Path(root)
    _check_split_name(split)
    ims = np.asarray(ims)
    if ims.ndim != 3:
        raise FormatError(
            f"{ims_path(root, split)}: image features must have shape (N_img, R, D), got {ims.shape}; "
            "for one global vector per image pass ims[:, None, :]"
        )
    if ims.dtype.kind not in "fiu":
        raise FormatError(f"{ims_path(root, split)}: image features must be numbers, got dtype {ims.dtype}")
    if dtype is None:
        dtype = np.float16 if ims.dtype == np.float16 else np.float32
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float16), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float32 or float16 for {ims_path(root, split)}, got {dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
        out = ims.astype(dtype, copy=False)
    if not all(np.isfinite(out[s : s + 256]).all() for s in range(0, len(out), 256)):  # chunked: low memory
        raise FormatError(
            f"{ims_path(root, split)}: image features contain NaN or inf (after casting to {dtype}); "
            "fix the features, or keep float32 if float16 overflows"
        )
    caps = list(captions)
    for i, c in enumerate(caps):
        check_single_line(c, f"caption {i} for {caps_path(root, split)}")
    caps = [c.strip() for c in caps]
    empty = [i for i, c in enumerate(caps) if not c]
    if empty:
        raise FormatError(f"{caps_path(root, split)}: caption {empty[0]} (0-based) is empty; every caption needs text")
    if len(caps) != CAPTIONS_PER_IMAGE * out.shape[0]:
        raise FormatError(
            f"{caps_path(root, split)}: {len(caps)} captions for {out.shape[0]} images; "
            f"the format needs exactly {CAPTIONS_PER_IMAGE} per image ({CAPTIONS_PER_IMAGE * out.shape[0]})"
        )
    atomic_save_npy(ims_path(root, split), out)
    atomic_write_text(caps_path(root, split), "".join(c + "\n" for c in caps))
    return root


def read_split(root: str | os.PathLike, split: str, *, mmap: bool = True) -> PrecompSplit:
    """Read ``{split}_ims.npy`` and ``{split}_caps.txt`` under ``root`` and validate them.

    mmap: keep the features memory-mapped in their on-disk dtype (else load a float32 copy).
    """
    root = Path(root)
    _check_split_name(split)
    ip, cp = ims_path(root, split), caps_path(root, split)
    fix = (
        f"A SCAN precomp folder holds {{split}}_ims.npy and {{split}}_caps.txt for split in {SPLITS}; "
        "check the root folder and the split name"
    )
    require_file(ip, "the image region features (N_img, R, D)", fix)
    require_file(cp, f"one caption a line, {CAPTIONS_PER_IMAGE} per image", fix)

    rebuild = "rewrite the split with write_split (or download / rebuild the precomp features)"
    ims = load_npy_checked(ip, mmap_mode="r" if mmap else None, fix=rebuild)
    if ims.ndim != 3:
        raise FormatError(
            f"{ip} has shape {ims.shape}; expected (N_img, R, D) region features. A 2-D file of global "
            "vectors must be rewritten as (N_img, 1, D) (ims[:, None, :])"
        )
    if ims.dtype not in _DISK_DTYPES:
        raise FormatError(f"{ip} has dtype {ims.dtype}; expected float32 (or float16)")
    if ims.shape[0] == 0 or ims.shape[1] == 0 or ims.shape[2] == 0:
        raise FormatError(f"{ip} has shape {ims.shape}; an empty split cannot be used")
    _require_finite_cached(ims, ip, rebuild)

    caps = [line.strip() for line in read_lines(cp)]
    empty = [i for i, c in enumerate(caps) if not c]
    if empty:
        raise FormatError(
            f"{cp}: line {empty[0] + 1} is empty; every line must be a caption "
            f"({CAPTIONS_PER_IMAGE} consecutive lines per image). Remove blank lines"
        )

    stride = 1
    n_caps, n_rows = len(caps), ims.shape[0]
    if n_rows * CAPTIONS_PER_IMAGE != n_caps:
        if n_rows == n_caps and n_caps % CAPTIONS_PER_IMAGE == 0:
            # one image row per caption: every image repeated 5 times
            last = n_rows - CAPTIONS_PER_IMAGE
            for start in (0, last):
                block = np.asarray(ims[start : start + CAPTIONS_PER_IMAGE])
                if not (block == block[:1]).all():
                    raise FormatError(
                        f"{ip} has one row per caption ({n_rows} rows, {n_caps} captions in {cp}), but rows "
                        f"{start}..{start + CAPTIONS_PER_IMAGE - 1} are not copies of one image; "
                        f"expected {n_caps // CAPTIONS_PER_IMAGE} images or 5 identical copies of each"
                    )
            stride = CAPTIONS_PER_IMAGE
            ims = ims[::CAPTIONS_PER_IMAGE]
        else:
            raise FormatError(
                f"{cp} has {n_caps} captions but {ip} has {n_rows} images; the format needs exactly "
                f"{CAPTIONS_PER_IMAGE} captions per image ({CAPTIONS_PER_IMAGE * n_rows} captions). "
                "Check that both files belong to the same split, and rewrite them together with write_split"
            )
    if not mmap:
        ims = np.ascontiguousarray(ims, dtype=np.float32)
    return PrecompSplit(root=root, split=split, images=ims, captions=caps, image_stride=stride)


_FINITE_CHECKED: set[tuple[str, int, int]] = set()  # (file, size, mtime) found finite in this process


def _require_finite_cached(ims: np.ndarray, path: Path, fix: str) -> None:
    """:func:`xmlib.core.io.require_finite` on the region features, once per file version per process
    (a memory-mapped split is scanned in chunks; reading it again does not rescan it)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FINITE_CHECKED:
        # chunk by chunk, each chunk's pages dropped from resident memory once checked
        require_finite(ims, path, "image region features", fix=fix, after_chunk=lambda: release_pages(ims))
        _FINITE_CHECKED.add(key)


def coco_1k_folds(split: PrecompSplit | int, fold_size: int = 1000) -> list[Fold]:
    """COCO 1K protocol: consecutive folds of ``fold_size`` images (5 folds of COCO ``testall``).

    Fold f covers images [f·1000, (f+1)·1000) and captions [f·5000, (f+1)·5000); report the mean of
    R@K over folds (and rSum from the averaged R@K, not the mean of per-fold rSums).
    """
    n = split.n_images if isinstance(split, PrecompSplit) else int(split)
    if fold_size <= 0:
        raise ValueError(f"fold_size must be positive, got {fold_size}")
    if n == 0 or n % fold_size:
        raise ValueError(
            f"{n} images do not split into folds of {fold_size}; COCO testall has 5000 images (5 folds)"
        )
    c = CAPTIONS_PER_IMAGE
    return [Fold(range(s, s + fold_size), range(c * s, c * (s + fold_size))) for s in range(0, n, fold_size)]


def coco_5k(split: PrecompSplit | int) -> Fold:
    """COCO 5K protocol: every image and caption of ``testall`` as one fold."""
    n = split.n_images if isinstance(split, PrecompSplit) else int(split)
    return Fold(range(n), range(CAPTIONS_PER_IMAGE * n))


def _check_split_name(split: str) -> None:
    if not isinstance(split, str) or not split or "/" in split or "\\" in split or split.startswith("."):
        raise ValueError(f"split must be a plain name such as {SPLITS}, got {split!r}")
