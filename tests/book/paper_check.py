"""The smoke-sized `make paper-check`: each paper chapter's `paper` profile runs end to end on tiny
synthetic paper-shaped data (``python -m xmlib.data synth``) with a step cap, and produces its
replication table. One test file per chapter (``test_paper_check_<chapter>.py``), so that ``make test``'s
worker processes run the three side by side (pytest-xdist sends each file to one worker).

The paper's model sizes are kept (SGRAF d = 1024, m = 256 on 36 × 2048 regions; DCMM c = 32; Deep
Ranking's 4096-d embedding); what the check shrinks beside ``max_steps`` is listed in ``CHECK`` (seeds,
grids, SGRAF's batch, Deep Ranking's picture size) so that the three chapters fit in a few minutes on
two cores. Deep Ranking's pictures are the smoke emoji build (the synthetic stream has none).
"""

import csv
import shutil
from pathlib import Path

import pytest

from xmlib.book import check_notebooks
from xmlib.book import run as runner
from xmlib.core.paths import project_root
from xmlib.data.synth import synth
from xmlib.replication import VERDICTS

COMMON = {"max_steps": 1, "seeds": 2}
CHECK = {  # notebook: (chapter, the synthetic data it reads, its overrides; "{data}" = that data's folder)
    "02_dcmm": ("dcmm", "mediaeval", {"data": "{data}", "test_split": "test", "lr_grid": [0.001], "hidden_grid": [32],
                                      "inner_folds": 1, "folds": 2, "cm_k_grid": [3], "fig2_k": [3], "fig2_depth": [1],
                                      "n_boot": 100}),
    "03_deepranking": ("deepranking", "deepranking", {"benchmark": "smoke", "stream_dir": "{data}", "fractions": [0.2, 1.0],
                                                      "image_size": 32, "convnet_image_size": 32, "pixel_shift": 4,
                                                      "batch_size": 8, "bootstrap": 100}),
    "04_sgraf": ("sgraf", "f30k", {"data_dir": "{data}", "batch_size": 8, "steps_grid": [3], "ablation_local_steps": [3],
                                   "baseline_epochs": 1, "n_boot": 100, "loader_workers": 0}),
}


def check_chapter(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run notebook ``name`` in the ``paper`` profile on its synthetic data; assert that it completed
    without a stored error and wrote a replication table whose verdicts are the book's."""
    chapter, like, extra = CHECK[name]
    data = str(synth(like, tmp_path / "synth" / like, scale=0.001))
    overrides = {**COMMON, **{k: v.format(data=data) if isinstance(v, str) else v for k, v in extra.items()}}
    runs = tmp_path / "runs"
    monkeypatch.setenv("XMLIB_RUNS", str(runs))
    monkeypatch.setenv("XMLIB_PROGRESS", "0")
    (tmp_path / "notebooks").mkdir()
    source = tmp_path / "notebooks" / f"{name}.py"
    shutil.copyfile(project_root() / "notebooks" / f"{name}.py", source)

    assert runner.run([source], "paper", overrides, root=tmp_path) == 0, f"{name} failed (see its .failed.ipynb)"
    executed = tmp_path / "_build" / "executed" / "paper" / f"{name}.ipynb"
    assert check_notebooks.notebook_problems(executed) == []
    (out_dir,) = (runs / chapter).glob("paper-*")
    with open(out_dir / "replication.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, f"{name}: empty replication table"
    assert all(row["verdict"] in VERDICTS for row in rows), [row["verdict"] for row in rows]
