"""Damaged JSON and .npy files, and features that are NaN or inf: the error names the file (with the
line and column, or the row) and the fix; the repaired file reads."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest

from tests.faults.helpers import assert_fault, message_of
from tests.faults.test_text_faults import mediaeval, precomp
from xmlib.core.io import DataFormatError, load_json_checked, load_npy, load_npy_checked, require_finite
from xmlib.data.formats import mediaeval as me
from xmlib.data.formats import scan_precomp as sp
from xmlib.data.formats import vocab as vb


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------- JSON
@pytest.mark.parametrize("name", ["qrels_train.json", "folds.json", "meta.json"])
def test_mediaeval_truncated_json(tmp_path, name):
    mediaeval(tmp_path)
    path = tmp_path / name
    data = assert_fault(path, lambda good: good[: len(good) // 2], lambda: me.read_mediaeval(tmp_path, "train"),
                        path, "line ", "column", "expected a complete JSON document", "write_mediaeval")
    assert data.meta == {"source": "test"}


def test_truncated_vocabulary(tmp_path):
    path = vb.save_vocab(vb.build_vocab(["a dog runs"] * 4), tmp_path / "vocab.json")
    cut = path.read_text()[:-10]
    vocab = assert_fault(path, cut, lambda: vb.load_vocab(path), path, "save_vocab",
                         f"line {cut.count(chr(10)) + 1}")  # the end of the cut file, where the parser gave up
    assert len(vocab) == 7


def test_empty_json_file(tmp_path):
    mediaeval(tmp_path)
    path = me.qrels_path(tmp_path, "train")
    assert_fault(path, b"", lambda: me.read_mediaeval(tmp_path, "train"), path, "the file is empty")


def test_qrels_with_a_grade_that_is_not_an_integer(tmp_path):
    mediaeval(tmp_path)
    path = me.qrels_path(tmp_path, "train")
    assert_fault(path, json.dumps({"1": {"a": "high", "b": 0}, "2": {"c": 1}}), lambda: me.read_mediaeval(tmp_path, "train"),
                 path, "query '1' image 'a'", "integer rel")


def test_folds_that_are_not_lists(tmp_path):
    mediaeval(tmp_path)
    path = tmp_path / "folds.json"
    data = assert_fault(path, json.dumps({"split": "train", "folds": "1,2"}), lambda: me.read_mediaeval(tmp_path, "train"),
                        path, "field 'folds'", "list of lists", "write_folds")
    assert data.folds == [["1"], ["2"]]


def test_json_error_keeps_its_parts_across_processes(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": 1,\n "b": }\n')
    with pytest.raises(DataFormatError) as e:
        load_json_checked(path)
    back = pickle.loads(pickle.dumps(e.value))  # errors of worker processes are pickled
    assert str(back) == str(e.value) and back.path == path and back.line == 2 and "column 7" in str(back)


# ----------------------------------------------------------------------------------------- .npy
def test_precomp_garbled_npy_header(tmp_path):
    precomp(tmp_path)
    ip = sp.ims_path(tmp_path, "test")
    split = assert_fault(ip, lambda good: good[:10] + b"not a dict" + good[20:],  # the header's first characters
                         lambda: sp.read_split(tmp_path, "test"), ip, "not a readable .npy array",
                         "rebuild the precomp features")
    assert split.n_images == 2


@pytest.mark.parametrize("mmap", [True, False])
def test_precomp_truncated_npy_data(tmp_path, mmap):
    precomp(tmp_path)
    ip = sp.ims_path(tmp_path, "test")
    split = assert_fault(ip, lambda good: good[:-8], lambda: sp.read_split(tmp_path, "test", mmap=mmap),  # 2 values gone
                         ip, "matches its header", "write_split")
    assert split.feature_dim == 4


def test_mediaeval_empty_npy(tmp_path):
    mediaeval(tmp_path)
    npy = tmp_path / "DeepFeatures/train/inception_resnet/2_PreLogits.npy"
    assert_fault(npy, b"", lambda: me.read_mediaeval(tmp_path, "train"), npy, "the file is empty", "write_mediaeval")


def test_npz_archive_instead_of_npy(tmp_path):
    path = tmp_path / "features.npy"
    np.save(path, np.ones(3))
    npz = io.BytesIO()
    np.savez(npz, a=np.ones(3))
    out = assert_fault(path, npz.getvalue(), lambda: load_npy(path), path, ".npz archive", "fix:")
    np.testing.assert_array_equal(out, np.ones(3))


def test_pickled_object_array_is_not_unpickled(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError) as e:
        load_npy_checked(path)
    message_of(e, path, "plain numeric .npy")


def test_missing_npy_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_npy_checked(tmp_path / "gone.npy", fix="run the build again")
    message_of(e, "gone.npy", "run the build again")


# ------------------------------------------------------------------------------ non-finite features
@pytest.mark.parametrize("dtype,mmap,value", [(np.float32, False, np.nan), (np.float16, True, np.inf),
                                              (np.float32, True, -np.inf)])
def test_precomp_non_finite_features(tmp_path, dtype, mmap, value):
    precomp(tmp_path, n_images=3, dtype=dtype)
    ip = sp.ims_path(tmp_path, "test")
    arr = np.load(ip)
    arr[2, 1, 3] = value
    split = assert_fault(ip, _npy_bytes(arr), lambda: sp.read_split(tmp_path, "test", mmap=mmap),
                         ip, "row 2", "NaN" if np.isnan(value) else "inf", "expected finite numbers", "fix:")
    assert split.n_images == 3


def test_non_finite_check_is_chunked_and_finds_the_first_bad_row(tmp_path):
    """A chunk smaller than one row still finds the row (the reference: a plain loop over rows)."""
    arr = np.zeros((50, 2, 3), np.float32)
    arr[[17, 40], 1, 2] = np.nan
    first = next(r for r in range(len(arr)) if not np.isfinite(arr[r]).all())
    for chunk in (1, 24, 1 << 20):
        with pytest.raises(DataFormatError, match=f"row {first}"):
            require_finite(arr, tmp_path / "a.npy", "features", chunk_bytes=chunk)


def test_mediaeval_nan_in_visual_features(tmp_path):
    mediaeval(tmp_path)
    npy = tmp_path / "DeepFeatures/train/inception_resnet/1_PreLogits.npy"
    assert_fault(npy, _npy_bytes(np.array([[1, 1, 1], [1, np.nan, 1]], np.float32)), lambda: me.read_mediaeval(tmp_path, "train"),
                 npy, "row 1", "visual features of query '1' hold NaN", "write_mediaeval")


@pytest.mark.parametrize("value", ["inf", "nan", ""])
def test_mediaeval_non_finite_ltr_feature(tmp_path, value):
    mediaeval(tmp_path)
    csv = me.interactions_path(tmp_path, "train")
    lines = csv.read_text().split("\n")
    assert lines[0].split(",")[-1] == "bm25_feature"
    lines[2] = lines[2].rsplit(",", 1)[0] + "," + value  # data row 1, the last column
    assert_fault(csv, "\n".join(lines), lambda: me.read_mediaeval(tmp_path, "train"),
                 csv, "data row 1 (line 3 of the CSV)", "'bm25_feature'", "finite number", "fix:")
