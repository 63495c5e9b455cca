"""Text files with a byte that is not UTF-8: every reader names the file, the line and the byte, and
reads the repaired file."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from tests.data.conftest import draw_picture
from tests.faults.helpers import inject_byte, message_of
from xmlib.core.io import DataFormatError, read_text_checked
from xmlib.data.assets import TUXPAINT_STAMPS_DIR
from xmlib.data.formats import deepranking_triplets as dr
from xmlib.data.formats import mediaeval as me
from xmlib.data.formats import scan_precomp as sp
from xmlib.data.formats import vocab as vb
from xmlib.data.sources import tuxpaint


def precomp(root, n_images=2, dtype=np.float32):
    caps = [f"image {i} caption {k}" for i in range(n_images) for k in range(5)]
    ims = np.arange(n_images * 3 * 4, dtype=np.float32).reshape(n_images, 3, 4).astype(dtype)
    return sp.write_split(root, "test", ims, caps)


def mediaeval(root):
    df = pd.DataFrame({"query_id": ["1", "1", "2"], "img_id": ["a", "b", "c"], "rel": [1, 0, 1],
                       "bm25_feature": [0.5, 0.25, 1.0]})
    visual = {"1": (["a", "b"], np.ones((2, 3), np.float32)), "2": (["c"], np.zeros((1, 3), np.float32))}
    return me.write_mediaeval(root, "train", df, visual, folds=[["1"], ["2"]], meta={"source": "test"})


def test_precomp_captions(tmp_path):
    precomp(tmp_path)
    caps = sp.caps_path(tmp_path, "test")
    good = inject_byte(caps, line=3, col=7)
    with pytest.raises(DataFormatError) as e:
        sp.read_split(tmp_path, "test")
    message_of(e, caps, "line 3", "byte 7 of the line", "0xff", "UTF-8", "fix:")
    assert e.value.path == caps and e.value.line == 3
    caps.write_bytes(good)
    assert sp.read_split(tmp_path, "test").n_captions == 10


def test_mediaeval_interactions_csv(tmp_path):
    mediaeval(tmp_path)
    csv = me.interactions_path(tmp_path, "train")
    good = inject_byte(csv, line=2, col=1, byte=b"\xe9")  # a Latin-1 'é'
    with pytest.raises(DataFormatError) as e:
        me.read_mediaeval(tmp_path, "train")
    message_of(e, csv, "line 2", "byte 1 of the line", "0xe9", "write_mediaeval")
    csv.write_bytes(good)
    assert me.read_mediaeval(tmp_path, "train").query_ids == ["1", "2"]


def test_mediaeval_image_list(tmp_path):
    mediaeval(tmp_path)
    iml = tmp_path / "DeepFeatures/train/imlist/1_imlist.txt"
    good = inject_byte(iml, line=2, col=2)
    with pytest.raises(DataFormatError) as e:
        me.read_mediaeval(tmp_path, "train")
    message_of(e, iml, "line 2", "byte 2 of the line")
    iml.write_bytes(good)
    assert len(me.read_mediaeval(tmp_path, "train")["1"]) == 2


def test_triplets_file(tmp_path):
    path = dr.write_query_and_triplets(tmp_path / "t.txt", [("a dog", "q.png", "p.png", "n.png")])
    good = inject_byte(path, line=1, col=3)
    with pytest.raises(DataFormatError) as e:
        dr.read_query_and_triplets(path)
    message_of(e, path, "line 1", "byte 3 of the line", "offset 2 in the file")
    path.write_bytes(good)
    assert dr.read_query_and_triplets(path)[0].query_text == "a dog"


def test_vocabulary_json(tmp_path):
    path = vb.save_vocab(vb.build_vocab(["a dog runs"] * 4), tmp_path / "vocab.json")
    good = inject_byte(path, line=2, col=5)
    with pytest.raises(DataFormatError) as e:
        vb.load_vocab(path)
    message_of(e, path, "line 2", "save_vocab")
    path.write_bytes(good)
    assert "dog" in vb.load_vocab(path)


def test_tuxpaint_caption(tmp_path):
    stamps = tmp_path / TUXPAINT_STAMPS_DIR / "animals"
    draw_picture(stamps / "dog.png")
    txt = stamps / "dog.txt"
    txt.write_text("A dog.\nfr_FR.utf8=Un chien.\n", encoding="utf-8")
    good = inject_byte(txt, line=1, col=3, byte=b"\xc3")  # the start of a two-byte sequence, cut short
    with pytest.raises(DataFormatError) as e:
        tuxpaint.read_stamps(tmp_path)
    message_of(e, txt, "line 1", "byte 3 of the line", "0xc3", "fetch it again")
    txt.write_bytes(good)
    assert [s.caption for s in tuxpaint.read_stamps(tmp_path)] == ["A dog."]


def test_position_counts_bytes_after_multibyte_characters(tmp_path):
    """The byte position is in bytes: 'é' before the bad byte takes two."""
    path = tmp_path / "x.txt"
    path.write_bytes(b"ok\ncaf\xc3\xa9 \xff")
    with pytest.raises(DataFormatError) as e:
        read_text_checked(path)
    message_of(e, "line 2", "byte 7 of the line", "offset 9 in the file")


def test_a_byte_order_mark_is_not_an_error(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello\n")
    assert read_text_checked(path) == "hello\n"


def test_gzip_idx_truncated(tmp_path):
    from xmlib.data.assets import AssetError
    from xmlib.data.sources.fashion_mnist import read_idx

    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    payload = bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + bytes([1, 2, 3, 4])
    path.write_bytes(gzip.compress(payload)[:-6])
    with pytest.raises(AssetError) as e:
        read_idx(path)
    message_of(e, path, "damaged", "fetch it again")
    path.write_bytes(gzip.compress(payload))
    np.testing.assert_array_equal(read_idx(path), [1, 2, 3, 4])
