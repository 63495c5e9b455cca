"""Training and the 5-fold cross-validation protocol of the DCMM chapter.

Protocol (Sect. 4 of DCMM: 5-fold CV over queries), with model selection on validation data only:

for each outer fold t (the test fold):
  1. the other folds form the pool; ``inner_folds`` of them in turn serve as validation, the rest
     as training (``inner_folds = 1``: one validation fold);
  2. every hyperparameter combination of the grid is trained for ``cfg.epochs`` epochs; its
     validation curve (``cfg.select_metric`` after each epoch, averaged over inner splits) gives its
     best epoch and score; the best combination wins (CM: the K of Eq. 1 with the best pool score;
     nothing is trained);
  3. with ``retrain`` the winner is retrained on the whole pool for the selected number of epochs
     (the paper's "retrain on all training queries"); it is evaluated once on fold t.

Every query is tested exactly once, so per-query metrics of two methods on the same folds can be
compared by a paired t-test. The official grid script picked its best configuration on the test
set; nothing here reads test labels before the final evaluation.

No DDP here: DCMM's models are small (a few thousand parameters, MediaEval'17's 110 + 84 query lists of
about 300 candidates), one training run takes seconds on a CPU, and the protocol's parallelism is over
folds, grid points and seeds (:mod:`xmlib.core.jobs`), not over the batch; splitting a batch across
processes would cost more in communication than it saves.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from xmlib.core.device import cpu_threads
from xmlib.core.train import FitResult, count_parameters, fit
from xmlib.dcmm.batching import PaddedQueries, pad_queries
from xmlib.dcmm.cm import cm_as_convolution
from xmlib.dcmm.config import OFFICIAL_CODE, Config
from xmlib.dcmm.data import QueryList
from xmlib.dcmm.loss import bpr_loss
from xmlib.dcmm.models import METHODS, build_model
from xmlib.metrics.ranking import MEASURES, evaluate_run, labels_to_qrels, mean_metrics, scores_to_run


# ----------------------------------------------------------------------------------------- helpers
def make_folds(n_queries: int, n_folds: int, seed: int) -> list[list[int]]:
    """Split query indices 0..n-1 into ``n_folds`` folds of near-equal size, shuffled with ``seed``."""
    if n_folds < 2 or n_folds > n_queries:
        raise ValueError(f"need 2 <= n_folds <= n_queries, got n_folds={n_folds}, n_queries={n_queries}")
    perm = np.random.default_rng(seed).permutation(n_queries)
    return [sorted(int(i) for i in part) for part in np.array_split(perm, n_folds)]


def qrels_of(data: PaddedQueries) -> dict[str, dict[str, int]]:
    lengths = data.mask.sum(1).tolist()
    rel = data.rel.cpu().numpy()
    return labels_to_qrels(data.qids, data.doc_ids, [rel[b, :n] for b, n in enumerate(lengths)])


@torch.no_grad()
def predict(model: torch.nn.Module, data: PaddedQueries, batch_queries: int = 64) -> torch.Tensor:
    """Scores (B, N) of ``model`` for every query of ``data`` (eval mode, batches of queries)."""
    was_training = model.training
    model.eval()
    parts = []
    for start in range(0, len(data), batch_queries):
        idx = list(range(start, min(start + batch_queries, len(data))))
        sub = data.select(idx)
        s = model(sub)
        parts.append(torch.nn.functional.pad(s, (0, data.mask.shape[1] - s.shape[1])))
    model.train(was_training)
    return torch.cat(parts)


def evaluate_scores(data: PaddedQueries, scores: torch.Tensor, measures: Sequence[str] = MEASURES,
                    qrels: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, dict[str, float]]:
    """Per-query trec_eval measures of (B, N) ``scores`` on ``data``."""
    run = scores_to_run(data.qids, data.doc_ids, data.scores_to_lists(scores))
    return evaluate_run(qrels if qrels is not None else qrels_of(data), run, measures)


def train_ranker(method: str, cfg: Config, train: PaddedQueries, val: PaddedQueries | None = None, *,
                 epochs: int | None = None, seed: int = 0, desc: str = "train") -> tuple[torch.nn.Module, FitResult]:
    """Train ``method`` with BPR (Eq. 7) and Adam on ``train``; with ``val`` select the epoch on
    ``cfg.select_metric`` (restored at the end). Batches of ``cfg.batch_queries`` queries, reshuffled
    each epoch from ``(seed, epoch)``."""
    if method == "cm":
        raise ValueError("CM has no parameters to train; use CMScorer / cm_as_convolution")
    torch.manual_seed(seed)
    model = build_model(method, cfg, in_dim=train.text.shape[-1], visual_dim=train.visual.shape[-1])
    model = model.to(device=train.device, dtype=train.text.dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = len(train)

    def batches(epoch: int):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for start in range(0, n, cfg.batch_queries):
            yield train.select(order[start:start + cfg.batch_queries].tolist())

    def step(batch: PaddedQueries) -> torch.Tensor:
        return bpr_loss(model(batch), batch.rel, batch.mask, cfg.bpr_reduction)

    evaluate = None
    if val is not None:
        val_qrels = qrels_of(val)

        def evaluate() -> dict[str, float]:
            per_query = evaluate_scores(val, predict(model, val), (cfg.select_metric,), val_qrels)
            return {"val_" + k: v for k, v in mean_metrics(per_query).items()}

    with cpu_threads(cfg.cpu_threads, train.device):
        result = fit(model, optimizer, epochs=epochs or cfg.epochs, batches=batches, step=step,
                     evaluate=evaluate, select=("val_" + cfg.select_metric) if val is not None else None,
                     desc=desc, max_steps=cfg.max_steps)
    return model, result


def cm_feature(data: PaddedQueries, K: int) -> torch.Tensor:
    """s_CM (B, N) of Eq. (1) for every query (uses no labels)."""
    return cm_as_convolution(data.s_text, data.sim, data.mask, K)


def select_cm_k(data: PaddedQueries, ks: Sequence[int], select: str) -> tuple[int, float]:
    """The K of Eq. (1) with the best mean ``select`` metric on ``data`` (ties: the smaller K)."""
    qrels = qrels_of(data)
    best_k, best = ks[0], -np.inf
    for K in ks:
        score = mean_metrics(evaluate_scores(data, cm_feature(data, K), (select,), qrels))[select]
        if score > best + 1e-12:
            best_k, best = K, score
    return best_k, best


# ----------------------------------------------------------------------------------------- results
@dataclass
class CVResult:
    """Outcome of :func:`cross_validate`: test metrics per query (each query once) and per fold."""

    method: str
    per_query: dict[str, dict[str, float]]
    folds: list[dict[str, Any]]
    run: dict[str, dict[str, float]]
    n_params: int
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def measures(self) -> list[str]:
        return list(next(iter(self.per_query.values())))

    def mean_std(self) -> dict[str, tuple[float, float]]:
        """Mean ± sample std (ddof = 1) over folds of each fold's mean test metric."""
        out = {}
        for m in self.measures:
            vals = np.array([f["test_" + m] for f in self.folds])
            out[m] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
        return out


# ----------------------------------------------------------------------------------------- protocol
def _as_padded(data: Sequence[QueryList] | PaddedQueries, cfg: Config, device) -> PaddedQueries:
    if isinstance(data, PaddedQueries):
        return data if device is None else data.to(device)
    return pad_queries(data, device=device, zscore_text=cfg.zscore_text, zscore_ddof=cfg.zscore_ddof,
                       cm_text_feature=cfg.cm_text_feature, centre_visual=cfg.centre_visual)


def default_grid(method: str, cfg: Config) -> dict[str, tuple]:
    if method == "cm":
        return {"cm_k": cfg.cm_k_grid}
    return {"lr": cfg.lr_grid, "hidden": cfg.hidden_grid}


def cross_validate(data: Sequence[QueryList] | PaddedQueries, method: str, cfg: Config, *,
                   grid: Mapping[str, Sequence[Any]] | None = None, measures: Sequence[str] = MEASURES,
                   device: torch.device | None = None,
                   folds: Sequence[Sequence[str]] | None = None) -> CVResult:
    """Run the protocol above for ``method`` (one of ``"ltr", "cm", "ltr+cm", "dcmm-cos",
    "dcmm-edge"``). ``grid`` maps Config field names to candidate values (default: ``lr_grid`` ×
    ``hidden_grid``; CM: ``cm_k_grid``). LTR+CM takes the K of its CM feature from the CM selection
    on the same pool. Folds: ``folds`` (lists of query ids, e.g. a benchmark's ``folds.json``) or,
    by default, ``cfg.folds`` folds drawn with ``cfg.seed``; either way every method sees the same."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    data = _as_padded(data, cfg, device)
    with cpu_threads(cfg.cpu_threads, data.device):
        return _cross_validate(data, method, cfg, grid, measures, folds)


def _fold_indices(data: PaddedQueries, folds: Sequence[Sequence[str]] | None, cfg: Config) -> list[list[int]]:
    if folds is None:
        return make_folds(len(data), cfg.folds, cfg.seed)
    pos = {q: i for i, q in enumerate(data.qids)}
    unknown = [q for f in folds for q in f if q not in pos]
    if unknown:
        raise KeyError(f"folds name {len(unknown)} queries that are not in the data (e.g. {unknown[:3]})")
    out = [sorted(pos[q] for q in f) for f in folds]
    flat = sorted(i for f in out for i in f)
    if flat != list(range(len(data))) or len(out) < 2:
        raise ValueError("folds must partition the data's queries into at least 2 folds")
    if cfg.inner_folds >= len(out):
        raise ValueError(f"inner_folds = {cfg.inner_folds} needs more than {len(out)} folds")
    return out


def _cross_validate(data: PaddedQueries, method: str, cfg: Config, grid, measures, folds,
                    tested: Sequence[int] | None = None) -> CVResult:
    t0 = time.perf_counter()
    grid = dict(default_grid(method, cfg) if grid is None else grid)
    for name in grid:
        if name not in cfg.to_dict():
            raise ValueError(f"grid parameter {name!r} is not a field of Config")
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    folds = _fold_indices(data, folds, cfg)
    qrels = qrels_of(data)
    per_query: dict[str, dict[str, float]] = {}
    run: dict[str, dict[str, float]] = {}
    fold_rows: list[dict[str, Any]] = []
    n_params = 0
    for t, test_idx in enumerate(folds):
        if tested is not None and t not in tested:
            continue
        pool_folds = [f for i, f in enumerate(folds) if i != t]
        pool_idx = sorted(i for f in pool_folds for i in f)
        test = data.select(test_idx)
        row: dict[str, Any] = {"fold": t, "n_test": len(test_idx), "qids": list(test.qids)}
        if method in ("cm", "ltr+cm"):
            ks = tuple(grid["cm_k"]) if method == "cm" else cfg.cm_k_grid
            K, pool_score = select_cm_k(data.select(pool_idx), ks, cfg.select_metric)
            row["cm_k"] = K
        if method == "cm":
            row["val_" + cfg.select_metric] = pool_score
            scores = cm_feature(test, K)
        else:
            fdata = (data.with_extra_feature(cm_feature(data, K), cfg.zscore_text, cfg.zscore_ddof)
                     if method == "ltr+cm" else data)
            fdata_test = fdata.select(test_idx)
            rotated = pool_folds[t % len(pool_folds):] + pool_folds[:t % len(pool_folds)]
            splits = [(sorted(i for j, f in enumerate(rotated) if j != s for i in f), rotated[s])
                      for s in range(cfg.inner_folds)]              # (train indices, validation indices)
            best: tuple[float, int, dict, torch.nn.Module | None] = (-np.inf, 0, {}, None)
            for c, combo in enumerate(combos):
                ccfg = cfg.replace(**combo)
                curves, kept = [], None
                for s, (tr, va) in enumerate(splits):
                    model, res = train_ranker(method, ccfg, fdata.select(tr), fdata.select(va),
                                              seed=cfg.seed + 1000 * t + 100 * s + c, desc=f"fold {t}")
                    curves.append(res.column("val_" + cfg.select_metric))
                    kept = model if s == 0 else kept
                curve = np.mean(curves, axis=0)
                e = int(np.argmax(curve))
                if curve[e] > best[0] + 1e-12:
                    best = (float(curve[e]), e, combo, kept)
            score, epoch, combo, model = best
            row.update({"val_" + cfg.select_metric: score, "epochs": epoch + 1, **combo})
            ccfg = cfg.replace(**combo)
            if cfg.retrain:
                model, _ = train_ranker(method, ccfg, fdata.select(pool_idx), None, epochs=epoch + 1,
                                        seed=cfg.seed + 1000 * t + 7, desc=f"fold {t} retrain")
            n_params = count_parameters(model)
            scores = predict(model, fdata_test)
        pq = evaluate_scores(test, scores, measures, qrels)
        per_query.update(pq)
        run.update(scores_to_run(test.qids, test.doc_ids, test.scores_to_lists(scores)))
        row.update({"test_" + m: v for m, v in mean_metrics(pq).items()})
        fold_rows.append(row)
    return CVResult(method=method, per_query=per_query, folds=fold_rows, run=run, n_params=n_params,
                    seconds=time.perf_counter() - t0, config=cfg.to_dict())


def held_out_test(train: Sequence[QueryList], test: Sequence[QueryList], method: str, cfg: Config, *,
                  grid: Mapping[str, Sequence[Any]] | None = None, measures: Sequence[str] = MEASURES,
                  device: torch.device | None = None,
                  train_folds: Sequence[Sequence[str]] | None = None) -> CVResult:
    """MediaEval'17's own protocol: hyperparameters and epochs chosen by cross-validation on the
    ``train`` queries alone (``inner_folds`` of ``train_folds``, or of ``cfg.folds`` folds drawn with
    ``cfg.seed``), the winner retrained on all of them (``cfg.retrain``), then scored once on the
    ``test`` queries. It is the protocol above with a single outer fold, the test split: its pool is
    the whole train split. Text features are z-scored within each query, so scoring the two splits
    together shares no statistic between them."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if not train or not test:
        raise ValueError(f"held_out_test needs train and test queries, got {len(train)} and {len(test)}")
    overlap = {q.qid for q in train} & {q.qid for q in test}
    if overlap:
        raise ValueError(f"{len(overlap)} query ids are in both splits (e.g. {sorted(overlap)[:3]}); "
                         "the test queries must be held out")
    if train_folds is None:
        order = [q.qid for q in train]
        train_folds = [[order[i] for i in f] for f in make_folds(len(train), cfg.folds, cfg.seed)]
    folds = [list(f) for f in train_folds] + [[q.qid for q in test]]
    if cfg.inner_folds >= len(folds) - 1:
        raise ValueError(f"inner_folds = {cfg.inner_folds} needs more than {len(folds) - 1} folds of the train "
                         "queries (raise folds or lower inner_folds)")
    data = _as_padded(list(train) + list(test), cfg, device)
    with cpu_threads(cfg.cpu_threads, data.device):
        return _cross_validate(data, method, cfg, grid, measures, folds, tested=[len(folds) - 1])


def fig2_configs(cfg: Config) -> dict[tuple[int, int], Config]:
    """Fig. 2 of DCMM: one config per graph size k (0 = full) × depth of ``cfg.fig2_k`` × ``cfg.fig2_depth``.

    Each cell trains ``cfg.fig2_method`` with the learning rate fixed to ``cfg.lr`` (``select_lr=False``);
    the number of epochs is still selected on validation folds."""
    return {(k, d): cfg.replace(method=cfg.fig2_method, k=k, n_conv=d, select_lr=False)
            for k in cfg.fig2_k for d in cfg.fig2_depth}


PAPER_SWITCHES: dict[str, object] = {"conv_relu": True, "self_loops": True, "conv_bias": False, "degree_norm": False,
                                     "conv_dropout": False, "zscore_ddof": 0}
"""The paper's Eq. (5): ReLU, self-loops, no bias, no degree normalisation; no dropout after the
convolutions; the z-score with the population standard deviation (the paper says neither)."""


def switch_configs(cfg: Config, method: str = "dcmm-cos") -> dict[str, Config]:
    """The paper/code switches measured one at a time: the paper's settings, each official-code departure
    alone, all of them together (the released code), and the degree normalisation neither uses."""
    variants = {"paper": dict(PAPER_SWITCHES)}
    for name, value in OFFICIAL_CODE.items():
        if PAPER_SWITCHES[name] != value:
            variants[f"{name}={value}"] = {**PAPER_SWITCHES, name: value}
    variants["official code"] = dict(OFFICIAL_CODE)
    variants["degree_norm=True"] = {**PAPER_SWITCHES, "degree_norm": True}
    return {name: cfg.replace(method=method, **v) for name, v in variants.items()}


def select_by_validation(results: Mapping[str, CVResult], select: str, *, method: str | None = None) -> CVResult:
    """Choose among variants of one method fold by fold, on validation scores only.

    ``results`` maps variant names to :class:`CVResult` s computed on the **same folds** (e.g. with and
    without centred visual features, which change the data and so cannot sit in a Config grid). For
    each outer fold the variant with the best ``val_<select>`` (inner validation for trained models,
    the pool score for CM; never the test fold) is kept, and its test results on that fold are used.
    The fold rows record the choice under ``"variant"``. Ties go to the first variant.
    """
    if not results:
        raise ValueError("select_by_validation() needs at least one variant")
    names = list(results)
    first = results[names[0]]
    n_folds = len(first.folds)
    for name in names:
        r = results[name]
        same = len(r.folds) == n_folds and all(
            set(r.folds[t].get("qids", ())) == set(first.folds[t].get("qids", ())) and
            r.folds[t]["n_test"] == first.folds[t]["n_test"] for t in range(n_folds))
        if not same or set(r.per_query) != set(first.per_query):
            raise ValueError(f"variant {name!r} was not run on the same folds as {names[0]!r}")
    key = "val_" + select
    per_query: dict[str, dict[str, float]] = {}
    run: dict[str, dict[str, float]] = {}
    rows: list[dict[str, Any]] = []
    for t in range(n_folds):
        best = max(names, key=lambda n: (results[n].folds[t][key], -names.index(n)))
        chosen = results[best]
        qids = chosen.folds[t]["qids"]
        per_query.update({q: chosen.per_query[q] for q in qids})
        run.update({q: chosen.run[q] for q in qids})
        rows.append({**chosen.folds[t], "variant": best})
    return CVResult(method=method or first.method, per_query=per_query, folds=rows, run=run,
                    n_params=max(results[n].n_params for n in names),
                    seconds=sum(r.seconds for r in results.values()), config=first.config)
