"""The build's timing report: one entry per step, replaced when the step runs again, shown in build order."""

import sys

import pytest

from xmlib.book import timings


def test_steps_are_recorded_replaced_and_reported_in_build_order(tmp_path):
    assert "no build" in timings.report("default", tmp_path)
    assert "No build of the `default` profile" in timings.page("default", tmp_path)
    timings.record("default", "sphinx", "jupyter-book build", 61.0, root=tmp_path)
    timings.record("default", "notebooks", "02_dcmm", 300.04, root=tmp_path)
    timings.record("default", "data", "emoji", 120.0, root=tmp_path)
    timings.record("default", "notebooks", "02_dcmm", 0.0, status="unchanged", kept=300.04, root=tmp_path)
    rows = timings.rows("default", tmp_path)
    assert [(r["stage"], r["step"]) for r in rows] == [("data", "emoji"), ("notebooks", "02_dcmm"),
                                                        ("sphinx", "jupyter-book build")]
    assert rows[1]["status"] == "unchanged" and rows[1]["kept_seconds"] == 300.0
    text = timings.report("default", tmp_path)
    assert "unchanged (ran in 300.0 s before)" in text and "total 181 s (3.0 min)" in text
    page = timings.page("default", tmp_path)
    assert "| data | emoji | 120.0 | ran |" in page and "| **total** | | **181** | 3.0 min | |" in page
    assert timings.rows("smoke", tmp_path) == []  # one record per profile
    with pytest.raises(ValueError, match="stage 'html'"):
        timings.record("default", "html", "x", 1.0, root=tmp_path)


def test_an_unreadable_record_counts_as_no_build(tmp_path):
    path = timings.record_path("default", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert timings.rows("default", tmp_path) == []
    timings.record("default", "data", "fetch", 2.0, root=tmp_path)  # and is replaced by the next record
    assert [r["step"] for r in timings.rows("default", tmp_path)] == ["fetch"]


def test_time_records_a_command_that_succeeded_and_passes_on_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("XMLIB_ROOT", str(tmp_path))
    ok = [sys.executable, "-c", "pass"]
    assert timings.main(["time", "--profile", "smoke", "--stage", "sphinx", "--step", "build", "--", *ok]) == 0
    assert [r["step"] for r in timings.rows("smoke", tmp_path)] == ["build"]
    bad = [sys.executable, "-c", "raise SystemExit(3)"]
    assert timings.main(["time", "--profile", "smoke", "--stage", "sphinx", "--step", "failed", "--", *bad]) == 3
    assert [r["step"] for r in timings.rows("smoke", tmp_path)] == ["build"]  # a failed step is not a build time
    assert timings.main(["page", "--profile", "smoke"]) == 0
    assert "| sphinx | build |" in (tmp_path / "_build" / "timings" / "page.md").read_text()
