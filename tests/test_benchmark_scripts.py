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
