"""xmlib.metrics.ranking against a plain-Python reference of P@k, AP and nDCG (trec_eval semantics)."""

import math

import numpy as np
import pytest

from xmlib.metrics.ranking import evaluate_run, labels_to_qrels, mean_metrics, scores_to_run


def ranked(run_q):
    # trec_eval order: score descending, ties by docid descending
    return [d for d, _ in sorted(run_q.items(), key=lambda x: (x[1], x[0]), reverse=True)]


def ref_precision(qrels_q, run_q, k):
    order = ranked(run_q)[:k]
    return sum(1 for d in order if qrels_q.get(d, 0) > 0) / k


def ref_ap(qrels_q, run_q):
    n_rel = sum(1 for r in qrels_q.values() if r > 0)
    if n_rel == 0:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranked(run_q), start=1):
        if qrels_q.get(d, 0) > 0:
            hits += 1
            total += hits / i
    return total / n_rel


def ref_ndcg(qrels_q, run_q, k=None):
    order = ranked(run_q)
    gains = [qrels_q.get(d, 0) for d in order]
    ideal = sorted((r for r in qrels_q.values() if r > 0), reverse=True)
    if k is not None:
        gains, ideal = gains[:k], ideal[:k]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def random_case(seed, n_queries=8, graded=False, unretrieved=True):
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        n = int(rng.integers(5, 60))
        docs = [f"d{int(x)}" for x in rng.choice(10_000, size=n, replace=False)]
        rel = rng.integers(0, 3 if graded else 2, size=n)
        qrels[f"q{q}"] = dict(zip(docs, map(int, rel)))
        kept = docs[: n - int(rng.integers(0, 4))] if unretrieved else docs  # some judged docs not retrieved
        run[f"q{q}"] = {d: float(s) for d, s in zip(kept, rng.normal(size=len(kept)))}
    return qrels, run


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("graded", [False, True])
def test_against_reference_on_random_runs(seed, graded):
    qrels, run = random_case(seed, graded=graded)
    got = evaluate_run(qrels, run, ("P_20", "P_5", "map", "ndcg", "ndcg_cut_20"))
    assert set(got) == set(run)
    for q in run:
        assert got[q]["P_20"] == pytest.approx(ref_precision(qrels[q], run[q], 20), abs=1e-9)
        assert got[q]["P_5"] == pytest.approx(ref_precision(qrels[q], run[q], 5), abs=1e-9)
        assert got[q]["map"] == pytest.approx(ref_ap(qrels[q], run[q]), abs=1e-9)
        assert got[q]["ndcg"] == pytest.approx(ref_ndcg(qrels[q], run[q]), abs=1e-9)
        assert got[q]["ndcg_cut_20"] == pytest.approx(ref_ndcg(qrels[q], run[q], 20), abs=1e-9)


def test_hand_checked_example():
    qrels = {"q": {"a": 1, "b": 0, "c": 1}}
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    got = evaluate_run(qrels, run, ("map", "P_20", "ndcg"))["q"]
    assert got["map"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert got["P_20"] == pytest.approx(2 / 20)   # divides by 20 even with 3 retrieved
    assert got["ndcg"] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)))


def test_ties_are_broken_by_docid_descending():
    qrels = {"q": {"a": 0, "b": 0, "c": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}
    assert evaluate_run(qrels, run, ("P_1",))["q"]["P_1"] == 1.0   # "c" is ranked first
    qrels = {"q": {"a": 1, "b": 0, "c": 0}}
    assert evaluate_run(qrels, run, ("P_1",))["q"]["P_1"] == 0.0


def test_no_relevant_document_scores_zero_and_unknown_query_is_an_error():
    got = evaluate_run({"q": {"a": 0, "b": 0}}, {"q": {"a": 1.0, "b": 0.0}}, ("map", "ndcg"))
    assert got["q"] == {"map": 0.0, "ndcg": 0.0}
    with pytest.raises(KeyError, match="absent from the qrels"):
        evaluate_run({"q": {"a": 1}}, {"x": {"a": 1.0}})


def test_builders_and_mean():
    qrels = labels_to_qrels(["q1", "q2"], [["a", "b"], ["c", "d"]], [[1, 0], [0, 1]])
    run = scores_to_run(["q1", "q2"], [["a", "b"], ["c", "d"]], [[0.2, 0.1], [0.9, 0.1]])
    per_query = evaluate_run(qrels, run, ("P_1", "map"))
    assert per_query["q1"]["P_1"] == 1.0 and per_query["q2"]["P_1"] == 0.0
    assert mean_metrics(per_query) == {"P_1": 0.5, "map": pytest.approx(0.75)}
    with pytest.raises(ValueError, match="2 doc ids but 3 scores"):
        scores_to_run(["q"], [["a", "b"]], [[1, 2, 3]])


def test_row_tie_rule_keeps_list_order():
    qrels = {"q": {"a": 1, "b": 0, "c": 0}}
    run = scores_to_run(["q"], [["a", "b", "c"]], [[1.0, 1.0, 1.0]], ties="row")
    assert run["q"] == {"a": 3.0, "b": 2.0, "c": 1.0}
    assert evaluate_run(qrels, run, ("P_1",))["q"]["P_1"] == 1.0    # "docid" ties would rank "c" first
    run = scores_to_run(["q"], [["a", "b", "c"]], [[0.0, 2.0, 0.0]], ties="row")
    assert run["q"] == {"b": 3.0, "a": 2.0, "c": 1.0}
