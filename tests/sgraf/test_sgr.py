"""SGR: the hand-computed toy graph, the plain step against a loop, the fast path against the plain one."""

import math

import pytest
import torch

from xmlib.sgraf.config import ModelConfig
from xmlib.sgraf.sgr import SGR, sgr_step, toy_graph_step

DTYPES = [torch.float32, torch.float64]


def test_toy_graph_by_hand():
    toy = toy_graph_step()
    torch.testing.assert_close(toy["edges"], toy["expected_edges"])
    torch.testing.assert_close(toy["new_nodes"], toy["expected_nodes"])
    e = math.e
    # node 3: logits (1, 1, 2) → weights (e, e, e²) / (2e + e²); new s_3 = (e + e², e + e²) / (2e + e²)
    want = (e + e * e) / (2 * e + e * e)
    torch.testing.assert_close(toy["new_nodes"][2], torch.tensor([want, want], dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgr_step_matches_loop(dtype):
    torch.manual_seed(0)
    p, m = 4, 3
    s = torch.randn(p, m, dtype=dtype)
    w_in, w_out, w_r = (torch.randn(m, m, dtype=dtype) for _ in range(3))
    mask = torch.tensor([True, True, True, False])
    new, edges = sgr_step(s, w_in, w_out, w_r, mask)
    for a in range(p):
        logits = [float((w_in @ s[a]) @ (w_out @ s[b])) for b in range(3)]
        top = max(logits)
        ex = [math.exp(z - top) for z in logits]
        e = [x / sum(ex) for x in ex] + [0.0]
        torch.testing.assert_close(edges[a], torch.tensor(e, dtype=dtype))
        agg = sum(e[b] * s[b] for b in range(p))
        torch.testing.assert_close(new[a], torch.relu(w_r @ agg))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_global", [True, False])
def test_fast_sgr_equals_plain_steps(dtype, use_global):
    torch.manual_seed(1)
    sgr = SGR(ModelConfig(sim_dim=6, sgr_steps=3, use_global=use_global)).to(dtype)
    nodes = torch.randn(2, 3, 5, 6, dtype=dtype).abs()
    mask = torch.arange(5)[None] < torch.tensor([5, 2, 4])[:, None]  # (3, 5): per caption
    states = sgr.reason(nodes, mask)
    last = states[-1][0]
    if use_global:
        ref = torch.sigmoid(sgr.score(last[..., 0, :])).squeeze(-1)
    else:
        w = mask.to(dtype).expand(last.shape[:-1]).unsqueeze(-1)
        ref = torch.sigmoid(sgr.score((last * w).sum(-2) / w.sum(-2))).squeeze(-1)
    torch.testing.assert_close(sgr(nodes, mask), ref)
    # masked nodes change nothing
    junk = nodes.clone()
    junk[:, 1, 2:] = 100.0
    torch.testing.assert_close(sgr(junk, mask), sgr(nodes, mask))


def test_steps_do_not_share_parameters():
    sgr = SGR(ModelConfig(sim_dim=4, sgr_steps=3))
    ptrs = {p.data_ptr() for p in sgr.parameters()}
    assert len(ptrs) == 3 * 3 + 2
    assert SGR(ModelConfig(sim_dim=4, sgr_steps=0))(torch.ones(2, 3, 4)).shape == (2,)
