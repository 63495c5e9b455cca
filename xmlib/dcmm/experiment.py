"""DCMM's training runs for the chapter's seeds: one cross-validated method, one seed (a job of
:mod:`xmlib.core.jobs`), and the outcomes the replication engine compares.

:func:`cross_validated` is the job: it loads the queries named by the config (cached per process),
runs :func:`~xmlib.dcmm.protocol.cross_validate` for ``cfg.method`` with the given training seed on
the data's own folds (the same test queries for every seed), and returns the per-query test metrics,
the fold rows (what validation chose) and the run (scores of every candidate) as plain data.
:func:`to_cv` turns a stored result back into a :class:`~xmlib.dcmm.protocol.CVResult`, and
:func:`outcomes` stacks the seeds of one method into :class:`~xmlib.replication.Outcomes`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from xmlib.dcmm.config import Config
from xmlib.dcmm.data import LoadedQueries, load_queries
from xmlib.dcmm.protocol import CVResult, cross_validate
from xmlib.replication import Outcomes

DETERMINISTIC = frozenset({"cm"})  # methods with nothing random to seed: one run stands for every seed


@lru_cache(maxsize=4)
def queries_of(data: str, text_features: str, query_set: str, split: str) -> LoadedQueries:
    """The queries a config names (loaded once per process)."""
    return load_queries(data, feature_set=text_features, query_set=query_set, split=split)


def load(cfg: Config) -> LoadedQueries:
    return queries_of(cfg.data, cfg.text_features, cfg.query_set, cfg.data_split)


def cross_validated(cfg: Config, seed: int, workdir: Path) -> dict[str, Any]:
    """Cross-validate ``cfg.method`` with training seed ``seed`` (the job of one seed)."""
    loaded = load(cfg)
    grid = {"lr": (cfg.lr,)} if not cfg.select_lr else None
    res = cross_validate(loaded.queries, cfg.method, cfg.replace(seed=seed), grid=grid, folds=loaded.folds)
    qids = sorted(res.per_query)
    measures = res.measures
    return {"qids": np.array(qids), "measures": np.array(measures),
            "per_query": np.array([[res.per_query[q][m] for m in measures] for q in qids], dtype=np.float64),
            "folds": res.folds, "run": res.run, "n_params": res.n_params, "seconds": res.seconds,
            "method": res.method}


def to_cv(result: Mapping[str, Any]) -> CVResult:
    """A stored job result as the :class:`CVResult` the protocol returns."""
    measures = [str(m) for m in result["measures"]]
    per_query = {str(q): dict(zip(measures, map(float, row))) for q, row in zip(result["qids"], result["per_query"])}
    return CVResult(method=str(result["method"]), per_query=per_query, folds=list(result["folds"]),
                    run={q: dict(v) for q, v in result["run"].items()}, n_params=int(result["n_params"]),
                    seconds=float(result["seconds"]))


def outcomes(runs: Sequence[CVResult], seeds: Sequence[int | None], measure: str = "map") -> Outcomes:
    """Per-seed, per-query ``measure`` of one method (queries in sorted id order)."""
    if not runs:
        raise ValueError("outcomes() needs at least one run")
    qids = sorted(runs[0].per_query)
    for r in runs[1:]:
        if sorted(r.per_query) != qids:
            raise ValueError("the runs were tested on different queries")
    return Outcomes({"queries": np.array([[r.per_query[q][measure] for q in qids] for r in runs])}, tuple(seeds))


def seed_mean(runs: Sequence[CVResult], measure: str = "map") -> dict[str, float]:
    """Each query's ``measure`` averaged over seeds."""
    qids = sorted(runs[0].per_query)
    return {q: float(np.mean([r.per_query[q][measure] for r in runs])) for q in qids}
