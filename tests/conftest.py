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


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """The order and grouping for ``make test``, which runs pytest in worker processes (pytest-xdist,
    ``-n 2 --dist loadgroup --no-loadscope-reorder``).

    Every test gets an ``xdist_group``: its file, unless it names its own (the paper-check chapters,
    minutes each, run side by side). So a file's module fixtures are built once, and a notebook's
    nbval cells run in order in one kernel. Files with ``slow`` tests (they start kernels, ranks or
    killed children) and the notebooks go first, so the longest work never starts last; the order
    within a file is kept. Without xdist the marks do nothing and only the order changes.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    heavy = {str(item.get_closest_marker("xdist_group").args[0]) for item in items
             if item.get_closest_marker("slow") is not None or item.nodeid.split("::")[0].endswith(".ipynb")}
    items.sort(key=lambda item: str(item.get_closest_marker("xdist_group").args[0]) not in heavy)  # stable
