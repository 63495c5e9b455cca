"""SAF: weights are L1-normalised sigmoids over the real nodes; the one-channel BN over valid nodes."""

import pytest
import torch

from xmlib.sgraf.config import ModelConfig
from xmlib.sgraf.saf import SAF, AverageAggregation, MaskedBatchNorm, saf_weights

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_saf_weights_sum_to_one(dtype):
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6, dtype=dtype)
    mask = (torch.arange(6)[None] < torch.tensor([6, 1, 3, 5])[:, None]).expand(3, 4, 6)
    beta = saf_weights(logits, mask)
    torch.testing.assert_close(beta.sum(-1), torch.ones(3, 4, dtype=dtype))
    assert (beta[~mask] == 0).all() and (beta[mask] > 0).all()
    sig = torch.sigmoid(logits[0, 2, :3])
    torch.testing.assert_close(beta[0, 2, :3], sig / sig.sum())


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_batchnorm_matches_batchnorm_on_valid_entries(dtype):
    torch.manual_seed(1)
    x = torch.randn(4, 5, dtype=dtype)
    mask = torch.rand(4, 5) > 0.3
    mine, ref = MaskedBatchNorm().to(dtype), torch.nn.BatchNorm1d(1).to(dtype)
    out = mine(x, mask)
    want = ref(x[mask].unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(out[mask], want)
    torch.testing.assert_close(mine.running_mean, ref.running_mean)
    torch.testing.assert_close(mine.running_var, ref.running_var)
    mine.eval(), ref.eval()
    torch.testing.assert_close(mine(x, mask)[mask], ref(x[mask].unsqueeze(1)).squeeze(1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_saf_and_average_ignore_padding(dtype):
    torch.manual_seed(2)
    nodes = torch.randn(2, 3, 5, 4, dtype=dtype).abs()
    mask = torch.arange(5)[None] < torch.tensor([5, 2, 4])[:, None]
    junk = nodes.clone()
    junk[:, 1, 2:] = 7.0
    for agg in (SAF(ModelConfig(sim_dim=4)), AverageAggregation(ModelConfig(sim_dim=4, aggregator="average"))):
        agg = agg.to(dtype).eval()
        torch.testing.assert_close(agg(junk, mask), agg(nodes, mask))
        agg.train()  # the training statistics skip padded nodes too
        torch.testing.assert_close(agg(junk, mask), agg(nodes, mask))
    beta = SAF(ModelConfig(sim_dim=4)).to(dtype).weights(nodes, mask)
    torch.testing.assert_close(beta.sum(-1), torch.ones(2, 3, dtype=dtype))
