import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from xmlib.core.io import atomic_path, atomic_save_npy, atomic_write_json, is_partial, load_npy, remove_stale_parts, sha256_file


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


def test_a_killed_writer_leaves_a_partial_file_that_the_next_run_removes(tmp_path):
    """kill -9 inside ``atomic_path``: the hidden ``.part`` file stays (nothing can clean up after
    SIGKILL), is never mistaken for a result, and ``remove_stale_parts`` deletes it once its writer is
    gone, while a live writer's partial file is kept."""
    dest = tmp_path / "nb.ipynb"
    code = ("import sys, time; from xmlib.core.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_text('half'); print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(dest)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    with atomic_path(tmp_path / "mine.ipynb") as mine:  # a live writer (this process) in the same folder
        mine.write_text("in progress")
        assert remove_stale_parts(tmp_path) == []  # both writers alive: nothing removed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".nb.")]
        assert len(leftovers) == 1 and is_partial(leftovers[0]) and not dest.exists()
        assert remove_stale_parts(tmp_path) == leftovers
        assert mine.exists()  # the live writer's file is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.ipynb"]


def test_an_old_partial_file_without_a_pid_is_removed_after_max_age(tmp_path):
    old = tmp_path / ".nb.abc123.part.ipynb"
    old.write_text("")
    assert remove_stale_parts(tmp_path) == []  # recent: it may belong to a writer of an older version
    past = time.time() - 7 * 3600
    os.utime(old, (past, past))
    assert remove_stale_parts(tmp_path) == [old] and not old.exists()
    assert not is_partial(tmp_path / "nb.ipynb") and not is_partial(tmp_path / ".hidden.ipynb")
    dotted = tmp_path / ".table.2.999999999.abc.part.csv"  # a stem with a digit field; its writer (pid 999999999) is gone
    dotted.write_text("")
    assert remove_stale_parts(tmp_path) == [dotted]
