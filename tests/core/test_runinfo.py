"""Run records: what start_run writes, what finish adds (wall time, data builds read), the one-line summary."""

import json

import pytest

from xmlib.book.configs import BlocksConfig
from xmlib.core import runinfo


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XMLIB_RUNS", str(tmp_path / "runs"))
    from xmlib.data.benchmarks import _build

    monkeypatch.setattr(_build, "LOCATED", {})
    monkeypatch.setattr(runinfo, "_OPEN", [])
    return tmp_path / "runs"


def stamp(**extra):
    return {"benchmark": "clipart", "version": 2, "config": {"n": 1}, "fingerprint": "f", "seed": 0, "inputs": {},
            "built": "2026-12-01T13:09:03Z", "files": {"a.npy": {"bytes": 8, "sha256": "aa"}}, **extra}


def test_start_records_hardware_commit_and_tree_state(runs):
    run = runinfo.start_run("blocks", "smoke", BlocksConfig())
    record = json.loads((run.out_dir / "run.json").read_text())
    assert run.out_dir.parent == runs / "blocks"
    assert record["hardware"]["cpu"] and isinstance(record["hardware"]["gpus"], list)
    assert record["dirty"] in (True, False, None) and record["started"].endswith("+00:00")
    assert "wall_seconds" not in record and "wall time not finished" in run.summary()


def test_finish_adds_wall_time_and_the_data_builds_read(runs):
    run = runinfo.start_run("blocks", "smoke", BlocksConfig())
    from xmlib.data.benchmarks import _build

    _build.LOCATED["clipart/smoke"] = (runs / "clipart" / "smoke", stamp())
    runinfo.finish_runs()
    record = json.loads((run.out_dir / "run.json").read_text())
    assert record["wall_seconds"] >= 0 and record["finished"]
    assert record["data"]["clipart/smoke"]["hash"] == runinfo.stamp_hash(stamp())
    line = run.summary()
    assert "profile smoke" in line and "data clipart/smoke " + runinfo.stamp_hash(stamp())[:8] in line and "wall time" in line
    assert "not finished" not in line
    assert runinfo._OPEN == []  # finished once
    html = run._repr_html_()
    assert html.startswith("<details") and f"<summary><b>Run record</b>: {line}" in html.replace("&#x27;", "'")


def test_stamp_hash_ignores_the_build_time_only():
    assert runinfo.stamp_hash(stamp()) == runinfo.stamp_hash(stamp(built="2027-01-01T00:00:00Z"))
    assert runinfo.stamp_hash(stamp()) != runinfo.stamp_hash(stamp(files={"a.npy": {"bytes": 8, "sha256": "ab"}}))


def test_dirty_flag_follows_git_status(monkeypatch):
    monkeypatch.setattr(runinfo, "_git", lambda *args: " M xmlib/losses.py\n")
    assert runinfo.git_dirty() is True
    monkeypatch.setattr(runinfo, "_git", lambda *args: "")
    assert runinfo.git_dirty() is False
    monkeypatch.setattr(runinfo, "_git", lambda *args: None)
    assert runinfo.git_dirty() is None


def test_the_benchmark_reader_notes_the_build_it_returns(tmp_path, monkeypatch):
    """locate() notes the build; the data code does not import the run record (editing it retrains nothing)."""
    from xmlib.core.fingerprint import module_closure

    closure = module_closure("xmlib.data.benchmarks.clipart", "xmlib.sgraf.experiment")
    assert "xmlib.data.benchmarks._build" in closure and "xmlib.sgraf.model" in closure
    assert "xmlib.core.runinfo" not in closure
    from xmlib.data.benchmarks import _build

    monkeypatch.setattr(_build, "LOCATED", {})
    folder = tmp_path / "clipart" / "smoke"
    folder.mkdir(parents=True)
    (folder / "stamp.json").write_text(json.dumps(stamp(files={})))
    assert _build.locate("clipart", {"smoke": {}}, folder, 2) == folder
    assert runinfo.data_read()["clipart/smoke"]["hash"] == runinfo.stamp_hash(stamp(files={}))
