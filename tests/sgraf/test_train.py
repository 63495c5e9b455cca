"""Batches, configs, reading precomp data, and resume-after-interruption of the SGRAF training loop."""

import numpy as np
import pytest
import torch

from xmlib.core.config import ConfigError, resolve_config
from xmlib.sgraf.config import PROFILES, Config
from xmlib.sgraf.train import CaptionData, epoch_batches, evaluate, load_precomp, train_model


def toy_data(n_img, seed, k=4, d=10, vocab=20):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_img, k, d)).astype(np.float32)
    caps = [[1, *rng.integers(4, vocab, size=rng.integers(1, 4)).tolist(), 2] for _ in range(5 * n_img)]
    return CaptionData.from_token_lists(images, caps)


TINY = dict(img_dim=10, word_dim=8, embed_size=8, sim_dim=4, batch_size=8, lr=1e-3, lr_step=2,
            captions_per_epoch=2, dev_images=6, eval_mib=1, sgr_steps=2)


def test_profiles_resolve_and_bad_values_are_named():
    for name in PROFILES:
        cfg = resolve_config(Config, PROFILES, name)
        assert cfg.schedule()[0] > 0
    paper = resolve_config(Config, PROFILES, "paper")
    assert (paper.embed_size, paper.sim_dim, paper.epochs, paper.saf_epochs, paper.lambda_softmax) == (1024, 256, 40, 30, 9.0)
    assert paper.replace(aggregator="saf").schedule() == (30, 20)
    with pytest.raises(ConfigError, match="similarity"):
        Config(similarity="scalar", aggregator="sgr")
    with pytest.raises(ConfigError, match="captions_per_epoch"):
        Config(captions_per_epoch=6)
    for name in ("ablation_lr_step", "baseline_epochs"):
        with pytest.raises(ConfigError, match=name):
            Config(**{name: -1})


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    a = epoch_batches(10, 3, batch_size=4, seed=0, captions_per_epoch=2)
    b = epoch_batches(10, 3, batch_size=4, seed=0, captions_per_epoch=2)
    assert all((x == y).all() for x, y in zip(a, b))
    caps = np.concatenate(a)
    assert len(caps) == 20 and len(set(caps.tolist())) == 20
    assert (np.bincount(caps // 5, minlength=10) == 2).all()  # two distinct captions per image
    full = np.concatenate(epoch_batches(10, 0, batch_size=7, seed=0))
    assert len(full) == 49 and len(set(full.tolist())) == 49  # 7 batches of 7; the last single pair dropped
    assert not all((x == y).all() for x, y in zip(a, epoch_batches(10, 4, batch_size=4, seed=0, captions_per_epoch=2)))


def test_caption_data_truncates_and_checks():
    data = CaptionData.from_token_lists(np.zeros((1, 2, 3), np.float32), [[1, 5, 6, 7, 2]] * 5, max_words=4)
    assert data.tokens[0].tolist() == [1, 5, 6, 2] and data.lengths.tolist() == [4] * 5
    with pytest.raises(ValueError, match="5 per image"):
        CaptionData.from_token_lists(np.zeros((2, 2, 3), np.float32), [[1, 2]] * 5)


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    train, dev = toy_data(16, 0), toy_data(6, 1)
    cfg = resolve_config(Config, PROFILES, "smoke", {**TINY, "epochs": 4})
    full_model, full = train_model(cfg, train, dev, 20, checkpoint_dir=tmp_path / "a")
    # the "interrupted" run stops after 2 epochs, then a second call resumes from the checkpoint
    _, first = train_model(cfg, train, dev, 20, checkpoint_dir=tmp_path / "b", epochs=2)
    assert len(first.history) == 2
    torch.manual_seed(123)  # whatever happened in between must not matter
    resumed_model, resumed = train_model(cfg, train, dev, 20, checkpoint_dir=tmp_path / "b")
    assert resumed.resumed_from == 2
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    assert resumed.best_epoch == full.best_epoch
    for (n, p), (_, q) in zip(full_model.state_dict().items(), resumed_model.state_dict().items()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)
    assert evaluate(resumed_model, dev) == evaluate(full_model, dev)


def test_load_precomp_reads_a_written_split(tmp_path):
    from xmlib.data.formats.scan_precomp import write_split
    from xmlib.data.formats.vocab import build_vocab

    caps = ["a red fire engine", "a dog", "red dog running fast today", "fire", "an engine"] * 2
    write_split(tmp_path, "dev", np.ones((2, 3, 4), np.float32), caps)
    vocab = build_vocab(caps, threshold=1)
    data = load_precomp(tmp_path, "dev", vocab, max_words=5)
    assert data.n_images == 2 and data.tokens.shape[0] == 10
    assert data.lengths.tolist()[:5] == [5, 4, 5, 3, 4]  # <start> + at most 3 words + <end>
    assert data.tokens[0, 0] == 1 and data.tokens[0, 4] == 2 and data.tokens[0, 1] == vocab("a")


def test_mismatched_feature_size_is_named():
    cfg = resolve_config(Config, PROFILES, "smoke", {**TINY, "img_dim": 11})
    with pytest.raises(ValueError, match="img_dim"):
        train_model(cfg, toy_data(4, 0), toy_data(2, 1), 20)


def test_command_line_trains_on_a_precomp_folder(tmp_path, capsys):
    import json

    from xmlib.data.formats.scan_precomp import write_split
    from xmlib.data.formats.vocab import build_vocab, save_vocab
    from xmlib.sgraf.train import main

    rng = np.random.default_rng(0)
    words = ["red", "dog", "cat", "blue", "car", "sun"]
    all_caps = []
    for split, n in (("train", 8), ("dev", 4), ("test", 4)):
        caps = [" ".join(rng.choice(words, size=3)) for _ in range(5 * n)]
        write_split(tmp_path, split, rng.standard_normal((n, 2, 1280)).astype(np.float32), caps)
        all_caps += caps
    save_vocab(build_vocab(all_caps, threshold=1), tmp_path / "toy_vocab.json")
    main(["--profile", "smoke", "--data-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path / "ckpt")])
    out = json.loads(capsys.readouterr().out)
    assert out["best_epoch"] == 0 and 0.0 <= out["test"]["rsum"] <= 600.0
    assert (tmp_path / "ckpt" / "last.pt").exists()


def test_warmup_epochs_use_all_negatives_then_the_hardest():
    train, dev = toy_data(16, 0), toy_data(6, 1)
    base = resolve_config(Config, PROFILES, "smoke", {**TINY, "epochs": 2, "lr_step": 0, "max_violation": True})
    _, warm = train_model(base.replace(warmup_epochs=1), train, dev, 20)
    _, all_neg = train_model(base.replace(warmup_epochs=0, max_violation=False), train, dev, 20)
    _, hard = train_model(base.replace(warmup_epochs=0), train, dev, 20)
    losses = [[r["train_loss"] for r in res.history] for res in (warm, all_neg, hard)]
    assert losses[0][0] == losses[1][0] != losses[2][0]  # epoch 0: the all-negatives hinge
    assert losses[0][1] != losses[1][1]  # epoch 1: hardest negatives again
    # a sum over B - 1 negatives per positive is at least the hardest one's hinge
    assert losses[1][0] >= losses[2][0]


def test_model_config_is_the_architecture_under_the_same_names():
    import dataclasses

    from xmlib.sgraf.config import ModelConfig

    cfg = resolve_config(Config, PROFILES, "default", {"attn_leaky": 0.1, "lambda_softmax": 4.0})
    m = cfg.model()
    assert type(m) is ModelConfig and m.model() == m
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    assert names < {f.name for f in dataclasses.fields(Config)}  # every architecture field keeps its name
    assert all(getattr(m, n) == getattr(cfg, n) for n in names)
    assert {"lr", "epochs", "seed", "cpu_threads"}.isdisjoint(names)
    # the architecture's rules are checked once, in ModelConfig, for both classes
    for cls in (ModelConfig, Config):
        with pytest.raises(ConfigError, match=f"{cls.__name__}.similarity"):
            cls(similarity="scalar", aggregator="sgr")
        with pytest.raises(ConfigError, match="use_local"):
            cls(use_global=False, use_local=False)


def test_checkpoints_are_refused_after_a_code_change_and_kept_across_analysis_fields(tmp_path, monkeypatch):
    """A checkpoint is keyed by the config's training fields and the training code: editing the code
    must not hand back the old model as if it were new; changing n_boot or the test subset must not
    retrain."""
    from xmlib.core import fingerprint

    train, dev = toy_data(12, 0), toy_data(6, 1)
    cfg = resolve_config(Config, PROFILES, "smoke", {**TINY, "epochs": 2})
    _, first = train_model(cfg, train, dev, 20, checkpoint_dir=tmp_path)
    _, again = train_model(cfg.replace(n_boot=5000, test_images=3), train, dev, 20, checkpoint_dir=tmp_path)
    assert again.resumed_from == 2 and again.history == first.history  # nothing retrained
    real = fingerprint.code_hash
    monkeypatch.setattr(fingerprint, "code_hash", lambda *m: real(*m) + "-edited")
    with pytest.raises(RuntimeError, match="another configuration"):
        train_model(cfg, train, dev, 20, checkpoint_dir=tmp_path)


def test_a_step_that_cannot_fit_fails_before_allocating_with_its_estimate(monkeypatch, tmp_path):
    import xmlib.sgraf.train as T

    cfg = Config(**TINY, epochs=1, hardest_pairs=False)
    train, dev = toy_data(12, 0), toy_data(6, 1)
    need = T.step_bytes(cfg, train)
    pair = T.pair_bytes(cfg, round(float(train.lengths.float().mean())), 4)
    assert need == cfg.batch_size ** 2 * pair
    assert T.step_bytes(cfg.replace(batch_size=16), train) == 4 * need  # the square of the batch
    # autograd through the hardest-negative pairs only: 3 per row of the batch (SGRAFModel.hardest_scores)
    assert T.step_bytes(cfg.replace(hardest_pairs=True), train) == 3 * cfg.batch_size * pair
    assert T.step_bytes(cfg.replace(hardest_pairs=True, max_violation=False), train) == need
    # SAF's batch norm: plus one tile's graph in the backward pass of its block statistics, and what its forward
    # pass keeps for it (every pair's Eq. (1) projections and attention weights, within KEEP_BYTES)
    length = round(float(train.lengths.float().mean()))
    budget = T.KEEP_BYTES
    for agg in ("saf", "joint"):
        c = cfg.replace(hardest_pairs=True, aggregator=agg)
        kept = cfg.batch_size ** 2 * T.kept_pair_bytes(c, length, int(train.images.shape[1]))
        assert 0 < kept < budget
        monkeypatch.setattr(T, "KEEP_BYTES", budget)
        tile = T.STATISTICS_TILES * T.EVAL_BYTES
        assert T.step_bytes(c, train) == 3 * cfg.batch_size * pair + tile + kept
        monkeypatch.setattr(T, "KEEP_BYTES", kept // 2)  # the bound
        assert T.step_bytes(c, train) == 3 * cfg.batch_size * pair + tile + kept // 2
    monkeypatch.setattr(T, "KEEP_BYTES", budget)
    monkeypatch.setattr("xmlib.core.device.available_memory", lambda device=None: need - 1)
    with pytest.raises(MemoryError, match=r"batch_size=8 .* needs about .* GiB.*lower batch_size"):
        train_model(cfg, train, dev, 20, checkpoint_dir=tmp_path / "a")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())  # nothing was trained
    monkeypatch.setattr("xmlib.core.device.available_memory", lambda device=None: None)  # the system does not say: no check
    train_model(cfg, train, dev, 20, checkpoint_dir=tmp_path / "b")


def test_available_memory_reads_the_system():
    from xmlib.core.device import available_memory

    free = available_memory(torch.device("cpu"))
    assert free is None or free > 0


@pytest.mark.parametrize("aggregator", ["saf", "joint"])
def test_a_hardest_pairs_step_with_batch_statistics_equals_the_block_step(aggregator):
    """``make_step`` with ``hardest_pairs`` (SAF's block statistics in tiles, autograd through ≤ 3B pairs) and
    without (the whole block's graph): the same loss, gradients, parameters and running statistics after
    one Adam step, in float64, with two captions of one image in the batch."""
    from xmlib.sgraf.train import init_model, make_step

    data = toy_data(12, 0)
    cfg = Config(**TINY, aggregator=aggregator, dropout=0.0, max_violation=True, mask_same_image=True)
    caps = np.array([3, 17, 25, 40, 8, 51, 33, 4])  # captions 3 and 4 belong to image 0
    feats = torch.from_numpy(np.asarray(data.images[caps // 5], dtype=np.float64))
    start = init_model(cfg, 20).double().state_dict()
    results = []
    for hardest_pairs in (False, True):
        c = cfg.replace(hardest_pairs=hardest_pairs)
        model = init_model(c, 20, torch.device("cpu")).double().train()
        optimizer = torch.optim.Adam(model.parameters(), lr=c.lr)
        loss = make_step(model, data, c, torch.device("cpu"))((caps, feats))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        optimizer.step()
        results.append((loss.detach(), grads, {k: v.clone() for k, v in model.state_dict().items()}))
    (loss_block, g_block, block), (loss_pairs, g_pairs, pairs) = results
    assert loss_block > 0
    torch.testing.assert_close(loss_pairs, loss_block, rtol=0, atol=1e-10)
    assert g_pairs.keys() == g_block.keys()
    for name in g_block:
        torch.testing.assert_close(g_pairs[name], g_block[name], rtol=0, atol=1e-10, msg=name)
    moved = [k for k in block if not torch.equal(block[k], start[k])]
    assert any("bn.running" in k for k in moved) and any("w_local" in k for k in moved)
    # W_f's bias is added to every logit and removed again by the batch norm: its gradient is zero but for
    # rounding (~1e-15), which Adam's first step divides by |g| + 1e-8; its other parameters must agree
    b_f = "aggregate.w_f.bias" if aggregator == "saf" else "aggregate.saf.w_f.bias"
    assert g_block[b_f].abs().max() < 1e-12
    for name in block:
        if name != b_f:
            torch.testing.assert_close(pairs[name], block[name], rtol=0, atol=1e-10, msg=name)
