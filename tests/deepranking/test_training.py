import numpy as np
import pytest
import torch

from xmlib.core.config import resolve_config
from xmlib.core.seed import seed_everything
from xmlib.deepranking.config import PROFILES, Config
from xmlib.deepranking.network import build_network, convnet_features, tiny_cnn
from xmlib.deepranking.sampler import CategoryRelevance, OfflineTripletSampler
from xmlib.deepranking.training import TripletData, embed, make_sampler, train_deep_ranking, triplet_step
from xmlib.metrics.triplets import similarity_precision


def colour_fixture(n=90, side=32, seed=0):
    """Relevance = closeness of the background colour (category = its dominant channel); each image also
    carries a 16×16 patch of a random colour at a random place, which random features confuse with it."""
    rng = np.random.default_rng(seed)
    colour = rng.random((n, 3))
    cats = colour.argmax(1)
    imgs = np.repeat(np.repeat(colour[:, :, None, None], side, 2), side, 3)
    for k in range(n):
        y, x = rng.integers(0, side - 16, 2)
        imgs[k, :, y:y + 16, x:x + 16] = rng.random(3)[:, None, None]
    imgs = np.clip(imgs + 0.03 * rng.normal(size=imgs.shape), 0, 1)
    d2 = ((colour[:, None] - colour[None]) ** 2).sum(-1)
    rel = CategoryRelevance.from_function(cats, lambda r, c: np.exp(-d2[np.ix_(r, c)] / 0.05))
    return torch.tensor(imgs, dtype=torch.float32), rel


def test_tiny_training_raises_precision():
    seed_everything(0)
    images, rel = colour_fixture()
    cfg = resolve_config(Config, PROFILES, "smoke", {
        "image_size": 32, "pixel_shift": 2, "epochs": 2, "steps_per_epoch": 12, "batch_size": 32,
        "dropout": 0.0,  # the fixture embeds a 24-d input: dropout 0.4 drowns it (the real net has ~1,760)
        "embed_dim": 16, "shallow_channels": 8, "lr": 0.1, "out_of_class_fraction": 0.2, "t_r": 0.05})
    cnn = tiny_cnn(8)
    data = TripletData(images, convnet_features(cnn, images))  # frozen branch: cached features
    model = build_network(cfg, convnet=None, convnet_dim=8)
    test = OfflineTripletSampler(rel, t_p=1.0, t_r=0.2, out_of_class_fraction=0.0, seed=123).sample(600).as_array()
    before = similarity_precision(embed(model, data), test)
    with torch.no_grad():
        loss_before = triplet_step(model.eval(), data, OfflineTripletSampler(rel, 1.0, 0.2, 0.0, seed=5).sample(200), cfg.gap)
    result = train_deep_ranking(cfg, model, data, make_sampler(cfg, rel))
    after = similarity_precision(embed(model, data), test)
    with torch.no_grad():
        loss_after = triplet_step(model.eval(), data, OfflineTripletSampler(rel, 1.0, 0.2, 0.0, seed=5).sample(200), cfg.gap)
    assert len(result.history) == 2
    assert after > before + 0.1, (before, after)
    assert loss_after < loss_before


def test_online_sampler_training_runs():
    images, rel = colour_fixture(40)
    cfg = resolve_config(Config, PROFILES, "smoke", {"image_size": 32, "sampler": "online", "multiscale": False})
    cnn = tiny_cnn(8)
    model = build_network(cfg, convnet=cnn)
    assert model.frozen and not any(p.requires_grad for p in cnn.parameters())
    sampler = make_sampler(cfg, rel)
    assert sampler.memory_items() <= cfg.buffer_size * 3
    result = train_deep_ranking(cfg, model, TripletData(images), sampler)
    assert np.isfinite(result.history[-1]["train_loss"])


def _small_relevance():
    rng = np.random.default_rng(4)
    cats = np.repeat([0, 1, 2], [5, 6, 4])
    rng.shuffle(cats)
    blocks = {}
    for c in range(3):
        n = int((cats == c).sum())
        a = rng.random((n, n))
        blocks[c] = (a + a.T) / 2
    return CategoryRelevance(cats, blocks)


class _Recorder:
    """A sampler wrapper that keeps every batch it hands out."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def sample(self, batch_size, rng=None):
        t = self.inner.sample(batch_size, rng)
        self.seen.append(t)
        return t


@pytest.mark.parametrize("kind", ["offline", "online"])
def test_training_draws_the_triplets_of_the_generator_seeded_from_seed_and_epoch(kind):
    """train_deep_ranking passes each epoch's generator, seeded from (cfg.seed, epoch), to ``sample``: a fresh
    sampler given the same generators draws the same batches (the batch samplers changed the stream the
    per-triplet ones drew, so the batches are replayed rather than pinned)."""
    from xmlib.deepranking.emoji import MappedSampler

    rel = _small_relevance()
    cfg = resolve_config(Config, PROFILES, "smoke", {"image_size": 32, "multiscale": False, "sampler": kind, "epochs": 2,
                                                     "steps_per_epoch": 2, "batch_size": 3, "buffer_size": 4,
                                                     "embed_dim": 4, "seed": 3})
    index = np.arange(100, 100 + len(rel))
    rec = _Recorder(MappedSampler(make_sampler(cfg, rel), index))
    torch.manual_seed(0)
    model = build_network(cfg, convnet=None, convnet_dim=4)
    train_deep_ranking(cfg, model, TripletData(torch.rand(120, 3, 32, 32), torch.rand(120, 4)), rec)
    replay = MappedSampler(make_sampler(cfg, rel), index)
    expected = []
    for epoch in range(cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])
        expected += [replay.sample(cfg.batch_size, rng) for _ in range(cfg.steps_per_epoch)]
    assert len(rec.seen) == len(expected) == 4
    for got, want in zip(rec.seen, expected):
        assert got.as_array().tolist() == want.as_array().tolist()
        assert got.out_of_class.tolist() == want.out_of_class.tolist()
        assert set(got.as_array().ravel().tolist()) <= set(index.tolist())
    # another seed draws other triplets
    other = MappedSampler(make_sampler(cfg, rel), index).sample(cfg.batch_size, np.random.default_rng([cfg.seed + 1, 0]))
    assert other.as_array().tolist() != expected[0].as_array().tolist()


def test_a_passed_generator_decides_the_triplets_and_leaves_the_samplers_own_alone():
    rel = _small_relevance()
    a = OfflineTripletSampler(rel, t_p=1.0, t_r=0.05, out_of_class_fraction=0.3, seed=9)
    b = OfflineTripletSampler(rel, t_p=1.0, t_r=0.05, out_of_class_fraction=0.3, seed=9)
    x = a.sample(20, np.random.default_rng([1, 2]))
    y = b.sample(20, np.random.default_rng([1, 2]))
    assert (x.as_array() == y.as_array()).all()
    b.sample(5, np.random.default_rng(0))  # draws with a passed generator do not advance the sampler's own
    assert (a.sample(10).as_array() == b.sample(10).as_array()).all()
    assert not (a.sample(10, np.random.default_rng(7)).as_array() == b.sample(10, np.random.default_rng(8)).as_array()).all()


def test_a_step_that_cannot_fit_fails_before_training_with_its_estimate(monkeypatch):
    from xmlib.deepranking import training as T

    images, rel = colour_fixture(40)
    cfg = resolve_config(Config, PROFILES, "smoke", {"image_size": 32, "sampler": "online", "multiscale": False})
    model = build_network(cfg, convnet=tiny_cnn(8))
    data = TripletData(images)
    need = T.step_bytes(cfg, model, data)
    assert need is not None and need > 0  # sized on the meta device
    assert T.step_bytes(cfg.replace(batch_size=2 * cfg.batch_size), model, data) == 2 * need  # linear in the batch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr("xmlib.core.device.available_memory", lambda device=None: need - 1)
    with pytest.raises(MemoryError, match=r"batch_size=8 triplets \(24 images of 32 px\) needs about .* lower batch_size"):
        train_deep_ranking(cfg, model, data, make_sampler(cfg, rel))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing was trained
    monkeypatch.setattr("xmlib.core.device.available_memory", lambda device=None: None)  # unknown: no check
    train_deep_ranking(cfg, model, data, make_sampler(cfg, rel))


def test_a_network_that_cannot_be_sized_in_advance_is_not_checked():
    from xmlib.core.device import activation_bytes

    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.from_numpy(x.numpy())  # needs real data: impossible on the meta device

    assert activation_bytes(Odd(), torch.rand(2, 3)) is None
    assert activation_bytes(torch.nn.Linear(3, 5), torch.rand(2, 3)) == 2 * 5 * 4  # one (2, 5) float32 output
