"""Paper-shaped synthetic data (xmlib.data.synth): the papers' formats and shapes, a learnable signal."""

from __future__ import annotations

import numpy as np
import pytest

from xmlib.data.formats.scan_precomp import read_split
from xmlib.data.formats.vocab import load_vocab, tokenize
from xmlib.data.synth import SHAPES, synth


@pytest.fixture(scope="module")
def f30k(tmp_path_factory):
    return synth("f30k", tmp_path_factory.mktemp("f30k"), scale=0.01, seed=3)


@pytest.mark.parametrize("like,scale", [("f30k", 0.001), ("coco", 0.0002)])
def test_precomp_shapes_and_memmap(tmp_path, like, scale):
    root = synth(like, tmp_path, scale=scale, seed=0)
    vocab = load_vocab(root / SHAPES[like].vocab_name)
    for split, n in SHAPES[like].splits:
        sp = read_split(root, split)
        assert isinstance(sp.images, np.memmap), "features must stay memory-mapped"
        assert sp.images.shape == (max(20, round(n * scale)), 36, 2048) and sp.images.dtype == np.float32
        assert sp.n_captions == 5 * sp.n_images
        assert (np.asarray(sp.images[:2]) >= 0).all()  # like BUTD features: nonnegative
    words = {w for c in read_split(root, "train").captions for w in tokenize(c)}
    assert len(vocab) > 20 and all(vocab.word(i) in words for i in range(4, len(vocab)))


def test_same_seed_same_files(tmp_path):
    a, b, c = (synth("f30k", tmp_path / name, scale=0.001, seed=s) for name, s in (("a", 1), ("b", 1), ("c", 2)))
    for name in ("train_ims.npy", "train_caps.txt", "f30k_precomp_vocab.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "train_ims.npy").read_bytes() != (c / "train_ims.npy").read_bytes()


def _probe_scores(train, test) -> np.ndarray:
    """A word-centroid probe learnt on train: word w's prototype = mean pooled feature of the images
    whose captions use w; score(image, caption) = Σ_w∈caption cos(image − mean, prototype_w − mean)."""
    x_tr = np.asarray(train.images, dtype=np.float64).mean(1)  # (N, D)
    mu = x_tr.mean(0)
    sums, counts = {}, {}
    for j, cap in enumerate(train.captions):
        for w in set(tokenize(cap)):
            sums[w] = sums.get(w, 0) + x_tr[j // 5] - mu
            counts[w] = counts.get(w, 0) + 1
    proto = {w: s / counts[w] for w, s in sums.items()}
    proto = {w: p / np.linalg.norm(p) for w, p in proto.items()}
    x = np.asarray(test.images, dtype=np.float64).mean(1) - mu
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    caps = np.stack([sum((proto[w] for w in set(tokenize(c)) if w in proto), np.zeros(x.shape[1]))
                     for c in test.captions])  # (5 N, D)
    return x @ caps.T  # (N, 5 N)


def test_planted_signal_is_learnable(f30k):
    train, test = read_split(f30k, "train"), read_split(f30k, "test")
    scores = _probe_scores(train, test)
    top = scores.argmax(1) // 5  # image of each image's best caption
    r1 = float((top == np.arange(len(top))).mean())
    chance = 1 / test.n_images
    assert r1 > 5 * chance, f"image-to-text R@1 {r1:.2f} vs chance {chance:.2f}"


def test_mediaeval_layout(tmp_path):
    from xmlib.data.formats.mediaeval import read_mediaeval
    from xmlib.dcmm.data import load_queries

    root = synth("mediaeval", tmp_path, scale=0.1, seed=0)
    train, test = read_mediaeval(root, "train"), read_mediaeval(root, "test")
    assert (len(train), len(test)) == (11, 8)
    assert len(train.folds) == 5 and sorted(q for f in train.folds for q in f) == sorted(train.query_ids)
    for q in train:
        assert 27 <= len(q) <= 33 and q.visual.shape == (len(q), 1536) and q.features.shape == (len(q), 4)
    loaded = load_queries(root, feature_set="weak", query_set="all", split="test")
    assert len(loaded.queries) == 8 and loaded.queries[0].text.shape[1] == 1
    # the planted signal: relevant candidates' BM25 feature is higher on average
    rel = np.concatenate([q.rel for q in train])
    bm25 = np.concatenate([q.features[:, list(train.feature_names).index("bm25_feature")] for q in train])
    assert bm25[rel == 1].mean() > bm25[rel == 0].mean() + 0.3


def test_deepranking_layout(tmp_path):
    from xmlib.data.formats.deepranking_triplets import read_query_and_triplets
    from xmlib.data.image_stream import GoldenRelevance, ImageStream

    root = synth("deepranking", tmp_path, scale=0.0002, seed=0)
    items = list(ImageStream(root))
    assert len(items) == 2400 and [k for k, _, _ in items] == list(range(2400))
    assert {c for _, c, _ in items} == set(range(4)) and min(w for _, _, w in items) > 0
    r = GoldenRelevance(root)
    assert len(r) == 2400
    records = read_query_and_triplets(root / "query_and_triplets.txt")
    assert len(records) > 20
    idx = [[int(p[4:12]) for p in rec.images] for rec in records]
    assert all(r(q, p) > r(q, n) for q, p, n in idx)


@pytest.mark.parametrize("kwargs,name", [({"like": "f31k"}, "--like"), ({"scale": 0.0}, "--scale"),
                                         ({"scale": 1.5}, "--scale"), ({"seed": -1}, "--seed")])
def test_bad_arguments_name_the_parameter(tmp_path, kwargs, name):
    args = {"like": "f30k", "scale": 0.001, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=name):
        synth(args.pop("like"), tmp_path, **args)
    assert not any(tmp_path.iterdir())


def test_command_line(tmp_path, capsys):
    from xmlib.data.__main__ import main

    assert main(["synth", "--like", "f30k", "--out", str(tmp_path), "--scale", "0.001", "--seed", "1"]) == 0
    assert read_split(tmp_path, "dev").n_images == 20
    with pytest.raises(SystemExit):
        main(["synth", "--like", "f30k", "--out", str(tmp_path), "--scale", "3"])
    assert "--scale must be" in capsys.readouterr().err
