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

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from xmlib.core.jobs import run_seeded, submit_seeded
from xmlib.dcmm.config import Config
from xmlib.dcmm.data import LoadedQueries, load_queries
from xmlib.dcmm.protocol import CVResult, cross_validate, held_out_test
from xmlib.metrics.ranking import MEASURES
from xmlib.replication import Metric, Outcomes, difference

DETERMINISTIC = frozenset({"cm"})  # methods with nothing random to seed: one run stands for every seed
JOB = "xmlib.dcmm.experiment:cross_validated"
MEASURE_NAMES = {"P_20": "P@20", "ndcg_cut_20": "nDCG@20", "ndcg": "nDCG", "map": "MAP"}


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
    if cfg.test_split:  # select on data_split, retrain on all of it, score the held-out test split
        test = queries_of(cfg.data, cfg.text_features, cfg.query_set, cfg.test_split)
        res = held_out_test(loaded.queries, test.queries, cfg.method, cfg.replace(seed=seed), grid=grid,
                            train_folds=loaded.folds)
    else:
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


# ------------------------------------------------------------------------------------- many seeds
@dataclass(frozen=True)
class SeededRuns:
    """One method's cross-validated runs, one per training seed (one run for a deterministic method)."""

    runs: tuple[CVResult, ...]
    seeds: tuple[int | None, ...]

    def outcomes(self, measure: str = "map") -> Outcomes:
        return outcomes(self.runs, self.seeds, measure)

    def per_seed(self, measure: str = "map") -> np.ndarray:
        """Mean over queries of ``measure`` for each seed: (S,)."""
        return np.array([np.mean([v[measure] for v in r.per_query.values()]) for r in self.runs])

    def mean(self, measure: str = "map") -> float:
        return float(self.per_seed(measure).mean())

    @property
    def first(self) -> CVResult:
        return self.runs[0]


def submit_configs(configs: Mapping[str, Config], seeds: Sequence[int], *, workers: int | None = None) -> int:
    """Start the runs of :func:`run_configs` in the background (:func:`xmlib.core.jobs.submit_seeded`);
    a later :func:`run_configs` of the same configs waits for them. Returns how many were started."""
    single = [name for name, c in configs.items() if c.method in DETERMINISTIC]
    return submit_seeded(JOB, configs, seeds, prefix="dcmm-", single=single, workers=workers)


def run_configs(configs: Mapping[str, Config], seeds: Sequence[int], *, workers: int | None = None,
                desc: str = "DCMM runs") -> dict[str, SeededRuns]:
    """Cross-validate every named config with every seed (in parallel, cached; see :mod:`xmlib.core.jobs`).
    A deterministic method (CM) runs once and stands for all seeds."""
    single = [name for name, c in configs.items() if c.method in DETERMINISTIC]
    res = run_seeded(JOB, configs, seeds, prefix="dcmm-", single=single, workers=workers, desc=desc)
    return {name: SeededRuns(tuple(to_cv(r) for r in rs), (None,) if name in single else tuple(seeds))
            for name, rs in res.items()}


def summary_table(results: Mapping[str, SeededRuns], *, baseline: str | None = "cm", measures: Sequence[str] = MEASURES,
                  labels: Mapping[str, str] | None = None, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05):
    """Table 1 of the chapter: per method and measure the mean over seeds (of the mean over test queries)
    ± its standard deviation over seeds, and the difference to ``baseline`` with its interval over seeds
    and queries (:func:`xmlib.replication.difference`). Mark: ``*`` the interval lies above 0 (better than
    the baseline), ``↓`` below 0. Returns (display table, numbers table)."""
    import pandas as pd

    labels = dict(labels or {})
    shown, numbers = [], []
    for name, res in results.items():
        row = {"method": labels.get(name, name), "params": res.first.n_params or "–", "seeds": len(res.seeds)}
        num = {"method": name}
        for m in measures:
            per = res.per_seed(m)
            sd = float(per.std(ddof=1)) if len(per) > 1 else 0.0
            mark = ""
            if baseline is not None and baseline in results and name != baseline:
                est = difference(res.outcomes(m), results[baseline].outcomes(m), Metric(m), n_boot=n_boot, seed=seed,
                                 alpha=alpha)
                mark = "*" if est.low > 0 else ("↓" if est.high < 0 else "")
                num.update({f"{m}_diff": est.estimate, f"{m}_low": est.low, f"{m}_high": est.high})
            row[MEASURE_NAMES.get(m, m)] = f"{per.mean():.3f} ± {sd:.3f}{mark}"
            num.update({m: float(per.mean()), f"{m}_sd": sd})
        shown.append(row)
        numbers.append(num)
    return pd.DataFrame(shown).set_index("method"), pd.DataFrame(numbers).set_index("method")
