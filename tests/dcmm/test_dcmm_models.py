"""DCMM models and protocol: batched = one query at a time, switches, parameter counts, no test
leakage in model selection, and a tiny end-to-end training that beats random ranking."""

import dataclasses

import numpy as np
import pytest
import torch

from xmlib.core.config import resolve_config
from xmlib.core.device import get_device
from xmlib.core.train import count_parameters
from xmlib.dcmm.batching import pad_queries
from xmlib.dcmm.config import OFFICIAL_CODE, PROFILES, Config
from xmlib.dcmm.data import make_synthetic_queries
from xmlib.dcmm.models import DCMM, LTR, build_model
from xmlib.dcmm.protocol import cross_validate, evaluate_scores, make_folds, predict, select_by_validation, train_ranker
from xmlib.metrics.ranking import mean_metrics

CPU = torch.device("cpu")
TINY = Config(n_queries=20, n_docs=16, visual_dim=24, hidden=8, conv_channels=8, epochs=4, lr=1e-2,
              lr_grid=(1e-2,), cm_k_grid=(3, 5), folds=3, batch_queries=4)





@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["ltr", "dcmm-cos", "dcmm-edge"])
@pytest.mark.parametrize("official", [False, True])
def test_batched_scores_equal_one_query_at_a_time(dtype, method, official):
    qs = make_synthetic_queries(5, 12, seed=1, visual_dim=24, ragged=True)
    data = pad_queries(qs, device=CPU, dtype=dtype)
    cfg = TINY.replace(k=4, **(OFFICIAL_CODE if official else {}))
    torch.manual_seed(0)
    model = build_model(method, cfg, in_dim=4, visual_dim=24).to(dtype).eval()
    with torch.no_grad():
        batched = model(data)
        for b, q in enumerate(qs):
            single = model(pad_queries([q], device=CPU, dtype=dtype))[0]
            torch.testing.assert_close(batched[b, : len(q)], single)
            assert batched[b, len(q):].abs().sum() == 0            # padding scores 0


def test_switches_change_the_model():
    paper = DCMM(4, hidden=8, conv_channels=8, n_conv=2, k=5)
    code = DCMM(4, hidden=8, conv_channels=8, n_conv=2, k=5, conv_relu=False, self_loops=False, conv_bias=True)
    assert all(c.conv_relu and c.lin.bias is None for c in paper.convs)
    assert all((not c.conv_relu) and c.lin.bias is not None for c in code.convs)
    data = pad_queries(make_synthetic_queries(2, 10, seed=0, visual_dim=8), device=CPU)
    assert paper.graph(data)[0].sum(-1).tolist() == [5] * 10      # k counts the node itself
    assert code.graph(data)[0].sum(-1).tolist() == [4] * 10       # self-loop removed: k − 1 left
    assert not code.graph(data)[0].diagonal().any()


def test_parameter_counts():
    F, c, cc, D = 4, 8, 6, 32
    ltr = LTR(F, hidden=c, mlp_layers=2)
    mlp = (F * c + c) + (c * c + c)
    assert count_parameters(ltr) == mlp + (c + 1)
    cos = DCMM(F, hidden=c, conv_channels=cc, n_conv=2)
    assert count_parameters(cos) == mlp + (c + 1) + (c * cc) + (cc * cc) + (cc + 1)
    edge = DCMM(F, g="edge", visual_dim=D, hidden=c, conv_channels=cc, n_conv=2)
    assert count_parameters(edge) == count_parameters(cos) + 2 * D   # one a ∈ R^D per layer


def test_gradients_reach_every_parameter():
    data = pad_queries(make_synthetic_queries(3, 10, seed=0, visual_dim=8, ragged=True), device=CPU)
    model = DCMM(4, g="edge", visual_dim=8, hidden=8, conv_channels=8, n_conv=2, k=4, dropout=0.0)
    from xmlib.dcmm.loss import bpr_loss
    bpr_loss(model(data), data.rel, data.mask).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_profiles_resolve():
    for name in PROFILES:
        cfg = resolve_config(Config, PROFILES, name)
        assert dataclasses.is_dataclass(cfg)


def test_folds_partition_queries():
    folds = make_folds(23, 5, seed=3)
    flat = sorted(i for f in folds for i in f)
    assert flat == list(range(23)) and {len(f) for f in folds} <= {4, 5}


def test_tiny_end_to_end_training_beats_random():
    qs = make_synthetic_queries(24, 16, seed=5, visual_dim=24)
    data = pad_queries(qs, device=get_device())
    train, test = data.select(range(16)), data.select(range(16, 24))
    model, res = train_ranker("dcmm-cos", TINY.replace(epochs=15, k=5), train, None, seed=0)
    trained = mean_metrics(evaluate_scores(test, predict(model, test), ("map",)))["map"]
    gen = torch.Generator().manual_seed(0)
    rand = np.mean([mean_metrics(evaluate_scores(test, torch.rand(test.mask.shape, generator=gen), ("map",)))["map"]
                    for _ in range(20)])
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert trained > rand + 0.1, (trained, rand)


def test_model_selection_never_reads_test_labels():
    """Flip the labels of fold 0's queries: fold 0's selected K / lr / epochs must not change."""
    qs = make_synthetic_queries(TINY.n_queries, TINY.n_docs, seed=2, visual_dim=TINY.visual_dim)
    test_idx = make_folds(len(qs), TINY.folds, TINY.seed)[0]
    flipped = [dataclasses.replace(q, rel=1 - q.rel) if i in test_idx else q for i, q in enumerate(qs)]
    cfg = TINY.replace(lr_grid=(1e-2, 1e-3))
    for method in ("cm", "ltr+cm"):
        a = cross_validate(pad_queries(qs, device=CPU), method, cfg).folds[0]
        b = cross_validate(pad_queries(flipped, device=CPU), method, cfg).folds[0]
        keys = [k for k in a if not k.startswith("test_")]
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
        assert a["test_map"] != b["test_map"]


def test_cross_validate_tests_every_query_once():
    qs = make_synthetic_queries(TINY.n_queries, TINY.n_docs, seed=2, visual_dim=TINY.visual_dim)
    res = cross_validate(qs, "dcmm-cos", TINY, device=CPU)
    assert sorted(res.per_query) == sorted(q.qid for q in qs)
    assert len(res.folds) == TINY.folds and all(1 <= f["epochs"] <= TINY.epochs for f in res.folds)
    mean, std = res.mean_std()["map"]
    assert 0 < mean <= 1 and std >= 0


def test_select_by_validation_picks_per_fold_on_validation_only():
    """Two CM variants (K = 3, K = 5) on the same folds: each fold keeps the variant with the better
    pool score, and its test results; the test metric never enters the choice."""
    qs = make_synthetic_queries(TINY.n_queries, TINY.n_docs, seed=4, visual_dim=TINY.visual_dim)
    data = pad_queries(qs, device=CPU)
    res = {f"K={K}": cross_validate(data, "cm", TINY, grid={"cm_k": (K,)}) for K in (3, 5)}
    sel = select_by_validation(res, TINY.select_metric)
    assert sorted(sel.per_query) == sorted(q.qid for q in qs)
    for t, row in enumerate(sel.folds):
        vals = {n: r.folds[t]["val_" + TINY.select_metric] for n, r in res.items()}
        want = max(vals, key=lambda n: (vals[n], -list(vals).index(n)))
        assert row["variant"] == want
        for q in row["qids"]:
            assert sel.per_query[q] == res[want].per_query[q]
    # flipping the test labels of fold 0 changes its test metric but not the choice
    test0 = set(sel.folds[0]["qids"])
    flipped = [dataclasses.replace(q, rel=1 - q.rel) if q.qid in test0 else q for q in qs]
    fdata = pad_queries(flipped, device=CPU)
    fres = {f"K={K}": cross_validate(fdata, "cm", TINY, grid={"cm_k": (K,)}) for K in (3, 5)}
    assert select_by_validation(fres, TINY.select_metric).folds[0]["variant"] == sel.folds[0]["variant"]
    other = cross_validate(pad_queries(qs[:-3], device=CPU), "cm", TINY)
    with pytest.raises(ValueError, match="same folds"):
        select_by_validation({"a": res["K=3"], "b": other}, TINY.select_metric)


def test_experiment_outcomes_are_the_per_query_metrics_of_each_seed():
    """The DCMM chapter's verdicts read each seed's per-query AP; their mean is the run's MAP."""
    from xmlib.dcmm.experiment import outcomes, to_cv
    from xmlib.replication import Metric

    runs = []
    for s, shift in ((0, 0.0), (1, 0.1)):
        per_query = {"q2": {"map": 0.5 + shift}, "q1": {"map": 0.25 + shift}}
        runs.append(to_cv({"qids": np.array(list(per_query)), "measures": np.array(["map"]),
                           "per_query": np.array([[v["map"]] for v in per_query.values()]), "folds": [],
                           "run": {}, "n_params": 3, "seconds": 0.0, "method": "ltr"}))
    out = outcomes(runs, (0, 1))
    assert out.values["queries"].tolist() == [[0.25, 0.5], [0.35, 0.6]]  # queries in id order, one row per seed
    assert out.per_seed(Metric("MAP")).tolist() == pytest.approx([0.375, 0.475])
    with pytest.raises(ValueError, match="different queries"):
        outcomes([runs[0], to_cv({"qids": np.array(["q9"]), "measures": np.array(["map"]), "per_query": np.array([[1.0]]),
                                  "folds": [], "run": {}, "n_params": 0, "seconds": 0.0, "method": "ltr"})], (0, 1))


def test_held_out_test_selects_on_train_only_and_scores_the_test_split_once():
    """MediaEval'17's protocol: the test split's labels never reach the selection, every test query is
    scored once, no train query is."""
    from xmlib.dcmm.protocol import held_out_test

    qs = make_synthetic_queries(20, TINY.n_docs, seed=3, visual_dim=TINY.visual_dim)
    train, test = qs[:14], [dataclasses.replace(q, qid=f"t{q.qid}") for q in qs[14:]]
    flipped = [dataclasses.replace(q, rel=1 - q.rel) for q in test]
    cfg = TINY.replace(lr_grid=(1e-2, 1e-3))
    for method in ("cm", "dcmm-cos"):
        a = held_out_test(train, test, method, cfg, device=CPU)
        b = held_out_test(train, flipped, method, cfg, device=CPU)
        assert sorted(a.per_query) == sorted(q.qid for q in test) and len(a.folds) == 1
        keys = [k for k in a.folds[0] if not k.startswith("test_")]
        assert {k: a.folds[0][k] for k in keys} == {k: b.folds[0][k] for k in keys}
        assert a.folds[0]["test_map"] != b.folds[0]["test_map"]


def test_held_out_test_cm_is_the_k_chosen_on_train_applied_to_test():
    from xmlib.dcmm.protocol import cm_feature, held_out_test, qrels_of, select_cm_k

    qs = make_synthetic_queries(18, TINY.n_docs, seed=4, visual_dim=TINY.visual_dim)
    train, test = qs[:12], qs[12:]
    res = held_out_test(train, test, "cm", TINY, device=CPU)
    K, _ = select_cm_k(pad_queries(train, device=CPU), TINY.cm_k_grid, TINY.select_metric)
    test_data = pad_queries(test, device=CPU)
    want = evaluate_scores(test_data, cm_feature(test_data, K), ("map",), qrels_of(test_data))
    assert res.folds[0]["cm_k"] == K
    assert {q: m["map"] for q, m in res.per_query.items()} == pytest.approx({q: m["map"] for q, m in want.items()})


def test_held_out_test_refuses_shared_queries_and_a_test_split_equal_to_the_train_split():
    from xmlib.dcmm.protocol import held_out_test

    qs = make_synthetic_queries(12, TINY.n_docs, seed=5, visual_dim=TINY.visual_dim)
    with pytest.raises(ValueError, match="both splits"):
        held_out_test(qs[:8], qs[6:], "cm", TINY, device=CPU)
    with pytest.raises(ValueError, match="test_split"):
        TINY.replace(test_split="train")
