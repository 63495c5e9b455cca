import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from xmlib.deepranking import sampler as smp
from xmlib.deepranking.sampler import BufferedTripletSampler, CategoryRelevance, OfflineTripletSampler, Reservoir, check_triplets

WEIGHTS = [1.0, 2.0, 3.0, 4.0, 6.0, 9.0]
K = 3


def exact_subset_probabilities(w, k):
    """P(set S) for weighted sampling without replacement (each draw ∝ w among the rest), by enumeration."""
    total = sum(w)
    probs = {}
    for seq in itertools.permutations(range(len(w)), k):
        p, left = 1.0, total
        for s in seq:
            p *= w[s] / left
            left -= w[s]
        key = frozenset(seq)
        probs[key] = probs.get(key, 0.0) + p
    return probs


def reservoir_subset_counts(trials, seed=0):
    rng = np.random.default_rng(seed)
    counts = {}
    for _ in range(trials):
        r = Reservoir(K)
        for item in rng.permutation(len(WEIGHTS)):  # arrival order must not matter
            r.offer(int(item), WEIGHTS[item], smp._uniform_open(rng))
        key = frozenset(r.contents())
        counts[key] = counts.get(key, 0) + 1
    return counts


def chi_square_pvalue(counts, probs, trials):
    keys = sorted(probs, key=sorted)
    assert set(counts) <= set(keys)
    observed = np.array([counts.get(s, 0) for s in keys])
    expected = np.array([probs[s] * trials for s in keys])
    return stats.chisquare(observed, expected).pvalue


def test_exact_probabilities_by_enumeration_are_a_distribution():
    probs = exact_subset_probabilities(WEIGHTS, K)
    assert len(probs) == math.comb(6, 3) and sum(probs.values()) == pytest.approx(1.0)
    # hand check with w = (1, 1, 2), k = 1: P = w / 4
    assert exact_subset_probabilities([1, 1, 2], 1)[frozenset([2])] == pytest.approx(0.5)


def test_reservoir_matches_weighted_sampling_without_replacement():
    trials = 20_000
    probs = exact_subset_probabilities(WEIGHTS, K)
    counts = reservoir_subset_counts(trials)
    assert chi_square_pvalue(counts, probs, trials) > 1e-3
    # per-item inclusion frequencies against the exact inclusion probabilities π_i (z-tests, Bonferroni)
    pi = np.array([sum(p for s, p in probs.items() if i in s) for i in range(len(WEIGHTS))])
    inc = np.array([sum(c for s, c in counts.items() if i in s) for i in range(len(WEIGHTS))]) / trials
    z = (inc - pi) / np.sqrt(pi * (1 - pi) / trials)
    assert np.all(np.abs(z) < stats.norm.ppf(1 - 1e-3 / (2 * len(WEIGHTS))))


@pytest.mark.parametrize("wrong_key", [
    lambda u, w: math.log(u) * w,  # k = u^r instead of u^(1/r)
    lambda u, w: math.log(u * w),  # k = u·r
    lambda u, w: math.log(u) / math.sqrt(w),  # k = u^(1/√r)
])
def test_the_reservoir_test_fails_for_a_wrong_key(monkeypatch, wrong_key):
    monkeypatch.setattr(smp, "_log_key", wrong_key)
    trials = 20_000
    assert chi_square_pvalue(reservoir_subset_counts(trials), exact_subset_probabilities(WEIGHTS, K), trials) < 1e-6


def test_reservoir_keeps_everything_until_full_and_zero_weight_never_displaces():
    r = Reservoir(3)
    assert r.offer("a", 0.0, 0.5) and r.offer("b", 1.0, 0.5) and r.offer("c", 1.0, 0.9)
    assert sorted(r.contents()) == ["a", "b", "c"]
    assert r.offer("d", 1.0, 0.1)  # displaces the zero-weight item (key 0)
    assert "a" not in r.contents()
    assert not r.offer("e", 0.0, 0.99)


# ----------------------------------------------------------------------------- relevance fixtures
def random_relevance(sizes, seed=0, zero_frac=0.2):
    rng = np.random.default_rng(seed)
    cats = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(cats)
    blocks = {}
    for c, n in enumerate(sizes):
        a = rng.random((n, n))
        a = (a + a.T) / 2
        a[rng.random((n, n)) < zero_frac] = 0.0
        blocks[c] = np.minimum(a, a.T)
    return CategoryRelevance(cats, blocks)


def test_category_relevance_lookup_and_totals():
    rel = random_relevance([4, 5, 3])
    for i in range(len(rel)):
        for j in range(len(rel)):
            v = rel(i, j)
            if rel.categories[i] != rel.categories[j] or i == j:
                assert v == 0.0
        assert rel.total[i] == pytest.approx(sum(rel(i, j) for j in range(len(rel))))
    with pytest.raises(ValueError, match="category 1"):
        CategoryRelevance([0, 1], {0: np.zeros((1, 1))})
    with pytest.raises(ValueError, match=">= 0"):
        CategoryRelevance([0, 0], {0: -np.ones((2, 2))})


@settings(max_examples=12, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(3, 9), min_size=2, max_size=5), seed=st.integers(0, 10_000),
       f_out=st.sampled_from([0.0, 0.3, 1.0]), t_r=st.sampled_from([0.01, 0.1, 0.3]))
def test_every_offline_triplet_satisfies_its_constraints(sizes, seed, f_out, t_r):
    rel = random_relevance(sizes, seed)
    s = OfflineTripletSampler(rel, t_p=0.8, t_r=t_r, out_of_class_fraction=f_out, seed=seed)
    t = s.sample(200)
    check_triplets(t, rel.categories, rel, t_r)
    if f_out == 0.0:
        assert not t.out_of_class.any()
    if f_out == 1.0:
        assert t.out_of_class.all()


@settings(max_examples=8, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(3, 12), min_size=2, max_size=4), seed=st.integers(0, 10_000),
       capacity=st.integers(3, 6), f_out=st.sampled_from([0.0, 0.3, 1.0]))
def test_every_buffered_triplet_satisfies_its_constraints_and_only_touches_buffers(sizes, seed, capacity, f_out):
    rel = random_relevance(sizes, seed, zero_frac=0.0)
    calls = []

    def r(i, j):
        calls.append((i, j))
        return rel(i, j)

    s = BufferedTripletSampler(r, capacity=capacity, t_p=0.8, t_r=0.05, out_of_class_fraction=f_out, seed=seed)
    s.extend(range(len(rel)), rel.categories.tolist(), rel.total.tolist())
    assert s.memory_items() == sum(min(n, capacity) for n in sizes)
    t = s.sample(100)
    check_triplets(t, rel.categories, rel, 0.05)
    buffered = {i for b in s.buffers.values() for i in b.contents()}
    assert set(t.query) | set(t.positive) | set(t.negative) <= buffered
    assert all(i in buffered and j in buffered for i, j in calls)


@pytest.mark.parametrize("f_out", [0.2, 0.5])
@pytest.mark.parametrize("kind", ["offline", "buffered"])
def test_out_of_class_fraction_matches_its_parameter(f_out, kind):
    rel = random_relevance([10, 12, 8], seed=3, zero_frac=0.0)
    if kind == "offline":
        s = OfflineTripletSampler(rel, t_p=0.8, t_r=0.05, out_of_class_fraction=f_out, seed=1)
    else:
        s = BufferedTripletSampler(rel, capacity=6, t_p=0.8, t_r=0.05, out_of_class_fraction=f_out, seed=1)
        s.extend(range(len(rel)), rel.categories.tolist(), rel.total.tolist())
    n = 3000
    t = s.sample(n)
    assert stats.binomtest(int(t.out_of_class.sum()), n, f_out).pvalue > 1e-3
    assert stats.binomtest(int(t.out_of_class.sum()), n, f_out + 0.05).pvalue < 1e-3  # the test has power


def test_offline_query_and_positive_distributions():
    rel = random_relevance([6, 5], seed=7)
    t_p = 0.5
    s = OfflineTripletSampler(rel, t_p=t_p, t_r=0.05, out_of_class_fraction=1.0, seed=2)  # no rejections
    n = 8000
    q = s.sample(n).query
    expected = rel.total / rel.total.sum() * n
    assert stats.chisquare(np.bincount(q, minlength=len(rel)), expected).pvalue > 1e-3
    i = int(np.argmax(rel.total))
    members, row = rel.row(i)
    draws = np.array([s._draw_in_class(i, s._rng) for _ in range(n)])  # continues the sampler's own stream
    w = np.minimum(t_p, row)  # P(p+) ∝ min{T_p, r_{i,i+}}
    obs = np.array([(draws == m).sum() for m in members])
    keep = w > 0
    assert obs[~keep].sum() == 0
    assert stats.chisquare(obs[keep], w[keep] / w.sum() * n).pvalue > 1e-3
    # without the cap the distribution differs detectably
    raw = row[keep] / row[keep].sum() * n
    if not np.allclose(w[keep] / w.sum(), row[keep] / row.sum()):
        assert stats.chisquare(obs[keep], raw).pvalue < 1e-3 or np.abs(obs[keep] - raw).max() < 3 * np.sqrt(n)


@pytest.mark.parametrize("rescale", [False, True])
def test_buffered_positive_acceptance_rule(rescale):
    """With a full buffer, uniform proposals accepted w.p. min(1, min{T_p, r_ij}/r_j) give P(j) ∝ that
    (also with the rescaled acceptance, which must not change the distribution, only the rejections)."""
    rel = random_relevance([7, 4], seed=11, zero_frac=0.0)
    t_p = 0.6
    s = BufferedTripletSampler(rel, capacity=10, t_p=t_p, t_r=0.05, rescale=rescale, seed=5)
    s.extend(range(len(rel)), rel.categories.tolist(), rel.total.tolist())
    buf = s.buffers[0]
    buf._sync()
    q = 0
    i = buf.items[q]
    draws = [s._propose(i, buf.items, buf.weights, q, s._rng)[0] for _ in range(4000)]
    others = [j for j in buf.items if j != i]
    a = np.array([min(1.0, min(t_p, rel(i, j)) / rel.total[j]) for j in others])
    obs = np.array([draws.count(j) for j in others])
    assert stats.chisquare(obs, a / a.sum() * len(draws)).pvalue > 1e-3
    per_draw = s.stats.proposals / len(draws)
    assert (per_draw < 1.0 / a.mean()) if rescale else (per_draw > 0.5 / a.mean())


def test_bad_parameters_and_impossible_settings_are_reported():
    rel = random_relevance([3, 3])
    with pytest.raises(ValueError, match="t_r"):
        OfflineTripletSampler(rel, t_p=1.0, t_r=0.0)
    with pytest.raises(ValueError, match="out_of_class_fraction"):
        OfflineTripletSampler(rel, t_p=1.0, t_r=0.1, out_of_class_fraction=1.5)
    two = CategoryRelevance([0, 0], {0: np.ones((2, 2))})  # the only in-class negative is the positive
    s = OfflineTripletSampler(two, t_p=1.0, t_r=0.1, out_of_class_fraction=0.0, max_failures=1)
    with pytest.raises(RuntimeError, match="no valid triplet"):
        s.sample(1)
    with pytest.raises(RuntimeError, match="offer"):
        BufferedTripletSampler(rel, capacity=3, t_p=1.0, t_r=0.1).sample(1)
