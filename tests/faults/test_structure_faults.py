"""Records that do not line up with their format, and records that lead outside the data folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.faults.helpers import assert_fault
from tests.faults.test_text_faults import mediaeval, precomp
from xmlib.data.assets import EMOJI_JSON, OPENMOJI_JSON
from xmlib.data.formats import deepranking_triplets as dr
from xmlib.data.formats import mediaeval as me
from xmlib.data.formats import scan_precomp as sp
from xmlib.data.sources.emoji import read_emoji


def test_precomp_captions_and_images_do_not_line_up(tmp_path):
    precomp(tmp_path, n_images=2)
    cp = sp.caps_path(tmp_path, "test")
    split = assert_fault(cp, lambda good: good + b"one caption too many\n", lambda: sp.read_split(tmp_path, "test"),
                         cp, sp.ims_path(tmp_path, "test"), "11 captions", "2 images", "rewrite them together")
    assert split.n_captions == 10


def test_precomp_empty_captions_file(tmp_path):
    precomp(tmp_path, n_images=2)
    cp = sp.caps_path(tmp_path, "test")
    assert_fault(cp, b"", lambda: sp.read_split(tmp_path, "test"), cp, "0 captions", "10 captions")


def test_mediaeval_feature_rows_and_image_list_do_not_line_up(tmp_path):
    mediaeval(tmp_path)
    iml = tmp_path / "DeepFeatures/train/imlist/1_imlist.txt"
    assert_fault(iml, lambda good: good + b"z\n", lambda: me.read_mediaeval(tmp_path, "train"),
                 iml, "1_PreLogits.npy", "2 rows", "3 images")


def test_mediaeval_ragged_csv_row(tmp_path):
    mediaeval(tmp_path)
    csv = me.interactions_path(tmp_path, "train")
    lines = csv.read_text().split("\n")
    lines[3] += ",7,8"
    assert_fault(csv, "\n".join(lines), lambda: me.read_mediaeval(tmp_path, "train"),
                 csv, "line 4", "not valid CSV", "same number of comma-separated fields")


def test_mediaeval_empty_csv(tmp_path):
    mediaeval(tmp_path)
    csv = me.interactions_path(tmp_path, "train")
    assert_fault(csv, "\n", lambda: me.read_mediaeval(tmp_path, "train"), csv, "the file is empty", "query_id,img_id,rel")


def test_mediaeval_query_id_that_leads_out_of_the_folder(tmp_path):
    mediaeval(tmp_path)
    np.save(tmp_path / "secret_PreLogits.npy", np.ones((1, 3), np.float32))
    csv = me.interactions_path(tmp_path, "train")
    assert_fault(csv, lambda good: good.replace(b"\n2,", b"\n../../../../secret,"), lambda: me.read_mediaeval(tmp_path, "train"),
                 csv, "'../../../../secret'", "cannot name files")


def test_mediaeval_feature_dir_argument_that_leads_out(tmp_path):
    mediaeval(tmp_path)
    with pytest.raises(ValueError, match=r"feature_dir must be a plain folder name .*'\.\.'"):
        me.read_mediaeval(tmp_path, "train", feature_dir="..")
    assert me.read_mediaeval(tmp_path, "train", feature_dir="inception_resnet").visual_dim == 3


@pytest.mark.parametrize("ref", ["../outside.png", "a/../../outside.png", "/etc/passwd"])
def test_triplet_image_outside_the_folder(tmp_path, ref):
    path = dr.write_query_and_triplets(tmp_path / "data" / "t.txt", [("a dog", "q.png", "p.png", "n.png"),
                                                                       ("a cat", "c/q.png", "c/p.png", "c/n.png")])
    assert_fault(path, lambda good: good.replace(b"c/n.png", ref.encode()), lambda: dr.read_query_and_triplets(path),
                 path, "line 8", "negative image of record 2", repr(ref), "points outside", "relative to it")
    path.write_text(path.read_text().replace("c/n.png", "c/../n.png"))  # a '..' that stays inside is fine
    assert dr.read_query_and_triplets(path)[1].negative == "c/../n.png"


def _emoji_roots(tmp_path):
    """Three tiny emoji packages with one concept, 1F600, that OpenMoji annotates 'grin'."""
    roots = {a: tmp_path / a for a in ("emoji-google", "emoji-twitter", "openmoji")}
    for a, name, records in (("emoji-google", EMOJI_JSON, [{"unified": "1F600", "image": "1f600.png"}]),
                             ("emoji-twitter", EMOJI_JSON, [{"unified": "1F600", "image": "1f600.png"}]),
                             ("openmoji", OPENMOJI_JSON, [{"hexcode": "1F600", "annotation": "grin"}])):
        (roots[a] / name).parent.mkdir(parents=True)
        (roots[a] / name).write_text(json.dumps(records))
    return roots


@pytest.mark.parametrize("record,expected", [
    ({"unified": "1F601", "image": "../../../../../secret.png"}, "points outside"),
    ({"unified": "1F601"}, "field(s) ['image'] missing"),
    ("1F601", "field(s) ['unified', 'image'] missing"),
])
def test_emoji_records(tmp_path, record, expected):
    roots = _emoji_roots(tmp_path)
    path = roots["emoji-google"] / EMOJI_JSON
    concepts, counts = assert_fault(path, json.dumps([{"unified": "1F600", "image": "1f600.png"}, record]),
                                    lambda: read_emoji(roots), path, "record 1", expected)
    assert [c.concept for c in concepts] == ["1F600"] and counts["emoji_json_records"] == 1


def test_emoji_truncated_json(tmp_path):
    roots = _emoji_roots(tmp_path)
    om = roots["openmoji"] / OPENMOJI_JSON
    concepts, _ = assert_fault(om, lambda good: good[:-3], lambda: read_emoji(roots),
                               om, "line 1", "column", "fetch it again (`python -m xmlib.data fetch openmoji`)")
    assert concepts[0].annotation == "grin"


def test_captions_picture_list_that_leads_out_of_the_cache(tmp_path, monkeypatch):
    from xmlib.data.benchmarks._build import STAMP
    from xmlib.data.benchmarks.captions import read as captions
    from xmlib.data.benchmarks.captions.builder import NAME, VERSION

    cache = tmp_path / "cache"
    monkeypatch.setenv("XMLIB_CACHE", str(cache))
    built = cache / "benchmarks" / "captions-test"
    built.mkdir(parents=True)
    stamp = {"benchmark": NAME, "version": VERSION, "config": {}, "fingerprint": "", "seed": 0, "inputs": {}}
    (built / STAMP).write_text(json.dumps(stamp))
    listing = built / "test_images.txt"
    listing.write_text("assets/a.png\n/elsewhere/b.png\n")
    paths = assert_fault(listing, b"assets/a.png\n../../outside.png\n", lambda: captions.image_paths(built, "test"),
                         listing, "line 2", "picture '../../outside.png' points outside", "inside the data folder")
    assert paths == [cache.resolve() / "assets/a.png", Path("/elsewhere/b.png")]
