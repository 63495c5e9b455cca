"""The papermill runner: parameters injected, unchanged notebooks skipped, failures fail the command."""

import json
from pathlib import Path

import pytest

from xmlib.book import run as runner
from xmlib.book import timings

pytestmark = pytest.mark.slow  # starts kernels (make test runs these files first, tests/conftest.py)

NB = '''# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "default"
overrides = {}

# %%
if overrides.get("fail"):
    raise ValueError("asked to fail")
print(f"profile={profile} overrides={overrides}")
'''


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "demo.py").write_text(NB)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/demo\n")
    return tmp_path


def _stdout(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    return "".join("".join(o.get("text", [])) for c in nb["cells"] for o in c.get("outputs", []) if o.get("name") == "stdout")


def test_runs_skips_unchanged_and_installs(project, capsys):
    src = runner.toc_notebooks(project)
    assert src == [project / "notebooks" / "demo.py"]
    assert runner.run(src, "smoke", {"seed": 2}, install=True, root=project) == 0
    executed = project / "_build" / "executed" / "smoke" / "demo.ipynb"
    assert "profile=smoke overrides={'seed': 2}" in _stdout(executed)
    assert (project / "notebooks" / "demo.ipynb").exists()
    (ran,) = timings.rows("smoke", project)  # the timing report has the notebook's run
    assert (ran["stage"], ran["step"], ran["status"]) == ("notebooks", "demo", "ran") and ran["seconds"] > 0
    machine = timings.load("smoke", project)["machine"]  # a build that ran something measured the machine's speed
    assert machine["matmul_gflops"] > 0 and "GFLOP/s on one core" in capsys.readouterr().out
    installed = project / "notebooks" / "demo.ipynb"
    first = installed.stat().st_mtime_ns
    capsys.readouterr()
    assert runner.run(src, "smoke", {"seed": 2}, install=True, root=project) == 0
    out = capsys.readouterr().out
    assert "unchanged" in out and "installed 0 executed notebook(s)" in out and "1 already there" in out
    assert installed.stat().st_mtime_ns == first  # the same bytes are not copied again (Sphinx reads the time)
    (kept,) = timings.rows("smoke", project)  # an unchanged notebook: no time now, the kept run's time beside it
    assert kept["status"] == "unchanged" and kept["seconds"] == 0 and kept["kept_seconds"] == ran["seconds"]
    assert "GFLOP/s" not in out and timings.load("smoke", project)["machine"] == machine  # nothing ran: not measured
    # a changed source runs again
    (project / "notebooks" / "demo.py").write_text(NB + "\n# %%\nprint('more')\n")
    assert runner.run(src, "smoke", {"seed": 2}, root=project) == 0
    assert "more" in _stdout(executed)


def test_failure_fails_and_is_never_installed(project, capsys):
    src = runner.toc_notebooks(project)
    assert runner.run(src, "smoke", {"fail": True}, install=True, root=project) == 1
    err = capsys.readouterr().err
    assert "FAILED demo.py" in err and "asked to fail" in err
    assert (project / "_build" / "executed" / "smoke" / "demo.failed.ipynb").exists()
    assert not (project / "_build" / "executed" / "smoke" / "demo.ipynb").exists()
    assert not (project / "notebooks" / "demo.ipynb").exists()


def test_missing_parameters_cell_is_an_error(project):
    (project / "notebooks" / "demo.py").write_text(NB.replace(' tags=["parameters"]', ""))
    assert runner.run(runner.toc_notebooks(project), "smoke", root=project) == 1


def test_cli_rejects_unknown_profile():
    with pytest.raises(SystemExit):
        runner.main(["--profile", "huge"])


def test_dependency_stamp_tracks_imported_modules(tmp_path):
    """Only a change to a module the run imported makes the notebook stale."""
    lib = tmp_path / "xmlib"
    lib.mkdir()
    used, unused = lib / "used.py", lib / "unused.py"
    used.write_text("x = 1\n")
    unused.write_text("y = 1\n")
    nb = {"cells": [{"cell_type": "code", "source": "1", "metadata": {}, "execution_count": 1, "outputs": []},
                    {"cell_type": "code", "source": runner.DEPS_CELL, "metadata": {}, "execution_count": 2,
                     "outputs": [{"output_type": "stream", "name": "stdout",
                                  "text": runner.DEPS_MARKER + json.dumps([str(used), "/elsewhere/xmlib/core.py"]) + "\n"}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    deps = runner._pop_deps(path, tmp_path)
    assert list(deps) == ["xmlib/used.py"]                      # files outside the checkout are not tracked
    assert len(json.loads(path.read_text())["cells"]) == 1      # the bookkeeping cell is gone
    stamp = {"deps": deps}
    assert runner.deps_unchanged(stamp, tmp_path)
    unused.write_text("y = 2\n")
    assert runner.deps_unchanged(stamp, tmp_path)               # not imported: still fresh
    used.write_text("x = 2\n")
    assert not runner.deps_unchanged(stamp, tmp_path)           # imported and changed: stale
    assert not runner.deps_unchanged({}, tmp_path)              # an old stamp without deps: stale


def test_dependency_stamp_tracks_recorded_input_files(tmp_path):
    """A page that read another notebook's results (xmlib.book.inputs.record) is stale when they change."""
    results = tmp_path / "runs" / "verdicts.json"
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    results.parent.mkdir()
    results.write_text("[1]")
    outside.write_text("{}")
    text = runner.DEPS_MARKER + "[]\n" + runner.INPUTS_MARKER + json.dumps([str(results), str(outside)]) + "\n"
    nb = {"cells": [{"cell_type": "code", "source": runner.DEPS_CELL, "metadata": {}, "execution_count": 1,
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": text}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    deps = runner._pop_deps(path, tmp_path)
    assert set(deps) == {"runs/verdicts.json", str(outside.resolve())}  # inputs outside the checkout too
    stamp = {"deps": deps}
    assert runner.deps_unchanged(stamp, tmp_path)
    results.write_text("[2]")
    assert not runner.deps_unchanged(stamp, tmp_path)
    outside.unlink()


def test_the_run_record_on_the_page_is_finished_by_the_runner(project, monkeypatch):
    """The runner's last cell finishes the run record: the record shown at the top gets the wall time."""
    monkeypatch.setenv("XMLIB_RUNS", str(project / "runs"))
    (project / "notebooks" / "demo.py").write_text(NB + '''
# %%
from xmlib.book.configs import BlocksConfig
from xmlib.core.runinfo import start_run

run = start_run("demo", profile, BlocksConfig())
run
''')
    assert runner.run(runner.toc_notebooks(project), "smoke", root=project) == 0
    nb = json.loads((project / "_build" / "executed" / "smoke" / "demo.ipynb").read_text())
    (shown,) = [o for c in nb["cells"] for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    html = "".join(shown["data"]["text/html"])
    assert "<summary><b>Run record</b>: profile smoke" in html and "wall time not finished" not in html
    assert "wall time" in html
    (record,) = (project / "runs" / "demo").glob("smoke-*/run.json")
    assert json.loads(record.read_text())["wall_seconds"] >= 0


SLOW_NB = NB.replace('print(f"profile={profile} overrides={overrides}")', '''import os, pathlib, time
log = pathlib.Path(os.environ["XMLIB_ROOT"]) / "order.log"
with open(log, "a") as fh:
    fh.write(f"start {NAME}\\n")
time.sleep(overrides.get("sleep", 0.0))
with open(log, "a") as fh:
    fh.write(f"end {NAME}\\n")
print(f"profile={profile} overrides={overrides}")''')


def test_jobs_run_notebooks_side_by_side_and_a_page_after_the_ones_it_names(project, capsys):
    """Two notebooks overlap in time; the page whose header names them starts after both ended; each
    executed notebook, stamp and time is as a one-at-a-time run leaves it."""
    nbs = project / "notebooks"
    (nbs / "demo.py").unlink()
    for name in ("a", "b"):
        (nbs / f"{name}.py").write_text(SLOW_NB.replace("{NAME}", name))
    after = SLOW_NB.replace("{NAME}", "page").replace("#     name: python3\n# ---",
                                                       "#     name: python3\n#   xmlib:\n#     after: [a, b]\n# ---")
    (nbs / "page.py").write_text(after)
    sources = [nbs / "page.py", nbs / "a.py", nbs / "b.py"]  # the page first: only its header makes it wait
    assert runner.run(sources, "smoke", {"sleep": 4.0}, jobs=2, install=True, root=project) == 0
    events = (project / "order.log").read_text().split("\n")[:-1]
    assert events.index("start page") > max(events.index("end a"), events.index("end b"))
    assert events.index("start b") < events.index("end a") and events.index("start a") < events.index("end b")
    for name in ("a", "b", "page"):
        assert "profile=smoke overrides={'sleep': 4.0}" in _stdout(project / "_build" / "executed" / "smoke" / f"{name}.ipynb")
        assert (project / "notebooks" / f"{name}.ipynb").exists()
    rows = {r["step"]: r for r in timings.rows("smoke", project)}
    assert rows["a"]["status"] == "ran" and rows["a"]["beside"] == 1 and rows["a"]["seconds"] >= 4.0
    capsys.readouterr()
    (project / "order.log").unlink()
    assert runner.run(sources, "smoke", {"sleep": 4.0}, jobs=2, root=project) == 0  # nothing changed: no process
    assert not (project / "order.log").exists()
    assert capsys.readouterr().out.count("unchanged") == 3


def test_jobs_count_a_failure_and_a_bad_after_header_is_named(project):
    nbs = project / "notebooks"
    (nbs / "b.py").write_text(NB)
    sources = [nbs / "demo.py", nbs / "b.py"]
    assert runner.run(sources, "smoke", {"fail": True}, jobs=2, install=True, root=project) == 2
    assert not (project / "notebooks" / "demo.ipynb").exists()  # nothing installed
    (nbs / "bad.py").write_text(NB.replace("#     name: python3\n# ---", "#     name: python3\n#   xmlib:\n#     after: 3\n# ---"))
    with pytest.raises(SystemExit, match=r"bad\.py: the header's `xmlib: after:` must be a list"):
        runner.run([nbs / "bad.py", nbs / "b.py"], "smoke", jobs=2, root=project)
    with pytest.raises(SystemExit, match="--jobs must be at least 1"):
        runner.run(sources, "smoke", jobs=0, root=project)


def test_the_scorecard_waits_for_every_chapter_it_reads():
    from xmlib.book import scorecard
    from xmlib.core.paths import project_root

    pages = {page for _, page in scorecard.CHAPTERS.values()}
    assert set(runner.after_of(project_root() / "notebooks" / "05_scorecard.py")) == pages
