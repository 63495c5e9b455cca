import numpy as np
import pytest

from xmlib.core.io import atomic_path, atomic_save_npy, atomic_write_json, load_npy, sha256_file


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_writes_round_trip(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": np.float32(1.5), "y": np.arange(3)})
    assert (tmp_path / "a.json").read_text().strip().startswith("{")
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    atomic_save_npy(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(load_npy(tmp_path / "a.npy"), arr)
    assert len(sha256_file(tmp_path / "a.npy")) == 64


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(TypeError, match="object array"):
        atomic_save_npy(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))


def test_load_npy_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        load_npy(tmp_path / "nope.npy")
