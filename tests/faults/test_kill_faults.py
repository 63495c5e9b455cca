"""kill -9 of a training run at several points: the next normal run resumes from its checkpoints and
ends with byte-identical weights and the same history as a run that was never interrupted.

The run is a real one: :func:`xmlib.sgraf.train.train_model` on a tiny synthetic precomp split, in a
subprocess (``_train_child.py``) that sleeps a little at every step so that a kill lands inside an
epoch, inside the evaluation or between checkpoints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # starts processes (make test runs these files first, tests/conftest.py)

CHILD = Path(__file__).with_name("_train_child.py")


def run_killable(args: list[str], *, kill_when=None, timeout: float = 120.0) -> int:
    """Run ``python args...``; with ``kill_when() -> bool`` SIGKILL it as soon as that holds. Returns
    the exit code (−SIGKILL when killed); a failed run raises with the end of its stderr."""
    env = {**os.environ, "XMLIB_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    try:
        while proc.poll() is None:
            if kill_when is not None and kill_when():
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                return proc.returncode
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{args[0]} did not finish")
            time.sleep(0.001)
        if proc.returncode != 0:
            raise AssertionError(proc.stderr.read().decode(errors="replace")[-2000:])
        return proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()


def counter(path: Path) -> int:
    """The number a child writes into ``path`` as it goes (0 before it writes one)."""
    try:
        return int(path.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def run_child(workdir: Path, out: Path, *, kill_when=None) -> int:
    """Run the training child; with ``kill_when(workdir) -> bool`` SIGKILL it as soon as that holds."""
    return run_killable([str(CHILD), str(workdir), str(out)],
                        kill_when=None if kill_when is None else lambda: kill_when(workdir))


def epochs_done(workdir: Path) -> int:
    """Epochs recorded by the child's progress marker (written after each checkpointed epoch)."""
    return counter(workdir / "epochs.txt")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted run's weights hash and history."""
    base = tmp_path_factory.mktemp("reference")
    run_child(base / "work", base / "out.json")
    return json.loads((base / "out.json").read_text())


def steps_done(workdir: Path) -> int:
    return counter(workdir / "steps.txt")


KILL_POINTS = {  # name: (kill when, epochs the next run must train itself; None = either of two)
    "inside the first epoch": (lambda w: epochs_done(w) == 0 and steps_done(w) >= 3, {4}),
    "between the first evaluation and its checkpoint, or just after": (lambda w: epochs_done(w) >= 1, {3, 4}),
    "inside the third epoch": (lambda w: epochs_done(w) >= 2 and steps_done(w) >= 2, {2}),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_training_killed_then_rerun_ends_byte_identical(tmp_path, reference, point):
    kill_when, resumed_epochs = KILL_POINTS[point]
    work = tmp_path / "work"
    rc = run_child(work, tmp_path / "killed.json", kill_when=kill_when)
    assert rc == -signal.SIGKILL  # it really was killed
    assert not (tmp_path / "killed.json").exists()
    run_child(work, tmp_path / "out.json")  # the next normal run
    got = json.loads((tmp_path / "out.json").read_text())
    assert got.pop("epochs_trained_by_this_run") in resumed_epochs  # it resumed: finished epochs are not redone
    want = dict(reference)
    assert want.pop("epochs_trained_by_this_run") == 4
    assert got == want


BUILD_CHILD = Path(__file__).with_name("_build_child.py")


def build(out: Path, *, force: bool = False, kill_after_files: int | None = None) -> int:
    """Run the build child; with ``kill_after_files`` SIGKILL it once that many files are written."""
    progress = out.parent / "progress.txt"
    return run_killable([str(BUILD_CHILD), str(out)] + (["force"] if force else []),
                        kill_when=None if kill_after_files is None else lambda: counter(progress) >= kill_after_files)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a built folder but the stamp (which records the build time)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "stamp.json"}


@pytest.mark.parametrize("force, kill_after", [(False, 1), (False, 12), (True, 5)],
                         ids=["first file", "half built", "rebuild of a built folder"])
def test_build_killed_then_rerun_ends_byte_identical_without_debris(tmp_path, force, kill_after):
    clean = tmp_path / "clean" / "toy"
    build(clean)
    out = tmp_path / "killed" / "toy"
    if force:
        build(out)  # a finished build that the killed rebuild was replacing
        (out.parent / "progress.txt").unlink()
    assert build(out, force=force, kill_after_files=kill_after) == -signal.SIGKILL
    assert any(p.name.endswith(".part") for p in out.parent.iterdir())  # the killed build's temporary folder
    if force:  # the finished build stays whole while a rebuild is under way
        assert folder_bytes(out) == folder_bytes(clean)
    build(out)  # the next normal run
    assert folder_bytes(out) == folder_bytes(clean)
    assert not [p.name for p in out.parent.iterdir() if p.name.endswith(".part")]  # no debris left


FEATURES_CHILD = Path(__file__).with_name("_features_child.py")


def extract(cache: Path, pictures: Path, out: Path, kill_after_chunks: int | None = None) -> int:
    """Run the feature child; with ``kill_after_chunks`` SIGKILL it once that many chunks are computed."""
    progress = cache / "progress.txt"
    return run_killable([str(FEATURES_CHILD), str(cache), str(pictures), str(out)],
                        kill_when=None if kill_after_chunks is None else lambda: counter(progress) >= kill_after_chunks)


@pytest.mark.parametrize("kill_after", [1, 4])
def test_feature_extraction_killed_then_rerun_gives_the_clean_bytes(tmp_path, kill_after):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for i in range(12):
        (pictures / f"p{i:02d}.png").write_bytes(bytes([i]) * 10)
    extract(tmp_path / "clean", pictures, tmp_path / "clean.npy")
    cache = tmp_path / "killed"
    assert extract(cache, pictures, tmp_path / "killed.npy", kill_after_chunks=kill_after) == -signal.SIGKILL
    assert not (tmp_path / "killed.npy").exists()
    stores = cache / "features" / "store"
    kept = len(list(stores.glob("*/chunk-*.json")))  # chunks stored before the kill (maybe none yet)
    assert kept in (kill_after - 1, kill_after)  # the kill fell before or after the last one's write
    extract(cache, pictures, tmp_path / "out.npy")  # the next normal run
    assert np.load(tmp_path / "out.npy").tobytes() == np.load(tmp_path / "clean.npy").tobytes()
    assert counter(cache / "progress.txt") == 6 - kept  # the stored chunks were not computed again
    assert not [p.name for p in stores.glob("*/*") if ".part" in p.name]  # no debris in the store
