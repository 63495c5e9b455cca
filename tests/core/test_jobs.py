"""Training runs over seeds: cached by config (without analysis fields), seed and code; the same
numbers with or without worker processes; never stale after a code change."""

from dataclasses import dataclass

import numpy as np
import pytest

from tests.core.jobs_fixture import ToyConfig
from xmlib.core import fingerprint, jobs
from xmlib.core.config import evaluation_field
from xmlib.core.jobs import Job, run_jobs

FN = "tests.core.jobs_fixture:toy"


def _runs(log):
    return log.read_text().split() if log.exists() else []


def test_cached_by_model_config_and_seed_not_by_analysis_fields(tmp_path):
    log = tmp_path / "calls.txt"
    cfg = ToyConfig(log=str(log))
    first = run_jobs([Job(FN, cfg, s, "toy") for s in (0, 1, 2)], cache=tmp_path, workers=1)
    assert _runs(log) == ["0", "1", "2"] and not any(r.cached for r in first)
    again = run_jobs([Job(FN, cfg.replace(n_boot=5000), s, "toy") for s in (0, 1, 2)], cache=tmp_path, workers=1)
    assert _runs(log) == ["0", "1", "2"] and all(r.cached for r in again)  # n_boot retrains nothing
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["weights"], b["weights"])
    assert list(again[0]["names"]) == ["a", "b"] and again[0]["history"] == [{"epoch": 0, "loss": 1.0}]
    assert not np.array_equal(first[0]["weights"], first[1]["weights"])  # seeds differ
    run_jobs([Job(FN, cfg.replace(width=4), 0, "toy")], cache=tmp_path, workers=1)
    assert _runs(log)[-1] == "0" and len(_runs(log)) == 4  # a model field retrains
    assert (first[0].workdir / "weights.txt").is_file()


def test_a_code_change_retrains(tmp_path, monkeypatch):
    log = tmp_path / "calls.txt"
    cfg = ToyConfig(log=str(log))
    run_jobs([Job(FN, cfg, 0, "toy")], cache=tmp_path, workers=1)
    run_jobs([Job(FN, cfg, 0, "toy")], cache=tmp_path, workers=1)
    assert len(_runs(log)) == 1
    real = jobs.code_hash
    monkeypatch.setattr(jobs, "code_hash", lambda *m: real(*m) + "-edited")
    res = run_jobs([Job(FN, cfg, 0, "toy")], cache=tmp_path, workers=1)
    assert len(_runs(log)) == 2 and not res[0].cached


def test_code_hash_follows_imports_and_changes_with_a_function(tmp_path, monkeypatch):
    pkg = tmp_path / "xmlib"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model" / "__init__.py").write_text("")
    (pkg / "model" / "train.py").write_text("from xmlib.model.layers import step\nfrom . import loss\n")
    (pkg / "model" / "layers.py").write_text("def step(x):\n    return x + 1\n")
    (pkg / "model" / "loss.py").write_text("def loss(x):\n    return x\n")
    (pkg / "other.py").write_text("X = 1\n")
    monkeypatch.setattr(fingerprint, "_package_root", lambda: pkg)
    assert fingerprint.describe("xmlib.model.train") == ["xmlib", "xmlib.model", "xmlib.model.layers",
                                                          "xmlib.model.loss", "xmlib.model.train"]
    before = fingerprint.code_hash("xmlib.model.train")
    (pkg / "other.py").write_text("X = 2\n")  # not imported: no change
    assert fingerprint.code_hash("xmlib.model.train") == before
    (pkg / "model" / "layers.py").write_text("def step(x):\n    return x + 2\n")
    assert fingerprint.code_hash("xmlib.model.train") != before


@pytest.mark.slow  # spawns worker processes
def test_workers_give_the_same_numbers_as_one_process(tmp_path):
    cfg = ToyConfig()
    inline = run_jobs([Job(FN, cfg, s, "toy") for s in (0, 1, 2)], cache=tmp_path / "a", workers=1)
    pooled = run_jobs([Job(FN, cfg, s, "toy") for s in (0, 1, 2)], cache=tmp_path / "b", workers=2)
    for a, b in zip(inline, pooled):
        np.testing.assert_array_equal(a["weights"], b["weights"])
        assert a["threads"] == b["threads"] == 1


def test_errors_name_the_job(tmp_path):
    with pytest.raises(RuntimeError, match="'bad'.*no data for this toy"):
        run_jobs([Job("tests.core.jobs_fixture:broken", ToyConfig(), s, "bad") for s in (0, 1)], cache=tmp_path,
                 workers=2)
    with pytest.raises(ValueError, match="module:function"):
        Job("nofunction", ToyConfig(), 0)
    with pytest.raises(ImportError, match="cannot be imported"):
        run_jobs([Job("tests.core.jobs_fixture:missing", ToyConfig(), 0)], cache=tmp_path, workers=1)


def test_an_unreadable_cached_result_is_run_again(tmp_path):
    log = tmp_path / "calls.txt"
    cfg = ToyConfig(log=str(log))
    (res,) = run_jobs([Job(FN, cfg, 0, "toy")], cache=tmp_path, workers=1)
    (res.folder / "result.npz").write_bytes(b"garbage")
    (again,) = run_jobs([Job(FN, cfg, 0, "toy")], cache=tmp_path, workers=1)
    assert len(_runs(log)) == 2 and not again.cached
    np.testing.assert_array_equal(res["weights"], again["weights"])


def test_run_seeded_groups_results_by_name_and_runs_single_methods_once(tmp_path):
    log = tmp_path / "calls.txt"
    cfg = ToyConfig(log=str(log))
    out = jobs.run_seeded(FN, {"a": cfg, "b": cfg.replace(width=2), "fixed": cfg.replace(width=5)}, [3, 4],
                          single=["fixed"], cache=tmp_path, workers=1)
    assert [len(out[n]) for n in ("a", "b", "fixed")] == [2, 2, 1]
    assert [r["seed"] for r in out["a"]] == [3, 4] and out["fixed"][0]["seed"] == 3
    assert out["b"][0]["weights"].shape == (2,)


@dataclass(frozen=True)
class EvalConfig(ToyConfig):
    subset: int = evaluation_field(0)


def test_jobs_sharing_a_work_folder_run_in_turn(tmp_path):
    """Two tests of one trained model (an evaluation field differs) share its checkpoints and never
    train it at the same time."""
    log = tmp_path / "calls.txt"
    a, b = EvalConfig(log=str(log), subset=1), EvalConfig(log=str(log), subset=2)
    ja, jb = Job(FN, a, 0, "toy"), Job(FN, b, 0, "another name")
    assert ja.key() != jb.key() and ja.workdir(tmp_path) == jb.workdir(tmp_path)
    out = run_jobs([ja, jb, Job(FN, a, 1, "toy")], cache=tmp_path, workers=2)
    assert len(out) == 3 and out[0].workdir == out[1].workdir != out[2].workdir


def test_submitted_jobs_run_once_in_the_background_and_are_waited_for(tmp_path):
    log = tmp_path / "calls.txt"
    cfg = ToyConfig(log=str(log), delay=0.3)
    configs = {"a": cfg, "b": cfg.replace(width=2)}
    assert jobs.submit_seeded(FN, configs, [0, 1], cache=tmp_path / "pool", workers=2) == 4
    assert jobs.submit_seeded(FN, configs, [0, 1], cache=tmp_path / "pool", workers=2) == 0  # already started
    assert len(jobs._INFLIGHT) == 4
    pooled = jobs.run_seeded(FN, configs, [0, 1], cache=tmp_path / "pool", workers=2)
    assert not jobs._INFLIGHT and len(_runs(log)) == 4  # waited for, not started again
    assert not any(r.cached for rs in pooled.values() for r in rs)  # they ran in this session
    inline = jobs.run_seeded(FN, configs, [0, 1], cache=tmp_path / "inline", workers=1)
    for name in configs:
        for a, b in zip(inline[name], pooled[name]):
            np.testing.assert_array_equal(a["weights"], b["weights"])
    assert jobs.submit_seeded(FN, configs, [0, 1], cache=tmp_path / "pool", workers=2) == 0  # stored
    assert jobs.submit_seeded(FN, {"c": cfg.replace(width=4)}, [0], cache=tmp_path / "one", workers=1) == 0


def test_a_submitted_job_that_trains_the_same_model_runs_before_the_other_test_of_it(tmp_path):
    run_jobs([Job(FN, ToyConfig(), s, "warm-up") for s in (0, 1)], cache=tmp_path / "warm", workers=2)  # workers ready
    log = tmp_path / "calls.txt"
    a, b = EvalConfig(log=str(log), subset=1, delay=1.5), EvalConfig(log=str(log), subset=2)
    ja, jb = Job(FN, a, 0, "toy"), Job(FN, b, 0, "another name")
    assert jobs.submit_jobs([ja, jb], cache=tmp_path, workers=2) == 1  # jb waits: the same work folder
    (rb,) = run_jobs([jb], cache=tmp_path, workers=2)  # another call: waits for ja, then runs jb
    assert len(_runs(log)) == 2 and str(ja.folder(tmp_path)) in jobs._INFLIGHT  # the toy fails if they overlap
    (ra,) = run_jobs([ja], cache=tmp_path, workers=2)
    assert not ra.cached and ra.workdir == rb.workdir and not jobs._INFLIGHT and len(_runs(log)) == 2


def test_a_submitted_job_that_failed_raises_when_asked_for(tmp_path):
    bad = Job("tests.core.jobs_fixture:broken", ToyConfig(), 0, "bad")
    assert jobs.submit_jobs([bad], cache=tmp_path, workers=2) == 1
    with pytest.raises(RuntimeError, match="'bad'.*no data for this toy"):
        run_jobs([bad], cache=tmp_path, workers=2)
    assert not jobs._INFLIGHT


def test_the_scheduler_and_the_verdicts_are_not_part_of_a_model_key():
    """Editing how runs are scheduled or judged retrains nothing; the model's own code does."""
    from xmlib.core.fingerprint import describe

    closure = describe("xmlib.dcmm.experiment")
    assert "xmlib.dcmm.models" in closure and "xmlib.core.train" in closure
    assert not any(m in closure for m in ("xmlib.core.jobs", "xmlib.replication"))
