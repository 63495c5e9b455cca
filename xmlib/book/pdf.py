"""Print the book to one PDF, offline, with the headless Chromium the browser tests use.

    python -m xmlib.book.pdf _build/pdf/_build/singlehtml _build/book.pdf

``make pdf`` builds the whole book as one HTML page (Jupyter Book's ``singlehtml`` builder: every
chapter, the API reference and the bibliography in one file, its maths typeset by the MathJax copy the
book ships) and prints it with Debian's ``chromium`` (``scripts/ensure_chromium.sh`` installs it), every
outside host name resolved to nothing, so nothing is fetched. The page is given time to typeset its
maths before it is printed (``--virtual-time-budget``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from xmlib.core.io import atomic_path

# The flags of tests/book/test_browser.py: headless, no network, no background services.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--mute-audio", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
)
PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def find_chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise FileNotFoundError("chromium is not installed: `make chromium` (scripts/ensure_chromium.sh) installs "
                                "Debian's package")
    return exe


def page_count(pdf: Path) -> int:
    """The number of pages of a PDF (its page objects), without a PDF library."""
    return len(PAGE.findall(pdf.read_bytes()))


def single_page(build: Path) -> Path:
    """The page of a one-page (``singlehtml``) build, ready to print.

    Jupyter Book writes that page under its root document's folder (``book/intro.html``, with
    ``index.html`` redirecting to it) while its links to ``_static/`` and ``_images/`` are relative to
    the build folder; printed from there it would have no styles, pictures or typeset maths. So the
    page is copied to the build folder's top (``_print.html``) and printed from the copy."""
    index = build / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"{index} does not exist: build the one-page book first (`make pdf` does)")
    target = re.search(r"""http-equiv="Refresh" content="0; url=([^"']+)""", index.read_text(encoding="utf-8"))
    page = build / target.group(1) if target else index
    if page.parent.resolve() == build.resolve():
        return page
    copy = build / "_print.html"
    with atomic_path(copy) as tmp:
        shutil.copyfile(page, tmp)
    return copy


def print_pdf(html: Path, out: Path, *, budget_ms: int = 60000, timeout: int = 900, chromium: str | None = None) -> int:
    """Print ``html`` (a page, or the folder of a one-page build: :func:`single_page`) to ``out``
    (written atomically) and return its page count."""
    html = single_page(html) if html.is_dir() else html
    html = html.resolve()
    if not html.is_file():
        raise FileNotFoundError(f"{html} does not exist: build the one-page book first (`make pdf` does)")
    exe = chromium or find_chromium()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile, atomic_path(out) as tmp:
        res = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                              "--no-pdf-header-footer", f"--print-to-pdf={tmp}", html.as_uri()],
                             capture_output=True, timeout=timeout)
        if res.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            raise RuntimeError(f"chromium could not print {html} (exit {res.returncode}): "
                               f"{res.stderr.decode(errors='replace')[-2000:]}")
        pages = page_count(tmp)
    return pages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xmlib.book.pdf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, help="the folder of the one-page (singlehtml) build, or one HTML page")
    parser.add_argument("out", type=Path, help="the PDF to write")
    parser.add_argument("--budget-ms", type=int, default=60000, help="time the page gets to typeset its maths")
    args = parser.parse_args(argv)
    try:
        pages = print_pdf(args.html, args.out, budget_ms=args.budget_ms)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"[xmlib.book.pdf] {args.out}: {pages} pages, {args.out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
