"""The rendered book loads nothing from the internet, and every page of the TOC is there."""

import re
from html.parser import HTMLParser
from pathlib import Path

import yaml

from xmlib.core.paths import project_root

REMOTE_PREFIXES = ("http://", "https://", "//", "ftp://")


class _AssetParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.remote: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        urls = []
        if tag in ("script", "img", "iframe", "video", "audio", "source", "embed"):
            urls += [attrs.get("src"), attrs.get("srcset")]
        if tag == "link":
            urls.append(attrs.get("href"))
        if tag == "object":
            urls.append(attrs.get("data"))
        for url in urls:
            if url and url.strip().lower().startswith(REMOTE_PREFIXES):
                self.remote.append(f"<{tag}> {url}")


def remote_assets(html: str) -> list[str]:
    parser = _AssetParser()
    parser.feed(html)
    return parser.remote


def test_scanner_catches_remote_assets():
    bad = '<script src="https://cdn.example/x.js"></script><link rel="stylesheet" href="//fonts.example/a.css"><img src="http://x/y.png">'
    good = '<script src="_static/x.js"></script><a href="https://example.org">a link is fine</a><img src="_images/a.png">'
    assert len(remote_assets(bad)) == 3
    assert remote_assets(good) == []


def test_no_remote_script_link_or_img(book_html: Path):
    pages = sorted(book_html.rglob("*.html"))
    assert len(pages) >= 3
    problems = {str(p.relative_to(book_html)): remote_assets(p.read_text(errors="replace")) for p in pages}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, f"pages load remote assets: {problems}"
    # CSS may also pull fonts or images from the network.
    for css in book_html.rglob("*.css"):
        text = css.read_text(errors="replace")
        assert "url(http" not in text and "url(//" not in text and "@import url(\"http" not in text, css


def test_mathjax_is_served_locally(book_html: Path):
    page = (book_html / "notebooks" / "00_building_blocks.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page
    assert (book_html / "_static" / "mathjax" / "tex-chtml.js").exists()


def test_every_toc_entry_is_rendered(book_html: Path):
    toc = yaml.safe_load((project_root() / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    for f in files:
        assert (book_html / f"{f}.html").exists(), f"{f} listed in _toc.yml but not rendered"


def test_figures_and_equations_are_numbered(book_html: Path):
    page = (book_html / "notebooks" / "00_building_blocks.html").read_text()
    assert page.count('class="caption-number"') >= 4  # numbered figures
    assert 'id="equation-eq-blocks-sphere"' in page  # labelled equation
    assert "Eq. (" in page or "eqno" in page
    assert "Traceback" not in page


# --- Classes of rendering defect ----------------------------------------------------------------------

TRUNCATION = ("...", "…")
# Elements a Sphinx / Jupyter Book page may contain. A tag outside this set is text that the browser
# swallowed as markup, e.g. a tokenizer's `<unk>` written into the HTML unescaped.
KNOWN_ELEMENTS = set("""
a abbr address article aside b blockquote body br button caption cite code col colgroup dd del details
dfn div dl dt em figcaption figure footer form h1 h2 h3 h4 h5 h6 head header hr html i iframe img input
kbd label legend li link main meta nav noscript ol option p pre q s samp script section select small
span strong style sub summary sup table tbody td template textarea tfoot th thead title tr u ul var
svg path g circle rect line polyline polygon text tspan defs use symbol title desc clippath lineargradient
stop mask pattern image ellipse marker foreignobject dialog picture source video audio canvas wbr
""".split())
TOKEN = re.compile(r"<(start|end|unk|pad|eos|bos|sos|mask)>")


class _Cells(HTMLParser):
    """Text of every table cell, and the name of every element, of one page."""

    def __init__(self):
        super().__init__()
        self.cells: list[str] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag in ("td", "th"):
            self._cell, self._depth = [], self._depth + 1
        elif self._cell is not None and tag == "br":
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page_cells(html: str) -> _Cells:
    parser = _Cells()
    parser.feed(html)
    return parser


def truncated_cells(html: str) -> list[str]:
    return [c for c in page_cells(html).cells if c.endswith(TRUNCATION)]


def unknown_elements(html: str) -> set[str]:
    return {t for t in page_cells(html).tags if t not in KNOWN_ELEMENTS and not t.startswith("mjx-")}


def test_scanners_catch_the_defects():
    assert truncated_cells("<table><tr><td>(golden...</td><td>score@43 …</td><td>ok</td></tr></table>") == \
        ["(golden...", "score@43 …"]
    assert truncated_cells("<table><tr><td>1 … 2</td><td>–</td></tr></table>") == []
    assert unknown_elements("<p>caption tokens <start> and <end> and <unk></p>") == {"start", "end", "unk"}
    assert unknown_elements("<p>caption tokens &lt;start&gt;</p>") == set()


def _pages(book_html: Path) -> dict[str, str]:
    pages = {str(p.relative_to(book_html)): p.read_text(errors="replace") for p in sorted(book_html.rglob("*.html"))
             if "_modules" not in p.parts}
    assert len(pages) >= 10
    return pages


def test_no_table_cell_is_truncated(book_html: Path):
    bad = {name: cells for name, html in _pages(book_html).items() if (cells := truncated_cells(html))}
    assert not bad, f"table cells cut with '...': {bad}"


def test_no_table_cell_shows_nan(book_html: Path):
    bad = {name: n for name, html in _pages(book_html).items()
           if (n := sum(c in ("NaN", "nan", "<NA>") for c in page_cells(html).cells))}
    assert not bad, f"table cells showing NaN (use '–'): {bad}"


def test_no_text_is_swallowed_as_markup(book_html: Path):
    bad = {name: tags for name, html in _pages(book_html).items() if (tags := unknown_elements(html))}
    assert not bad, f"unknown HTML elements (unescaped text such as <unk>?): {bad}"


def _markdown_tokens() -> dict[str, set[str]]:
    """Angle-bracket tokens written in the book's prose: markdown cells and figure captions of the
    notebooks, and the markdown pages; by the page (relative HTML path) that renders them."""
    import jupytext

    root = project_root()
    found: dict[str, set[str]] = {}
    for src in sorted((root / "notebooks").glob("*.py")):
        nb = jupytext.read(src)
        text = [c.source for c in nb.cells if c.cell_type == "markdown"]
        text += [str(c.metadata.get("mystnb", {}).get("figure", {}).get("caption", "")) for c in nb.cells]
        found[f"notebooks/{src.stem}.html"] = {m.group(0) for t in text for m in TOKEN.finditer(t)}
    for src in sorted((root / "book").glob("*.md")):
        found[f"book/{src.stem}.html"] = set(TOKEN.findall(src.read_text()))
    return found


def test_angle_bracket_tokens_survive(book_html: Path):
    tokens = _markdown_tokens()
    pages = _pages(book_html)
    for page, toks in tokens.items():
        if page not in pages:
            continue
        for tok in toks:
            escaped = tok.replace("<", "&lt;").replace(">", "&gt;")
            assert escaped in pages[page], f"{tok} is written in the source of {page} but not shown as text there"


def test_no_nbval_marker_or_glue_call_visible(book_html: Path):
    for name, html in _pages(book_html).items():
        if not name.startswith("notebooks/"):
            continue
        text = re.sub(r"<[^>]+>", "", html)  # code is split into highlighted spans
        assert "NBVAL_" not in text, f"an nbval marker shows on {name}"
        assert "glue(" not in text, f"a glue(...) call shows on {name}"


def test_notation_glossary_and_api_pages(book_html: Path):
    glossary = (book_html / "book" / "glossary.html").read_text()
    for term in ("rSum", "R@K", "score-at-top-K", "PRF", "BPR", "SV", "SS", "AA", "MAP", "nDCG", "MDE",
                 "held", "reversed", "not resolved", "no worse"):
        assert f'id="term-{term.replace("@", "-").replace(" ", "-")}' in glossary, f"glossary misses {term}"
    chapter = (book_html / "notebooks" / "04_sgraf.html").read_text()
    assert "glossary.html#term-rSum" in chapter  # the chapters link their terms
    notation = (book_html / "book" / "notation.html").read_text()
    assert notation.count("<tr") >= 8
    api = (book_html / "book" / "api.html").read_text()
    for name in ("xmlib.losses.bpr_loss", "xmlib.replication.judge", "xmlib.dcmm.models.DCMM",
                 "xmlib.sgraf.loss.contrastive_loss", "xmlib.deepranking.sampler"):
        assert f'id="{name}"' in api or f'id="module-{name}"' in api, f"{name} missing from the API page"
    assert (book_html / "_modules" / "xmlib" / "losses.html").exists()  # highlighted source pages
    assert "_modules/xmlib/losses.html" in api
