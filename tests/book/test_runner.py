"""The papermill runner: parameters injected, unchanged notebooks skipped, failures fail the command."""

import json
from pathlib import Path

import pytest

from xmlib.book import run as runner

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
    capsys.readouterr()
    assert runner.run(src, "smoke", {"seed": 2}, root=project) == 0
    assert "unchanged" in capsys.readouterr().out
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
