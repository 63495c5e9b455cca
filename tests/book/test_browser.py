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


# --- Display equations fit their column --------------------------------------------------------------

# Injected into a copy of a page: once MathJax has typeset it, measure every display equation and
# the page, and write the result into the DOM for --dump-dom to carry out.
_MEASURE = """
<script>
window.addEventListener('load', function () {
  function measure() {
    var rows = [];
    document.querySelectorAll('div.math').forEach(function (box) {
      var math = box.querySelector('mjx-math');
      var label = box.id || (box.querySelector('[id]') || {}).id || '';
      if (!math) { rows.push({id: label, untypeset: true}); return; }
      rows.push({id: label, content: math.getBoundingClientRect().width, box: box.clientWidth,
                 right: box.getBoundingClientRect().right, overflow: getComputedStyle(box).overflowX});
    });
    var out = {viewport: window.innerWidth, page: document.documentElement.scrollWidth, equations: rows};
    parent.postMessage(JSON.stringify(out), '*');
  }
  var waited = 0;
  var timer = setInterval(function () {  // until every display equation is typeset, at most 15 s
    waited += 250;
    var boxes = document.querySelectorAll('div.math');
    var done = document.querySelectorAll('div.math mjx-math').length >= boxes.length;
    if (done || waited > 15000) { clearInterval(timer); measure(); }
  }, 250);
});
</script>
"""
# The chapters whose equations were too wide (DCMM Eq. 3.4, Deep Ranking Eq. 4.7, SGRAF Eq. 5.2).
WIDE_EQUATION_PAGES = ["notebooks/02_dcmm.html", "notebooks/03_deepranking.html", "notebooks/04_sgraf.html"]


@pytest.fixture(scope="module")
def book_copy(book_html: Path, tmp_path_factory):
    dest = tmp_path_factory.mktemp("book") / "html"
    shutil.copytree(book_html, dest, ignore=shutil.ignore_patterns("_sources", "_modules", "*.ipynb"))
    return dest


# The page is shown in an iframe of the wanted width: headless Chromium will not make its window
# narrower than 500 px, and a phone is 390. The page posts its measurements to the frame's parent,
# which writes them where --dump-dom can read them.
_FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:900px;border:0"></iframe>
<script>
window.addEventListener('message', function (e) {{
  var pre = document.createElement('pre');
  pre.id = 'xmlib-measure';
  pre.textContent = e.data;
  document.body.appendChild(pre);
}});
</script></body></html>"""


def _measure(chromium, book_copy: Path, page: str, width: int) -> dict:
    import html as html_lib
    import json

    src = book_copy / page
    probe = src.with_name(f"_probe_{src.name}")
    if not probe.exists():
        probe.write_text(src.read_text().replace("</body>", _MEASURE + "</body>"))
    frame = src.with_name(f"_frame_{width}_{src.name}")
    frame.write_text(_FRAME.format(src=probe.name, width=width))
    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")]
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run([chromium, *flags, f"--window-size={max(width + 100, 600)},1000",
                              f"--user-data-dir={profile}", "--dump-dom", frame.as_uri()],
                             capture_output=True, timeout=180)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    m = re.search(r'<pre id="xmlib-measure">(.*?)</pre>', res.stdout.decode(), re.S)
    assert m, f"the measuring script did not run on {page}"
    return json.loads(html_lib.unescape(m.group(1)))


@pytest.mark.parametrize("page", WIDE_EQUATION_PAGES)
def test_display_equations_fit_at_desktop_width(chromium, book_copy: Path, page: str):
    data = _measure(chromium, book_copy, page, 1200)
    eqs = data["equations"]
    assert len(eqs) >= 5, f"only {len(eqs)} display equations found on {page}"
    assert not [e for e in eqs if e.get("untypeset")], f"MathJax did not typeset every equation on {page}"
    wide = [(e["id"], round(e["content"]), e["box"]) for e in eqs if e["content"] > e["box"] + 1]
    assert not wide, f"display equations wider than their column on {page} (id, width, column): {wide}"
    assert data["page"] <= data["viewport"], f"{page} scrolls sideways at 1200 px"


@pytest.mark.parametrize("page", ["notebooks/00_building_blocks.html", *WIDE_EQUATION_PAGES])
def test_phone_width_page_does_not_scroll_sideways(chromium, book_copy: Path, page: str):
    """At 390 px (a phone) the page keeps its width: a line of an equation that is still wider than
    the column scrolls inside its own box, never the page."""
    data = _measure(chromium, book_copy, page, 390)
    assert data["viewport"] == 390
    assert data["page"] <= data["viewport"], f"{page} is {data['page']} px wide at {data['viewport']} px"
    outside = [e["id"] for e in data["equations"] if e.get("right", 0) > data["viewport"] + 1]
    assert not outside, f"equation boxes reach past the screen on {page}: {outside}"
    wide = [e for e in data["equations"] if e["content"] > e["box"] + 1]
    stuck = [e["id"] for e in wide if e["overflow"] not in ("auto", "scroll")]
    assert not stuck, f"equations wider than a phone's column that cannot be scrolled on {page}: {stuck}"
    # The equations that were split over lines fit the desktop column; on a phone a line may still
    # be wider than the column, but never more than twice as wide.
    too_wide = [(e["id"], round(e["content"])) for e in wide if e["content"] > 2 * e["box"]]
    assert not too_wide, f"equation lines far wider than a phone's column on {page}: {too_wide}"
