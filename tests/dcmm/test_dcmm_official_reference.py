"""The plain re-statement of the released code's training step (benchmarks/dcmm_official_reference.py)
computes what xmlib computes with ``OFFICIAL_CODE``, and the speed script runs end to end."""

import runpy
import sys
from pathlib import Path

import pytest
import torch

from xmlib.core.device import set_cpu_threads
from xmlib.dcmm.batching import pad_queries
from xmlib.dcmm.config import OFFICIAL_CODE, Config
from xmlib.dcmm.data import make_synthetic_queries
from xmlib.dcmm.loss import bpr_loss
from xmlib.dcmm.models import build_model

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def official():
    sys.path.insert(0, str(BENCH))
    try:
        import dcmm_official_reference
        yield dcmm_official_reference
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("g", ["cos", "edge"])
@pytest.mark.parametrize("k", [4, 12])
def test_release_step_equals_xmlib_with_the_official_switches(official, g, k):
    """Same weights, float64, eval mode: scores and BPR gradients of the release's edge-list model on
    the concatenated graph (per-query k-NN and z-score) = xmlib's padded batch, k = 4 (DCMM-edge on neighbour lists)
    and k = 12 (dense G)."""
    qs = make_synthetic_queries(3, 30, seed=2, visual_dim=16, ragged=True)
    data = pad_queries(qs, device=torch.device("cpu"), dtype=torch.float64, zscore_ddof=1)
    cfg = Config(hidden=6, conv_channels=5, n_conv=2, k=k, dropout=0.2, **OFFICIAL_CODE)
    torch.manual_seed(0)
    xm = build_model(f"dcmm-{g}", cfg, in_dim=4, visual_dim=16).double().eval()
    assert xm.uses_lists(data.mask.shape[1]) == (k == 4 and g == "edge")
    off = official.OfficialDCMM(4, 6, 5, 2, edge=g == "edge", visual_dim=16, dropout=0.2).double().eval()
    off.load_state_dict(xm.state_dict())
    s_x = xm(data)
    bpr_loss(s_x, data.rel, data.mask).backward()
    graphs = official.make_graphs([q.text for q in qs], [q.visual for q in qs], [q.rel for q in qs], torch.float64)
    batch = official.transform_and_collate(graphs, k)
    s_o = off(batch)
    official.official_bpr(s_o, batch.y, batch.batch, batch.n_graphs).backward()
    flat = torch.cat([s_x[b, : len(q)] for b, q in enumerate(qs)])
    torch.testing.assert_close(flat, s_o, atol=1e-12, rtol=0)
    for (name, p), q in zip(xm.named_parameters(), off.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-12, rtol=0, msg=name)


def test_speed_script_runs_quick(monkeypatch, capsys):
    threads = torch.get_num_threads()
    monkeypatch.setattr(sys, "argv", [str(BENCH / "dcmm_official_speed.py"), "--quick", "--ks", "10", "--repeats", "1"])
    monkeypatch.syspath_prepend(str(BENCH))
    try:
        runpy.run_path(str(BENCH / "dcmm_official_speed.py"), run_name="__main__")
    finally:
        set_cpu_threads(threads)                              # the script runs with one thread
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("DCMM-")]
    assert len(lines) == 2 and all("official/batched" in line and "loop/batched" in line for line in lines)
