"""The readers of xmlib.data.sources: the emoji matching key, the one OpenClipart SVG metadata parser
(on SVGs written like the package's), the OpenClipart tree walk, and Fashion-MNIST's idx files."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from tests.data.test_clipart import write_svg
from xmlib.data.assets import AssetError
from xmlib.data.sources.emoji import normalize_code
from xmlib.data.sources.fashion_mnist import load_fashion_mnist, read_idx
from xmlib.data.sources.openclipart import OpenClipartMetadataError, SvgMetadata, parse_svg_metadata, png_path, scan_drawings


def test_normalize_code():
    assert normalize_code("2764-fe0f") == "2764"
    assert normalize_code("0023-FE0F-20E3") == "0023-20E3"
    assert normalize_code("1f468-200d-1f469") == "1F468-200D-1F469"


# ------------------------------------------------------------------------------------- OpenClipart

def test_parse_svg_metadata(tmp_path):
    p = write_svg(tmp_path / "a.svg", "Tiger  head", "A big\n cat", ["mammal", " feline ", ""])
    meta = parse_svg_metadata(p)
    assert meta == SvgMetadata(title="Tiger head", description="A big cat", keywords=("mammal", "feline"))


def test_missing_title_names_file_and_field(tmp_path):
    p = write_svg(tmp_path / "no_title.svg", None, "x", ["k"])
    with pytest.raises(OpenClipartMetadataError, match=r"no_title\.svg.*dc:title"):
        parse_svg_metadata(p)
    bad = tmp_path / "broken.svg"
    bad.write_text("<svg><metadata>", encoding="utf-8")
    with pytest.raises(OpenClipartMetadataError, match=r"broken\.svg.*not well-formed"):
        parse_svg_metadata(bad)


def test_parse_svg_metadata_ignores_agent_titles(tmp_path):
    from tests.data.test_captions import _svg

    p = tmp_path / "x.svg"
    _svg(p, "A &amp; B", "two\n  lines")
    assert parse_svg_metadata(p) == SvgMetadata(title="A & B", description="two lines", keywords=("kw",))
    _svg(p)  # empty title, the creator's title must not leak in
    assert parse_svg_metadata(p).title == ""


def test_scan_drawings_one_drawing_per_file_with_every_place(tmp_path):
    svg = tmp_path / "svg"
    write_svg(svg / "food/fruit/apple.svg", "Apple")
    write_svg(svg / "top.svg", "Top")
    (svg / "animals/birds").mkdir(parents=True)
    os.symlink("../../food/fruit/apple.svg", svg / "animals/birds/apple.v2.svg")  # the package's de-duplication
    os.symlink("../nowhere.svg", svg / "animals/dangling.svg")
    drawings, folders = scan_drawings(svg)
    assert [(d.svg, d.places) for d in drawings] == [
        ("food/fruit/apple.svg", ("animals/birds/apple.v2.svg", "food/fruit/apple.svg")), ("top.svg", ("top.svg",))]
    assert drawings[0].folders == ("animals/birds", "food/fruit") and drawings[1].folders == ("",)
    assert folders == ["animals", "animals/birds", "food", "food/fruit"]
    # a name with a dot keeps it: the PNG of apple.v2.svg is apple.v2.png
    assert png_path(tmp_path, "animals/birds/apple.v2.svg").name == "apple.v2.png"


# ------------------------------------------------------------------------------------------------
def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_read_idx_matches_a_plain_decoder(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(_idx_bytes(x)))
    got = read_idx(p)
    # plain reference: walk the bytes by hand
    raw = gzip.decompress(p.read_bytes())
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3])]
    ref = np.array(list(raw[16:]), dtype=np.uint8).reshape(dims)
    assert got.dtype == np.uint8 and got.shape == (5, 28, 28)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, x)


def test_read_idx_rejects_bad_files(tmp_path):
    p = tmp_path / "bad-idx1-ubyte"
    p.write_bytes(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"\x00" * 12)  # float idx, not uint8
    with pytest.raises(AssetError, match="idx"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02")  # truncated
    with pytest.raises(AssetError, match="bytes follow"):
        read_idx(p)


# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_fashion_mnist(real_asset):
    real_asset("fashion-mnist")
    fm = load_fashion_mnist()
    images, labels, split = fm.images, fm.labels, fm.split
    assert images.shape == (70000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (70000,) and set(np.unique(labels)) == set(range(10))
    assert (split == "train").sum() == 60000 and (split[60000:] == "test").all()
    assert np.bincount(labels[:60000]).tolist() == [6000] * 10
    assert labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # the published first training labels
