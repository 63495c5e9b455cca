"""DDP training on 2 gloo processes: the same parameters as one process with the same global batch
(SGRAF with hardest negatives over the gathered batch; Deep Ranking), and resume under DDP continues
identically. One set of processes runs every scenario; the tests compare its files."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.deepranking.test_training import colour_fixture
from tests.distributed.ranks import run_ranks
from tests.sgraf.test_train import TINY, toy_data
from xmlib.core import distributed
from xmlib.core.checkpoint import load_checkpoint
from xmlib.core.config import resolve_config
from xmlib.deepranking.config import PROFILES as DR_PROFILES
from xmlib.deepranking.config import Config as DRConfig
from xmlib.deepranking.network import build_network, convnet_features, tiny_cnn
from xmlib.deepranking.training import TripletData, make_sampler, train_deep_ranking, triplet_step
from xmlib.sgraf.config import PROFILES, Config
from xmlib.sgraf.loss import contrastive_loss
from xmlib.sgraf.train import GatheredScores, init_model, train_model

pytestmark = pytest.mark.slow  # starts processes (make test runs these files first, tests/conftest.py)

# batch_size 7: the ranks hold 4 and 3 pairs; dropout 0 and no BatchNorm, so one process and two
# compute the same function (per-rank dropout masks and CPU BatchNorm statistics differ by design)
SGRAF = dict(TINY, batch_size=7, dropout=0.0, global_norm="none", max_violation=True, aggregator="sgr", epochs=2)
SGRAF_DROPOUT = dict(SGRAF, dropout=0.3)  # the resume check: per-rank RNG states must be restored
DR = {"image_size": 32, "pixel_shift": 0, "dropout": 0.0, "epochs": 2, "steps_per_epoch": 3, "batch_size": 7,
      "embed_dim": 16, "shallow_channels": 8, "lr": 0.1}


def _sgraf(overrides, checkpoint_dir, epochs):
    cfg = resolve_config(Config, PROFILES, "smoke", overrides)
    train, dev = toy_data(12, seed=1), toy_data(6, seed=2)
    train_model(cfg, train, dev, 20, checkpoint_dir=checkpoint_dir, device=torch.device("cpu"), epochs=epochs)
    return load_checkpoint(Path(checkpoint_dir) / "last.pt")


def _deep_ranking():
    cfg = resolve_config(DRConfig, DR_PROFILES, "smoke", DR)
    torch.manual_seed(0)
    images, rel = colour_fixture(40)
    data = TripletData(images, convnet_features(tiny_cnn(8), images))
    model = build_network(cfg, convnet=None, convnet_dim=8)
    result = train_deep_ranking(cfg, model, data, make_sampler(cfg, rel))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, result.history


def _sgraf_gradient(sharded: bool) -> dict[str, torch.Tensor]:
    """float64 gradient of the hardest-negative loss of one global batch of 7 pairs (4 + 3 on two ranks)."""
    cfg = resolve_config(Config, PROFILES, "smoke", SGRAF)
    data = toy_data(12, seed=1)
    model = init_model(cfg, 20, torch.device("cpu")).double()
    caps = np.array([3, 17, 25, 40, 8, 51, 33])
    mine = distributed.shard(len(caps)) if sharded else slice(None)
    images = torch.from_numpy(np.asarray(data.images[caps[mine] // 5], dtype=np.float64))
    idx = torch.from_numpy(caps)
    lengths = data.lengths[idx[mine]]
    tokens = data.tokens[idx[mine], : int(lengths.max())]
    if sharded:
        ddp = distributed.wrap(GatheredScores(model))  # kept until backward: its hooks average the gradients
        scores = ddp(images, tokens, lengths, data.lengths[idx], distributed.shard_sizes(len(caps)))
    else:
        scores = model(images, tokens, lengths)
    contrastive_loss(scores, cfg.margin, True).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def _deep_ranking_gradient(sharded: bool) -> dict[str, torch.Tensor]:
    """float64 gradient of the mean hinge of one global batch of 7 triplets."""
    cfg = resolve_config(DRConfig, DR_PROFILES, "smoke", DR)
    torch.manual_seed(0)
    images, rel = colour_fixture(40)
    data = TripletData(images.double(), convnet_features(tiny_cnn(8), images).double())
    model = build_network(cfg, convnet=None, convnet_dim=8).double()
    triplets = make_sampler(cfg, rel).sample(7, np.random.default_rng(0))
    ddp = distributed.wrap(model) if sharded else None  # kept until backward: its hooks average the gradients
    if sharded:
        loss = triplet_step(ddp, data, triplets, cfg.gap, rows=distributed.shard(7))
    else:
        loss = triplet_step(model, data, triplets, cfg.gap)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _scenarios(rank: int, out: str) -> None:
    out = Path(out)
    grads = {"sgraf_grad": _sgraf_gradient(True), "dr_grad": _deep_ranking_gradient(True)}
    full = _sgraf(SGRAF, out / "sgraf", 2)
    drop_full = _sgraf(SGRAF_DROPOUT, out / "dropout-full", 2)
    _sgraf(SGRAF_DROPOUT, out / "dropout-resumed", 1)  # stopped after one epoch ...
    resumed = _sgraf(SGRAF_DROPOUT, out / "dropout-resumed", 2)  # ... and resumed from rank 0's checkpoint
    dr_state, dr_history = _deep_ranking()
    torch.save({"sgraf": full["model"], "sgraf_history": full["history"], "dropout_full": drop_full["model"],
                "dropout_resumed": resumed["model"], "resumed_history": resumed["history"],
                "dropout_history": drop_full["history"], "dr": dr_state, "dr_history": dr_history, **grads},
               out / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    run_ranks(_scenarios, str(out))
    return out, [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _assert_close(got, ref, atol=5e-5, rtol=1e-3):
    # float32 tolerance after 8 Adam steps: Adam divides by sqrt(v), so where a gradient is near 0 the
    # rounding differences of the summed gradient (about 1e-8, see the float64 tests, which are exact)
    # grow to a fraction of a step; 5e-5 is 5% of one step at lr = 1e-3
    assert got.keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=atol, rtol=rtol, msg=lambda m: f"{k}: {m}")


def _changed(after, before):
    return sum(not torch.equal(after[k], before[k]) for k in after)


def test_one_ddp_step_has_the_one_process_gradient_in_float64(ranks):
    _, got = ranks
    for name, ref in (("sgraf_grad", _sgraf_gradient(False)), ("dr_grad", _deep_ranking_gradient(False))):
        assert any(float(g.abs().max()) > 1e-4 for g in ref.values())
        for r in range(2):
            _assert_close(got[r][name], ref, atol=1e-12, rtol=1e-10)


def test_sgraf_ddp_equals_one_process_with_the_same_global_batch(ranks, tmp_path):
    out, got = ranks
    ref = _sgraf(SGRAF, tmp_path / "one", 2)
    cfg = resolve_config(Config, PROFILES, "smoke", SGRAF)
    assert _changed(ref["model"], init_model(cfg, 20, torch.device("cpu")).state_dict()) > 0  # it trained
    for r in range(2):
        _assert_close(got[r]["sgraf"], ref["model"])
        assert [h["epoch"] for h in got[r]["sgraf_history"]] == [0, 1]
        for a, b in zip(got[r]["sgraf_history"], ref["history"]):
            assert a["rsum"] == pytest.approx(b["rsum"], abs=1e-3)  # dev evaluation, sharded
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert not (out / "sgraf" / ".last.pt").exists()


def test_deep_ranking_ddp_equals_one_process_with_the_same_global_batch(ranks):
    _, got = ranks
    ref, history = _deep_ranking()
    torch.manual_seed(0)
    cfg = resolve_config(DRConfig, DR_PROFILES, "smoke", DR)
    colour_fixture(40), tiny_cnn(8)  # the draws _deep_ranking makes before building the network
    assert _changed(ref, build_network(cfg, convnet=None, convnet_dim=8).state_dict()) > 0  # it trained
    for r in range(2):
        _assert_close(got[r]["dr"], ref)
        for a, b in zip(got[r]["dr_history"], history):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


def test_resume_under_ddp_continues_identically(ranks):
    out, got = ranks
    for r in range(2):
        assert got[r]["resumed_history"] == got[r]["dropout_history"]
        for k, v in got[r]["dropout_full"].items():
            assert torch.equal(got[r]["dropout_resumed"][k], v), k
    state = load_checkpoint(out / "dropout-resumed" / "last.pt")
    assert state["epoch"] == 1 and len(state["rng_ranks"]) == 2
    assert not torch.equal(state["rng_ranks"][0]["torch"], state["rng_ranks"][1]["torch"])  # each rank its own RNG
