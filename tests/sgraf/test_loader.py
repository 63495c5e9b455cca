"""Training batches gathered from memory-mapped precomp features (xmlib.sgraf.loader)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmlib.core.config import resolve_config
from xmlib.core.io import release_pages
from xmlib.data.formats.scan_precomp import read_split, write_split
from xmlib.sgraf.config import PROFILES, Config
from xmlib.sgraf.loader import batch_loader
from xmlib.sgraf.train import CaptionData, epoch_batches, train_model


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("precomp")
    rng = np.random.default_rng(0)
    ims = rng.random((40, 6, 16), dtype=np.float32)
    caps = [f"w{i % 7} x{i // 5 % 5} y{i % 3}" for i in range(200)]
    write_split(root, "train", ims, caps)
    write_split(root, "dev", ims[:10], caps[:50])
    return root, ims


def test_batches_same_for_any_number_of_workers(split):
    root, ims = split
    images = read_split(root, "train").images
    assert isinstance(images, np.memmap)
    caps = epoch_batches(40, 0, batch_size=16, seed=1)
    runs = {w: list(batch_loader(images, caps, workers=w)) for w in (0, 2)}
    assert len(runs[0]) == len(caps) == len(runs[2])
    for b, c in enumerate(caps):
        for w in (0, 2):
            got_caps, feats = runs[w][b]
            np.testing.assert_array_equal(got_caps, c)
            assert feats.dtype == torch.float32
            np.testing.assert_array_equal(feats.numpy(), ims[c // 5])  # the plain gather


def test_release_pages_keeps_data(split):
    root, ims = split
    images = read_split(root, "train").images
    first = np.array(images[:3])
    assert release_pages(images) and release_pages(images[5:9])  # views find their map
    np.testing.assert_array_equal(np.asarray(images[:3]), first)
    assert not release_pages(np.zeros(3))


def _train(root, workers: int) -> dict[str, torch.Tensor]:
    from xmlib.data.formats.vocab import build_vocab, encode

    train_split, dev_split = read_split(root, "train"), read_split(root, "dev")
    vocab = build_vocab(train_split.captions, threshold=1)
    data = [CaptionData.from_token_lists(s.images, [encode(c, vocab) for c in s.captions]) for s in (train_split, dev_split)]
    cfg = resolve_config(Config, PROFILES, "smoke", {"img_dim": 16, "num_regions": 6, "batch_size": 8, "epochs": 1,
                                                      "max_train_images": 0, "dev_images": 0, "loader_workers": workers})
    model, _ = train_model(cfg, *data, len(vocab), device=torch.device("cpu"))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_same_with_loader_workers(split):
    """Workers gather the same batches and leave torch's global generator (dropout) alone."""
    root, _ = split
    a, b = _train(root, 0), _train(root, 2)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_bad_workers():
    with pytest.raises(ValueError, match="workers"):
        batch_loader(np.zeros((2, 1, 1)), [], workers=-1)
