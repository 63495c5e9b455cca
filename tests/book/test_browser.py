"""A real browser renders a book page with all outside network blocked, and the math is typeset."""

import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--mute-audio",
    # Chromium reaches for outside hosts even with the flags above; resolve every name to nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
    "--virtual-time-budget=20000", "--window-size=1200,2400",
]


@pytest.fixture(scope="module")
def chromium():
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium (scripts/ensure_chromium.sh)")
    return exe


def _run(chromium, args, timeout=120):
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                             capture_output=True, timeout=timeout)
    return res


class _ProseText(HTMLParser):
    """Visible prose text: skips scripts, styles, code blocks and typeset math."""

    SKIP = {"script", "style", "pre", "code", "mjx-container", "mjx-assistive-mml", "noscript", "textarea"}

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def test_math_is_typeset_in_the_browser(chromium, book_html: Path, tmp_path):
    page = book_html / "notebooks" / "00_building_blocks.html"
    res = _run(chromium, ["--dump-dom", page.as_uri()])
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    dom = res.stdout.decode()
    typeset = len(re.findall(r"<mjx-container", dom))
    assert typeset >= 10, f"only {typeset} formulas typeset: MathJax did not run offline"
    parser = _ProseText()
    parser.feed(dom)
    text = "".join(parser.parts)
    for raw in ("$$", "\\[", "\\]", "\\(", "\\begin{"):
        assert raw not in text, f"raw TeX {raw!r} left in the page text"
    # Sanity: without MathJax the same page would show raw TeX (the check above can fail).
    static = page.read_text()
    parser = _ProseText()
    parser.feed(static)
    assert "\\[" in "".join(parser.parts) or "$$" in "".join(parser.parts)


def test_page_renders_to_png(chromium, book_html: Path, tmp_path):
    png = tmp_path / "page.png"
    res = _run(chromium, [f"--screenshot={png}", (book_html / "notebooks" / "00_building_blocks.html").as_uri()])
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert png.exists() and png.stat().st_size > 20_000
    from PIL import Image

    with Image.open(png) as img:
        assert img.size == (1200, 2400)
        colours = img.convert("L").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 20, "the screenshot is blank"
