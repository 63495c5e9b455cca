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


def test_a_stamped_command_runs_again_only_when_the_tree_or_the_command_changed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XMLIB_ROOT", str(tmp_path))
    (tmp_path / "book").mkdir()
    page = tmp_path / "book" / "page.md"
    page.write_text("# one\n")
    out = tmp_path / "_build" / "html"
    stamp = out / ".xmlib-inputs.json"
    (tmp_path / "_build").mkdir()
    log = tmp_path / "_build" / "runs.log"  # in a skipped folder: the command's own output is not an input
    build = [sys.executable, "-c", f"import pathlib; p = pathlib.Path({str(out)!r}); p.mkdir(parents=True, exist_ok=True);"
             f"(p / 'index.html').write_text('x'); open({str(log)!r}, 'a').write('ran\\n')"]

    def timed(command=build) -> int:
        return timings.main(["time", "--profile", "smoke", "--stage", "sphinx", "--step", "book", "--stamp", str(stamp),
                             "--", *command])

    def runs() -> int:
        return log.read_text().count("ran")

    assert timed() == 0 and runs() == 1 and stamp.is_file()
    assert timed() == 0 and runs() == 1  # nothing changed: not run
    assert "not run, nothing it reads changed" in capsys.readouterr().out
    entry = timings.load("smoke", tmp_path)["steps"]["sphinx/book"]
    assert entry["status"] == "unchanged" and entry["kept_seconds"] >= 0.0
    page.write_text("# two\n")  # an input changed
    assert timed() == 0 and runs() == 2
    (tmp_path / "book" / "new.md").write_text("new\n")  # a new file
    assert timed() == 0 and runs() == 3
    (out / "index.html").unlink()  # the output is gone
    assert timed() == 0 and runs() == 4
    assert timed(build + ["--other-flag"]) == 0 and runs() == 5  # another command line
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "result.json").write_text("{}")  # training outputs are not the book's inputs
    assert timed(build + ["--other-flag"]) == 0 and runs() == 5
    failing = [sys.executable, "-c", "raise SystemExit(2)"]
    assert timed(failing) == 2 and not stamp.exists()  # a failed build leaves no stamp
    assert timed(build + ["--other-flag"]) == 0 and runs() == 6


def test_the_tree_digest_sees_paths_and_bytes_and_skips_build_folders(tmp_path):
    (tmp_path / "a.md").write_text("a")
    first = timings.tree_digest(tmp_path)
    assert timings.tree_digest(tmp_path) == first
    for skipped in ("_build", ".venv", "runs", ".git", "__pycache__"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "x").write_text("x")
    (tmp_path / "nb.failed.ipynb").write_text("{}")
    assert timings.tree_digest(tmp_path) == first
    (tmp_path / "a.md").rename(tmp_path / "b.md")  # same bytes, another name
    assert timings.tree_digest(tmp_path) != first
    assert timings.tree_digest(tmp_path, ["cmd"]) != timings.tree_digest(tmp_path)


def _entry(stage, step, seconds, end, status="ran"):
    return {"stage": stage, "step": step, "seconds": seconds, "status": status,
            "when": f"2026-12-02T08:{end // 60:02d}:{end % 60:02d}+00:00"}


def test_the_wall_clock_counts_notebooks_side_by_side_once_and_data_and_sphinx_in_sequence():
    entries = [_entry("data", "fetch", 30.0, 30), _entry("data", "emoji", 100.0, 130),
               _entry("notebooks", "02_dcmm", 600.0, 130 + 600),      # 02 and 03 started together,
               _entry("notebooks", "03_deepranking", 500.0, 130 + 500),
               _entry("notebooks", "04_sgraf", 800.0, 730 + 800),     # 04 after 02
               _entry("notebooks", "05_scorecard", 0.0, 1600, status="unchanged"),
               _entry("sphinx", "jupyter-book build", 20.0, 1550)]
    wall = timings.wall_seconds(entries)
    assert wall == {"data": 130.0, "notebooks": 1400.0, "sphinx": 20.0}  # notebooks: 130 .. 1530
    # one notebook, or none that ran: the sum
    assert timings.wall_seconds(entries[:3])["notebooks"] == 600.0
    assert timings.wall_seconds([_entry("notebooks", "02_dcmm", 0.0, 10, status="unchanged")]) == {"notebooks": 0.0}


def test_the_report_and_page_give_the_wall_clock_and_the_machine_speed(tmp_path, monkeypatch):
    import xmlib.core.device as device

    timings.record("default", "notebooks", "02_dcmm", 600.0, root=tmp_path)
    timings.record("default", "notebooks", "03_deepranking", 500.0, root=tmp_path)  # ended right after: side by side
    page = timings.page("default", tmp_path)
    assert "| **total** | | **1100** |" in page and "| **wall clock** | notebooks side by side | **600** |" in page
    assert "Machine:" not in page  # nothing measured yet
    monkeypatch.setattr(device, "matmul_gflops", lambda: 87.64)
    machine = timings.probe("default", tmp_path)
    assert machine["matmul_gflops"] == 87.6 and machine["cores"] >= 1
    timings.record("default", "sphinx", "jupyter-book build", 20.0, root=tmp_path)  # a later record keeps it
    for text in (timings.page("default", tmp_path), timings.report("default", tmp_path)):
        assert "float32 matrices at 87.6 GFLOP/s" in text
    assert "wall clock (notebooks side by side): notebooks 600 s (10.0 min)" in timings.report("default", tmp_path)
