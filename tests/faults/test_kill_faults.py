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

import pytest

CHILD = Path(__file__).with_name("_train_child.py")


def run_child(workdir: Path, out: Path, *, kill_when=None, timeout: float = 120.0) -> int:
    """Run the training child; with ``kill_when(workdir) -> bool`` SIGKILL it as soon as that holds."""
    env = {**os.environ, "XMLIB_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(CHILD), str(workdir), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    try:
        while proc.poll() is None:
            if kill_when is not None and kill_when(workdir):
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                return proc.returncode
            if time.monotonic() - t0 > timeout:
                raise TimeoutError("the training child did not finish")
            time.sleep(0.005)
        if proc.returncode != 0:
            raise AssertionError(proc.stderr.read().decode(errors="replace")[-2000:])
        return proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()


def epochs_done(workdir: Path) -> int:
    """Epochs recorded by the child's progress marker (written after each checkpointed epoch)."""
    marker = workdir / "epochs.txt"
    try:
        return int(marker.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted run's weights hash and history."""
    base = tmp_path_factory.mktemp("reference")
    run_child(base / "work", base / "out.json")
    return json.loads((base / "out.json").read_text())


def steps_done(workdir: Path) -> int:
    try:
        return int((workdir / "steps.txt").read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


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
