"""Configs of the book's chapters that do not belong to one paper (the paper chapters keep theirs in
``xmlib/<paper>/config.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from xmlib.core.config import BaseConfig


@dataclass(frozen=True)
class BlocksConfig(BaseConfig):
    """Chapter "Shared building blocks".

    Attributes:
        seed: the run's seed.
        n_points: random vectors for the distance checks.
        dim: their dimension.
        n_features: features of the toy ranking problem (linear scorer).
        n_queries: queries of the toy ranking problem (train / validation split 80 / 20).
        docs_per_query: candidates per query.
        epochs: training epochs of the toy linear rankers.
        lr: Adam learning rate.
        margin: hinge margin γ.
        list_length: ranked list length in the metric sweep.
    """

    seed: int = 0
    n_points: int = 400
    dim: int = 64
    n_features: int = 16
    n_queries: int = 200
    docs_per_query: int = 30
    epochs: int = 30
    lr: float = 0.05
    margin: float = 1.0
    list_length: int = 50

    def validate(self) -> None:
        for name in ("n_points", "dim", "n_features", "docs_per_query", "list_length"):
            self.require(getattr(self, name) >= 2, name, "must be at least 2")
        self.require(self.n_queries >= 10, "n_queries", "must be at least 10 (80/20 split)")
        self.require(self.epochs >= 1, "epochs", "must be at least 1")
        self.require(self.lr > 0, "lr", "must be positive")
        self.require(self.margin >= 0, "margin", "must be >= 0")


BLOCKS_PROFILES = {
    "smoke": {"n_points": 100, "n_queries": 40, "docs_per_query": 20, "epochs": 5, "list_length": 20},
    "default": {},
    "paper": {"n_points": 2000, "dim": 256, "n_queries": 1000, "epochs": 60},
}


@dataclass(frozen=True)
class DataConfig(BaseConfig):
    """Chapter "Open data".

    Attributes:
        seed: the benchmarks' seed (the same one every chapter uses).
        benchmarks: which build of the benchmarks to show (``smoke`` subsets or the full ``default``).
        n_queries: clipart queries shown as pictures.
        n_images: relevant and non-relevant candidates shown per query.
        n_triplets: emoji triplets shown.
        n_captions: image–caption pairs shown.
    """

    seed: int = 0
    benchmarks: str = "default"
    n_queries: int = 4
    n_images: int = 5
    n_triplets: int = 8
    n_captions: int = 8

    def validate(self) -> None:
        self.require(self.benchmarks in ("smoke", "default"), "benchmarks", "must be 'smoke' or 'default'")
        for name in ("n_queries", "n_images", "n_triplets", "n_captions"):
            self.require(getattr(self, name) >= 1, name, "must be at least 1")


DATA_PROFILES = {"smoke": {"benchmarks": "smoke", "n_queries": 2, "n_triplets": 4, "n_captions": 4},
                 "default": {}, "paper": {}}


@dataclass(frozen=True)
class ScorecardConfig(BaseConfig):
    """Chapter "Scorecard".

    Attributes:
        seed: the first training seed of the chapters' seed set (which verdicts to collect).
        n_sim: simulations per setting of the interval's calibration check.
        sim_seeds: numbers of seeds simulated.
        sim_queries: test queries per simulated data set (the DCMM chapter has about 56).
        sim_boot: bootstrap replicates per simulated interval.
    """

    seed: int = 0
    n_sim: int = 400
    sim_seeds: tuple[int, ...] = (3, 5)
    sim_queries: int = 56
    sim_boot: int = 300

    def validate(self) -> None:
        self.require(self.seed >= 0, "seed", "must be >= 0")
        self.require(self.n_sim >= 10, "n_sim", "must be at least 10")
        self.require(all(s >= 2 for s in self.sim_seeds) and len(self.sim_seeds) >= 1, "sim_seeds",
                     "needs numbers of seeds >= 2")
        self.require(self.sim_queries >= 5, "sim_queries", "must be at least 5")
        self.require(self.sim_boot >= 100, "sim_boot", "must be at least 100")


SCORECARD_PROFILES = {"smoke": {"n_sim": 40, "sim_seeds": (2,), "sim_boot": 100}, "default": {}, "paper": {"n_sim": 1000}}
