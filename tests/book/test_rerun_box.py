"""The "Rerunning this chapter" box (xmlib.book.sphinx_rerun) and the chapters' cells that hold it."""

import re
from pathlib import Path

import jupytext
import pytest

from xmlib.book import timings
from xmlib.book.run import toc_notebooks
from xmlib.book.sphinx_rerun import rerun_markdown
from xmlib.core.paths import project_root

SOURCES = toc_notebooks(project_root())
PAPER_CHAPTERS = ("02_dcmm", "03_deepranking", "04_sgraf")


def test_box_gives_each_profile_its_command_and_recorded_time(tmp_path):
    timings.record("smoke", "notebooks", "02_dcmm", 42.5, beside=1, root=tmp_path)
    timings.record("default", "notebooks", "02_dcmm", 0.0, status="unchanged", kept=540.0, root=tmp_path)
    text = rerun_markdown("notebooks/02_dcmm", tmp_path)
    for profile in ("smoke", "default", "paper"):
        assert f"python -m xmlib.book.run \\\n    notebooks/02_dcmm.py \\\n    --profile {profile}\n" in text
    smoke, default, paper = re.findall(r"^- \*\*(?:smoke|default|paper)\*\*: (.*)$", text, re.M)
    assert "took 42.5 s" in smoke and "sharing the cores with up to 1 other chapter run at the same time" in smoke
    assert "took 540 s (9.0 min)" in default and "sharing" not in default  # the run an unchanged build kept
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


def _links(html: str) -> list[str]:
    return re.findall(r'href="([^"#]+)(?:#[^"]*)?"', html)


@pytest.mark.parametrize("stem", [p.stem for p in SOURCES])
def test_built_chapter_offers_its_rerun_commands_and_downloads(book_html, stem):
    page = book_html / "notebooks" / f"{stem}.html"
    html = page.read_text(encoding="utf-8")
    text = " ".join(re.sub(r"<[^>]+>", "", html).split())  # the commands are highlighted token by token
    assert "xmlib-rerun" in html and f"python -m xmlib.book.run \\ notebooks/{stem}.py \\ --profile paper" in text
    downloads = [u for u in _links(html) if "_downloads/" in u]
    names = sorted(Path(u).name for u in downloads)
    assert names == sorted([f"{stem}.ipynb", f"{stem}.py"]), f"{page.name}: downloads {names}"
    for url in downloads:  # the files are in the build, and the .py is the text source
        assert (page.parent / url).resolve().is_file(), url
    source = next((page.parent / u).resolve() for u in downloads if u.endswith(".py"))
    assert source.read_bytes() == (project_root() / "notebooks" / f"{stem}.py").read_bytes()
    assert f"_sources/notebooks/{stem}.ipynb" in html  # the theme's download button: the executed notebook


def test_api_docstrings_link_to_the_chapter_equations(book_html):
    api = (book_html / "book" / "api.html").read_text(encoding="utf-8")
    targets = set(re.findall(r'href="\.\./notebooks/(\d\d_\w+)\.html#equation-(eq-[a-z0-9-]+)"', api))
    assert ("02_dcmm", "eq-dcmm-conv") in targets and ("04_sgraf", "eq-sgraf-sim") in targets
    assert len(targets) >= 20
    for stem, label in targets:  # each link lands on an equation of that page
        assert f'id="equation-{label}"' in (book_html / "notebooks" / f"{stem}.html").read_text(encoding="utf-8")
