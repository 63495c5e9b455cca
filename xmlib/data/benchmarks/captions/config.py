"""The captions benchmark's config, profiles, sources and the SCAN precomp shapes it writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xmlib.core.config import BaseConfig
from xmlib.data.formats import scan_precomp

__all__ = ["CaptionsConfig", "PROFILES", "SOURCES", "SPLITS", "N_CAP", "N_REGIONS", "FEATURE_DIM", "FEATURE_KIND"]

SPLITS = ("train", "dev", "test")
N_CAP = scan_precomp.CAPTIONS_PER_IMAGE  # 5 captions per image
N_REGIONS, FEATURE_DIM = 49, 1280  # K regions (7 x 7 grid) of D = 1280
FEATURE_KIND = "efficientnet-lite0 7x7 grid, 224 px, float16"


@dataclass(frozen=True)
class CaptionsConfig(BaseConfig):
    """Split sizes and text settings (a profile is a set of values that differ from these defaults).

    train: train images kept (``None`` keeps every one; else a seeded sample). dev / test: images
    (= concepts) of the evaluation splits. vocab_threshold: a word enters the vocabulary when seen
    this many times in train (SCAN: 4; here 1, see the package docstring). phrase_pool: tag phrases
    generated per emoji concept (the captions beyond name and annotation).
    """

    train: int | None = None
    dev: int = 200
    test: int = 700
    vocab_threshold: int = 1
    phrase_pool: int = 12

    def validate(self) -> None:
        self.require(self.train is None or self.train >= 1, "train", "use None (every train image) or >= 1")
        self.require(self.dev >= 0, "dev", "must be >= 0")
        self.require(self.test >= 1, "test", "must be >= 1")
        self.require(self.vocab_threshold >= 1, "vocab_threshold", "must be >= 1")
        self.require(self.phrase_pool >= 0, "phrase_pool", "must be >= 0")


#: smoke builds in about a minute after the download; "paper" equals "default" (the open data holds
#: no more). 1,251 concepts qualify for dev/test; the default takes 900 of them (see the docstring).
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"train": 200, "dev": 50, "test": 100},
    "default": {},
    "paper": {},
}

#: source -> (asset names, licence)
SOURCES: dict[str, tuple[tuple[str, ...], str]] = {
    "emoji-google": (("emoji-google",), "Apache-2.0"),
    "emoji-twitter": (("emoji-twitter",), "CC-BY-4.0"),
    "openmoji": (("openmoji",), "CC-BY-SA-4.0"),
    "tuxpaint": (("tuxpaint-stamps",), "GPL-2"),
    "openclipart": (("openclipart-svg", "openclipart-png"), "public domain"),
}
