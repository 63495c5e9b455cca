"""The `paper` profiles cannot run in full here, but they must not rot: one training step of each
model with the paper's dimensions, on a tiny fixture, on whatever device `get_device()` picks."""

import pytest
import torch

from xmlib.core.config import resolve_config
from xmlib.core.device import get_device


def _step(model, loss, lr=1e-3):
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=lr)
    opt.zero_grad()
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    changed = sum(not torch.equal(b, p.detach()) for b, p in zip(before, params))
    assert changed > 0, "no parameter moved"
    return changed


@pytest.mark.parametrize("method", ["ltr", "dcmm-cos", "dcmm-edge"])
def test_dcmm_paper_profile_step(method):
    from xmlib.dcmm.batching import pad_queries
    from xmlib.dcmm.config import PROFILES, Config
    from xmlib.dcmm.data import make_synthetic_queries
    from xmlib.dcmm.loss import bpr_loss
    from xmlib.dcmm.models import build_model

    cfg = resolve_config(Config, PROFILES, "paper")
    # MediaEval'17's features: 4 text LTR features, 1536-d Inception-ResNet pre-logits.
    queries = make_synthetic_queries(n_queries=3, n_docs=12, seed=0, n_text=4, visual_dim=1536)
    batch = pad_queries(queries, device=get_device())
    model = build_model(method, cfg, in_dim=4, visual_dim=1536).to(get_device())
    scores = model(batch)
    assert scores.shape == batch.rel.shape
    _step(model, bpr_loss(scores, batch.rel, batch.mask))


def test_deep_ranking_paper_profile_step():
    from xmlib.deepranking.config import PROFILES, Config
    from xmlib.deepranking.loss import triplet_hinge
    from xmlib.deepranking.network import build_network

    cfg = resolve_config(Config, PROFILES, "paper")
    assert cfg.convnet == "finetune" and cfg.image_size >= 224 and cfg.embed_dim == 4096
    device = get_device()
    model = build_network(cfg).to(device)  # the pretrained EfficientNet-Lite0, fine-tuned
    model.train()
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, cfg.image_size, cfg.image_size, generator=g).to(device)  # 2 triplets
    f = model(images)
    assert f.shape == (6, 4096)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(6, device=device))
    _step(model, triplet_hinge(f[:2], f[2:4], f[4:], cfg.gap), lr=1e-4)


@pytest.mark.parametrize("aggregator", ["sgr", "saf"])
def test_sgraf_paper_profile_step(aggregator):
    from xmlib.sgraf.config import PROFILES, Config
    from xmlib.sgraf.loss import contrastive_loss
    from xmlib.sgraf.model import SGRAFModel

    cfg = resolve_config(Config, PROFILES, "paper").replace(aggregator=aggregator)
    assert (cfg.img_dim, cfg.embed_size, cfg.sim_dim, cfg.num_regions) == (2048, 1024, 256, 36)
    device = get_device()
    model = SGRAFModel(cfg.model(), vocab_size=50).to(device)
    model.train()
    g = torch.Generator().manual_seed(0)
    b = 4
    images = torch.randn(b, cfg.num_regions, cfg.img_dim, generator=g).to(device)  # BUTD: 36 regions x 2048
    lengths = torch.tensor([7, 5, 9, 4])
    tokens = torch.randint(4, 50, (b, int(lengths.max())), generator=g)
    for i, n in enumerate(lengths.tolist()):
        tokens[i, n:] = 0
    scores = model(images, tokens.to(device), lengths.to(device))
    assert scores.shape == (b, b)
    _step(model, contrastive_loss(scores, margin=cfg.margin))
