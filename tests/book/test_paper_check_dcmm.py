"""DCMM's `paper` profile end to end on tiny synthetic paper-shaped data (tests/book/paper_check.py)."""

import pytest

from tests.book.paper_check import check_chapter

pytestmark = pytest.mark.slow


def test_paper_profile_runs_on_synthetic_data(tmp_path, monkeypatch):
    check_chapter("02_dcmm", tmp_path, monkeypatch)
