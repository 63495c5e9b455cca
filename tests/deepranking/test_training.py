import numpy as np
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
