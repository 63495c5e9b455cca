import pytest
import torch

from xmlib.core.checkpoint import load_checkpoint, save_checkpoint
from xmlib.core.train import count_parameters, fit


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(64, 1, generator=g)
    return x, y


def _train(epochs, ckpt_dir=None, fingerprint="f", dropout=True, max_steps=0):
    torch.manual_seed(0)
    x, y = _problem()
    layers = [torch.nn.Linear(5, 8), torch.nn.ReLU()] + ([torch.nn.Dropout(0.3)] if dropout else []) + [torch.nn.Linear(8, 1)]
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    def batches(epoch):
        order = torch.randperm(48, generator=torch.Generator().manual_seed(epoch))
        return [order[i:i + 16] for i in range(0, 48, 16)]

    def step(idx):
        return torch.nn.functional.mse_loss(model(x[idx]), y[idx])

    def evaluate():
        return {"val_mse": torch.nn.functional.mse_loss(model(x[48:]), y[48:]).item()}

    res = fit(model, opt, epochs=epochs, batches=batches, step=step, evaluate=evaluate, select="val_mse",
              mode="min", scheduler=sched, clip_grad_norm=1.0, checkpoint_dir=ckpt_dir, fingerprint=fingerprint,
              max_steps=max_steps)
    return model, res, opt


def test_training_reduces_loss_and_selects_best():
    model, res, _ = _train(6)
    losses = res.column("train_loss")
    assert losses[-1] < losses[0]
    assert res.best_score == min(res.column("val_mse"))
    assert res.best_epoch == res.column("val_mse").index(res.best_score)


def test_resume_after_interruption_matches_uninterrupted(tmp_path):
    # Dropout makes the run depend on the RNG state, so this also checks that it is restored.
    full, res_full, _ = _train(6)
    _train(3, ckpt_dir=tmp_path)            # interrupted after 3 epochs
    resumed, res_resumed, _ = _train(6, ckpt_dir=tmp_path)
    assert res_resumed.resumed_from == 3
    assert res_resumed.history == res_full.history
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def _adam_steps(opt):
    return {int(st["step"]) for st in opt.state.values()}


def test_max_steps_caps_optimiser_steps_over_epochs_and_resumes(tmp_path):
    # 3 batches an epoch: a cap of 4 stops in the second epoch, which is still evaluated
    _, res, opt = _train(6, max_steps=4)
    assert [row["steps"] for row in res.history] == [3, 4]
    assert _adam_steps(opt) == {4}
    assert len(res.column("val_mse")) == 2
    _, res_free, opt_free = _train(6)
    assert [row["steps"] for row in res_free.history] == [3, 6, 9, 12, 15, 18] and _adam_steps(opt_free) == {18}
    # the first epoch of the capped run is the uncapped one's; a resumed capped run ends where the capped run ended
    assert res.history[0] == res_free.history[0]
    capped, _, _ = _train(6, max_steps=4)
    _train(1, ckpt_dir=tmp_path, max_steps=4)
    resumed, res_resumed, opt_resumed = _train(6, ckpt_dir=tmp_path, max_steps=4)
    assert res_resumed.resumed_from == 1 and res_resumed.history == res.history and _adam_steps(opt_resumed) == {4}
    for a, b in zip(capped.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="max_steps"):
        _train(1, max_steps=-1)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    _train(2, ckpt_dir=tmp_path, fingerprint="a")
    with pytest.raises(RuntimeError, match="another configuration"):
        _train(3, ckpt_dir=tmp_path, fingerprint="b")


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", model={"w": torch.ones(3)}, epoch=1)
    assert load_checkpoint(path)["epoch"] == 1
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(RuntimeError, match="delete it"):
        load_checkpoint(path)


def test_nan_loss_stops_with_advice():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(model, opt, epochs=1, batches=lambda e: [0], step=lambda b: model(torch.ones(1, 2)).sum() * float("nan"))


def test_select_needs_evaluate_and_count_parameters():
    model = torch.nn.Linear(3, 2)
    assert count_parameters(model) == 8
    with pytest.raises(ValueError, match="evaluate"):
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batches=lambda e: [], step=None, select="x")
