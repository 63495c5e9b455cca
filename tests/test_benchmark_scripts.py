"""The sizing script of the SGRAF chapter runs end to end on the smoke data (so the numbers it gave stay reproducible)."""

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "sgraf_sizing.py"


def _assets_fetched() -> bool:
    from xmlib.data import assets
    from xmlib.data.benchmarks import captions

    return all(assets.is_fetched(a) for names, _ in captions.SOURCES.values() for a in names)


@pytest.mark.skipif(not _assets_fetched(), reason="assets not fetched (python -m xmlib.data fetch)")
def test_sgraf_sizing_prints_dev_rsum_per_epoch(monkeypatch, capsys):
    monkeypatch.setenv("XMLIB_PROGRESS", "0")
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--profile", "smoke", "--set", "saf_epochs=2", "--set",
                                      "aggregator=saf", "--vocab-threshold", "2"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["overrides"] == {"saf_epochs": 2, "aggregator": "saf"} and out["vocab_threshold"] == 2
    assert len(out["dev_rsum_per_epoch"]) == 2 and out["best_dev_rsum"] == max(out["dev_rsum_per_epoch"])
    assert 4 < out["vocab"]


def test_sgraf_sizing_rejects_a_malformed_override(monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--set", "epochs"])
    with pytest.raises(SystemExit):
        runpy.run_path(str(SCRIPT), run_name="__main__")


def test_deepranking_sampler_benchmark_runs_and_reports_every_size(monkeypatch, capsys, tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "deepranking_sampler.py"
    out = tmp_path / "sampler.json"
    monkeypatch.setattr(sys, "argv", [str(script), "--smoke", "--no-train", "--stream", "30000", "--out", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert [b["capacity"] for b in printed["buffered"]][:2] == [32, 200]
    for b in printed["buffered"]:
        assert b["buffered_images"] <= b["categories"] * b["capacity"] and "stream_vs_reference" in b
        assert {"reference_per_s", "batch_32_per_s", "batch_32_vs_reference"} <= set(b["triplets"])
    (stream,) = printed["stream"]
    assert stream["images"] == 30000 and stream["buffered_images"] == 10 * 200
    heap = list(stream["traced_heap"].values())
    assert len(heap) == 3 and heap[-1] - heap[0] < 0.25  # MiB: flat along the stream


@pytest.mark.slow  # two ranks and one process (tests/conftest.py runs slow files first)
def test_coco5k_sharded_eval_benchmark_compares_two_ranks_with_one_process(monkeypatch, capsys, tmp_path):
    """The script behind the COCO 5K sharding numbers, at 12 images: two torchrun ranks, one process, compared."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "coco5k_sharded_eval.py"
    out = tmp_path / "result.json"
    monkeypatch.setattr(sys, "argv", [str(script), "--images", "12", "--out", str(tmp_path / "coco"), "--json", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    got = json.loads(out.read_text())
    assert got["shape"] == [12, 60] and got["max_abs_diff"] <= 1e-6 and got["metrics_identical_on_every_rank"]
    assert [r["rank"] for r in got["ranks"]] == [0, 1] and all(r["peak_rss_mib"] > 0 for r in got["ranks"])
