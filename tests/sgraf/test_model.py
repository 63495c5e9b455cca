"""Block scoring (images × captions at once) equals the per-caption loop; chunked evaluation equals one block."""

import pytest
import torch

from xmlib.sgraf.config import ModelConfig
from xmlib.sgraf.model import SGRAFModel, encode_split, pair_bytes, plan_tiles, score_matrix, sgraf_scores

VARIANTS = [
    {"aggregator": "sgr"},
    {"aggregator": "saf"},
    {"aggregator": "average"},
    {"aggregator": "average", "similarity": "scalar"},
    {"aggregator": "sgr", "attention": "i2t"},
    {"aggregator": "sgr", "use_global": False, "sgr_steps": 1},
    {"aggregator": "sgr", "use_local": False, "sgr_steps": 0},
    {"aggregator": "saf", "attn_leaky": 0.1, "l2_context": True, "global_norm": "region", "num_regions": 5},
    {"aggregator": "joint"},
    {"aggregator": "joint", "use_global": False, "sgr_steps": 2},
]


def tiny(dtype=torch.float32, **kw):
    torch.manual_seed(0)
    m = SGRAFModel(ModelConfig(img_dim=12, word_dim=8, embed_size=10, sim_dim=6, **kw), 30).to(dtype)
    # give the BN layers non-trivial running statistics, then freeze them
    m.train()
    with torch.no_grad():
        m(torch.randn(6, 5, 12, dtype=dtype), torch.randint(4, 30, (6, 4)), torch.tensor([4, 3, 2, 4, 1, 3]))
    return m.eval()


def inputs(dtype, n_img=3, n_cap=7, max_len=6):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n_img, 5, 12, generator=g, dtype=dtype)
    lengths = torch.randint(1, max_len + 1, (n_cap,), generator=g)
    lengths[0] = max_len
    tokens = torch.randint(4, 30, (n_cap, max_len), generator=g) * (torch.arange(max_len)[None] < lengths[:, None])
    return images, tokens, lengths


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_block_equals_per_caption_loop(dtype, variant):
    model = tiny(dtype, **variant)
    images, tokens, lengths = inputs(dtype)
    with torch.no_grad():
        v, vg = model.encode_images(images)
        t, tg = model.encode_captions(tokens, lengths)
        block = model.score_block(v, vg, t, tg, lengths)
        loop = model.score_per_caption(v, vg, t, tg, lengths)
    assert block.shape == (3, 7)
    torch.testing.assert_close(block, loop)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_caption_alone_equals_caption_in_padded_batch(dtype):
    model = tiny(dtype)
    _, tokens, lengths = inputs(dtype)
    with torch.no_grad():
        t, tg = model.encode_captions(tokens, lengths)
        for c in range(len(lengths)):
            n = int(lengths[c])
            t1, tg1 = model.encode_captions(tokens[c:c + 1, :n], lengths[c:c + 1])
            torch.testing.assert_close(t[c, :n], t1[0])
            torch.testing.assert_close(tg[c], tg1[0])
            assert (t[c, n:] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunked_matrix_equals_one_block(dtype):
    model = tiny(dtype, aggregator="saf")
    images, tokens, lengths = inputs(dtype, n_img=5, n_cap=25)
    enc = encode_split(model, images.numpy(), tokens, lengths, batch_size=4)
    with torch.no_grad():
        whole = model.score_block(enc["regions"], enc["img_glob"], enc["words"], enc["txt_glob"], lengths)
    for max_bytes in [1, 20_000, 10**9]:  # one pair per tile, a few, everything of one length at once
        got = score_matrix(model, enc, max_bytes=max_bytes)
        torch.testing.assert_close(got, whole.float(), rtol=1e-5, atol=1e-6)


def test_training_forward_is_square_and_differentiable():
    model = tiny(aggregator="sgr").train()
    images, tokens, lengths = inputs(torch.float32, n_img=4, n_cap=4)
    s = model(images, tokens, lengths)
    assert s.shape == (4, 4) and ((s > 0) & (s < 1)).all()
    s.sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "score" in n or "w_in" in n)


def test_region_norm_needs_its_k_and_sgraf_average():
    model = tiny(global_norm="region", num_regions=5)
    with pytest.raises(ValueError, match="global_norm='feature'"):
        model.encode_images(torch.randn(2, 6, 12))
    a, b = torch.rand(2, 10), torch.rand(2, 10)
    torch.testing.assert_close(sgraf_scores(a, b), (a + b) / 2)
    with pytest.raises(ValueError, match="shape"):
        sgraf_scores(a, b[:, :5])
    with pytest.raises(ValueError, match="scalar"):
        ModelConfig(similarity="scalar", aggregator="sgr")


def test_image_pooling_works_for_any_number_of_regions():
    model = tiny()  # global_norm="feature"
    for k in (1, 5, 49):
        regions, glob = model.encode_images(torch.randn(3, k, 12))
        assert regions.shape == (3, k, 10) and glob.shape == (3, 10)
        torch.testing.assert_close(glob.norm(dim=-1), torch.ones(3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aggregator", ["sgr", "saf", "joint", "average"])
@pytest.mark.parametrize("buckets", [3, 0])
@pytest.mark.parametrize("training", [True, False])
def test_length_buckets_change_nothing(dtype, aggregator, buckets, training):
    """Groups of similar (3) or equal (0) length give the numbers and gradients of one padded block, in
    training (SAF's batch norm on the whole block's statistics) and in evaluation."""
    model = tiny(dtype, aggregator=aggregator, dropout=0.0, length_buckets=buckets)
    images, tokens, lengths = inputs(dtype, n_img=9, n_cap=9)
    model.train(training)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    whole = model.score_block(*model.encode_images(images), *model.encode_captions(tokens, lengths), lengths)
    (g_whole,) = torch.autograd.grad(whole.square().sum(), model.nodes.w_local.weight)
    model.load_state_dict(state)  # the same running statistics before the second call
    grouped = model(images, tokens, lengths)  # the training forward groups captions by length
    (g_grouped,) = torch.autograd.grad(grouped.square().sum(), model.nodes.w_local.weight)
    torch.testing.assert_close(grouped, whole)
    torch.testing.assert_close(g_grouped, g_whole)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_joint_model_scores_the_mean_of_its_sgr_and_saf_heads(dtype):
    m = tiny(dtype, aggregator="joint")
    images, tokens, lengths = inputs(dtype)
    enc = encode_split(m, images, tokens, lengths)
    mask = torch.arange(tokens.shape[1])[None] < lengths[:, None]
    with torch.no_grad():
        nodes, node_mask = m.nodes(enc["regions"], enc["img_glob"], enc["words"], enc["txt_glob"], mask)
        want = (m.aggregate.sgr(nodes, node_mask) + m.aggregate.saf(nodes, node_mask)) / 2
        got = m.score_block(enc["regions"], enc["img_glob"], enc["words"], enc["txt_glob"], lengths)
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="aggregator"):
        ModelConfig(aggregator="mean")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_word_attention_uses_the_models_own_settings(dtype):
    from xmlib.sgraf.similarity import attend_text_to_image

    images, tokens, lengths = inputs(dtype)
    n = int(lengths[1])
    for switches in ({}, {"lambda_softmax": 4.0, "attn_leaky": 0.1}):
        model = tiny(dtype, **switches)
        alpha = model.word_attention(images[2], tokens[1, :n])  # (L, K)
        with torch.no_grad():
            regions, _ = model.encode_images(images[2:3])
            words, _ = model.encode_captions(tokens[1:2, :n], lengths[1:2])
            _, ref = attend_text_to_image(regions, words, None, lambda_softmax=model.cfg.lambda_softmax,
                                          attn_leaky=model.cfg.attn_leaky)
        assert alpha.shape == (n, 5)
        torch.testing.assert_close(alpha, ref[0, 0])
        torch.testing.assert_close(alpha.sum(-1), torch.ones(n, dtype=dtype))
    # a model trained with other switches gives another picture than the defaults would
    default = attend_text_to_image(regions, words, None)[1][0, 0]
    assert not torch.allclose(alpha, default)
    with pytest.raises(ValueError, match="attention='t2i'"):
        tiny(dtype, attention="i2t").word_attention(images[0], tokens[0])


@pytest.mark.parametrize("max_bytes", [1, 5_000, 40_000, 10**9])
def test_tiles_cover_every_pair_once_with_one_length_and_within_the_bound(max_bytes):
    lengths = torch.tensor([3, 5, 3, 1, 5, 5, 2, 3, 3, 3, 5])
    n_img = 7
    cfg = ModelConfig(img_dim=12, word_dim=8, embed_size=10, sim_dim=6)
    size = lambda n: pair_bytes(cfg, n, 5)  # noqa: E731
    seen = torch.zeros(n_img, len(lengths), dtype=torch.int64)
    for length, idx, i0, n_it in plan_tiles(lengths, n_img, size, max_bytes):
        assert (lengths[idx] == length).all()  # one caption length per tile: nothing computed for padding
        assert n_it >= 1 and len(idx) >= 1
        assert len(idx) * n_it == 1 or len(idx) * n_it * size(length) <= max_bytes
        seen[i0:i0 + n_it, idx] += 1
    assert (seen == 1).all()


def test_pair_bytes_grows_with_the_caption_and_the_dimensions():
    small = ModelConfig(img_dim=12, word_dim=8, embed_size=10, sim_dim=6)
    assert pair_bytes(small, 4, 5) < pair_bytes(small, 8, 5) < pair_bytes(small.replace(embed_size=100), 8, 5)
    assert pair_bytes(small, 4, 5, itemsize=8) == 2 * pair_bytes(small, 4, 5)


def test_score_matrix_rejects_a_bound_that_is_not_positive():
    model = tiny()
    images, tokens, lengths = inputs(torch.float32)
    enc = encode_split(model, images.numpy(), tokens, lengths)
    with pytest.raises(ValueError, match="max_bytes"):
        score_matrix(model, enc, max_bytes=0)


@pytest.mark.parametrize("kw", VARIANTS)
def test_scoring_without_autograd_gives_the_numbers_of_the_training_path(kw):
    """The in-place shortcuts taken without autograd change no number: bit for bit in float64."""
    model = tiny(torch.float64, **kw)
    images, tokens, lengths = inputs(torch.float64)
    enc = encode_split(model, images.numpy(), tokens, lengths)
    args = (enc["regions"], enc["img_glob"], enc["words"], enc["txt_glob"], lengths)
    with torch.no_grad():
        fast = model.score_block(*args)
    with torch.enable_grad():  # inputs that need gradients: every operation records its graph
        slow = model.score_block(*(t.detach().requires_grad_() for t in args[:4]), lengths)
    assert slow.requires_grad
    assert torch.equal(fast, slow.detach())


def test_cached_graph_weights_follow_an_optimiser_step():
    """SGR reuses W_outᵀW_in while scoring; a changed weight must never be scored with the old product."""
    model = tiny(torch.float64, aggregator="sgr", sgr_bias=True)
    images, tokens, lengths = inputs(torch.float64)
    enc = encode_split(model, images.numpy(), tokens, lengths)
    args = (enc["regions"], enc["img_glob"], enc["words"], enc["txt_glob"], lengths)
    with torch.no_grad():
        before = model.score_block(*args)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.aggregate.steps[0].w_in.weight.grad = torch.ones_like(model.aggregate.steps[0].w_in.weight)
    model.aggregate.steps[1].w_in.bias.grad = torch.ones_like(model.aggregate.steps[1].w_in.bias)
    opt.step()
    with torch.no_grad():
        after = model.score_block(*args)
    with torch.enable_grad():
        fresh = model.score_block(*args)  # computes the products anew
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, fresh.detach(), rtol=0.0, atol=1e-12)


def test_a_negative_number_of_length_buckets_is_named():
    with pytest.raises(ValueError, match="length_buckets"):
        ModelConfig(length_buckets=-1)


@pytest.mark.parametrize("aggregator", ["sgr", "average"])
def test_training_tiles_of_one_pair_give_the_block_and_its_gradients(monkeypatch, aggregator):
    """``length_buckets=0`` cuts the training block into tiles bounded in bytes; with a bound of one
    byte every tile is one pair, and the scores and gradients are still those of one padded block."""
    import xmlib.sgraf.model as model_module

    monkeypatch.setattr(model_module, "EVAL_BYTES", 1)
    model = tiny(torch.float64, aggregator=aggregator, dropout=0.0, length_buckets=0).train()
    images, tokens, lengths = inputs(torch.float64, n_img=4, n_cap=6)
    whole = model.score_block(*model.encode_images(images), *model.encode_captions(tokens, lengths), lengths)
    (g_whole,) = torch.autograd.grad(whole.square().sum(), model.nodes.w_global.weight)
    tiled = model(images, tokens, lengths)
    (g_tiled,) = torch.autograd.grad(tiled.square().sum(), model.nodes.w_global.weight)
    torch.testing.assert_close(tiled, whole, rtol=0.0, atol=1e-12)
    torch.testing.assert_close(g_tiled, g_whole, rtol=0.0, atol=1e-12)


SAF_SWITCHES = [  # SAF's hand-written backward through Eq. (1) under every switch it reads
    {"aggregator": "saf", "norm_eps": "add", "sim_bias": True, "attn_leaky": 0.1, "l2_context": True},
    {"aggregator": "saf", "attention": "i2t"},
    {"aggregator": "saf", "use_global": False},
    {"aggregator": "saf", "use_local": False},
]


@pytest.mark.parametrize("kw", VARIANTS + SAF_SWITCHES, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
@pytest.mark.parametrize("same_image", [False, True])
@pytest.mark.parametrize("ragged", [True, False])
def test_hardest_scores_give_the_loss_and_gradients_of_the_full_block(kw, same_image, ragged, monkeypatch):
    """Autograd through the ≤ 3B pairs the hardest-negative loss reads: the same loss and the same gradient
    of every parameter as the full (B, B) graph, in float64 (training mode, no dropout). SAF's batch norm
    (``saf``, ``joint``): its block statistics come from tiles (here of a few pairs, so that a block spans
    many), and the running statistics after the step are those of the full block's forward."""
    import xmlib.sgraf.model as model_module
    from xmlib.sgraf.loss import contrastive_loss

    monkeypatch.setattr(model_module, "EVAL_BYTES", 20_000)  # tiles of 1..5 pairs at these sizes
    torch.manual_seed(0)
    model = SGRAFModel(ModelConfig(img_dim=12, word_dim=8, embed_size=10, sim_dim=6, dropout=0.0, **kw), 30)
    model = model.double().train()
    with torch.no_grad():  # trained models have non-zero biases (the official code starts some at zero)
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    images, tokens, lengths = inputs(torch.float64, n_img=7, n_cap=7)
    if not ragged:  # every caption of one length: no padded word anywhere
        lengths = torch.full_like(lengths, tokens.shape[1])
        tokens = torch.randint(4, 30, tokens.shape, generator=torch.Generator().manual_seed(2))
    ids = torch.tensor([0, 1, 1, 2, 3, 3, 4]) if same_image else None
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def loss_and_grads(scores_of):
        model.load_state_dict(start)  # the same running statistics before each form
        model.zero_grad()
        loss = contrastive_loss(scores_of(), 0.2, True, ids)
        loss.backward()
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, buffers

    full, g_full, b_full = loss_and_grads(lambda: model(images, tokens, lengths))
    fast, g_fast, b_fast = loss_and_grads(lambda: model.hardest_scores(images, tokens, lengths, ids))
    assert full > 0
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-10)
    assert g_full.keys() == g_fast.keys() and any(g.abs().max() > 0 for g in g_full.values())
    for name in g_full:
        torch.testing.assert_close(g_fast[name], g_full[name], rtol=0, atol=1e-10, msg=name)
    for name in b_full:  # SAF's running mean and variance moved, once, by the same amounts
        torch.testing.assert_close(b_fast[name], b_full[name], rtol=0, atol=1e-12, msg=name)
    saf = model.saf_head()
    if saf is not None:  # the statistics were updated (and so could have been updated wrongly)
        name = next(n for n, b in model.named_buffers() if b is saf.bn.running_mean)
        assert not torch.equal(b_full[name], start[name])


@pytest.mark.parametrize("kw", [{"aggregator": "saf"}, {"aggregator": "joint"},
                                {"aggregator": "saf", "norm_eps": "add", "l2_context": True, "sim_bias": True}],
                         ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_block_logit_statistics_are_those_of_the_batch_norm_and_need_saf(kw):
    """μ, σ² and N of SAF's logits over every real node of a ragged block, in tiles, against the masked
    values the batch norm reads in one padded block; every pair's score from the tiles' summaries (x, u,
    Gram) equals the pair scored with those statistics; an aggregator without SAF is named."""
    from xmlib.sgraf.model import block_logit_statistics

    model = tiny(torch.float64, **kw).train()
    saf = model.saf_head()
    images, tokens, lengths = inputs(torch.float64, n_img=4, n_cap=7)
    summaries = []
    with torch.no_grad():
        v, vg = model.encode_images(images)
        t, tg = model.encode_captions(tokens, lengths)
        nodes, mask = model.nodes(v, vg, t, tg, torch.arange(tokens.shape[1])[None] < lengths[:, None])
        x = saf.w_f(nodes).squeeze(-1)[mask.expand(4, -1, -1)]
        mean, var, n = block_logit_statistics(model, v, vg, t, tg, lengths, summaries)
        with saf.bn.given_statistics(mean, var):
            want = model.score_block(v, vg, t, tg, lengths)  # (4, 7), one padded block
            got = torch.full_like(want, float("nan"))
            for (_, idx, i0, n_it), xs, u, gram, other in summaries:
                s = saf.score_summaries(xs, u, gram)
                got[i0:i0 + n_it, idx] = s if other is None else (other + s) / 2
    assert int(n) == x.numel() == 4 * int((lengths + 1).sum())  # the global node and each real word, per pair
    torch.testing.assert_close(mean, x.mean(), rtol=0, atol=1e-13)
    torch.testing.assert_close(var, x.var(unbiased=False), rtol=0, atol=1e-13)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="aggregator='saf' or 'joint'"):
        block_logit_statistics(tiny(torch.float64, aggregator="sgr"), v, vg, t, tg, lengths)


KEPT_SWITCHES = [  # what the statistics pass keeps (y, and the text-to-image attention's r and α) under the switches
    {"aggregator": "joint", "norm_eps": "add", "sim_bias": True, "attn_leaky": 0.1, "l2_context": True, "sgr_bias": True},
    {"aggregator": "saf", "attention": "i2t", "sim_bias": True, "norm_eps": "add"},
    {"aggregator": "saf", "use_global": False, "attn_leaky": 0.1},
]


@pytest.mark.parametrize("kw", KEPT_SWITCHES, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_kept_and_recomputed_tiles_give_the_same_step(kw, monkeypatch):
    """The backward pass of block_logit_statistics from what the forward pass kept (Eq. (1)'s projections and the
    attention's weights) and from tiles recomputed whole (``KEEP_BYTES = 0``), and a budget that keeps some tiles
    only: the same loss and gradients (parameters and encoded inputs) as each other and as autograd through the
    whole block, in float64."""
    import xmlib.sgraf.model as model_module
    from xmlib.sgraf.loss import contrastive_loss

    monkeypatch.setattr(model_module, "EVAL_BYTES", 20_000)  # tiles of a few pairs
    torch.manual_seed(0)
    model = SGRAFModel(ModelConfig(img_dim=12, word_dim=8, embed_size=10, sim_dim=6, dropout=0.0, **kw), 30)
    model = model.double().train()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    images, tokens, lengths = inputs(torch.float64, n_img=7, n_cap=7)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    vjp, given = model_module._eq1_logit_vjp, []

    def spy(*args, y=None, **kwargs):  # which tiles' projections came from the forward pass
        given.append(y is not None)
        return vjp(*args, y=y, **kwargs)

    monkeypatch.setattr(model_module, "_eq1_logit_vjp", spy)

    def step(scores_of):
        model.load_state_dict(start)
        model.zero_grad()
        v, vg = model.encode_images(images)
        t, tg = model.encode_captions(tokens, lengths)
        enc = [e.detach().requires_grad_() for e in (v, vg, t, tg)]
        loss = contrastive_loss(scores_of(*enc), 0.2, True)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return loss.detach(), grads, [e.grad for e in enc]

    want = step(lambda *enc: model.score_block(*enc, lengths))  # autograd through the whole block
    tiles = len(plan_tiles(lengths, 7, lambda n: pair_bytes(model.cfg, n, 5, 8), model_module.STATISTICS_TILES * 20_000))
    some = 7 * model_module.kept_pair_bytes(model.cfg, int(lengths.max()), 5, 8)  # about one tile's worth
    for budget, kept in ((0, "none"), (some, "some"), (2**30, "all")):
        monkeypatch.setattr(model_module, "KEEP_BYTES", budget)
        given.clear()
        got = step(lambda *enc: model.hardest_block(*enc, lengths))
        n_groups = len(given) // tiles
        assert n_groups * tiles == len(given) and n_groups >= 1
        assert {"none": not any(given), "all": all(given), "some": 0 < sum(given) < len(given)}[kept], (kept, given)
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-10)
        assert got[1].keys() == want[1].keys()
        for name in want[1]:
            torch.testing.assert_close(got[1][name], want[1][name], rtol=0, atol=1e-10, msg=name)
        for g, w in zip(got[2], want[2]):
            assert (g is None) == (w is None)
            if w is not None:
                torch.testing.assert_close(g, w, rtol=0, atol=1e-10)


@pytest.mark.parametrize("aggregator", ["saf", "joint"])
def test_hardest_scores_with_batch_statistics_under_bf16_autocast(aggregator):
    """bf16 autocast (``amp="bf16"``): the tiles' statistics, the hand-written backward (in the weights' float32)
    and the differentiated pairs fit together; the diagonal and its gradients are those of the full block to
    bf16's precision (the hardest negatives themselves may differ where bf16 rounds two scores to one value)."""
    from xmlib.core.device import autocast

    images, tokens, lengths = inputs(torch.float32, n_img=7, n_cap=7)
    torch.manual_seed(0)
    model = SGRAFModel(ModelConfig(img_dim=12, word_dim=8, embed_size=10, sim_dim=6, dropout=0.0,
                                   aggregator=aggregator), 30).train()
    results = []
    for form in (model, model.hardest_scores):
        model.zero_grad()
        with autocast(torch.device("cpu"), "bf16"):
            s = form(images, tokens, lengths)
        s.diagonal().float().sum().backward()
        results.append((s.diagonal().float().detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                        if p.grad is not None}))
    (d_full, g_full), (d_fast, g_fast) = results
    torch.testing.assert_close(d_fast, d_full, rtol=0, atol=1e-2)
    for name in ("nodes.w_local.weight", "nodes.w_global.weight"):
        torch.testing.assert_close(g_fast[name], g_full[name], rtol=0.05, atol=0.02 * float(g_full[name].abs().max()))
