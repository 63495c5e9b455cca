"""Ranking measures with trec_eval semantics (through ``pytrec_eval``), and a paired t-test.

The DCMM paper reports P@20, nDCG@20, nDCG (whole list) and MAP, computed with trec_eval, and marks
a result significant by a paired t-test over queries. This module is a thin, checked wrapper:

- ``qrels``: ``{qid: {docid: relevance}}`` (int, 0 = not relevant; graded values are gains for nDCG);
- ``run``: ``{qid: {docid: score}}`` (higher is better).

**trec_eval conventions worth knowing** (all checked in ``tests/metrics/test_ranking.py``):

- *Ties* in score are broken by document id, in **decreasing** lexicographic order (``"c"`` before
  ``"b"`` before ``"a"``). Document ids must therefore not encode the first-stage rank, or a model that
  outputs constant scores would be handed that ranking for free. Our benchmarks shuffle each list with
  the seed and use ids that carry no order.
- ``P_20`` divides by 20 even when fewer than 20 documents were retrieved.
- ``map`` and ``ndcg`` divide by what the *qrels* hold (all relevant documents), not only by the
  retrieved ones. A query with no relevant document scores 0.
- Queries of the run that are absent from the qrels are an error here (trec_eval silently drops them);
  queries of the qrels that are absent from the run are skipped (so one qrels file serves every fold).
"""

from __future__ import annotations

from typing import Iterable, Literal, Mapping, Sequence

import numpy as np

MEASURES: tuple[str, ...] = ("P_20", "ndcg_cut_20", "ndcg", "map")
"""The measures of Table 1 of DCMM, in trec_eval's names."""

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]


def evaluate_run(qrels: Qrels, run: Run, measures: Sequence[str] = MEASURES) -> dict[str, dict[str, float]]:
    """Per-query trec_eval measures: ``{qid: {measure: value}}`` for every query of ``run`` (P@k, AP,
    nDCG@k: in the chapter :math:numref:`eq-blocks-metrics`; the measures of Table 1 of DCMM).

    ``measures`` use trec_eval's names (``"P_20"``, ``"ndcg_cut_20"``, ``"ndcg"``, ``"map"``,
    ``"recip_rank"``, ...). The returned keys are exactly the names asked for.
    """
    import pytrec_eval

    measures = tuple(measures)
    if not measures:
        raise ValueError("measures is empty; ask for e.g. ('P_20', 'ndcg_cut_20', 'ndcg', 'map')")
    unknown = [qid for qid in run if qid not in qrels]
    if unknown:
        raise KeyError(f"run has {len(unknown)} queries absent from the qrels (e.g. {unknown[:3]}); "
                       "pass the qrels of every evaluated query")
    clean_qrels = {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items() if q in run}
    clean_run = {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in run.items()}
    for qid, docs in clean_run.items():
        bad = [d for d, s in docs.items() if not np.isfinite(s)]
        if bad:
            raise ValueError(f"query {qid!r}: non-finite scores for {len(bad)} documents (e.g. {bad[:3]})")
    evaluator = pytrec_eval.RelevanceEvaluator(clean_qrels, set(measures))
    raw = evaluator.evaluate(clean_run)
    out: dict[str, dict[str, float]] = {}
    for qid in clean_run:
        row = raw.get(qid)
        if row is None:  # a query with an empty run: every measure is 0 under trec_eval
            row = {}
        values = {}
        for m in measures:
            if m not in row and row:
                raise KeyError(f"pytrec_eval did not return {m!r}; got {sorted(row)}")
            values[m] = float(row.get(m, 0.0))
        out[qid] = values
    return out


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean over queries of each measure (what trec_eval prints as ``all``)."""
    if not per_query:
        raise ValueError("no queries to average")
    names = list(next(iter(per_query.values())))
    return {m: float(np.mean([row[m] for row in per_query.values()])) for m in names}


def scores_to_run(qids: Sequence[str], doc_ids: Sequence[Sequence[str]], scores: Iterable[Sequence[float]],
                  ties: Literal["docid", "row"] = "docid") -> dict[str, dict[str, float]]:
    """Build a run from per-query lists: ``qids[i]`` ranks ``doc_ids[i]`` by ``scores[i]``.

    ``ties="docid"`` keeps the scores (trec_eval then breaks ties by decreasing doc id);
    ``ties="row"`` replaces them by strictly decreasing stand-ins ``n − position`` of a stable sort on
    the negated score, so tied documents keep their list order (the clipart benchmark's stated rule).
    """
    if ties not in ("docid", "row"):
        raise ValueError(f"ties must be 'docid' or 'row', got {ties!r}")
    run: dict[str, dict[str, float]] = {}
    for qid, docs, sc in zip(qids, doc_ids, scores, strict=True):
        sc = np.asarray(sc, dtype=np.float64).reshape(-1)
        if len(docs) != len(sc):
            raise ValueError(f"query {qid!r}: {len(docs)} doc ids but {len(sc)} scores")
        if ties == "row":
            order = np.argsort(-sc, kind="stable")
            sc = np.empty(len(order))
            sc[order] = np.arange(len(order), 0, -1, dtype=np.float64)
        if len(set(docs)) != len(docs):
            raise ValueError(f"query {qid!r}: duplicate doc ids")
        run[str(qid)] = {str(d): float(s) for d, s in zip(docs, sc)}
    return run


def labels_to_qrels(qids: Sequence[str], doc_ids: Sequence[Sequence[str]],
                    labels: Iterable[Sequence[int]]) -> dict[str, dict[str, int]]:
    """Build qrels from per-query relevance labels aligned with ``doc_ids``."""
    qrels: dict[str, dict[str, int]] = {}
    for qid, docs, lab in zip(qids, doc_ids, labels, strict=True):
        lab = np.asarray(lab).reshape(-1)
        if len(docs) != len(lab):
            raise ValueError(f"query {qid!r}: {len(docs)} doc ids but {len(lab)} labels")
        qrels[str(qid)] = {str(d): int(r) for d, r in zip(docs, lab)}
    return qrels
