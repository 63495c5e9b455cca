"""The book as one PDF (``make pdf``), printed offline by headless chromium (xmlib.book.pdf)."""

import os
import re
import shutil
from pathlib import Path

import pytest

from xmlib.book.pdf import main, page_count, print_pdf, single_page
from xmlib.core.paths import project_root

# The whole book: the smoke build printed 222 pages (seven chapters, the method page, notation, glossary,
# API reference and bibliography); a lost chapter or an unstyled print falls far below this.
MIN_BOOK_PAGES = 150

needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None and os.environ.get("XMLIB_REQUIRE_BOOK") != "1",
                                    reason="needs Debian's chromium (`make chromium`)")


def test_page_count_reads_page_objects_not_the_page_tree(tmp_path):
    pdf = tmp_path / "x.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Pages /Count 2 /Kids [2 0 R 3 0 R] >>\n"
                    b"2 0 obj << /Type /Page /Parent 1 0 R >>\n3 0 obj <</Type/Page/Parent 1 0 R>>\n")
    assert page_count(pdf) == 2


def test_the_single_page_is_printed_from_the_build_folder(tmp_path):
    """Jupyter Book writes the one page under book/ with links relative to the build folder: the copy
    that is printed sits at the top, where those links resolve."""
    (tmp_path / "book").mkdir()
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    (tmp_path / "book" / "intro.html").write_text('<link href="_static/x.css"><img src="_images/a.png">')
    page = single_page(tmp_path)
    assert page.parent == tmp_path and page.read_text() == (tmp_path / "book" / "intro.html").read_text()
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "index.html").write_text("<p>the book</p>")
    assert single_page(flat) == flat / "index.html"


def test_missing_html_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "index.html"), str(tmp_path / "book.pdf")]) == 1
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "book.pdf").exists()


@pytest.mark.browser
@needs_chromium
def test_a_book_page_prints_offline(book_html: Path, tmp_path):
    out = tmp_path / "blocks.pdf"
    pages = print_pdf(book_html / "notebooks" / "00_building_blocks.html", out, budget_ms=20000, timeout=300)
    assert out.read_bytes().startswith(b"%PDF") and pages >= 5 and pages == page_count(out)


@pytest.mark.browser
def test_the_whole_book_pdf_has_every_page():
    pdf = Path(os.environ.get("XMLIB_BOOK_PDF") or project_root() / "_build" / "book.pdf")
    if not pdf.exists():
        if os.environ.get("XMLIB_REQUIRE_BOOK") == "1":
            pytest.fail(f"{pdf} is missing, but XMLIB_REQUIRE_BOOK=1: `make test` builds it (make pdf-smoke)")
        pytest.skip(f"{pdf} not built (`make pdf`)")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert page_count(pdf) >= MIN_BOOK_PAGES, f"{pdf} has {page_count(pdf)} pages: a chapter is missing"
    data = pdf.read_bytes()
    assert len(re.findall(rb"/Subtype\s*/Image", data)) >= 20, "the figures are missing from the PDF"
    assert b"MathJax_Main" in data, "the maths was printed untypeset (no MathJax font in the PDF)"
