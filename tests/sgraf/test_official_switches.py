"""The official code's switches one at a time, each against a plain form written here from its formula:
Eq. (1) with a bias, the SGR step with biases (plain loop; fast form = plain), where the norm's ε goes,
and the float64 score matrix. Float64 agreement is asked to 1e-10."""

import math

import pytest
import torch

from xmlib import distances
from xmlib.sgraf.config import OFFICIAL_CODE, ModelConfig
from xmlib.sgraf.encoders import ImageEncoder
from xmlib.sgraf.model import SGRAFModel, encode_split, score_matrix
from xmlib.sgraf.normalize import EPS, l2_normalize
from xmlib.sgraf.saf import saf_weights
from xmlib.sgraf.sgr import SGR, GraphStep, sgr_step
from xmlib.sgraf.similarity import SimilarityNodes, attend_text_to_image, vector_similarity

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.float64: {"rtol": 0.0, "atol": 1e-10}}


def close(got, want):
    torch.testing.assert_close(got, want.to(got.dtype), **TOL[got.dtype])


def norm_by_rule(v: list[float], norm_eps: str) -> list[float]:
    """v / (‖v‖ + ε) (official) or v / max(‖v‖, ε) (xmlib), in Python floats."""
    n = math.sqrt(sum(x * x for x in v))
    den = n + EPS if norm_eps == "add" else max(n, EPS)
    return [x / den for x in v]


# --- Eq. (1) with a bias ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_eps", ["clamp", "add"])
def test_vector_similarity_with_bias_matches_loop(dtype, norm_eps):
    torch.manual_seed(0)
    x, y = torch.randn(4, 6, dtype=dtype), torch.randn(4, 6, dtype=dtype)
    w, b = torch.randn(3, 6, dtype=dtype), torch.randn(3, dtype=dtype)
    got = vector_similarity(x, y, w, b, norm_eps=norm_eps)
    for r in range(4):
        v = [sum(float(w[a, k]) * float(x[r, k] - y[r, k]) ** 2 for k in range(6)) + float(b[a]) for a in range(3)]
        close(got[r], torch.tensor(norm_by_rule(v, norm_eps), dtype=torch.float64))
    # the bias changes the vector (a test that could not see it would pass without it)
    assert (vector_similarity(x, y, w, norm_eps=norm_eps) - got).abs().max() > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
def test_similarity_nodes_use_the_bias_of_both_projections(dtype):
    torch.manual_seed(1)
    cfg = ModelConfig(embed_size=5, sim_dim=4, sim_bias=True)
    nodes = SimilarityNodes(cfg).to(dtype)
    assert nodes.w_global.bias is not None and nodes.w_local.bias is not None
    with torch.no_grad():
        nodes.w_global.bias.normal_()
        nodes.w_local.bias.normal_()
    unit = lambda *s: distances.l2_normalize(torch.randn(*s, dtype=dtype))  # noqa: E731
    v, vg, t, tg = unit(2, 3, 5), unit(2, 5), unit(3, 4, 5), unit(3, 5)
    mask = torch.arange(4)[None] < torch.tensor([4, 1, 2])[:, None]
    out, _ = nodes(v, vg, t, tg, mask)
    close(out[1, 2, 0], vector_similarity(vg[1], tg[2], nodes.w_global.weight, nodes.w_global.bias))
    ctx, _ = attend_text_to_image(v, t, mask)
    close(out[0, 1, 1 + 0], vector_similarity(ctx[0, 1, 0], t[1, 0], nodes.w_local.weight, nodes.w_local.bias))
    assert SimilarityNodes(ModelConfig(embed_size=5, sim_dim=4)).w_local.bias is None  # the paper: no bias


# --- SGR step with biases ---------------------------------------------------------------------------------

def random_step(dtype, m=5, seed=2) -> GraphStep:
    torch.manual_seed(seed)
    step = GraphStep(m, sgr_bias=True).to(dtype)
    with torch.no_grad():
        for lin in (step.w_in, step.w_out, step.w_r):
            lin.bias.normal_()  # non-zero biases (nn.Linear's are small but not zero; make them count)
    return step


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgr_step_with_biases_matches_loop(dtype):
    step = random_step(dtype, m=3)
    s = torch.randn(4, 3, dtype=dtype)
    mask = torch.tensor([True, True, True, False])
    step.requires_grad_(False)
    new, edges = step(s, mask)
    w_in, w_out, w_r = step.w_in.weight, step.w_out.weight, step.w_r.weight
    b_in, b_out, b_r = step.w_in.bias, step.w_out.bias, step.w_r.bias
    for p in range(4):
        logits = [float((w_in @ s[p] + b_in) @ (w_out @ s[q] + b_out)) for q in range(3)]
        top = max(logits)
        ex = [math.exp(z - top) for z in logits]
        e = [x / sum(ex) for x in ex] + [0.0]
        close(edges[p], torch.tensor(e, dtype=torch.float64))
        agg = sum(e[q] * s[q] for q in range(4))
        close(new[p], torch.relu(w_r @ agg + b_r))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_step_equals_plain_step_with_biases(dtype):
    step = random_step(dtype, m=6)
    nodes = torch.randn(3, 4, 5, 6, dtype=dtype)  # (n_i, n_c, P, m)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        plain, _ = step(nodes, mask)
        close(step.fast(nodes, mask, global_only=False), plain)
        close(step.fast(nodes, mask, global_only=True)[..., 0, :], plain[..., 0, :])
        # the key bias cancels in the row softmax; the query bias does not
        before = step.fast(nodes, mask, global_only=False)
        step.w_out.bias.add_(3.0)
        close(step(nodes, mask)[0], before)
        step.w_in.bias.add_(3.0)
        assert (step(nodes, mask)[0] - before).abs().max() > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_global", [True, False])
def test_fast_sgr_with_biases_equals_plain_steps(dtype, use_global):
    torch.manual_seed(3)
    sgr = SGR(ModelConfig(sim_dim=6, sgr_steps=3, use_global=use_global, sgr_bias=True)).to(dtype)
    with torch.no_grad():
        for name, p in sgr.named_parameters():
            if name.endswith("bias"):
                p.normal_()
    nodes = torch.randn(2, 3, 5, 6, dtype=dtype).abs()
    mask = torch.arange(5)[None] < torch.tensor([5, 2, 4])[:, None]
    with torch.no_grad():
        h = nodes
        for step in sgr.steps:  # the plain steps, every node updated at every step
            h, _ = sgr_step(h, step.w_in.weight, step.w_out.weight, step.w_r.weight, mask,
                            b_in=step.w_in.bias, b_out=step.w_out.bias, b_r=step.w_r.bias)
        if use_global:
            out = h[..., 0, :]
        else:
            w = mask.to(dtype).expand(h.shape[:-1]).unsqueeze(-1)
            out = (h * w).sum(-2) / w.sum(-2)
        ref = torch.sigmoid(out @ sgr.score.weight[0] + sgr.score.bias[0])
        close(sgr(nodes, mask), ref)
    assert sum(p.numel() for p in sgr.parameters()) == 3 * 3 * (36 + 6) + 7


# --- where the norm's epsilon goes -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_normalize_rules(dtype):
    torch.manual_seed(4)
    x = torch.randn(5, 3, dtype=dtype)
    x[0] = 0.0
    x[1] *= 1e-9  # norm below ε: the rules part ways completely
    for rule in ("clamp", "add"):
        got = l2_normalize(x, norm_eps=rule)
        for r in range(5):
            close(got[r], torch.tensor(norm_by_rule([float(v) for v in x[r]], rule), dtype=torch.float64))
    # the default rule is what xmlib computed before the switch existed, bit for bit
    assert torch.equal(l2_normalize(x), distances.l2_normalize(x))
    if dtype == torch.float64:  # a unit-size vector differs by ~1e-8 relative: far above a 1e-10 check
        d = (l2_normalize(x[2:], norm_eps="add") - l2_normalize(x[2:])).abs().max()
        assert 1e-10 < d < 1e-7
    with pytest.raises(ValueError, match="norm_eps"):
        l2_normalize(x, norm_eps="max")


@pytest.mark.parametrize("dtype", DTYPES)
def test_saf_weights_official_epsilon(dtype):
    torch.manual_seed(5)
    logits = torch.randn(3, 6, dtype=dtype)
    mask = torch.arange(6)[None] < torch.tensor([6, 1, 4])[:, None]
    got = saf_weights(logits, mask, norm_eps="add")
    for r in range(3):
        sig = [1 / (1 + math.exp(-float(z))) if mask[r, j] else 0.0 for j, z in enumerate(logits[r])]
        close(got[r], torch.tensor([s / (sum(sig) + EPS) for s in sig], dtype=torch.float64))
    assert torch.equal(saf_weights(logits, mask), saf_weights(logits, mask, norm_eps="clamp"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_with_official_epsilon_matches_loop(dtype):
    torch.manual_seed(6)
    v = distances.l2_normalize(torch.randn(2, 3, 4, dtype=dtype))
    t = distances.l2_normalize(torch.randn(2, 4, 4, dtype=dtype))
    lengths = [4, 2]
    mask = torch.arange(4)[None] < torch.tensor(lengths)[:, None]
    ctx, alpha = attend_text_to_image(v, t * mask[..., None], mask, lambda_softmax=9.0, attn_leaky=0.1,
                                      l2_context=True, norm_eps="add")
    leaky = lambda z: z if z > 0 else 0.1 * z  # noqa: E731
    for i in range(2):
        for c in range(2):
            n = lengths[c]
            cos = [[leaky(float(v[i, r] @ t[c, j])) for j in range(n)] for r in range(3)]  # (K, L_c)
            cos = [norm_by_rule(row, "add") for row in cos]  # c_rj / (sqrt(Σ_j c_rj²) + ε): over the words
            for j in range(n):
                e = [math.exp(9.0 * cos[r][j]) for r in range(3)]
                a = [x / sum(e) for x in e]
                close(alpha[i, c, j], torch.tensor(a, dtype=torch.float64))
                raw = sum(a[r] * v[i, r].double() for r in range(3))
                close(ctx[i, c, j], torch.tensor(norm_by_rule(raw.tolist(), "add"), dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_image_encoder_with_official_epsilon(dtype):
    torch.manual_seed(7)
    enc = ImageEncoder(ModelConfig(img_dim=5, embed_size=4, norm_eps="add")).to(dtype).eval()
    x = torch.randn(2, 3, 5, dtype=dtype)
    regions, _ = enc(x)
    h = x @ enc.fc.weight.T + enc.fc.bias
    close(regions, h / (h.norm(dim=-1, keepdim=True) + EPS))


# --- the preset and float64 end to end ----------------------------------------------------------------------

def test_official_code_preset_names_model_fields_only():
    cfg = ModelConfig(num_regions=5).replace(**OFFICIAL_CODE)
    assert (cfg.attn_leaky, cfg.l2_context, cfg.global_norm) == (0.1, True, "region")
    assert (cfg.sim_bias, cfg.sgr_bias, cfg.norm_eps) == (True, True, "add")
    default = ModelConfig()
    assert (default.sim_bias, default.sgr_bias, default.norm_eps) == (False, False, "clamp")


@pytest.mark.parametrize("dtype", DTYPES)
def test_score_matrix_keeps_float64_when_asked(dtype):
    torch.manual_seed(8)
    cfg = ModelConfig(img_dim=6, word_dim=5, embed_size=4, sim_dim=3, num_regions=5, sgr_steps=2).replace(**OFFICIAL_CODE)
    model = SGRAFModel(cfg, 20).to(dtype).eval()
    images = torch.randn(3, 5, 6, dtype=dtype)
    lengths = torch.tensor([3, 1, 4, 2])
    tokens = torch.randint(4, 20, (4, 4)) * (torch.arange(4)[None] < lengths[:, None])
    enc = encode_split(model, images, tokens, lengths)
    with torch.no_grad():
        whole = model.score_block(enc["regions"], enc["img_glob"], enc["words"], enc["txt_glob"], lengths)
    got = score_matrix(model, enc, max_bytes=1, dtype=None)
    assert got.dtype == dtype and score_matrix(model, enc).dtype == torch.float32
    close(got, whole)
