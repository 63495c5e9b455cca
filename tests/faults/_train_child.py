"""A training run for the kill -9 tests: argv = workdir out.json.

Trains a tiny SGR model with checkpoints in ``workdir`` on synthetic data (always the same), sleeping
10 ms per step so that a kill can land anywhere. ``workdir/steps.txt`` holds the steps done in the
current epoch and ``workdir/epochs.txt`` the epochs done; at the end ``out.json`` holds the sha256 of the
weights, the best epoch, the history and how many epochs this run trained itself.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from xmlib.core.device import set_cpu_threads
from xmlib.core.io import atomic_write_json
from xmlib.sgraf import train as T
from xmlib.sgraf.config import Config


def toy(n_img: int, seed: int) -> T.CaptionData:
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_img, 4, 10)).astype(np.float32)
    caps = [[1, *rng.integers(4, 20, size=rng.integers(1, 4)).tolist(), 2] for _ in range(5 * n_img)]
    return T.CaptionData.from_token_lists(images, caps)


def main(workdir: Path, out: Path) -> None:
    set_cpu_threads(1)
    workdir.mkdir(parents=True, exist_ok=True)
    steps = workdir / "steps.txt"
    make_step = T.make_step

    def slow_make_step(*args, **kwargs):
        step = make_step(*args, **kwargs)
        count = {"n": 0}

        def slow(caps):
            loss = step(caps)
            count["n"] += 1
            steps.write_text(str(count["n"]))
            time.sleep(0.01)
            return loss
        return slow

    T.make_step = slow_make_step
    cfg = Config(img_dim=10, word_dim=8, embed_size=8, sim_dim=4, batch_size=8, lr=1e-3, epochs=4, lr_step=2,
                 captions_per_epoch=2, dev_images=6, eval_mib=1, sgr_steps=2, dropout=0.0)
    evaluate = T.evaluate
    this_run = {"epochs": 0}

    def counted_evaluate(*args, **kwargs):  # called once per epoch, after its steps
        metrics = evaluate(*args, **kwargs)
        this_run["epochs"] += 1
        done = int((workdir / "epochs.txt").read_text()) if (workdir / "epochs.txt").exists() else 0
        steps.write_text("0")  # first: a watcher must never see the new epoch count with the old epoch's steps
        (workdir / "epochs.txt").write_text(str(done + 1))
        return metrics

    T.evaluate = counted_evaluate
    model, result = T.train_model(cfg, toy(24, 0), toy(6, 1), 20, checkpoint_dir=workdir / "ckpt")
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    atomic_write_json(out, {"weights_sha256": digest.hexdigest(), "best_epoch": result.best_epoch,
                            "history": result.history, "epochs_trained_by_this_run": this_run["epochs"]})


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
