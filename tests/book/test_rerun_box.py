"""The "Rerunning this chapter" box (xmlib.book.sphinx_rerun) and the chapters' cells that hold it."""

import re

import jupytext
import pytest

from xmlib.book import timings
from xmlib.book.run import toc_notebooks
from xmlib.book.sphinx_rerun import rerun_markdown
from xmlib.core.paths import project_root

SOURCES = toc_notebooks(project_root())
PAPER_CHAPTERS = ("02_dcmm", "03_deepranking", "04_sgraf")


def test_box_gives_each_profile_its_command_and_recorded_time(tmp_path):
    timings.record("smoke", "notebooks", "02_dcmm", 42.5, root=tmp_path)
    timings.record("default", "notebooks", "02_dcmm", 0.0, status="unchanged", kept=540.0, root=tmp_path)
    text = rerun_markdown("notebooks/02_dcmm", tmp_path)
    for profile in ("smoke", "default", "paper"):
        assert f"python -m xmlib.book.run notebooks/02_dcmm.py --profile {profile}" in text
    smoke, default, paper = re.findall(r"^- \*\*(?:smoke|default|paper)\*\*: (.*)$", text, re.M)
    assert "took 42.5 s" in smoke
    assert "took 540 s (9.0 min)" in default  # the run an unchanged build kept
    assert paper.startswith("no run of this profile is recorded")
    assert "{download}`02_dcmm.ipynb </notebooks/02_dcmm.ipynb>`" in text
    assert "{download}`02_dcmm.py </notebooks/02_dcmm.py>`" in text
    assert "python -m xmlib.book.compare" in text


def test_box_of_a_machine_with_no_record_says_so(tmp_path):
    text = rerun_markdown("notebooks/00_building_blocks", tmp_path)
    assert text.count("no run of this profile is recorded") == 3 and "took" not in text


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_every_chapter_has_one_rerun_cell_before_its_summary(path):
    cells = jupytext.read(path).cells
    boxes = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Rerunning this chapter" in c.source]
    assert len(boxes) == 1, f"{path.name}: expected one markdown cell titled '## Rerunning this chapter'"
    cell = cells[boxes[0]].source
    assert re.search(r"^```\{xmlib-rerun\}\n```$", cell, re.M), f"{path.name}: the box has no {{xmlib-rerun}} directive"
    summaries = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and re.search(r"^## Summary", c.source, re.M)]
    if summaries:
        assert boxes[0] == summaries[-1] - 1, f"{path.name}: put the rerun cell just before the Summary"
    else:
        assert all(c.cell_type == "code" for c in cells[boxes[0] + 1:]) or boxes[0] == len(cells) - 1
    if path.stem in PAPER_CHAPTERS:
        assert ":::{admonition} Paper scale" in cell and "**Has it run?**" in cell and "GPU" in cell, \
            f"{path.name}: the paper-scale box (data, layout, GPU, whether it has run) is missing"
