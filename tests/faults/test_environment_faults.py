"""Faults around the data: an unusable cache or runs folder, bad settings and configs, NaN reaching
training, damaged checkpoints and cached results, the notebook runner's damaged stamp."""

from __future__ import annotations

import os

import pytest
import torch

from tests.faults.helpers import message_of
from xmlib.core import paths


@pytest.mark.parametrize("env,func", [("XMLIB_CACHE", paths.cache_dir), ("XMLIB_RUNS", paths.runs_dir)])
def test_folder_setting_that_is_a_file(tmp_path, monkeypatch, env, func):
    bad = tmp_path / "not-a-folder"
    bad.write_text("x")
    monkeypatch.setenv(env, str(bad))
    with pytest.raises(paths.UnusableFolderError) as e:
        func()
    message_of(e, f"${env}={bad}", "is a file, not a folder", f"point ${env} at a writable folder")
    monkeypatch.setenv(env, str(tmp_path / "fixed"))
    assert func() == (tmp_path / "fixed").resolve() and (tmp_path / "fixed").is_dir()


def test_cache_below_a_file(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("XMLIB_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(paths.UnusableFolderError) as e:
        paths.cache_dir()
    message_of(e, "$XMLIB_CACHE=", "cannot be created or written", "unset it")


def test_unusable_cache_surfaces_from_the_data_functions(tmp_path, monkeypatch):
    from xmlib.data.assets import is_fetched

    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("XMLIB_CACHE", str(tmp_path / "file"))
    with pytest.raises(paths.UnusableFolderError, match=r"\$XMLIB_CACHE="):
        is_fetched("openmoji")
    monkeypatch.setenv("XMLIB_CACHE", str(tmp_path / "cache"))
    assert is_fetched("openmoji") is False


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    monkeypatch.setenv("XMLIB_CACHE", str(ro))
    try:
        with pytest.raises(paths.UnusableFolderError) as e:
            paths.cache_dir()
        message_of(e, f"$XMLIB_CACHE={ro}", "cannot be created or written")
    finally:
        ro.chmod(0o755)
    assert paths.cache_dir() == ro.resolve()


@pytest.mark.parametrize("value,expected", [("two", "expected a whole number"), ("0", "need at least 1 worker")])
def test_workers_setting(monkeypatch, value, expected):
    from xmlib.core.jobs import default_workers

    monkeypatch.setenv("XMLIB_WORKERS", value)
    with pytest.raises(ValueError) as e:
        default_workers()
    message_of(e, f"XMLIB_WORKERS={value!r}", expected)
    monkeypatch.setenv("XMLIB_WORKERS", "1")
    assert default_workers() == 1


@pytest.mark.parametrize("overrides,expected", [({"lrr": 0.1}, "did you mean 'lr'"), ({"lr": "fast"}, "expected a number")])
def test_config_override(overrides, expected):
    from xmlib.core.config import ConfigError, resolve_config
    from xmlib.dcmm.config import PROFILES, Config

    with pytest.raises(ConfigError) as e:
        resolve_config(Config, PROFILES, "smoke", overrides)
    message_of(e, expected)
    assert resolve_config(Config, PROFILES, "smoke", {"lr": 0.1}).lr == 0.1


# ------------------------------------------------------------------------------------------ training
def _fit(batch, lr=0.1, scale=1.0, **kw):
    from xmlib.core.train import fit

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return fit(model, opt, epochs=kw.pop("epochs", 1), batches=lambda e: [batch] * 3,
               step=lambda b: (model(b["x"]) ** 2).mean() * scale, **kw)


def test_nan_inputs_blame_the_data_not_the_learning_rate():
    bad = {"x": torch.tensor([[1.0, 2.0], [float("nan"), 0.0]])}
    with pytest.raises(FloatingPointError) as e:
        _fit(bad)
    msg = message_of(e, "inputs hold NaN or inf", "batch['x']", "the data is at fault")
    assert "learning rate" not in msg
    assert len(_fit({"x": torch.ones(2, 2)}).history) == 1


def test_divergence_blames_the_learning_rate():
    with pytest.raises(FloatingPointError) as e:
        _fit({"x": torch.ones(2, 2)}, lr=1e30, scale=1e30)
    msg = message_of(e, "lower the learning rate (lr)")
    assert "inputs hold" not in msg


def test_truncated_checkpoint_on_resume(tmp_path):
    good = {"x": torch.ones(2, 2)}
    _fit(good, checkpoint_dir=tmp_path)
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[:50])  # a run killed while the disk was full
    with pytest.raises(RuntimeError) as e:
        _fit(good, epochs=2, checkpoint_dir=tmp_path)
    message_of(e, last, "delete it")
    last.unlink()
    assert len(_fit(good, epochs=2, checkpoint_dir=tmp_path).history) == 2


def test_damaged_cached_job_result_runs_again(tmp_path, capsys):
    from tests.core.jobs_fixture import ToyConfig
    from xmlib.core import jobs

    log = tmp_path / "calls.txt"
    job = jobs.Job("tests.core.jobs_fixture:toy", ToyConfig(log=str(log)), 0, "toy")
    first = jobs.run_jobs([job], cache=tmp_path / "cache", workers=1)[0]
    (result,) = (tmp_path / "cache").rglob(jobs.RESULT_JSON)
    result.write_text(result.read_text()[:20])
    again = jobs.run_jobs([job], cache=tmp_path / "cache", workers=1)[0]
    assert "unreadable cached result" in capsys.readouterr().out
    assert log.read_text().split() == ["0", "0"] and not again.cached
    torch.testing.assert_close(torch.as_tensor(again["weights"]), torch.as_tensor(first["weights"]))
    assert jobs.run_jobs([job], cache=tmp_path / "cache", workers=1)[0].cached


# ------------------------------------------------------------------------------------ notebook runner
def test_runner_unknown_profile(tmp_path):
    from xmlib.book import run as runner

    with pytest.raises(SystemExit) as e:
        runner.run([tmp_path / "x.py"], "fast", root=tmp_path)
    message_of(e, "unknown profile 'fast'", "smoke")


def test_runner_damaged_stamp_means_run_again(tmp_path, capsys):
    from xmlib.book import run as runner

    stamp = tmp_path / "demo.stamp.json"
    stamp.write_text('{"key": "abc", "deps"')
    assert runner.read_stamp(stamp) == {}
    assert "ignoring the unreadable stamp" in capsys.readouterr().err
    stamp.write_text('{"key": "abc"}')
    assert runner.read_stamp(stamp) == {"key": "abc"}
