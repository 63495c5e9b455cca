"""The scoring shortcuts of a tile against plain forms, in float64 to 1e-10 (issue 11): the attention's scores
as one product over several captions, Eq. (1) written into the contexts, the SGR step's queries and
updates in one product; and the score matrix (tiles of several captions of one length) against a per-caption
reference computed with autograd on (so none of the no-grad shortcuts runs), the official code's switches on."""

import pytest
import torch

from xmlib import distances
from xmlib.sgraf import similarity
from xmlib.sgraf.config import OFFICIAL_CODE, ModelConfig
from xmlib.sgraf.model import SGRAFModel, encode_split, score_matrix
from xmlib.sgraf.sgr import GraphStep
from xmlib.sgraf.similarity import attend_text_to_image, vector_similarity

TOL = {"rtol": 0.0, "atol": 1e-10}


def unit(*shape: int) -> torch.Tensor:
    return distances.l2_normalize(torch.randn(*shape, dtype=torch.float64))


@pytest.mark.parametrize("official", [False, True])
def test_attention_of_several_captions_equals_each_caption_alone(official):
    torch.manual_seed(0)
    regions, words = unit(3, 5, 8), unit(4, 6, 8)
    lengths = torch.tensor([6, 2, 4, 1])  # ragged: padded words masked
    mask = torch.arange(6)[None] < lengths[:, None]
    kw = {"lambda_softmax": 9.0, "attn_leaky": 0.1, "l2_context": True, "norm_eps": "add"} if official else {}
    with torch.no_grad():
        ctx, alpha = attend_text_to_image(regions, words, mask, **kw)  # (3, 4, 6, 8): one product over the words
        for c, n in enumerate(lengths.tolist()):
            one_ctx, one_alpha = attend_text_to_image(regions, words[c:c + 1, :n], None, **kw)  # per image
            torch.testing.assert_close(ctx[:, c, :n], one_ctx[:, 0], **TOL)
            torch.testing.assert_close(alpha[:, c, :n], one_alpha[:, 0], **TOL)


def test_eq1_written_into_its_operand_equals_a_new_buffer():
    torch.manual_seed(1)
    x, y = torch.randn(3, 4, 5, 8, dtype=torch.float64), torch.randn(1, 4, 5, 8, dtype=torch.float64)
    w, b = torch.randn(6, 8, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    want = ((x - y).pow(2) @ w.T + b) / ((x - y).pow(2) @ w.T + b).norm(dim=-1, keepdim=True)
    with torch.no_grad():
        got = vector_similarity(x.clone(), y, w, b, consume=True)
        torch.testing.assert_close(got, want, **TOL)
        kept = x.clone()
        vector_similarity(kept, y, w, b)  # without consume the operand is left alone
        assert torch.equal(kept, x)
    # under autograd the operand is never overwritten, consume or not
    xg = x.clone().requires_grad_()
    torch.testing.assert_close(vector_similarity(xg, y, w, b, consume=True), want, **TOL)
    assert torch.equal(xg.detach(), x)


@pytest.mark.parametrize("bias", [False, True])
def test_fast_step_with_one_product_equals_the_plain_step_and_follows_new_weights(bias):
    torch.manual_seed(2)
    step = GraphStep(6, sgr_bias=bias).double()
    with torch.no_grad():
        for p in step.parameters():
            p.normal_()
    nodes = torch.randn(3, 4, 5, 6, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(step.fast(nodes, mask, global_only=False), step(nodes, mask)[0], **TOL)
        torch.testing.assert_close(step.fast(nodes, None, global_only=False), step(nodes)[0], **TOL)
        step.w_r.weight.mul_(-0.5)  # the cached fused weight must follow a changed W_r (and b_r)
        if bias:
            step.w_r.bias.add_(1.0)
        torch.testing.assert_close(step.fast(nodes, mask, global_only=False), step(nodes, mask)[0], **TOL)
    # with autograd: the same numbers, and gradients reach W_in, W_out and W_r through the one product
    out = step.fast(nodes, mask, global_only=False)
    torch.testing.assert_close(out, step(nodes, mask)[0], **TOL)
    out.sum().backward()
    assert all(lin.weight.grad is not None and lin.weight.grad.abs().max() > 0 for lin in (step.w_in, step.w_out, step.w_r))


def per_caption_reference(model: SGRAFModel, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each caption alone against every image, with autograd recording (no in-place shortcut), SGR by its plain
    steps (:func:`~xmlib.sgraf.sgr.sgr_step`, every node, separate W_in / W_out / W_r products)."""
    cols = []
    for c, n in enumerate(enc["lengths"].tolist()):
        nodes, _ = model.nodes(enc["regions"], enc["img_glob"], enc["words"][c:c + 1, :n], enc["txt_glob"][c:c + 1], None)
        if model.cfg.aggregator == "sgr":
            for step in model.aggregate.steps:
                nodes, _ = step(nodes)
            s = torch.sigmoid(model.aggregate.score(nodes[..., 0, :])).squeeze(-1)
        else:
            s = model.aggregate(nodes)
        cols.append(s.detach())
    return torch.cat(cols, dim=1)


@pytest.mark.parametrize("aggregator", ["sgr", "saf"])
@pytest.mark.parametrize("official", [False, True])
def test_score_matrix_tiles_of_several_captions_equal_a_plain_per_caption_reference(aggregator, official):
    torch.manual_seed(3)
    cfg = ModelConfig(img_dim=7, word_dim=5, embed_size=8, sim_dim=6, num_regions=5, sgr_steps=3, aggregator=aggregator)
    model = SGRAFModel(cfg.replace(**OFFICIAL_CODE) if official else cfg, 20).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.5)  # trained checkpoints have non-zero biases
    model.eval()
    lengths = torch.tensor([3, 1, 4, 3, 2, 4, 3, 3, 1, 4])  # ragged, several captions of each length
    tokens = torch.randint(4, 20, (10, 4)) * (torch.arange(4)[None] < lengths[:, None])
    enc = encode_split(model, torch.randn(6, 5, 7, dtype=torch.float64), tokens, lengths)
    want = per_caption_reference(model, enc)
    for max_bytes in (1, 10**9):  # one pair per tile; every caption of a length × every image in one tile
        got = score_matrix(model, enc, max_bytes=max_bytes, dtype=None)
        torch.testing.assert_close(got, want, **TOL)
    with torch.no_grad():
        loop = model.score_per_caption(enc["regions"], enc["img_glob"], enc["words"], enc["txt_glob"], lengths)
    torch.testing.assert_close(loop, want, **TOL)


@pytest.mark.parametrize("aggregator", ["sgr", "saf"])
@pytest.mark.parametrize("variant", ["paper", "official", "local only"])
def test_score_matrix_streaming_image_by_image_equals_the_plain_reference(aggregator, variant, monkeypatch):
    torch.manual_seed(4)
    cfg = ModelConfig(img_dim=7, word_dim=5, embed_size=8, sim_dim=6, num_regions=5, sgr_steps=3, aggregator=aggregator,
                      use_global=variant != "local only")
    model = SGRAFModel(cfg.replace(**OFFICIAL_CODE) if variant == "official" else cfg, 20).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.5)
    model.eval()
    lengths = torch.tensor([3, 1, 4, 3, 2, 4, 3, 3, 1, 4])
    tokens = torch.randint(4, 20, (10, 4)) * (torch.arange(4)[None] < lengths[:, None])
    enc = encode_split(model, torch.randn(6, 5, 7, dtype=torch.float64), tokens, lengths)
    want = per_caption_reference(model, enc)
    streamed = []
    real = similarity.SimilarityNodes.local_nodes_streamed
    monkeypatch.setattr(similarity.SimilarityNodes, "local_nodes_streamed",
                        lambda self, r, w, *lead: streamed.append(w.shape[:2]) or real(self, r, w, *lead))
    monkeypatch.setattr(similarity, "STREAM_ROWS", 1)  # these tiny tiles stream too
    monkeypatch.setattr(similarity, "STREAM_MACS", 1)
    got = score_matrix(model, enc, max_bytes=10**9, dtype=None)
    torch.testing.assert_close(got, want, **TOL)
    assert sorted(streamed) == [(1, 2), (2, 1), (3, 4), (4, 3)]  # one call per tile: captions × words of each length
    # at the default threshold a single caption's words are too few: the per-caption loop never streams
    monkeypatch.setattr(similarity, "STREAM_ROWS", 64)
    streamed.clear()
    with torch.no_grad():
        loop = model.score_per_caption(enc["regions"], enc["img_glob"], enc["words"], enc["txt_glob"], lengths)
    torch.testing.assert_close(loop, want, **TOL)
    assert streamed == []


def test_streaming_is_only_for_scoring_large_products_on_a_cpu_without_padding(monkeypatch):
    cfg = ModelConfig(img_dim=7, word_dim=5, embed_size=8, sim_dim=6, num_regions=5)
    nodes = SGRAFModel(cfg, 20).nodes
    regions, words = torch.randn(3, 5, 8), torch.randn(16, 4, 8)
    with torch.no_grad():
        assert not nodes.streams(regions, words, None)  # 64 words × 8 × 6: a small projection per image
        monkeypatch.setattr(similarity, "STREAM_MACS", 64 * 8 * 6)
        assert nodes.streams(regions, words, None)  # 64 words per image
        assert not nodes.streams(regions, words[:15], None)  # 60
        assert not nodes.streams(regions, words, torch.ones(16, 4, dtype=torch.bool))  # padded words: masked path
    assert not nodes.streams(regions, words, None)  # autograd records the nodes' weights: training
    i2t = SGRAFModel(cfg.replace(attention="i2t"), 20).nodes
    with torch.no_grad():
        assert not i2t.streams(regions, words, None)
