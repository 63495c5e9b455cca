"""Text files with a byte that is not UTF-8: every reader names the file, the line and the byte, and
reads the repaired file."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from tests.data.conftest import draw_picture
from tests.faults.helpers import assert_fault, insert_byte, message_of
from xmlib.core.io import DataFormatError, read_text_checked
from xmlib.data.assets import TUXPAINT_STAMPS_DIR
from xmlib.data.formats import deepranking_triplets as dr
from xmlib.data.formats import mediaeval as me
from xmlib.data.formats import scan_precomp as sp
from xmlib.data.formats import vocab as vb
from xmlib.data.sources import tuxpaint


def precomp(root, n_images=2, dtype=np.float32):
    """A tiny SCAN precomp split ``test`` under ``root``: features (n_images, 3, 4), 5 captions each."""
    caps = [f"image {i} caption {k}" for i in range(n_images) for k in range(5)]
    ims = np.arange(n_images * 3 * 4, dtype=np.float32).reshape(n_images, 3, 4).astype(dtype)
    return sp.write_split(root, "test", ims, caps)


def mediaeval(root):
    """A tiny MediaEval split ``train`` under ``root``: queries 1 (images a, b) and 2 (image c), D = 3."""
    df = pd.DataFrame({"query_id": ["1", "1", "2"], "img_id": ["a", "b", "c"], "rel": [1, 0, 1],
                       "bm25_feature": [0.5, 0.25, 1.0]})
    visual = {"1": (["a", "b"], np.ones((2, 3), np.float32)), "2": (["c"], np.zeros((1, 3), np.float32))}
    return me.write_mediaeval(root, "train", df, visual, folds=[["1"], ["2"]], meta={"source": "test"})


def test_precomp_captions(tmp_path):
    precomp(tmp_path)
    caps = sp.caps_path(tmp_path, "test")
    split = assert_fault(caps, insert_byte(line=3, col=7), lambda: sp.read_split(tmp_path, "test"),
                         caps, "line 3", "byte 7 of the line", "0xff", "UTF-8", "fix:")
    assert split.n_captions == 10


def test_error_parts_are_attributes(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"ok\n\xff\n")
    with pytest.raises(DataFormatError) as e:
        read_text_checked(path)
    assert (e.value.path, e.value.line, e.value.expected) == (path, 2, "UTF-8 text")


def test_mediaeval_interactions_csv(tmp_path):
    mediaeval(tmp_path)
    csv = me.interactions_path(tmp_path, "train")
    data = assert_fault(csv, insert_byte(line=2, col=1, byte=b"\xe9"), lambda: me.read_mediaeval(tmp_path, "train"),
                        csv, "line 2", "byte 1 of the line", "0xe9", "write_mediaeval")  # a Latin-1 'é'
    assert data.query_ids == ["1", "2"]


def test_mediaeval_image_list(tmp_path):
    mediaeval(tmp_path)
    iml = tmp_path / "DeepFeatures/train/imlist/1_imlist.txt"
    data = assert_fault(iml, insert_byte(line=2, col=2), lambda: me.read_mediaeval(tmp_path, "train"),
                        iml, "line 2", "byte 2 of the line")
    assert len(data["1"]) == 2


def test_triplets_file(tmp_path):
    path = dr.write_query_and_triplets(tmp_path / "t.txt", [("a dog", "q.png", "p.png", "n.png")])
    recs = assert_fault(path, insert_byte(line=1, col=3), lambda: dr.read_query_and_triplets(path),
                        path, "line 1", "byte 3 of the line", "offset 2 in the file")
    assert recs[0].query_text == "a dog"


def test_vocabulary_json(tmp_path):
    path = vb.save_vocab(vb.build_vocab(["a dog runs"] * 4), tmp_path / "vocab.json")
    vocab = assert_fault(path, insert_byte(line=2, col=5), lambda: vb.load_vocab(path), path, "line 2", "save_vocab")
    assert "dog" in vocab


def test_tuxpaint_caption(tmp_path):
    stamps = tmp_path / TUXPAINT_STAMPS_DIR / "animals"
    draw_picture(stamps / "dog.png")
    txt = stamps / "dog.txt"
    txt.write_text("A dog.\nfr_FR.utf8=Un chien.\n", encoding="utf-8")
    read = assert_fault(txt, insert_byte(line=1, col=3, byte=b"\xc3"),  # a two-byte sequence cut short
                        lambda: tuxpaint.read_stamps(tmp_path), txt, "line 1", "byte 3 of the line", "0xc3", "fetch it again")
    assert [s.caption for s in read] == ["A dog."]


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
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + bytes([1, 2, 3, 4])))
    labels = assert_fault(path, lambda good: good[:-6], lambda: read_idx(path), path, "damaged", "fetch it again",
                          error=AssetError)
    np.testing.assert_array_equal(labels, [1, 2, 3, 4])
