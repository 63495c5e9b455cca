"""Checks on the notebooks' text sources: nbval markers live in cell tags (not in the code a reader
sees), the cells that compute nothing a reader needs to read are hidden, and every chapter has the
parts of a textbook chapter: objectives at the top, a summary, exercises with hidden solutions."""

import re

import jupytext
import pytest
import yaml
from nbval.plugin import find_comment_markers, find_metadata_tags

from xmlib.book.configs import BLOCKS_PROFILES, DATA_PROFILES, SCORECARD_PROFILES, BlocksConfig, DataConfig, ScorecardConfig
from xmlib.book.run import toc_notebooks
from xmlib.core.config import resolve_config
from xmlib.core.paths import project_root
from xmlib.dcmm import config as dcmm_config
from xmlib.deepranking import config as dr_config
from xmlib.sgraf import config as sgraf_config

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


ROLE_WITHOUT_TARGET = re.compile(r"\{(?:[a-z]+:[a-z]+|eq|term|ref|numref|cite|download|doc)\}(?!`)")


def test_every_role_has_its_target(notebook):
    """A MyST role name not followed by its `target` is printed as literal text (e.g. a doubled
    "{py:func}{py:func}`name`" shows "{py:func}" on the page)."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            bad = ROLE_WITHOUT_TARGET.findall(cell.source)
            assert not bad, f"role names with no target (they render as text): {bad}\n{cell.source[:300]}"


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


# ---- the parts of a chapter -------------------------------------------------------------------------

NO_EXERCISES = {"05_scorecard"}  # the scorecard page collects verdicts: objectives and a summary only
CONFIGS = {"00_building_blocks": (BlocksConfig, BLOCKS_PROFILES), "01_data": (DataConfig, DATA_PROFILES),
           "02_dcmm": (dcmm_config.Config, dcmm_config.PROFILES),
           "03_deepranking": (dr_config.Config, dr_config.PROFILES),
           "04_sgraf": (sgraf_config.Config, sgraf_config.PROFILES),
           "05_scorecard": (ScorecardConfig, SCORECARD_PROFILES)}


@pytest.fixture(scope="module", params=SOURCES, ids=lambda p: p.stem)
def chapter(request):
    return request.param.stem, jupytext.read(request.param)


def section(nb, title: str) -> str | None:
    """The markdown text under the heading ``## title`` up to the next heading of level 1 or 2 (None if absent)."""
    text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    m = re.search(rf"^## {re.escape(title)}[ \t]*$(.*?)(?=^#{{1,2}} |\Z)", text, re.M | re.S)
    return m.group(1) if m else None


def test_every_toc_notebook_has_a_known_config():
    assert {p.stem for p in SOURCES} <= set(CONFIGS)


def test_objectives_box_follows_the_title(chapter):
    stem, nb = chapter
    title, box = nb.cells[0], nb.cells[1]
    assert title.cell_type == "markdown" and title.source.startswith("# "), f"{stem}: the first cell is the title"
    assert box.cell_type == "markdown" and box.source.startswith(":::{admonition} In this chapter"), \
        f"{stem}: the cell after the title must be the 'In this chapter' box"
    goals = re.search(r"\*\*You will\*\*\n((?:- .*\n(?:  .*\n)*)+)", box.source)
    assert goals, f"{stem}: the box lists its learning objectives under **You will**"
    n_goals = len(re.findall(r"^- ", goals.group(1), re.M))
    assert 3 <= n_goals <= 5, f"{stem}: {n_goals} learning objectives (want 3-5)"
    prereq = re.search(r"\*\*Before you start\.\*\*(.*?)\n\n", box.source, re.S)
    assert prereq and re.search(r"\{(doc|ref)\}`", prereq.group(1)), f"{stem}: prerequisites must link to pages"
    for key in ("page_reading", "page_run"):  # computed, never typed
        assert f"{{glue:text}}`{key}`" in box.source, f"{stem}: the time line must glue {key}"
    assert any(c.cell_type == "code" and f'header_values("{stem}", profile)' in c.source for c in nb.cells), \
        f"{stem}: a code cell must glue header_values(\"{stem}\", profile)"


def test_summary_states_what_was_found(chapter):
    stem, nb = chapter
    text = section(nb, "Summary")
    assert text is not None, f"{stem} has no '## Summary' section"
    n = len(re.findall(r"^- ", text, re.M))
    assert 4 <= n <= 7, f"{stem}: the summary has {n} bullet points (want 4-7)"


def test_exercises_have_hints_and_hidden_solutions(chapter):
    stem, nb = chapter
    text = section(nb, "Exercises")
    if stem in NO_EXERCISES and text is None:
        return
    assert text is not None, f"{stem} has no '## Exercises' section"
    parts = re.split(r"^\*\*Exercise (\d+) \(", text, flags=re.M)
    numbers, bodies = [int(n) for n in parts[1::2]], parts[2::2]
    assert 3 <= len(numbers) <= 5, f"{stem}: {len(numbers)} exercises (want 3-5)"
    assert numbers == list(range(1, len(numbers) + 1)), f"{stem}: exercises numbered {numbers}"
    for n, body in zip(numbers, bodies):
        assert "*Hint.*" in body, f"{stem}, exercise {n}: no hint"
        solutions = re.findall(r"^:::\{dropdown\} Solution\n(.*?)^:::$", body, re.M | re.S)
        assert len(solutions) == 1, f"{stem}, exercise {n}: want one closed ':::{{dropdown}} Solution' block"
        assert ":open:" not in solutions[0] and len(solutions[0].split()) >= 15, \
            f"{stem}, exercise {n}: the solution must be hidden and say something"
        assert body.index("*Hint.*") < body.index(":::{dropdown}"), f"{stem}, exercise {n}: hint before solution"


def test_rerun_commands_in_exercises_run_this_chapter_with_valid_overrides(chapter):
    """A command an exercise tells the reader to run names this notebook, and its -p overrides are fields
    of the chapter's config whose values the config accepts."""
    stem, nb = chapter
    text = section(nb, "Exercises") or ""
    cls, profiles = CONFIGS[stem]
    for cmd in re.findall(r"^python -m xmlib\.book\.run .*$", text, re.M):
        assert f"notebooks/{stem}.py --profile smoke" in cmd, f"{stem}: the command runs another notebook: {cmd}"
        pairs = re.findall(r"-p (\S+) (\S+)", cmd)
        assert pairs, f"{stem}: the command changes nothing: {cmd}"
        resolve_config(cls, profiles, "smoke", {k: yaml.safe_load(v) for k, v in pairs})


def test_config_tables_are_generated_and_hidden(chapter):
    stem, nb = chapter
    cells = [c for c in nb.cells if c.cell_type == "code" and "config_table(" in c.source]
    if stem == "05_scorecard":
        return
    assert len(cells) == 1, f"{stem}: want one 'paper vs ours' config_table cell, found {len(cells)}"
    assert "remove-input" in cells[0].metadata.get("tags", []), f"{stem}: hide the config table's code"
    assert 'resolve_config(' in cells[0].source and '"paper")' in cells[0].source, \
        f"{stem}: the paper column comes from the paper profile's config"
