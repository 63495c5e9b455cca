"""Config domains: each field declares its allowed values next to it and BaseConfig checks them all,
naming the field, the value and the allowed range. One bad value per kind of domain."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from xmlib.core.config import (
    BaseConfig,
    ConfigError,
    OneOf,
    Range,
    analysis_field,
    at_least,
    between,
    evaluation_field,
    field,
    one_of,
    positive,
    resolve_config,
)


@dataclass(frozen=True)
class Cfg(BaseConfig):
    lr: float = positive(1e-3)
    epochs: int = at_least(0, 5)
    dropout: float = between(0.0, 1.0, 0.2, high_open=True)
    gap: float = between(0.0, 4.0, 1.0, low_open=True, why="D lies in [0, 4]")
    side: int = field(64, Range(32, step=8))
    ddof: int = one_of((0, 1), 0, "population or sample std")
    grid: tuple[float, ...] = positive((1e-3, 1e-2))
    seeds: int = analysis_field(3, Range(1, why="verdicts over seeds"))
    subset: int = evaluation_field(0, Range(0))
    free: float = 0.5


@pytest.mark.parametrize("name, value, expected", [
    ("lr", 0.0, "Cfg.lr = 0.0: must be > 0"),                                   # open lower bound
    ("lr", -1, "Cfg.lr = -1.0: must be > 0"),
    ("lr", math.nan, "Cfg.lr = nan: must be > 0"),                              # not finite
    ("lr", math.inf, "Cfg.lr = inf: must be > 0"),
    ("epochs", -1, "Cfg.epochs = -1: must be >= 0"),                            # closed lower bound
    ("dropout", 1.0, "Cfg.dropout = 1.0: must be in [0.0, 1.0)"),               # open upper bound
    ("dropout", -0.1, "Cfg.dropout = -0.1: must be in [0.0, 1.0)"),
    ("gap", 0.0, "Cfg.gap = 0.0: must be in (0.0, 4.0] (D lies in [0, 4])"),    # the reason is shown
    ("gap", 4.5, "must be in (0.0, 4.0]"),
    ("side", 60, "Cfg.side = 60: must be a multiple of 8 >= 32"),               # a step
    ("side", 24, "a multiple of 8 >= 32"),
    ("ddof", 2, "Cfg.ddof = 2: must be one of [0, 1] (population or sample std)"),  # a set
    ("grid", (1e-3, -1.0), "Cfg.grid = (0.001, -1.0) (the item -1.0): must be > 0"),  # every item of a tuple
    ("grid", (), "Cfg.grid = (): needs at least one value, each > 0"),
    ("seeds", 0, "Cfg.seeds = 0: must be >= 1 (verdicts over seeds)"),           # with a role
    ("subset", -3, "Cfg.subset = -3: must be >= 0"),
])
def test_bad_value_names_the_field_and_the_range(name, value, expected):
    with pytest.raises(ConfigError) as e:
        resolve_config(Cfg, {"default": {}}, "default", {name: value})
    assert expected in str(e.value)


def test_good_values_and_roles():
    cfg = Cfg(lr=2, dropout=0.0, gap=4.0, side=32, ddof=1, grid=[0.5], seeds=1, free=-7.0)
    assert (cfg.lr, cfg.grid) == (2.0, (0.5,))
    assert Cfg.analysis_fields() == ("seeds",) and Cfg.fields_with_role("evaluation") == ("subset",)
    assert Cfg.domains()["dropout"] == "in [0.0, 1.0)" and "free" not in Cfg.domains()
    with pytest.raises(ConfigError, match="Cfg.lr = -1.0"):
        cfg.replace(lr=-1)  # replace checks as well
    assert not OneOf((0, 1)).contains(False) and not Range(0).contains(True)  # a bool is not a number here


@pytest.mark.parametrize("module, name, value, expected", [
    ("xmlib.dcmm.config", "dropout", 1.0, "Config.dropout = 1.0: must be in [0.0, 1.0)"),
    ("xmlib.dcmm.config", "folds", 1, "must be >= 2 (cross-validation needs at least 2 folds)"),
    ("xmlib.dcmm.config", "zscore_ddof", 2, "must be one of [0, 1]"),
    ("xmlib.dcmm.config", "lr_grid", (0.0,), "(the item 0.0): must be > 0"),
    ("xmlib.deepranking.config", "gap", 4.0, "Config.gap = 4.0: must be in (0.0, 4.0)"),
    ("xmlib.deepranking.config", "image_size", 60, "must be a multiple of 8 >= 32"),
    ("xmlib.deepranking.config", "fractions", (0.0, 1.5), "(the item 1.5): must be in [0.0, 1.0]"),
    ("xmlib.deepranking.config", "t_r", 0.0, "must be > 0 (T_r > 0"),
    ("xmlib.sgraf.config", "dropout", 1.0, "Config.dropout = 1.0: must be in [0.0, 1.0)"),
    ("xmlib.sgraf.config", "captions_per_epoch", 6, "must be in [1, 5] (captions of each image per epoch)"),
    ("xmlib.sgraf.config", "batch_size", 1, "must be >= 2 (a batch needs negatives)"),
    ("xmlib.sgraf.config", "lambda_softmax", math.nan, "Config.lambda_softmax = nan: must be > 0"),
    ("xmlib.sgraf.config", "steps_grid", (), "needs at least one value"),
    ("xmlib.sgraf.config", "n_boot", 50, "must be >= 100 (bootstrap replicates)"),
    ("xmlib.sgraf.config", "length_buckets", -1, "must be >= 0 (0 = one group per caption length)"),
])
def test_chapter_configs(module, name, value, expected):
    import importlib

    mod = importlib.import_module(module)
    for profile in mod.PROFILES:  # every profile lies inside the domains
        resolve_config(mod.Config, mod.PROFILES, profile)
    with pytest.raises(ConfigError) as e:
        resolve_config(mod.Config, mod.PROFILES, "smoke", {name: value})
    assert expected in str(e.value)
