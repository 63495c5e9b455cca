"""Records that do not line up with their format, and records that lead outside the data folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.faults.helpers import message_of
from tests.faults.test_text_faults import mediaeval, precomp
from xmlib.core.io import DataFormatError
from xmlib.data.formats import deepranking_triplets as dr
from xmlib.data.formats import mediaeval as me
from xmlib.data.formats import scan_precomp as sp


def test_precomp_captions_and_images_do_not_line_up(tmp_path):
    precomp(tmp_path, n_images=2)
    cp = sp.caps_path(tmp_path, "test")
    good = cp.read_text()
    cp.write_text(good + "one caption too many\n")
    with pytest.raises(DataFormatError) as e:
        sp.read_split(tmp_path, "test")
    message_of(e, cp, sp.ims_path(tmp_path, "test"), "11 captions", "2 images", "rewrite them together")
    cp.write_text(good)
    assert sp.read_split(tmp_path, "test").n_captions == 10


def test_precomp_empty_captions_file(tmp_path):
    precomp(tmp_path, n_images=2)
    cp = sp.caps_path(tmp_path, "test")
    good = cp.read_text()
    cp.write_text("")
    with pytest.raises(DataFormatError) as e:
        sp.read_split(tmp_path, "test")
    message_of(e, cp, "0 captions", "10 captions")
    cp.write_text(good)
    sp.read_split(tmp_path, "test")


def test_mediaeval_feature_rows_and_image_list_do_not_line_up(tmp_path):
    mediaeval(tmp_path)
    iml = tmp_path / "DeepFeatures/train/imlist/1_imlist.txt"
    good = iml.read_text()
    iml.write_text(good + "z\n")
    with pytest.raises(DataFormatError) as e:
        me.read_mediaeval(tmp_path, "train")
    message_of(e, iml, "1_PreLogits.npy", "2 rows", "3 images")
    iml.write_text(good)
    me.read_mediaeval(tmp_path, "train")


def test_mediaeval_ragged_csv_row(tmp_path):
    mediaeval(tmp_path)
    csv = me.interactions_path(tmp_path, "train")
    good = csv.read_text()
    lines = good.split("\n")
    lines[3] += ",7,8"
    csv.write_text("\n".join(lines))
    with pytest.raises(DataFormatError) as e:
        me.read_mediaeval(tmp_path, "train")
    message_of(e, csv, "line 4", "not valid CSV", "same number of comma-separated fields")
    csv.write_text(good)
    me.read_mediaeval(tmp_path, "train")


def test_mediaeval_empty_csv(tmp_path):
    mediaeval(tmp_path)
    csv = me.interactions_path(tmp_path, "train")
    good = csv.read_text()
    csv.write_text("\n")
    with pytest.raises(DataFormatError) as e:
        me.read_mediaeval(tmp_path, "train")
    message_of(e, csv, "the file is empty", "query_id,img_id,rel")
    csv.write_text(good)
    me.read_mediaeval(tmp_path, "train")


def test_mediaeval_query_id_that_leads_out_of_the_folder(tmp_path):
    mediaeval(tmp_path)
    secret = tmp_path / "secret_PreLogits.npy"
    np.save(secret, np.ones((1, 3), np.float32))
    csv = me.interactions_path(tmp_path, "train")
    good = csv.read_text()
    csv.write_text(good.replace("\n2,", "\n../../../../secret,"))
    with pytest.raises(DataFormatError) as e:
        me.read_mediaeval(tmp_path, "train")
    message_of(e, csv, "'../../../../secret'", "cannot name files")
    csv.write_text(good)
    me.read_mediaeval(tmp_path, "train")


def test_mediaeval_feature_dir_argument_that_leads_out(tmp_path):
    mediaeval(tmp_path)
    with pytest.raises(ValueError, match=r"feature_dir must be a plain folder name .*'\.\.'"):
        me.read_mediaeval(tmp_path, "train", feature_dir="..")
    assert me.read_mediaeval(tmp_path, "train", feature_dir="inception_resnet").visual_dim == 3


@pytest.mark.parametrize("ref", ["../outside.png", "a/../../outside.png", "/etc/passwd"])
def test_triplet_image_outside_the_folder(tmp_path, ref):
    folder = tmp_path / "data"
    path = dr.write_query_and_triplets(folder / "t.txt", [("a dog", "q.png", "p.png", "n.png"),
                                                           ("a cat", "c/q.png", "c/p.png", "c/n.png")])
    good = path.read_text()
    path.write_text(good.replace("c/n.png", ref))
    with pytest.raises(DataFormatError) as e:
        dr.read_query_and_triplets(path)
    message_of(e, path, "line 8", "negative image of record 2", repr(ref), "points outside", "relative to it")
    path.write_text(good.replace("c/n.png", "c/../n.png"))  # a '..' that stays inside is fine
    assert dr.read_query_and_triplets(path)[1].negative == "c/../n.png"


def _emoji_roots(tmp_path, google_records):
    from xmlib.data.assets import EMOJI_JSON, OPENMOJI_JSON

    roots = {a: tmp_path / a for a in ("emoji-google", "emoji-twitter", "openmoji")}
    for a in ("emoji-google", "emoji-twitter"):
        (roots[a] / EMOJI_JSON).parent.mkdir(parents=True)
        (roots[a] / EMOJI_JSON).write_text(json.dumps(google_records))
    (roots["openmoji"] / OPENMOJI_JSON).parent.mkdir(parents=True)
    (roots["openmoji"] / OPENMOJI_JSON).write_text(json.dumps([{"hexcode": "1F600", "annotation": "grin"}]))
    return roots


@pytest.mark.parametrize("record,expected", [
    ({"unified": "1F600", "image": "../../../../../secret.png"}, "points outside"),
    ({"unified": "1F600"}, "field(s) ['image'] missing"),
    ("1F600", "field(s) ['unified', 'image'] missing"),
])
def test_emoji_records(tmp_path, record, expected):
    from xmlib.data.assets import EMOJI_JSON
    from xmlib.data.sources.emoji import read_emoji

    roots = _emoji_roots(tmp_path, [{"unified": "1F601", "image": "1f601.png"}, record])
    with pytest.raises(DataFormatError) as e:
        read_emoji(roots)
    message_of(e, roots["emoji-google"] / EMOJI_JSON, "record 1", expected)
    roots = _emoji_roots(tmp_path / "fixed", [{"unified": "1F600", "image": "1f600.png"}])
    concepts, counts = read_emoji(roots)
    assert [c.concept for c in concepts] == ["1F600"] and counts["emoji_json_records"] == 1


def test_emoji_truncated_json(tmp_path):
    from xmlib.data.assets import OPENMOJI_JSON
    from xmlib.data.sources.emoji import read_emoji

    roots = _emoji_roots(tmp_path, [{"unified": "1F600", "image": "1f600.png"}])
    om = roots["openmoji"] / OPENMOJI_JSON
    good = om.read_text()
    om.write_text(good[:-3])
    with pytest.raises(DataFormatError) as e:
        read_emoji(roots)
    message_of(e, om, "line 1", "column", "fetch it again (`python -m xmlib.data fetch openmoji`)")
    om.write_text(good)
    assert read_emoji(roots)[0][0].annotation == "grin"
