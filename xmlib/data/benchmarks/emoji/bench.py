"""A built emoji benchmark in memory (data only; Deep Ranking's golden relevance over it lives in
:mod:`xmlib.deepranking.golden`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xmlib.core.io import load_json_checked
from xmlib.data.benchmarks._build import rebuild_hint
from xmlib.data.benchmarks.emoji.config import SPLITS, EmojiConfig

__all__ = ["EmojiBenchmark"]

_REBUILD = rebuild_hint("emoji")


@dataclass
class EmojiBenchmark:
    """A built benchmark in memory.

    images: uint8 (N, S, S, 3); meta: one row per image (``image_id`` = row index); cnn: float32
    (N, 1280) pretrained features f_i; color_hist: float32 (N, bins^3) h_i; ``test_triplets`` /
    ``val_triplets``: int64 (T, 3) image ids (p_i, p_i+, p_i-) with ``*_type`` (index into
    :data:`~xmlib.data.benchmarks.emoji.config.TRIPLET_TYPES`) and ``*_pair`` (index into
    :data:`~xmlib.data.benchmarks.emoji.config.PAIR_KINDS`); config and seed: those of the build.
    """

    root: Path
    config: EmojiConfig
    seed: int
    images: np.ndarray
    meta: pd.DataFrame
    cnn: np.ndarray
    color_hist: np.ndarray
    test_triplets: np.ndarray
    test_type: np.ndarray
    test_pair: np.ndarray
    val_triplets: np.ndarray
    val_type: np.ndarray
    val_pair: np.ndarray

    def __post_init__(self) -> None:
        self._category = self.meta["category_id"].to_numpy(np.int64)
        self._concept_id = pd.factorize(self.meta["concept"])[0].astype(np.int64)

    @property
    def triplets(self) -> np.ndarray:
        """The test triplets (T, 3) (query, positive, negative) image ids."""
        return self.test_triplets

    @property
    def triplet_type(self) -> np.ndarray:
        return self.test_type

    def triplets_of(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(triplets (T, 3), type (T,), pair kind (T,)) of ``"val"`` or ``"test"``."""
        if split == "test":
            return self.test_triplets, self.test_type, self.test_pair
        if split == "val":
            return self.val_triplets, self.val_type, self.val_pair
        raise ValueError(f"split must be 'val' or 'test' (training triplets are sampled online), got {split!r}")

    def indices(self, split: str) -> np.ndarray:
        """Image ids of a split (``"train"``, ``"val"`` or ``"test"``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.flatnonzero(self.meta["split"].to_numpy() == split)

    @property
    def train_idx(self) -> np.ndarray:
        return self.indices("train")

    @property
    def val_idx(self) -> np.ndarray:
        return self.indices("val")

    @property
    def test_idx(self) -> np.ndarray:
        return self.indices("test")

    @property
    def category(self) -> np.ndarray:
        """Category c_i (subcategory index, int64) of every image."""
        return self._category

    @property
    def category_names(self) -> list[str]:
        names = self.meta.drop_duplicates("category_id").sort_values("category_id")["subcategory"]
        return names.tolist()

    @property
    def concept_id(self) -> np.ndarray:
        """A dense integer per concept (same for the three designers' images)."""
        return self._concept_id

    @property
    def near_duplicates(self) -> list[tuple[str, str]]:
        """Concept pairs one designer draws (nearly) identically (``near_duplicates.json``)."""
        path = Path(self.root) / "near_duplicates.json"
        return [tuple(p) for p in load_json_checked(path, fix=_REBUILD)] if path.is_file() else []

    def label(self, i: int) -> str:
        """``"name · designer"`` of image ``i``."""
        row = self.meta.iloc[int(i)]
        return f"{row['name']} · {row['designer']}"

    def stats(self) -> dict[str, Any]:
        """:func:`xmlib.data.benchmarks.emoji.stats` of this benchmark."""
        from xmlib.data.benchmarks.emoji.read import stats

        return stats(self)

    @classmethod
    def read(cls, root: str | Path, config: EmojiConfig, seed: int) -> "EmojiBenchmark":
        """Read the files of a build in ``root`` (``config`` and ``seed``: those it was built with)."""
        from xmlib.core.io import load_npy

        root = Path(root)
        meta = pd.read_csv(root / "metadata.csv", dtype={"concept": str, "unified": str, "split": str},
                           keep_default_na=False)
        arr = {s: (load_npy(root / f"{s}_triplets.npy"), load_npy(root / f"{s}_triplet_type.npy"),
                   load_npy(root / f"{s}_triplet_pair.npy")) for s in ("val", "test")}
        return cls(
            root=root, config=config, seed=seed, images=load_npy(root / "images.npy"), meta=meta,
            cnn=load_npy(root / "cnn.npy"), color_hist=load_npy(root / "color_hist.npy"),
            test_triplets=arr["test"][0], test_type=arr["test"][1], test_pair=arr["test"][2],
            val_triplets=arr["val"][0], val_type=arr["val"][1], val_pair=arr["val"][2],
        )
