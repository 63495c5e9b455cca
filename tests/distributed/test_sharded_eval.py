"""Sharded evaluation of SGRAF's full score matrix on 2 gloo processes equals one process."""

from pathlib import Path

import numpy as np
import pytest
import torch

import xmlib.sgraf.train as sgraf_train
from tests.distributed.ranks import run_ranks
from tests.sgraf.test_train import TINY, toy_data
from xmlib.core.config import resolve_config
from xmlib.sgraf.config import PROFILES, Config
from xmlib.sgraf.train import evaluate, init_model, score_split

pytestmark = pytest.mark.slow  # starts processes (make test runs these files first, tests/conftest.py)

N_IMG = 13  # odd: the two ranks hold 7 and 6 images
MAX_BYTES = 8192  # tiles of a few pairs: many tiles per rank


def _setup():
    cfg = resolve_config(Config, PROFILES, "smoke", {**TINY, "aggregator": "sgr"})
    data = toy_data(N_IMG, seed=3)
    return init_model(cfg, 20, torch.device("cpu")), data


def _sharded(rank: int, out: str) -> None:
    model, data = _setup()
    seen = []
    encode = sgraf_train.encode_split

    def recording(model, images, *args, **kwargs):
        seen.append(len(images))
        return encode(model, images, *args, **kwargs)

    sgraf_train.encode_split = recording  # this process only
    scores = score_split(model, data, max_bytes=MAX_BYTES)
    metrics = evaluate(model, data, max_bytes=MAX_BYTES)
    encoded = list(seen)  # images each of the two full scorings encoded
    one = score_split(model, data.first_images(1), max_bytes=MAX_BYTES)  # rank 1 has no image
    torch.save({"scores": scores, "metrics": metrics, "images_encoded": encoded, "one": one}, Path(out) / f"rank{rank}.pt")


def test_two_process_score_matrix_equals_one_process(tmp_path):
    run_ranks(_sharded, str(tmp_path))
    model, data = _setup()
    ref = score_split(model, data, max_bytes=MAX_BYTES)
    ref_metrics = evaluate(model, data, max_bytes=MAX_BYTES)
    assert ref.shape == (N_IMG, 5 * N_IMG)
    for rank, rows in ((0, 7), (1, 6)):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["images_encoded"] == [rows, rows]  # each rank encoded (and scored) only its images
        assert got["scores"].shape == ref.shape
        assert float((got["scores"] - ref).abs().max()) <= 1e-6
        assert got["metrics"] == ref_metrics  # identical R@K, medr, meanr, rSum on every rank
        one = score_split(model, data.first_images(1), max_bytes=MAX_BYTES)
        assert got["one"].shape == one.shape == (1, 5) and float((got["one"] - one).abs().max()) <= 1e-6
    assert np.isfinite(ref.numpy()).all() and float(ref.std()) > 0  # a matrix that can differ
