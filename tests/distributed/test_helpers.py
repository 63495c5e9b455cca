"""xmlib.core.distributed in one process (the helpers' arithmetic and the no-op path) and the device
helper's distributed and GPU-speed switches."""

import numpy as np
import pytest
import torch

from xmlib.core import distributed
from xmlib.core.checkpoint import rng_state
from xmlib.core.config import ConfigError
from xmlib.core.device import amp_dtype, autocast, distributed_backend
from xmlib.core.train import _restore_rng
from xmlib.deepranking.config import Config as DRConfig
from xmlib.sgraf.config import Config


@pytest.mark.parametrize("n, world", [(13, 2), (7, 3), (2, 2), (100, 8), (0, 2)])
def test_shards_cover_every_row_once_in_rank_order(n, world):
    sizes = distributed.shard_sizes(n, world)
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1
    rows = np.concatenate([np.arange(n)[distributed.shard(n, r, world)] for r in range(world)])
    assert (rows == np.arange(n)).all()
    with pytest.raises(ValueError, match="cannot split"):
        distributed.shard_sizes(n, 0)


def test_rank_seeds_keep_rank_zero_and_differ_between_ranks():
    assert distributed.rank_seed(7, 0) == 7  # a one-process run keeps its seed
    seeds = [distributed.rank_seed(7, r) for r in range(1, 5)] + [distributed.rank_seed(8, 1)]
    assert len(set(seeds)) == len(seeds) and 7 not in seeds and 8 not in seeds
    assert distributed.rank_seed(7, 3) == distributed.rank_seed(7, 3)
    assert all(0 <= s < 2**63 for s in seeds)


def test_one_process_is_a_no_op(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = distributed.init()
    assert (ctx.rank, ctx.world_size, ctx.local_rank) == (0, 1, 0)
    assert not distributed.is_distributed() and distributed.is_main() and distributed.world_size() == 1
    x = torch.arange(6.0, requires_grad=True).reshape(3, 2)
    assert distributed.gather_rows(x) is x and distributed.gather_rows_grad(x, [3]) is x
    assert distributed.mean_over_ranks(2.5) == 2.5 and distributed.all_objects({"a": 1}) == [{"a": 1}]
    distributed.barrier()


def test_bad_torchrun_variables_are_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2 and WORLD_SIZE=2"):
        distributed.init()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x'"):
        distributed.init()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("XMLIB_DEVICE", "cpu")
    with pytest.raises(RuntimeError, match="MASTER_ADDR is not set; start the processes with torchrun"):
        distributed.init()


def test_backend_and_amp_switches():
    cpu = torch.device("cpu")
    assert distributed_backend(cpu) == "gloo"
    assert amp_dtype(cpu, "off") is None and amp_dtype(cpu, "auto") is None  # off on CPU by default
    assert amp_dtype(cpu, "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="amp must be one of"):
        amp_dtype(cpu, "fp16")
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast(cpu, "auto"):
        assert (a @ b).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    for cls in (Config, DRConfig):
        assert cls().amp == "off" and cls().tf32 is False
        with pytest.raises(ConfigError, match="amp"):
            cls(amp="fp16")


def test_a_checkpoint_of_one_process_restores_its_rng_state():
    torch.manual_seed(3)
    state = {"rng": rng_state(), "epoch": 0}  # the form written before rng_ranks existed
    first = torch.rand(3)
    _restore_rng(state)
    assert torch.equal(torch.rand(3), first)
    _restore_rng({**state, "rng_ranks": [state["rng"]]})
    assert torch.equal(torch.rand(3), first)
