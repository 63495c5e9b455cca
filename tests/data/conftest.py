"""Shared fixtures for tests/data: a throw-away cache, toy pictures, real-asset lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """An empty ``XMLIB_CACHE`` for this test (the real cache is never touched)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("XMLIB_CACHE", str(cache))
    return cache


def draw_picture(path: Path, size=(80, 60), colour=(200, 30, 30), mode="RGBA", shape="ellipse") -> Path:
    """A small drawn picture with a transparent background (like clipart / emoji)."""
    bg = (0, 0, 0, 0) if mode == "RGBA" else (255, 255, 255)
    img = Image.new(mode, size, bg)
    d = ImageDraw.Draw(img)
    box = [size[0] // 5, size[1] // 5, size[0] * 4 // 5, size[1] * 4 // 5]
    fill = colour + (255,) if mode == "RGBA" else colour
    (d.ellipse if shape == "ellipse" else d.rectangle)(box, fill=fill)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


SVG_TEMPLATE = """<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">
<rect x="{x}" y="{y}" width="{rw}" height="{rh}" fill="{fill}"/></svg>"""


def write_svg(path: Path, w=40, h=80, fill="#1060d0") -> Path:
    """A tall SVG with a transparent background and a coloured rectangle in the middle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SVG_TEMPLATE.format(w=w, h=h, x=w // 4, y=h // 4, rw=w // 2, rh=h // 2, fill=fill))
    return path


@pytest.fixture
def toy_pictures(tmp_path) -> list[Path]:
    """Four small pictures: three PNGs (transparent, opaque, different shapes/colours) and one SVG."""
    d = tmp_path / "pics"
    return [
        draw_picture(d / "red_ellipse.png"),
        draw_picture(d / "green_box.png", size=(50, 90), colour=(20, 160, 40), shape="rect"),
        draw_picture(d / "blue_opaque.png", size=(64, 64), colour=(30, 30, 220), mode="RGB"),
        write_svg(d / "tall.svg"),
    ]


@pytest.fixture
def real_asset():
    """``real_asset(name)`` → the fetched asset's root, or skip the test when it is not in the cache."""
    from xmlib.data.assets import asset_root, is_fetched

    def get(name: str) -> Path:
        if not is_fetched(name):
            pytest.skip(f"asset {name!r} not fetched (run `python -m xmlib.data fetch {name}`)")
        return asset_root(name)

    return get
