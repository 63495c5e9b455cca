"""Checks on the notebooks' text sources: nbval markers live in cell tags (not in the code a reader
sees), and the cells that compute nothing a reader needs to read are hidden."""

import re

import jupytext
import pytest
from nbval.plugin import find_comment_markers, find_metadata_tags

from xmlib.book.run import toc_notebooks
from xmlib.core.paths import project_root

SOURCES = toc_notebooks(project_root())


@pytest.fixture(scope="module", params=SOURCES, ids=lambda p: p.stem)
def notebook(request):
    return jupytext.read(request.param)


def test_every_toc_notebook_is_checked():
    assert len(SOURCES) >= 6


def test_nbval_markers_are_tags_that_nbval_reads(notebook):
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        assert not list(find_comment_markers(cell.source)), \
            f"an nbval comment marker shows in the rendered code: use the cell tag instead\n{cell.source[:200]}"
        if "nbval-check-output" in cell.metadata.get("tags", []):
            assert dict(find_metadata_tags(cell.metadata)) == {"check": True}


def test_chapters_with_derivations_check_outputs():
    """The notebooks that check derivations numerically keep their nbval-checked cells."""
    for path in SOURCES[:5]:  # building blocks, data, and the three papers
        nb = jupytext.read(path)
        n = sum("nbval-check-output" in c.metadata.get("tags", []) for c in nb.cells)
        assert n >= 1, f"{path.name} has no cell whose output nbval checks"


def test_noise_cells_are_hidden(notebook):
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags:  # papermill's injected cell shows the values the page ran with
            assert "remove-cell" in tags
        if re.search(r"^\s*glue\(", cell.source, re.M):
            assert {"remove-input", "remove-cell"} & set(tags), cell.source[:200]
        if "display(Markdown(" in cell.source or "figure" in cell.metadata.get("mystnb", {}):
            assert {"hide-input", "remove-input", "remove-cell"} & set(tags), cell.source[:200]
