"""The build-once helper every benchmark uses (xmlib.data.benchmarks._build): one stamp format, a temp
folder renamed into place, idempotence, rebuild on a changed stamp or version, nothing half-built trusted."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pytest

from xmlib.core.config import BaseConfig
from xmlib.data.benchmarks import _build as B


@dataclass(frozen=True)
class ToyConfig(BaseConfig):
    size: int = 3


PROFILES = {"smoke": {"size": 1}, "default": {}}


def _stamp(version=1, seed=0, **cfg):
    return B.make_stamp("toy", version, ToyConfig(**cfg), seed, {"asset": "abc"})


def test_build_once_writes_once_then_only_checks(tmp_path):
    calls = []

    def write(folder):
        calls.append(folder)
        (folder / "data.txt").write_text("x")

    out = tmp_path / "toy" / "default"
    assert B.build_once(out, _stamp(), write) == out
    assert (out / "data.txt").read_text() == "x" and len(calls) == 1
    stamp = json.loads((out / B.STAMP).read_text())
    assert {k: v for k, v in stamp.items() if k not in ("built", "files")} == _stamp() and stamp["config"] == {"size": 3}
    assert stamp["files"] == {"data.txt": {"bytes": 1, "sha256": hashlib.sha256(b"x").hexdigest()}}
    B.build_once(out, _stamp(), write)
    assert len(calls) == 1                                  # up to date: nothing written
    B.build_once(out, _stamp(), write, force=True)
    B.build_once(out, _stamp(seed=1), write)                 # another seed, config or version rebuilds
    B.build_once(out, _stamp(size=4), write)
    B.build_once(out, _stamp(version=2), write)
    assert len(calls) == 5 and calls[-1] != out              # always written into a temp folder
    assert not list(out.parent.glob(".default.*.part"))


def test_a_failed_build_leaves_the_old_one_and_no_temp_folder(tmp_path):
    out = tmp_path / "default"
    B.build_once(out, _stamp(), lambda f: (f / "data.txt").write_text("old"))

    def broken(folder):
        (folder / "data.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        B.build_once(out, _stamp(seed=1), broken)
    assert (out / "data.txt").read_text() == "old" and B.is_built(out, _stamp())
    assert not list(tmp_path.glob(".default.*.part"))


def test_a_stamp_in_another_format_is_not_a_build(tmp_path):
    (tmp_path / B.STAMP).write_text(json.dumps({"key": {"build_version": 2}, "built": "then"}))
    assert B.read_stamp(tmp_path) is None and not B.is_built(tmp_path, _stamp())


def test_locate_builds_a_missing_or_older_profile_and_names_the_fix_for_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XMLIB_CACHE", str(tmp_path / "cache"))
    built = []

    def build(profile):
        built.append(profile)
        return B.build_once(B.bench_dir("toy", profile), _stamp(version=2), lambda f: None)

    assert B.locate("toy", PROFILES, "smoke", 2, build) == B.bench_dir("toy", "smoke") and built == ["smoke"]
    assert B.locate("toy", PROFILES, "smoke", 2, build) == B.bench_dir("toy", "smoke") and built == ["smoke"]
    B.locate("toy", PROFILES, "smoke", 3, build)             # a newer builder rebuilds the profile
    assert built == ["smoke", "smoke"]
    with pytest.raises(FileNotFoundError, match=r"version 2; this code writes version 3.*prepare"):
        B.locate("toy", PROFILES, B.bench_dir("toy", "smoke"), 3)
    with pytest.raises(FileNotFoundError, match="found nothing"):
        B.locate("toy", PROFILES, tmp_path / "empty", 2, build)


def test_unknown_profile_and_bad_seed_are_named():
    with pytest.raises(ValueError, match="unknown toy profile 'huge'"):
        B.resolve(ToyConfig, PROFILES, "toy", "huge")
    with pytest.raises(ValueError, match="seed"):
        B.check_seed(-1)
    assert B.resolve(ToyConfig, PROFILES, "toy", "smoke", {"size": 2}).size == 2
