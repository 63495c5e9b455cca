from dataclasses import dataclass
from typing import Literal, Optional

import pytest

from xmlib.core.config import BaseConfig, ConfigError, resolve_config


@dataclass(frozen=True)
class Cfg(BaseConfig):
    seed: int = 0
    lr: float = 1e-3
    dims: tuple[int, ...] = (4, 8)
    mode: Literal["cos", "edge"] = "cos"
    k: Optional[int] = None
    relu: bool = True

    def validate(self):
        self.require(self.lr > 0, "lr", "must be positive")


PROFILES = {"smoke": {"lr": 0.5}, "default": {}, "paper": {"dims": [16, 32]}}


def test_profile_then_overrides():
    cfg = resolve_config(Cfg, PROFILES, "smoke", {"seed": 3, "dims": [1, 2, 3]})
    assert (cfg.seed, cfg.lr, cfg.dims) == (3, 0.5, (1, 2, 3))
    assert resolve_config(Cfg, PROFILES, "paper").dims == (16, 32)


def test_int_to_float_is_allowed_and_typed():
    cfg = resolve_config(Cfg, PROFILES, "default", {"lr": 1})
    assert isinstance(cfg.lr, float) and cfg.lr == 1.0


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown parameter 'sed'.*did you mean 'seed'"):
        resolve_config(Cfg, PROFILES, "default", {"sed": 1})


def test_unknown_profile_lists_choices():
    with pytest.raises(ConfigError, match=r"unknown profile 'fast'.*default.*paper.*smoke"):
        resolve_config(Cfg, PROFILES, "fast")


@pytest.mark.parametrize("name,value", [("seed", "3"), ("seed", 1.5), ("seed", True), ("relu", 1), ("mode", "dot"),
                                        ("dims", 4), ("k", "ten"), ("lr", "fast")])
def test_bad_types_are_errors(name, value):
    with pytest.raises(ConfigError, match=name):
        resolve_config(Cfg, PROFILES, "default", {name: value})


def test_value_check_names_parameter():
    with pytest.raises(ConfigError, match=r"Cfg.lr = -1.0: must be positive"):
        resolve_config(Cfg, PROFILES, "default", {"lr": -1})


def test_frozen_and_fingerprint():
    a = resolve_config(Cfg, PROFILES, "default")
    with pytest.raises(Exception):
        a.seed = 2  # type: ignore[misc]
    assert a.fingerprint() == resolve_config(Cfg, PROFILES, "default").fingerprint()
    assert a.fingerprint() != a.replace(seed=1).fingerprint()
    with pytest.raises(ConfigError):
        a.replace(seeed=1)


def test_overrides_must_be_a_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        resolve_config(Cfg, PROFILES, "default", [("seed", 1)])  # type: ignore[arg-type]
