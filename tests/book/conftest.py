"""Fixtures for the checks of the built book.

``make test`` builds the smoke book first and sets ``XMLIB_BOOK_HTML`` and ``XMLIB_REQUIRE_BOOK=1``:
then a missing book is a failure. Run alone (``pytest tests``), these tests skip when no book is built.
"""

import os
from pathlib import Path

import pytest

from xmlib.core.io import is_partial
from xmlib.core.paths import project_root


def _require(what: str):
    if os.environ.get("XMLIB_REQUIRE_BOOK") == "1":
        pytest.fail(f"{what} is missing, but XMLIB_REQUIRE_BOOK=1: run `make test`, which builds it first")
    pytest.skip(f"{what} not built (run `make test`)")


@pytest.fixture(scope="session")
def book_html() -> Path:
    env = os.environ.get("XMLIB_BOOK_HTML")
    path = Path(env) if env else project_root() / "_build" / "html"
    if not (path / "index.html").exists():
        _require(f"the built book ({path})")
    return path.resolve()


@pytest.fixture(scope="session")
def executed_notebooks() -> list[Path]:
    root = project_root() / "_build" / "executed"
    profile = os.environ.get("XMLIB_BOOK_PROFILE", "smoke")
    paths = sorted((root / profile).glob("*.ipynb"))
    paths = [p for p in paths if not p.name.endswith(".failed.ipynb") and not is_partial(p)]
    if not paths:
        _require(f"executed notebooks of profile {profile!r} ({root / profile})")
    return paths
