"""Extracted assets that changed after extraction, and temporary folders left by killed runs: a changed
file is named and the asset extracted again from the kept download; debris is removed at the next start."""

from __future__ import annotations

import os

import pytest

from tests.data.test_assets import GOOD, FakeDownloader
from xmlib.data import assets as A

DEAD_PID = 999_999_999  # above any pid_max: never a running process


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy asset of tests/data/test_assets.py, fetched into a fresh cache; returns its folder."""
    from tests.data.test_assets import SHA

    monkeypatch.setenv("XMLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(A.ASSETS, "toy", A.Asset("toy", "npm", "toy-pkg", "1.0.0", "toy-pkg-1.0.0.tgz", SHA, "MIT", "a toy"))
    return A.fetch("toy", downloader=FakeDownloader(GOOD))


def no_download(asset, folder):
    raise AssertionError("the kept download must be extracted again, not downloaded")


def test_changed_byte_is_caught_by_the_full_check_and_extracted_again(toy, capsys):
    path = toy / "package/a.txt"
    path.write_bytes(b"alphA")  # same size: the cheap check cannot tell
    assert A.is_fetched("toy") and not A.is_fetched("toy", full=True)
    assert A.fetch("toy", downloader=no_download, verify=True) == toy
    out = capsys.readouterr().out
    assert str(path) in out and "sha256 differs" in out and "extracting it again" in out
    assert path.read_bytes() == b"alpha" and A.is_fetched("toy", full=True)


def test_prepare_checks_every_extracted_file(toy, monkeypatch, capsys):
    from xmlib.data import __main__ as cli

    (toy / "package/sub/b.txt").write_bytes(b"bet!")
    monkeypatch.setattr(A, "ASSETS", {"toy": A.ASSETS["toy"]})  # fetch_all() fetches this one
    cli.prepare("smoke", benchmarks=())
    assert "package/sub/b.txt: its sha256 differs" in capsys.readouterr().out
    assert (toy / "package/sub/b.txt").read_bytes() == b"beta"


@pytest.mark.parametrize("damage, problem", [
    (lambda root: (root / "package/a.txt").write_bytes(b"alp"), "package/a.txt: 3 bytes where the manifest records 5"),
    (lambda root: (root / "package/sub/b.txt").unlink(), "package/sub/b.txt: the file is missing"),
    (lambda root: (root / ".manifest.json").unlink(), ".manifest.json: the manifest is missing"),
])
def test_cheap_check_on_use_names_the_file_and_extracts_again(toy, capsys, damage, problem):
    damage(toy)
    assert not A.is_fetched("toy")
    assert A.asset_root("toy") == toy  # the kept download is extracted again (no client needed)
    assert problem in capsys.readouterr().out
    assert (toy / "package/a.txt").read_bytes() == b"alpha" and (toy / "package/sub/b.txt").read_bytes() == b"beta"
    assert A.is_fetched("toy", full=True)


def test_temporary_folders_of_killed_runs_are_removed_at_start(toy, tmp_path):
    cache = tmp_path / "cache"
    dead = [cache / "assets" / f".toy.{DEAD_PID}.x1y2.part", cache / "downloads" / f".toy.{DEAD_PID}.z9.part"]
    live = cache / "assets" / f".toy.{os.getpid()}.live.part"  # a writer still at work
    for folder in dead + [live]:
        (folder / "usr/share").mkdir(parents=True)
        (folder / "usr/share/big.bin").write_bytes(b"0" * 1000)
    assert A.fetch("toy", downloader=no_download) == toy  # already fetched: cleaning happens anyway
    assert not any(d.exists() for d in dead) and live.exists()


def test_temporary_folder_of_a_killed_build_is_removed(tmp_path):
    from xmlib.data.benchmarks._build import build_once

    parent = tmp_path / "bench"
    debris = parent / f".smoke.{DEAD_PID}.abc.part"
    (debris / "sub").mkdir(parents=True)
    out = build_once(parent / "default", {"benchmark": "x"}, lambda folder: (folder / "f.txt").write_text("ok"))
    assert (out / "f.txt").read_text() == "ok" and not debris.exists()
    build_once(out, {"benchmark": "x"}, lambda folder: (folder / "f.txt").write_text("new"), force=True)
    assert (out / "f.txt").read_text() == "new" and sorted(p.name for p in parent.iterdir()) == [".default.lock", "default"]


def test_the_full_check_hashes_only_files_written_since_it_last_passed(toy, tmp_path, monkeypatch, capsys):
    from xmlib.core import manifest

    hashed = []
    real = manifest.sha256_file
    monkeypatch.setattr(manifest, "sha256_file", lambda path: (hashed.append(path), real(path))[1])
    record = tmp_path / "verified.json"  # as prepare keeps it, between runs
    with manifest.remembering(record):
        assert A.is_fetched("toy", full=True) and len(hashed) == 2  # first full check: both files hashed
    hashed.clear()
    with manifest.remembering(record):
        assert A.is_fetched("toy", full=True) and len(hashed) == 0  # nothing written since: stat calls only
    assert A.is_fetched("toy", full=True) and len(hashed) == 2  # outside remembering(): every file hashed
    path = toy / "package/a.txt"
    before = path.stat()
    path.write_bytes(b"alphA")  # same size, and the modification time put back: only the change time tells
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    hashed.clear()
    with manifest.remembering(record):
        assert not A.is_fetched("toy", full=True) and len(hashed) == 1  # the written file is hashed again
    assert A.fetch("toy", downloader=no_download, verify=True) == toy
    assert "sha256 differs" in capsys.readouterr().out and path.read_bytes() == b"alpha"
