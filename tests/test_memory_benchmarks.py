"""The Deep Ranking streaming benchmark (issue 12) runs end to end at a tiny size and reports what it promises
(benchmarks/paper_memory.py works at paper dimensions only, too slow for a test: run it by hand)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts processes (make test runs these files first, tests/conftest.py)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_deepranking_stream_reports_peak_memory():
    out = subprocess.run([sys.executable, str(BENCH / "deepranking_stream.py"), "--images", "1500", "--categories", "5",
                          "--capacity", "16", "--batch-size", "4"], check=True, capture_output=True, text=True).stdout
    rows = _json_lines(out)
    stream = [r for r in rows if "peak_rss_mb" in r]
    assert len(stream) == 1 and stream[0]["streamed"] == 1500 and stream[0]["buffered_items"] <= 5 * 16
    assert stream[0]["peak_rss_mb"] >= stream[0]["rss_after_imports_mb"] > 0
