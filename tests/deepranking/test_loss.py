import pytest
import torch

from xmlib.core.config import ConfigError, resolve_config
from xmlib.deepranking.config import PROFILES, Config
from xmlib.deepranking.loss import ranking_objective, squared_distance, triplet_hinge, weight_penalty

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def _unit(shape, dtype, seed):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gap", [0.1, 0.5, 2.0])
def test_hinge_matches_torch_triplet_loss_with_squared_l2(dtype, gap):
    q, p, n = (_unit((37, 8), dtype, s) for s in range(3))
    ref = torch.nn.TripletMarginWithDistanceLoss(
        distance_function=lambda a, b: ((a - b) ** 2).sum(-1), margin=gap, reduction="mean")(q, p, n)
    torch.testing.assert_close(triplet_hinge(q, p, n, gap), ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_hinge_matches_plain_loop_per_triplet(dtype):
    q, p, n = (_unit((11, 5), dtype, s + 10) for s in range(3))
    g = 0.7
    per = []
    for i in range(11):
        d_pos = sum((q[i, k] - p[i, k]) ** 2 for k in range(5))
        d_neg = sum((q[i, k] - n[i, k]) ** 2 for k in range(5))
        per.append(max(0.0, float(g + d_pos - d_neg)))
    got = triplet_hinge(q, p, n, g, reduction="none")
    torch.testing.assert_close(got, torch.tensor(per, dtype=dtype), **TOL[dtype])
    torch.testing.assert_close(triplet_hinge(q, p, n, g, reduction="sum"), torch.tensor(sum(per), dtype=dtype), **TOL[dtype])


def test_hinge_is_per_triplet_not_of_the_batch_mean():
    # triplet 1 violates by 1.5, triplet 2 is satisfied by a wide margin: per-triplet mean = 0.75;
    # a hinge of the batch-mean distance difference would give 0.
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # D+ = 2, 0
    n = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # D− = 0, 4
    assert triplet_hinge(q, p, n, gap=0.5, reduction="none").tolist() == [2.5, 0.0]
    assert triplet_hinge(q, p, n, gap=0.5).item() == pytest.approx(1.25)


def test_squared_distance_hand_values():
    a = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    b = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    assert squared_distance(a, b).tolist() == [25.0, 4.0]
    with pytest.raises(ValueError, match="same shape"):
        squared_distance(a, b[:1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_weight_decay_equals_half_lambda_penalty(dtype):
    """SGD(weight_decay=λ) on the mean hinge takes the same step as plain SGD on hinge + (λ/2)‖W‖²."""
    torch.manual_seed(0)
    lam, lr = 1e-3 * 50, 0.1
    base = torch.nn.Linear(6, 4).to(dtype)
    x = torch.randn(3, 9, 6, dtype=dtype)

    def loss_of(m):
        f = m(x)
        f = f / f.norm(dim=-1, keepdim=True)
        return triplet_hinge(f[0], f[1], f[2], 1.0)

    m1, m2 = (torch.nn.Linear(6, 4).to(dtype) for _ in range(2))
    m1.load_state_dict(base.state_dict())
    m2.load_state_dict(base.state_dict())
    o1 = torch.optim.SGD(m1.parameters(), lr=lr, weight_decay=lam)
    o2 = torch.optim.SGD(m2.parameters(), lr=lr)
    loss_of(m1).backward()
    o1.step()
    (loss_of(m2) + weight_penalty(m2.parameters(), lam, half=True)).backward()
    o2.step()
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, **TOL[dtype])


def test_ranking_objective_is_sum_plus_lambda_norm():
    q, p, n = (_unit((5, 3), torch.float64, s) for s in range(3))
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    got = ranking_objective(q, p, n, 1.0, [w], weight_decay=0.001)
    torch.testing.assert_close(got, triplet_hinge(q, p, n, 1.0, "sum") + 0.001 * 5.0)


def test_gap_validation():
    with pytest.raises(ValueError, match="gap"):
        triplet_hinge(*(torch.zeros(2, 2),) * 3, gap=0.0)
    for bad in (0.0, 4.0, 5.0):
        with pytest.raises(ConfigError, match="gap"):
            resolve_config(Config, PROFILES, "default", {"gap": bad})
    with pytest.raises(ConfigError, match="t_r"):
        resolve_config(Config, PROFILES, "default", {"t_r": 0})


def test_profiles_resolve():
    for name in PROFILES:
        cfg = resolve_config(Config, PROFILES, name)
        assert cfg.dropout == pytest.approx(0.4)  # keep probability 0.6
        assert cfg.weight_decay == pytest.approx(1e-3)  # λ of Eq. (4)
