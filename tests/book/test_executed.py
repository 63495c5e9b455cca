"""Executed notebooks never hide an error (Jupyter Book would render it and exit 0)."""

import json

from xmlib.book.check_notebooks import notebook_problems


def test_checker_detects_errors(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": ["1/0"], "execution_count": 1,
                     "outputs": [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": []}]},
                    {"cell_type": "code", "source": ["x = 1"], "execution_count": None, "outputs": []}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(nb))
    problems = notebook_problems(path)
    assert any("ZeroDivisionError" in p for p in problems)
    assert any("never executed" in p for p in problems)


def test_no_stored_output_is_an_error(executed_notebooks):
    for path in executed_notebooks:
        assert notebook_problems(path) == [], path


def test_parameters_were_injected(executed_notebooks):
    for path in executed_notebooks:
        nb = json.loads(path.read_text())
        tags = [c.get("metadata", {}).get("tags", []) for c in nb["cells"]]
        assert any("injected-parameters" in t for t in tags), f"{path} was not executed by papermill with parameters"
