"""benchmarks/gpu_check.py: says so and exits 0 without CUDA; its whole path runs on small CPU shapes."""

import importlib.util
import json
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys):
    module = _load()
    monkeypatch.setattr(module, "accelerator_available", lambda: False)
    assert module.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out


def test_tiny_cpu_run_reports_every_number(monkeypatch, tmp_path):
    monkeypatch.setenv("XMLIB_PROGRESS", "0")
    out = tmp_path / "gpu.json"
    assert _load().main(["--device", "cpu", "--tiny", "--steps", "1", "--eval-images", "4",
                         "--profiles", "sgraf-sgr,deepranking", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["profiles"]) == {"sgraf-sgr", "deepranking"}
    for name, r in res["profiles"].items():
        for prec in ("fp32", "bf16"):
            assert r[prec]["step_s"] > 0 and r[prec]["eval_per_s"] > 0 and r[prec]["peak_gib"] is None  # CPU: no GPU memory
            assert math.isfinite(r[prec]["final_loss"])
        diffs = [v for k, v in r["agreement"].items() if k.startswith("max_abs")]
        assert len(diffs) == 1 and 0 < diffs[0] < 0.1  # bf16 differs from float32, a little
    assert res["profiles"]["sgraf-sgr"]["shapes"]["eval_pairs"] == 4 * 20
