"""Shared test settings.

Unit tests work on tiny tensors: one torch thread avoids thread start-up and oversubscription costs on
small, shared CPUs (and keeps float reductions in one order).
"""

import pytest
import torch

from xmlib.core.device import cpu_threads


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with cpu_threads(1, torch.device("cpu")):
        yield


def pytest_collection_modifyitems(config, items):
    """The order for ``make test``, which runs pytest in worker processes (pytest-xdist, ``-n 2 --dist
    loadfile --no-loadscope-reorder``: each file goes whole to one worker, so its module fixtures are
    built once and a notebook's nbval cells run in order in one kernel; files are handed out in this
    order). Files that hold a ``slow`` test (they start kernels, ranks or killed children) and the
    notebooks go first, so that the longest work never starts last; the order within a file is kept."""
    def file_of(item) -> str:
        return item.nodeid.split("::")[0]

    heavy = {file_of(item) for item in items if item.get_closest_marker("slow") is not None or file_of(item).endswith(".ipynb")}
    items.sort(key=lambda item: file_of(item) not in heavy)  # stable: each file's tests keep their order
