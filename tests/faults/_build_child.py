"""A benchmark build for the kill -9 tests: argv = out_folder [force].

``build_once`` writes 20 small files, 20 ms apart (so a kill lands inside the build), then the stamp,
and renames the folder into place; ``force`` rebuilds an up-to-date folder (a kill can then land while
the old build is swapped out).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from xmlib.data.benchmarks._build import build_once

STAMP = {"benchmark": "toy", "version": 1}


def write(folder: Path) -> None:
    for i in range(20):
        (folder / f"part-{i:02d}.txt").write_text(f"row {i}\n" * (i + 1))
        (folder.parent / "progress.txt").write_text(str(i + 1))
        time.sleep(0.02)


if __name__ == "__main__":
    build_once(Path(sys.argv[1]), STAMP, write, force=len(sys.argv) > 2)
