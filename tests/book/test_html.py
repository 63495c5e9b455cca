"""The rendered book loads nothing from the internet, and every page of the TOC is there."""

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
