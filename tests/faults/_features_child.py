"""Feature extraction for the kill -9 tests: argv = cache_folder pictures_folder out.npy.

Computes the grid features of 12 pictures in chunks of 2 through the real feature store, with the
network replaced by a deterministic stand-in that takes 40 ms a chunk (so a kill lands between or
inside chunk writes); ``progress.txt`` in the cache folder counts the chunks computed. At the end the
features go to ``out.npy``.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np


def main(cache: Path, pictures: Path, out: Path) -> None:
    os.environ["XMLIB_CACHE"] = str(cache)
    from xmlib.data import features as F

    done = {"n": 0}

    def compute(paths, size, batch_size, device, bar):
        pooled = np.stack([np.random.default_rng(zlib.crc32(p.name.encode())).standard_normal(F.FEATURE_DIM)
                           for p in paths]).astype(np.float32)
        grid = (pooled[:, None, :] + np.arange((size // 32) ** 2)[None, :, None]).astype(np.float16)
        time.sleep(0.04)
        done["n"] += 1
        (cache / "progress.txt").write_text(str(done["n"]))
        bar.update(len(paths))
        return pooled, grid

    F._CHUNK = 2
    F._compute = compute
    pics = sorted(pictures.glob("*.png"))
    np.save(out, F.image_features(pics, "grid", size=64, cache_key="kill-test"))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
