"""Built benchmarks whose files changed after the build: the stamp records every file's size and
sha256; a missing or resized file is seen on every use, a changed byte by ``prepare``'s full check;
either way the file is named and the benchmark built again, to the clean build's bytes."""

from __future__ import annotations

import pytest

from xmlib.core.io import DataFormatError
from xmlib.data.benchmarks import _build as B

STAMP = {"benchmark": "toy", "version": 1, "config": {}, "fingerprint": "f", "seed": 0, "inputs": {}}


def write(folder):
    (folder / "sub").mkdir()
    for i in range(3):
        (folder / f"part-{i}.txt").write_text(f"row {i}\n" * (i + 1))
    (folder / "sub" / "meta.json").write_text('{"n": 3}')


@pytest.fixture
def built(tmp_path, monkeypatch):
    monkeypatch.setenv("XMLIB_CACHE", str(tmp_path / "cache"))
    out = B.bench_dir("toy", "smoke")
    B.build_once(out, STAMP, write)
    return out


def contents(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != B.STAMP}


def test_the_stamp_records_every_file(built):
    files = B.read_stamp(built)["files"]
    assert sorted(files) == ["part-0.txt", "part-1.txt", "part-2.txt", "sub/meta.json"]
    assert files["part-1.txt"]["bytes"] == len("row 1\n" * 2)
    assert B.is_built(built, STAMP) and B.file_problems(built, full=True) == []


@pytest.mark.parametrize("damage, problem", [
    (lambda p: p.write_text("short"), "bytes where the manifest records"),
    (lambda p: p.unlink(), "the file is missing"),
])
def test_a_resized_or_missing_file_is_seen_on_use_and_built_again(built, capsys, damage, problem):
    clean = contents(built)
    damage(built / "part-2.txt")
    assert not B.is_built(built, STAMP)
    out = capsys.readouterr().out
    assert str(built / "part-2.txt") in out and problem in out and "built again" in out
    B.build_once(built, STAMP, write)
    assert contents(built) == clean and B.is_built(built, STAMP)


def test_a_changed_byte_is_caught_by_the_full_check_at_prepare(built, capsys):
    clean = contents(built)
    path = built / "part-1.txt"
    path.write_bytes(path.read_bytes().replace(b"row 1", b"row 7", 1))  # same size
    assert B.is_built(built, STAMP)  # the cheap check cannot see it
    assert B.verify_builds(full=True) == [(path, "its sha256 differs from the manifest's (the content changed)")]
    assert str(path) in capsys.readouterr().out
    assert not B.is_built(built, STAMP)  # its stamp is gone: the next build starts over
    B.build_once(built, STAMP, write)
    assert contents(built) == clean and B.verify_builds(full=True) == []


def test_a_reader_of_a_damaged_build_elsewhere_is_told_how_to_rebuild(built, tmp_path):
    (built / "sub" / "meta.json").write_text("{}")
    with pytest.raises(DataFormatError) as e:
        B.locate("toy", {"smoke": {}}, str(built), 1)  # a folder path: nothing to rebuild it with
    msg = str(e.value)
    assert str(built / "sub" / "meta.json") in msg and "prepare" in msg


def test_a_build_from_before_files_were_recorded_is_still_current(built):
    import json

    stamp = json.loads((built / B.STAMP).read_text())
    del stamp["files"]
    (built / B.STAMP).write_text(json.dumps(stamp))
    assert B.is_built(built, STAMP) and B.file_problems(built, full=True) == []
