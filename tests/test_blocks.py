"""Shared building blocks against plain loops (float32 and float64)."""

import math

import pytest
import torch

from xmlib.distances import cosine_similarity_matrix, l2_normalize, squared_euclidean_matrix
from xmlib.losses import bpr_loss, pairwise_hinge


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_distances_match_loops(dtype):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 11, generator=g, dtype=dtype), torch.randn(5, 11, generator=g, dtype=dtype)
    cos = torch.tensor([[float(x[i] @ y[j] / (x[i].norm() * y[j].norm())) for j in range(5)] for i in range(7)], dtype=dtype)
    sq = torch.tensor([[float(((x[i] - y[j]) ** 2).sum()) for j in range(5)] for i in range(7)], dtype=dtype)
    torch.testing.assert_close(cosine_similarity_matrix(x, y), cos)
    torch.testing.assert_close(squared_euclidean_matrix(x, y), sq)


def test_unit_sphere_identity_and_range():
    g = torch.Generator().manual_seed(1)
    x, y = l2_normalize(torch.randn(50, 8, generator=g, dtype=torch.float64)), l2_normalize(torch.randn(40, 8, generator=g, dtype=torch.float64))
    d = squared_euclidean_matrix(x, y)
    torch.testing.assert_close(d, 2 - 2 * cosine_similarity_matrix(x, y))
    assert d.min() >= 0 and d.max() <= 4
    torch.testing.assert_close(squared_euclidean_matrix(x, -x).diagonal(), torch.full((50,), 4.0, dtype=torch.float64))


def test_distance_shape_errors():
    with pytest.raises(ValueError, match="feature sizes differ"):
        squared_euclidean_matrix(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="2-D"):
        cosine_similarity_matrix(torch.zeros(3), torch.zeros(2, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_losses_match_loops(dtype):
    delta = torch.linspace(-6, 6, 25, dtype=dtype)
    hinge = torch.tensor([max(0.0, 0.5 - d) for d in delta.tolist()], dtype=dtype)
    bpr = torch.tensor([math.log1p(math.exp(-d)) for d in delta.tolist()], dtype=dtype)
    torch.testing.assert_close(pairwise_hinge(delta, 0.5, "none"), hinge)
    torch.testing.assert_close(bpr_loss(delta, "none"), bpr)
    torch.testing.assert_close(pairwise_hinge(delta, 0.5, "sum"), hinge.sum())
    torch.testing.assert_close(bpr_loss(delta), bpr.mean())


def test_known_values_and_stability():
    assert bpr_loss(torch.tensor([0.0]), "none").item() == pytest.approx(math.log(2))
    assert pairwise_hinge(torch.tensor([2.0]), 1.0).item() == 0.0
    assert bpr_loss(torch.tensor([-1e4]), "none").item() == pytest.approx(1e4)
    assert torch.isfinite(bpr_loss(torch.tensor([1e4]), "none")).all()
    with pytest.raises(ValueError):
        pairwise_hinge(torch.zeros(2), -1.0)
    with pytest.raises(ValueError, match="reduction"):
        bpr_loss(torch.zeros(2), "avg")
