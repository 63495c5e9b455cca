"""The emoji benchmark's config, profiles and the names of its splits, triplet types and pair kinds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xmlib.core.config import BaseConfig

__all__ = ["EmojiConfig", "PROFILES", "SPLITS", "TRIPLET_TYPES", "PAIR_KINDS"]

SPLITS = ("train", "val", "test")
TRIPLET_TYPES = ("in_class", "out_of_class")
PAIR_KINDS = ("cross_style", "same_style")


@dataclass(frozen=True)
class EmojiConfig(BaseConfig):
    """How the benchmark is built (a profile is a set of values that differ from these defaults).

    size: stored image side S in pixels. subcategories: keep only these (empty = all).
    exclude_categories: top-level CLDR categories dropped. test_fraction / val_fraction: share of each
    subcategory's concepts held out (see :mod:`~xmlib.data.benchmarks.emoji.split`). pairs: ``"all"``
    six ordered designer pairs per concept or ``"cross"`` only those with OpenMoji. out_of_class:
    ``"random"`` or ``"color_nn"``. hist_bins: levels per RGB channel of the colour histogram
    (bins^3 cells). white_threshold: pixels with all channels >= this are background, left out of the
    histogram. raw_size: side of the raw-pixel baseline. duplicate_threshold: mean absolute pixel
    difference (0..255) under which two concepts drawn by one designer count as the same picture (never
    query and negative of one triplet; 0 turns the check off).
    """

    size: int = 64
    subcategories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ("Component",)
    test_fraction: float = 0.25
    val_fraction: float = 0.10
    pairs: str = "all"
    out_of_class: str = "random"
    hist_bins: int = 6
    white_threshold: int = 240
    raw_size: int = 32
    duplicate_threshold: float = 1.0

    def validate(self) -> None:
        self.require(8 <= self.size <= 512, "size", "choose a side between 8 and 512 pixels")
        self.require(0.0 < self.test_fraction < 0.9, "test_fraction", "must be in (0, 0.9)")
        self.require(0.0 <= self.val_fraction < 0.5, "val_fraction", "must be in [0, 0.5)")
        self.require(self.test_fraction + self.val_fraction < 0.9, "val_fraction",
                     "test_fraction + val_fraction must leave concepts for training (< 0.9)")
        self.require(self.pairs in ("all", "cross"), "pairs", "use 'all' or 'cross'")
        self.require(self.out_of_class in ("random", "color_nn"), "out_of_class", "use 'random' or 'color_nn'")
        self.require(2 <= self.hist_bins <= 16, "hist_bins", "use 2..16 levels per channel")
        self.require(0 < self.white_threshold <= 256, "white_threshold", "use 1..256 (256 keeps every pixel)")
        self.require(4 <= self.raw_size <= self.size, "raw_size", "use 4..size")
        self.require(0.0 <= self.duplicate_threshold < 64, "duplicate_threshold", "use 0 (off) .. 64")


PROFILES: dict[str, dict[str, Any]] = {
    # 3 subcategories, 68 concepts, 204 images: builds in well under a minute once the assets are there.
    "smoke": {"subcategories": ("food-fruit", "animal-bird", "face-concerned")},
    "default": {},
    "paper": {},
}
