"""The replication engine: the vectorised two-level bootstrap against a plain loop, verdicts on
constructed cases with known answers, interval coverage on simulated data, and the MDE."""

import math

import numpy as np
import pytest

from xmlib import replication as R

MAP = R.Metric("MAP", "mean", 1.0, 0.01)


def _crossed(rng, n_seeds, n_queries, effect, sd_seed, sd_query, sd_noise, base=None):
    """Two models on the same queries, paired by seed: A − B = effect + seed + query + noise terms."""
    base = rng.normal(0.5, 0.2, size=n_queries) if base is None else base
    b = base + rng.normal(0, sd_noise, size=(n_seeds, n_queries))
    diff = effect + rng.normal(0, sd_seed, size=(n_seeds, 1)) + rng.normal(0, sd_query, size=(1, n_queries)) \
        + rng.normal(0, sd_noise, size=(n_seeds, n_queries))
    seeds = tuple(range(n_seeds))
    return R.Outcomes({"q": b + diff}, seeds), R.Outcomes({"q": b}, seeds)


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_replicates_equal_a_plain_loop(reduce):
    rng = np.random.default_rng(0)
    seeds = (0, 1, 2)
    metric = R.Metric("m", reduce, 100.0, 1.0)
    clusters = {"i2t": np.array([0, 0, 1, 2, 2, 2]), "t2i": np.arange(4)}
    a = R.Outcomes({"i2t": rng.random((3, 6)), "t2i": rng.random((3, 4))}, seeds, clusters)
    b = R.Outcomes({"i2t": rng.random((3, 6)), "t2i": rng.random((3, 4))}, seeds, clusters)
    c = R.Outcomes({"i2t": rng.random((1, 6)), "t2i": rng.random((1, 4))}, (None,), clusters)  # deterministic
    d = R.Outcomes({"i2t": rng.random((2, 6)), "t2i": rng.random((2, 4))}, (5, 6), clusters)  # other seeds
    models, weights = [a, b, c, d], [1.0, -0.5, -0.25, -0.25]
    prep = R._prepare(models)
    assert len(prep.groups) == 3  # a and b paired; c alone; d alone
    plan = R.draw_plan(prep, [m.n_seeds for m in models], 25, np.random.default_rng(1))
    fast = R.replicates(models, weights, metric, plan, chunk=7)
    slow = R.replicates_reference(models, weights, metric, plan)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    # with every count equal to one the replicate is the plain estimate
    ones = R.Plan(tuple(np.ones((1, len(n))) for n in prep.counts),
                  tuple(None if u is None else np.ones((1, u.shape[1])) for u in plan.seeds))
    est = sum(w * m.value(metric) for w, m in zip(weights, models))
    np.testing.assert_allclose(R.replicates(models, weights, metric, ones), [est], rtol=1e-12)


def test_clear_effect_is_held_and_clear_reversal_is_reversed():
    rng = np.random.default_rng(2)
    a, b = _crossed(rng, 3, 300, 0.08, 0.005, 0.05, 0.02)
    for kind in ("greater", "not_worse", "trend"):
        assert R.verdict(kind, R.difference(a, b, MAP), MAP.margin) == R.HELD
    assert R.verdict("greater", R.difference(b, a, MAP)) == R.REVERSED
    assert R.verdict("not_worse", R.difference(b, a, MAP), MAP.margin) == R.REVERSED


def test_null_effect_tight_interval_is_no_worse_but_not_held():
    rng = np.random.default_rng(3)
    a, b = _crossed(rng, 3, 2000, 0.0, 0.0005, 0.01, 0.01)
    est = R.difference(a, b, MAP)
    assert est.high - est.low < MAP.margin  # tight compared with the margin
    assert R.verdict("greater", est) == R.NOT_RESOLVED
    assert R.verdict("not_worse", est, MAP.margin) == R.NO_WORSE


def test_null_effect_wide_interval_is_not_resolved_and_mde_shrinks_with_seeds_and_queries():
    rng = np.random.default_rng(4)
    a, b = _crossed(rng, 3, 30, 0.0, 0.03, 0.1, 0.05)
    est = R.difference(a, b, MAP)
    assert R.verdict("greater", est) == R.NOT_RESOLVED
    assert R.verdict("not_worse", est, MAP.margin) == R.NOT_RESOLVED
    assert est.mde > MAP.margin

    def mean_mde(n_seeds, n_queries, sd_seed):
        g = np.random.default_rng(5)
        return np.mean([R.difference(*_crossed(g, n_seeds, n_queries, 0.0, sd_seed, 0.1, 0.05), MAP, n_boot=400).mde
                        for _ in range(8)])

    # more seeds help whatever dominates; more queries help where the queries dominate the variance (with a
    # large seed spread and three seeds, the seed term's two degrees of freedom set a floor)
    assert mean_mde(8, 30, 0.03) < mean_mde(3, 30, 0.03)
    assert mean_mde(3, 300, 0.005) < mean_mde(3, 30, 0.005)


def test_seed_variance_is_counted():
    """A spread over seeds that a test over the queries of one seed cannot see widens the interval."""
    rng = np.random.default_rng(6)
    a, b = _crossed(rng, 3, 400, 0.03, 0.04, 0.01, 0.005)
    est = R.difference(a, b, MAP)
    assert est.se_seeds > 2 * est.se_queries
    assert est.df < 5  # dominated by the seed term, which has S − 1 = 2 degrees of freedom
    one_seed = R.difference(R.Outcomes({"q": a.values["q"][:1]}, (0,)), R.Outcomes({"q": b.values["q"][:1]}, (0,)), MAP)
    assert one_seed.high - one_seed.low < (est.high - est.low) / 3


@pytest.mark.parametrize("sd_seed,sd_query,n_seeds", [(0.02, 0.02, 3), (0.05, 0.01, 3), (0.0, 0.05, 3), (0.03, 0.03, 5)])
def test_interval_coverage_on_simulated_data(sd_seed, sd_query, n_seeds):
    """About 95 % of the intervals contain the true effect (crossed seed × query random effects)."""
    rng = np.random.default_rng(7)
    hits, n_sim = 0, 300
    for i in range(n_sim):
        a, b = _crossed(rng, n_seeds, 40, 0.02, sd_seed, sd_query, 0.02)
        est = R.difference(a, b, MAP, n_boot=300, seed=i)
        hits += est.low <= 0.02 <= est.high
    assert 0.91 <= hits / n_sim <= 0.99, hits / n_sim


def test_cluster_bootstrap_coverage():
    """Queries that share a cluster (e.g. the triplets of one emoji) are resampled together."""
    rng = np.random.default_rng(8)
    hits, n_sim, n_clusters, per = 0, 300, 30, 5
    clusters = {"q": np.repeat(np.arange(n_clusters), per)}
    for i in range(n_sim):
        shift = np.repeat(rng.normal(0, 0.1, n_clusters), per)  # strongly correlated within a cluster
        b = rng.random((3, n_clusters * per))
        a = b + 0.02 + shift + rng.normal(0, 0.01, (3, 1)) + rng.normal(0, 0.02, b.shape)
        est = R.difference(R.Outcomes({"q": a}, (0, 1, 2), clusters), R.Outcomes({"q": b}, (0, 1, 2), clusters), MAP,
                           n_boot=300, seed=i)
        hits += est.low <= 0.02 <= est.high
    assert 0.91 <= hits / n_sim <= 0.99, hits / n_sim


def test_trend_and_best_cell():
    rng = np.random.default_rng(9)
    base = rng.random(200)
    seeds = (0, 1, 2)
    levels = {1: 0.60, 2: 0.55, 3: 0.50}  # degrades with depth
    cells = {f"depth {d}": R.Outcomes({"q": base + v + rng.normal(0, 0.01, (3, 200))}, seeds) for d, v in levels.items()}
    slope = R.linear_trend(list(cells.values()), [1, 2, 3], MAP)
    assert slope.estimate == pytest.approx(-0.05, abs=0.01)
    assert R.verdict("trend", slope.scaled(-1)) == R.HELD  # oriented: "degrades" is a negative slope
    claim = R.Claim("t-best", "T", "depth 1 is best", "best", MAP)
    j = R.judge_best(claim, cells, "depth 1")
    assert j.verdict == R.HELD and j.comparison == "depth 1 − depth 2"
    assert R.judge_best(claim, cells, "depth 3").verdict == R.REVERSED


def test_judgement_round_trip_and_errors():
    rng = np.random.default_rng(10)
    a, b = _crossed(rng, 2, 50, 0.05, 0.01, 0.02, 0.02)
    claim = R.Claim("x-a", "X", "A beats B", "greater", MAP, 0.077, ".784 vs .707", "sec-x", "")
    j = R.judge(claim, [a, b], [1, -1], comparison="A − B")
    back = R.Judgement.from_dict(j.to_dict())
    assert back.verdict == j.verdict and back.estimate.estimate == pytest.approx(j.estimate.estimate)
    assert back.claim == claim
    assert j.effect_points.estimate == pytest.approx(100 * j.estimate.estimate)
    with pytest.raises(ValueError, match="same test queries"):
        R.difference(a, R.Outcomes({"q": np.zeros((2, 49))}, (0, 1)), MAP)
    with pytest.raises(ValueError, match="finite"):
        R.Outcomes({"q": np.array([[np.nan]])}, (0,))
    with pytest.raises(ValueError, match="kind"):
        R.Claim("k", "X", "s", "better", MAP)
    with pytest.raises(ValueError, match="margin"):
        R.verdict("not_worse", j.estimate, 0.0)
    assert math.isfinite(j.estimate.mde)


@pytest.mark.parametrize("df", [1.0, 2.5, 7.0, 40.0, math.inf])
def test_t_distribution_is_scipy_stats_t(df):
    """The engine reads Student's t from scipy.special (importing scipy.stats costs every job worker ~2 s)."""
    from scipy import stats
    for q in (0.8, 0.9, 0.975, 0.995):
        assert R._t_quantile(q, df) == pytest.approx(float(stats.t.ppf(q, df)), rel=1e-12, abs=1e-12)
    for x in (0.0, 0.7, 2.0, 6.0):
        assert R._t_sf(x, df) == pytest.approx(float(stats.t.sf(x, df)), rel=1e-12, abs=1e-15)
