"""Training runs over several seeds: cached by everything that can change them, run in worker processes.

A claim is judged over several training seeds (:mod:`xmlib.replication`), so every chapter trains
each compared model S times. A *job* is one such training run: an importable function

    fn(cfg, seed, workdir) -> dict of results

that loads its data from ``cfg``, trains one model with ``seed``, evaluates it and returns plain data
(numpy arrays, tensors, numbers, strings, lists and dicts of those). :func:`run_jobs` runs a list of
jobs and returns their results in order:

- **cached and never stale**: a job's key hashes the function's name, the model part of its config
  (:meth:`~xmlib.core.config.BaseConfig.model_fingerprint`: analysis-only fields are left out), the
  seed, and the source of the function's module and of every xmlib module it imports
  (:func:`~xmlib.core.fingerprint.code_hash`). A finished job is stored under
  ``<cache>/<name>-<key>/`` (``result.npz`` + ``result.json``, written atomically, no pickles) and
  loaded instead of retrained; an edit to the model or its training changes the key and retrains.
  ``workdir`` (``<cache>/train/<train key>``) keeps checkpoints, keyed without the
  evaluation-only fields (:func:`~xmlib.core.config.evaluation_field`): an interrupted job resumes, and
  testing a trained model on another subset reuses its checkpoints instead of retraining;
- **in parallel**: jobs run in ``workers`` spawned processes (default: one per CPU core on a CPU
  machine, one on a GPU, ``$XMLIB_WORKERS`` overrides), kept for the session. Each job runs with ONE
  torch thread on CPU, in a worker or not, so its numbers do not depend on how many workers there
  are. (Workers import the library once: code edited during a session reaches them after
  :func:`shutdown_pool` or a new session.)
- **ahead of time**: :func:`submit_jobs` (and :func:`submit_seeded`) start jobs in the pool and
  return at once; a chapter submits every model it trains at its start, and each cell's
  :func:`run_jobs` waits for the ones it needs, so the workers never wait for the notebook.
- **seeded**: the runner calls :func:`~xmlib.core.seed.seed_everything` with the job's seed first.
"""

from __future__ import annotations

import atexit
import importlib
import json
import math
import multiprocessing
import os
import shutil
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from xmlib.core.config import BaseConfig
from xmlib.core.device import get_device, set_cpu_threads
from xmlib.core.fingerprint import code_hash, combine
from xmlib.core.io import atomic_path, atomic_write_json
from xmlib.core.paths import runs_dir
from xmlib.core.progress import progress
from xmlib.core.seed import seed_everything

RESULT_NPZ, RESULT_JSON = "result.npz", "result.json"


@dataclass(frozen=True)
class Job:
    """One training run: ``fn`` (``"package.module:function"``), its config and its seed."""

    fn: str
    cfg: BaseConfig
    seed: int
    name: str = "job"

    def __post_init__(self) -> None:
        if ":" not in self.fn:
            raise ValueError(f"Job.fn must be 'module:function', got {self.fn!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Job.seed must be a non-negative int, got {self.seed!r}")

    @property
    def module(self) -> str:
        return self.fn.split(":", 1)[0]

    def key(self) -> str:
        """What can change this job's result: function, model config (seed apart), seed, code."""
        return combine(self.fn, self.cfg.model_fingerprint(exclude=("seed",)), str(self.seed), code_hash(self.module))

    def train_key(self) -> str:
        """What can change the trained model: the same without the evaluation-only fields, so that
        testing a trained model on another subset reuses its checkpoints."""
        return combine(self.fn, self.cfg.model_fingerprint(exclude=("seed",), evaluation=False), str(self.seed),
                       code_hash(self.module))

    def _slug(self) -> str:
        return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in self.name)[:60]

    def folder(self, cache: Path) -> Path:
        return cache / f"{self._slug()}-{self.key()}"

    def workdir(self, cache: Path) -> Path:
        """Keyed by :meth:`train_key` alone: jobs of any name that train the same model share it."""
        return cache / "train" / self.train_key()


class Result(dict):
    """A job's results (a dict), with ``folder`` (where they are stored), ``workdir`` (the job's
    checkpoints), ``seconds`` (its run time when it ran) and ``cached`` (loaded, not run now)."""

    folder: Path
    workdir: Path
    seconds: float
    cached: bool


def default_cache() -> Path:
    return runs_dir() / "cache"


def default_workers() -> int:
    """Processes for jobs: ``$XMLIB_WORKERS``, else 1 on a GPU, else the CPU cores this process may use."""
    env = os.environ.get("XMLIB_WORKERS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"XMLIB_WORKERS={env!r}: expected a whole number of worker processes") from None
        if n < 1:
            raise ValueError(f"XMLIB_WORKERS={env!r}: need at least 1 worker")
        return n
    if get_device().type != "cpu":
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------------------------------ storage
def _split(results: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays, plain = {}, {}
    for k, v in results.items():
        if not isinstance(k, str) or not k:
            raise TypeError(f"result keys must be non-empty strings, got {k!r}")
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                raise TypeError(f"result {k!r}: object arrays cannot be stored without pickle; use numbers or strings")
            arrays[k] = v
        else:
            try:
                json.dumps(v)
            except TypeError as exc:
                raise TypeError(f"result {k!r} of type {type(v).__name__} is neither an array nor JSON data") from exc
            plain[k] = v
    return arrays, plain


def _save(folder: Path, results: Mapping[str, Any], meta: dict[str, Any]) -> None:
    arrays, plain = _split(results)
    with atomic_path(folder / RESULT_NPZ) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    atomic_write_json(folder / RESULT_JSON, {"meta": meta, "values": plain, "arrays": sorted(arrays)})


def _load(folder: Path) -> Result | None:
    """The stored result, or None if absent or unreadable (then the job is run again)."""
    jpath, npath = folder / RESULT_JSON, folder / RESULT_NPZ
    if not (jpath.is_file() and npath.is_file()):
        return None
    try:
        doc = json.loads(jpath.read_text(encoding="utf-8"))
        with np.load(npath, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as exc:
        print(f"[xmlib.jobs] ignoring unreadable cached result in {folder} ({exc}); running the job again")
        return None
    if sorted(arrays) != doc.get("arrays"):
        return None
    res = Result({**doc["values"], **arrays})
    res.folder, res.seconds, res.cached = folder, float(doc["meta"].get("seconds", 0.0)), True
    res.workdir = folder.parent / doc["meta"]["workdir"] if "workdir" in doc["meta"] else folder / "work"
    return res


# ------------------------------------------------------------------------------------------ running
def _resolve(fn: str):
    module, name = fn.split(":", 1)
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"job function {fn!r} cannot be imported ({exc}); it must be 'package.module:function'") from exc


def _execute(job: Job, folder: str) -> float:
    """Run one job in this process (1 torch thread on CPU) and store its result; return seconds."""
    out = Path(folder)
    work = job.workdir(out.parent)
    work.mkdir(parents=True, exist_ok=True)
    threads = set_cpu_threads(1)  # one thread per job on CPU, in a worker or not: the same numbers
    try:
        seed_everything(job.seed)
        t0 = time.perf_counter()
        results = _resolve(job.fn)(job.cfg, job.seed, work)
        seconds = time.perf_counter() - t0
    finally:
        set_cpu_threads(threads)
    if not isinstance(results, Mapping):
        raise TypeError(f"job {job.fn} returned {type(results).__name__}; it must return a dict")
    _save(out, results, {"fn": job.fn, "seed": job.seed, "name": job.name, "config": job.cfg.to_dict(),
                         "config_class": type(job.cfg).__name__, "key": job.key(), "seconds": round(seconds, 2),
                         "workdir": work.relative_to(out.parent).as_posix()})
    return seconds


def _worker_init() -> None:
    os.environ["XMLIB_PROGRESS"] = "0"  # one bar in the parent, not one per worker
    # Ctrl-C (or a kernel's shutdown) interrupts the parent, which cancels the pool; a worker that also
    # caught it would only print a traceback of its idle wait.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_cpu_threads(1)


_POOL: dict[str, Any] = {"pool": None, "workers": 0}


def _pool(workers: int) -> ProcessPoolExecutor:
    """A pool of spawned workers kept for the whole session: starting one costs a few seconds (each
    worker imports torch), and a chapter runs many groups of jobs."""
    if _POOL["pool"] is None or _POOL["workers"] != workers:
        shutdown_pool()
        ctx = multiprocessing.get_context("spawn")
        _POOL["pool"] = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)
        _POOL["workers"] = workers
    return _POOL["pool"]


def shutdown_pool() -> None:
    """Stop the session's worker processes (also done at exit)."""
    if _POOL["pool"] is not None:
        _POOL["pool"].shutdown(wait=True, cancel_futures=True)
        _POOL["pool"], _POOL["workers"] = None, 0
    _INFLIGHT.clear()  # what was started ahead ran or was cancelled with its pool


atexit.register(shutdown_pool)


# Jobs started ahead by :func:`submit_jobs`, by result folder: (future, work folder). The call of
# :func:`run_jobs` that asks for one of them waits for it instead of starting it again.
_INFLIGHT: dict[str, tuple[Future, Path]] = {}


def _failure(job: Job, exc: BaseException) -> RuntimeError:
    if isinstance(exc, BrokenProcessPool):
        shutdown_pool()
        return RuntimeError(
            f"a worker process died while running {job.name!r} (seed {job.seed}): it ran out of memory, or a "
            "script started workers without the `if __name__ == '__main__':` guard that spawned processes need; "
            "use workers=1 (XMLIB_WORKERS=1) or add the guard")
    return RuntimeError(f"training run {job.name!r} (seed {job.seed}, {job.fn}) failed: {type(exc).__name__}: {exc}")


def _cancel_inflight() -> None:
    for fut, _ in _INFLIGHT.values():
        fut.cancel()
    _INFLIGHT.clear()


def _workers(workers: int | None) -> int:
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return workers


def submit_jobs(jobs: Sequence[Job], *, cache: str | Path | None = None, workers: int | None = None) -> int:
    """Start ``jobs`` in the background worker pool and return at once; the number started.

    A chapter submits every model it will train at its start, in the order its cells need them, so
    the workers keep training while the notebook computes its tables and figures, and no core idles
    at the end of one group of jobs while the next group waits for its cell. :func:`run_jobs` later
    waits for a submitted job instead of starting it again, and raises its error if it failed.
    Nothing is submitted with one worker (``XMLIB_WORKERS=1``, a GPU): jobs then run in order when
    asked for, as before. Jobs already stored, already submitted, or sharing a work folder (the
    same trained model) with an earlier job are left to :func:`run_jobs`.
    """
    cache = Path(cache) if cache is not None else default_cache()
    workers = _workers(workers)
    if workers == 1:
        return 0
    cache.mkdir(parents=True, exist_ok=True)
    busy = {work for _, work in _INFLIGHT.values()}
    started = 0
    for job in jobs:
        folder, work = job.folder(cache), job.workdir(cache)
        if str(folder) in _INFLIGHT or work in busy or _load(folder) is not None:
            continue
        busy.add(work)
        _INFLIGHT[str(folder)] = (_pool(workers).submit(_execute, job, str(folder)), work)
        started += 1
    return started


def run_jobs(jobs: Sequence[Job], *, cache: str | Path | None = None, workers: int | None = None,
             desc: str = "training runs") -> list[Result]:
    """Run (or load, or wait for, if :func:`submit_jobs` started them) every job; results in the
    order of ``jobs``. See the module docstring."""
    cache = Path(cache) if cache is not None else default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    folders = [job.folder(cache) for job in jobs]
    started = {i: _INFLIGHT.pop(str(f)) for i, f in enumerate(folders) if str(f) in _INFLIGHT}
    results: list[Result | None] = [None if i in started else _load(f) for i, f in enumerate(folders)]
    todo = {}
    for i, (job, f) in enumerate(zip(jobs, folders)):
        if results[i] is None and str(f) not in todo.values():
            todo[i] = str(f)
    workers = _workers(workers)
    if todo:
        bar = progress(None, desc=desc, total=len(todo))
        if workers == 1 or (len(todo) == 1 and not started and not _INFLIGHT):
            for i, f in todo.items():
                _execute(jobs[i], f)
                bar.update(1)
        else:
            try:
                _run_in_pool(jobs, todo, started, cache, workers, bar)
            except BaseException:
                _cancel_inflight()
                raise
        bar.close()
        for i, f in enumerate(folders):
            if results[i] is None:
                results[i] = _load(f)
                if results[i] is None:
                    raise RuntimeError(f"job {jobs[i].name!r} (seed {jobs[i].seed}) finished but left no result in {f}")
                results[i].cached = False
    return [r for r in results if r is not None]


def _run_in_pool(jobs: Sequence[Job], todo: Mapping[int, str], started: Mapping[int, tuple[Future, Path]],
                 cache: Path, workers: int, bar) -> None:
    """Wait for the jobs already started and run the others in the pool; jobs that share a work folder
    (the same trained model, tested on other subsets) run one after the other: the first trains, the
    next ones find its checkpoints."""
    pool = _pool(workers)
    pending: dict[Future, int] = {fut: i for i, (fut, _) in started.items()}
    running = {work: i for i, (_, work) in started.items()}  # work folder -> the job of this call training it
    queues: dict[Path, list[int]] = {}
    for i in todo:
        if i not in started:
            queues.setdefault(jobs[i].workdir(cache), []).append(i)
    later: dict[int, int] = {}
    for work, q in queues.items():
        if work in running:  # wait for the started job that trains this model, then run these in turn
            later[running[work]] = q[0]
        else:
            for fut, other in list(_INFLIGHT.values()):  # started for another call: let it finish first
                if other == work:
                    wait([fut])
            pending[pool.submit(_execute, jobs[q[0]], todo[q[0]])] = q[0]
        later.update({q[k]: q[k + 1] for k in range(len(q) - 1)})
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                try:
                    fut.result()
                except Exception as exc:
                    raise _failure(jobs[i], exc) from exc
                bar.update(1)
                if i in later:
                    pending[pool.submit(_execute, jobs[later[i]], todo[later[i]])] = later[i]
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise


def seeds_of(cfg: BaseConfig, n: int) -> list[int]:
    """The ``n`` training seeds of a chapter: ``cfg.seed``, ``cfg.seed + 1``, … (the base seed keys a set)."""
    base = int(getattr(cfg, "seed", 0))
    if n < 1:
        raise ValueError(f"need at least one seed, got {n}")
    return [base + i for i in range(n)]


def clear(cache: str | Path | None = None) -> None:
    """Remove every cached job result (for a cold rebuild)."""
    cache = Path(cache) if cache is not None else default_cache()
    if cache.exists():
        shutil.rmtree(cache)


def total_seconds(results: Sequence[Result]) -> float:
    """Training seconds of the results that ran now (cached ones cost nothing)."""
    return math.fsum(r.seconds for r in results if not r.cached)


def seeded_jobs(fn: str, configs: Mapping[str, BaseConfig], seeds: Sequence[int], *, prefix: str = "",
                single: Sequence[str] = (), also: Mapping[str, Job] | None = None) -> tuple[list[tuple[str, int]], list[Job]]:
    """The jobs of :func:`run_seeded`: (plan of (name, seed), jobs), the ``also`` jobs last."""
    plan = [(name, s) for name in configs for s in (seeds[:1] if name in single else seeds)]
    jobs = [Job(fn, configs[name], s, f"{prefix}{name}") for name, s in plan] + list((also or {}).values())
    return plan, jobs


def submit_seeded(fn: str, configs: Mapping[str, BaseConfig], seeds: Sequence[int], *, prefix: str = "",
                  single: Sequence[str] = (), also: Mapping[str, Job] | None = None, cache: str | Path | None = None,
                  workers: int | None = None) -> int:
    """Start the jobs of :func:`run_seeded` with the same arguments in the background (:func:`submit_jobs`)."""
    return submit_jobs(seeded_jobs(fn, configs, seeds, prefix=prefix, single=single, also=also)[1],
                       cache=cache, workers=workers)


def run_seeded(fn: str, configs: Mapping[str, BaseConfig], seeds: Sequence[int], *, prefix: str = "",
               single: Sequence[str] = (), also: Mapping[str, Job] | None = None, cache: str | Path | None = None,
               workers: int | None = None, desc: str = "training runs") -> dict[str, list[Result]]:
    """Run ``fn`` for every named config and every seed, all in one pool: ``{name: [result per seed]}``.

    Names in ``single`` (deterministic methods, e.g. DCMM's CM) run once, with the first seed. ``also``
    adds other jobs to the same pool (e.g. a reference model), each returned as a one-result list."""
    plan, jobs = seeded_jobs(fn, configs, seeds, prefix=prefix, single=single, also=also)
    results = run_jobs(jobs, cache=cache, workers=workers, desc=desc)
    out: dict[str, list[Result]] = {name: [] for name in configs}
    for (name, _), r in zip(plan, results):
        out[name].append(r)
    for name, r in zip(also or {}, results[len(plan):]):
        out[name] = [r]
    return out
