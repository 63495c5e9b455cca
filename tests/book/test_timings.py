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
