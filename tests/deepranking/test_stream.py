"""Deep Ranking from a stream of images (xmlib.data.image_stream) through the buffered online sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmlib.data.formats import FormatError
from xmlib.data.image_stream import GoldenRelevance, ImageStream, stream_batches
from xmlib.data.synth import write_deepranking
from xmlib.deepranking.sampler import BufferedTripletSampler, check_triplets


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_deepranking(tmp_path_factory.mktemp("dr"), n_images=3000, n_categories=6, seed=1)


def test_workers_yield_every_image_once(root):
    plain = list(ImageStream(root))
    loader = torch.utils.data.DataLoader(ImageStream(root), batch_size=None, num_workers=2)
    with_workers = [(int(k), int(c), float(w)) for k, c, w in loader]
    assert len(plain) == 3000 and sorted(with_workers) == plain
    assert list(ImageStream(root, limit=10)) == plain[:10]


def test_stream_feeds_the_buffered_sampler(root):
    capacity = 20
    rel = GoldenRelevance(root)
    sampler = BufferedTripletSampler(rel, capacity=capacity, t_p=1.0, t_r=0.05, rescale=True, seed=0)
    batches = list(stream_batches(sampler, ImageStream(root), steps=10, batch_size=8, offer_per_step=300,
                                  rng=np.random.default_rng(0), warmup=200))
    assert sampler.seen == 3000  # the whole stream went by
    assert sampler.memory_items() <= 6 * capacity  # memory O(categories x buffer)
    cats = np.array([c for _, c, _ in ImageStream(root)])
    for t in batches:
        check_triplets(t, cats, rel, 0.05)
    # seeded: the same stream and generator give the same triplets
    again = BufferedTripletSampler(rel, capacity=capacity, t_p=1.0, t_r=0.05, rescale=True, seed=0)
    first = next(stream_batches(again, ImageStream(root), steps=1, batch_size=8, offer_per_step=300,
                                rng=np.random.default_rng(5)))
    other = BufferedTripletSampler(rel, capacity=capacity, t_p=1.0, t_r=0.05, rescale=True, seed=0)
    second = next(stream_batches(other, ImageStream(root), steps=1, batch_size=8, offer_per_step=300,
                                 rng=np.random.default_rng(5)))
    np.testing.assert_array_equal(first.as_array(), second.as_array())


def test_bad_lines_name_file_and_line(tmp_path, root):
    (tmp_path / "golden.npy").write_bytes((root / "golden.npy").read_bytes())
    lines = (root / "image_list.tsv").read_text().splitlines()[:4]
    (tmp_path / "image_list.tsv").write_text("\n".join(lines[:2] + ["img/x.jpg\tcat\t1.0"] + lines[3:]) + "\n")
    with pytest.raises(FormatError, match=r"image_list.tsv, line 3: category must be an integer"):
        list(ImageStream(tmp_path))
    (tmp_path / "image_list.tsv").write_text("\n".join(lines[:2] + ["img/x.jpg\t1\t-2"]) + "\n")
    with pytest.raises(FormatError, match="line 3: relevance"):
        list(ImageStream(tmp_path))
    (tmp_path / "image_list.tsv").write_text("path\tcat\n")
    with pytest.raises(FormatError, match="line 1: header"):
        list(ImageStream(tmp_path))


def test_golden_relevance_matches_the_array(root):
    g = np.load(root / "golden.npy", allow_pickle=False)  # (N, G)
    rel = GoldenRelevance(root)
    rng = np.random.default_rng(0)
    for i, j in rng.integers(len(g), size=(20, 2)):
        assert rel(int(i), int(j)) == pytest.approx(max(0.0, float(g[i].astype(np.float64) @ g[j])), rel=1e-6)
    np.testing.assert_array_equal(rel.row(len(g) - 1), g[-1])
    with pytest.raises(IndexError, match="outside"):
        rel.row(len(g))


def test_stream_run_streams_the_whole_list_once_into_bounded_buffers(tmp_path):
    from xmlib.core.config import resolve_config
    from xmlib.deepranking.config import PROFILES, Config
    from xmlib.deepranking.experiment import stream_run

    small = write_deepranking(tmp_path / "small", n_images=200, n_categories=4)
    large = write_deepranking(tmp_path / "large", n_images=800, n_categories=4)
    base = resolve_config(Config, PROFILES, "smoke", {"buffer_size": 8, "batch_size": 5, "max_steps": 3})
    out = {n: stream_run(base.replace(stream_dir=str(root))) for n, root in ((200, small), (800, large))}
    for n, res in out.items():
        assert res["images in the stream"] == res["images streamed"] == n
        assert res["steps"] == 3 and res["triplets drawn"] == 15
        assert res["in-class triplets breaking T_r"] == 0
        assert res["categories"] == 4 and res["images buffered"] == 4 * 8  # full buffers, whatever the stream's length
    assert stream_run(base.replace(stream_dir=str(small)), steps=7)["triplets drawn"] == 35
    with pytest.raises(ValueError, match="stream_dir is empty"):
        stream_run(base)
