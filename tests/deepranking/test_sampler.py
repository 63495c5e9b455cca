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


# ----------------------------------------------------------------------------- batch draws against the per-triplet rules
def chi_square_cells(observed: dict, expected_p: dict, n: int) -> float:
    """p-value of observed counts against exact cell probabilities; cells expecting < 5 are pooled, and a
    triplet outside the support fails at once."""
    assert set(observed) <= set(expected_p), f"impossible triplets drawn: {set(observed) - set(expected_p)}"
    big = [k for k, p in expected_p.items() if p * n >= 5]
    small = [k for k in expected_p if k not in big]
    obs = [observed.get(k, 0) for k in big] + ([sum(observed.get(k, 0) for k in small)] if small else [])
    exp = [expected_p[k] * n for k in big] + ([sum(expected_p[k] for k in small) * n] if small else [])
    return stats.chisquare(obs, np.array(exp) * sum(obs) / sum(exp)).pvalue


def counts_of(triplets) -> dict:
    out = {}
    for key in zip(*(np.asarray(c).tolist() for c in triplets)):
        out[key] = out.get(key, 0) + 1
    return out


def offline_exact(rel, t_p, t_r, f_out, max_failures, drops=True) -> dict:
    """P(query, positive, negative, out_of_class) of the offline sampler by enumeration (Sec. 5.1 rules: query ∝ r_i,
    positive/in-class negative ∝ min{T_p, r_ij}, T_r with up to max_failures + 1 tries, a failing query redrawn)."""
    pi = rel.total / rel.total.sum()
    probs = {}
    for q in np.flatnonzero(pi > 0):
        members, row = rel.row(q)
        w = np.minimum(t_p, row) / np.minimum(t_p, row).sum()
        others = np.flatnonzero(rel.categories != rel.categories[q])
        cells = {(q, p, n, False): w[a] * w[b] for a, p in enumerate(members) for b, n in enumerate(members)
                 if w[a] > 0 and w[b] > 0 and rel(q, p) - rel(q, n) >= t_r}
        s = sum(cells.values())
        keep = 1 - (1 - s) ** (max_failures + 1) if drops else 1.0
        for k, v in cells.items():
            probs[k] = pi[q] * (1 - f_out) * keep * v / s
        for a, p in enumerate(members):
            for n in others:
                if w[a] > 0:
                    probs[(q, p, n, True)] = pi[q] * f_out * w[a] / len(others)
    z = sum(probs.values())
    return {tuple(int(x) for x in k[:3]) + (k[3],): v / z for k, v in probs.items()}


def buffered_exact(rel, t_p, t_r, f_out, max_failures, max_proposals, kappa=None) -> dict:
    """The same for the buffered sampler when every image fits in its buffer: category ∝ Σ r_j, query uniform,
    positive/negative from uniform proposals accepted w.p. min(1, κ·min{T_p, r_ij}/r_j) with at most max_proposals."""
    labels = np.unique(rel.categories)
    weight = {c: rel.total[rel.categories == c].sum() for c in labels}
    zc = sum(weight.values())
    probs = {}
    for c in labels:
        members = np.flatnonzero(rel.categories == c)
        k_c = 1.0 if kappa is None else kappa[c]
        others = np.flatnonzero(rel.categories != c)
        for q in members:
            cand = [j for j in members if j != q]
            a = np.array([min(1.0, k_c * min(t_p, rel(q, j)) / rel.total[j]) if rel(q, j) > 0 else 0.0 for j in cand])
            base = weight[c] / zc / len(members)
            if a.sum() == 0:
                continue
            succ = 1 - (1 - a.sum() / len(cand)) ** max_proposals
            w = a / a.sum()
            cells = {(q, p, n, False): w[x] * w[y] for x, p in enumerate(cand) for y, n in enumerate(cand)
                     if w[x] > 0 and w[y] > 0 and rel(q, p) - rel(q, n) >= t_r}
            pas = sum(cells.values())
            keep = sum((succ ** 2 * (1 - pas)) ** k * succ ** 2 * pas for k in range(max_failures + 1))
            for k, v in cells.items():
                probs[k] = base * (1 - f_out) * keep * v / pas
            for x, p in enumerate(cand):
                for n in others:
                    if w[x] > 0:
                        probs[(q, p, n, True)] = base * f_out * succ * w[x] / len(others)
    z = sum(probs.values())
    return {tuple(int(x) for x in k[:3]) + (k[3],): v / z for k, v in probs.items()}


def test_offline_batch_draws_follow_the_exact_triplet_distribution():
    """Whole-batch draws (large batches: one attempt per round; small ones: several) and the per-triplet
    reference both match the enumerated distribution, including queries dropped after max_failures."""
    rel = random_relevance([3, 4], seed=21, zero_frac=0.25)
    t_p, t_r, f_out, mf = 0.6, 0.15, 0.3, 0
    exact = offline_exact(rel, t_p, t_r, f_out, mf)
    n = 20_000
    s = OfflineTripletSampler(rel, t_p=t_p, t_r=t_r, out_of_class_fraction=f_out, max_failures=mf, seed=3)
    big = s.sample(n)
    small = tuple(np.concatenate(c) for c in zip(*[s.sample(16) for _ in range(300)]))
    rng = np.random.default_rng(4)
    ref = list(zip(*[s.sample_one(rng) for _ in range(n // 4)]))
    for t, m in [(big, n), (small, 4800), (ref, n // 4)]:
        assert chi_square_cells(counts_of(t), exact, m) > 1e-3
    # the test has power: forgetting that failing queries are dropped and redrawn is detected
    assert chi_square_cells(counts_of(big), offline_exact(rel, t_p, t_r, f_out, mf, drops=False), n) < 1e-6


@pytest.mark.parametrize("rescale", [False, True])
def test_buffered_batch_draws_follow_the_exact_triplet_distribution(rescale):
    """The closed-form proposal loop (slot ∝ acceptance, geometric number of proposals capped at
    max_proposals) gives the distribution of the per-proposal loop, drops included."""
    rel = random_relevance([4, 3], seed=8, zero_frac=0.2)
    t_p, t_r, f_out, mf, mp = (0.5 if rescale else 0.7), 0.1, 0.3, 1, 2
    s = BufferedTripletSampler(rel, capacity=5, t_p=t_p, t_r=t_r, out_of_class_fraction=f_out, max_failures=mf,
                               max_proposals=mp, rescale=rescale, seed=6)
    s.extend(range(len(rel)), rel.categories.tolist(), rel.total.tolist())
    kappa = {c: max(1.0, min(w for w in b.weights if w > 0) / t_p) if rescale else 1.0 for c, b in s.buffers.items()}
    exact = buffered_exact(rel, t_p, t_r, f_out, mf, mp, kappa)
    n = 20_000
    big = s.sample(n)
    small = tuple(np.concatenate(c) for c in zip(*[s.sample(16) for _ in range(200)]))
    rng = np.random.default_rng(7)
    s_ref = BufferedTripletSampler(rel, capacity=5, t_p=t_p, t_r=t_r, out_of_class_fraction=f_out, max_failures=mf,
                                   max_proposals=mp, rescale=rescale, seed=6)
    s_ref.extend(range(len(rel)), rel.categories.tolist(), rel.total.tolist())
    ref = list(zip(*[s_ref.sample_one(rng) for _ in range(n // 4)]))
    for t, m in [(big, n), (small, 3200), (ref, n // 4)]:
        assert chi_square_cells(counts_of(t), exact, m) > 1e-3
    # the test has power: forgetting the drops after max_proposals is detected
    assert chi_square_cells(counts_of(big), buffered_exact(rel, t_p, t_r, f_out, mf, 10**6, kappa), n) < 1e-6
    # the proposals, rejections and drops the batch draws stand for match the reference's per triplet
    for field in ("proposals", "rejected", "dropped_queries"):
        a, b = getattr(s.stats, field) / s.stats.triplets, getattr(s_ref.stats, field) / (n // 4)
        assert a == pytest.approx(b, rel=0.1, abs=0.01), field
    if rescale:
        assert max(kappa.values()) > 1.0  # the rescaled acceptance is exercised


def test_offer_many_keeps_the_same_items_as_offering_one_by_one():
    rng = np.random.default_rng(12)
    for trial in range(30):
        n, cap = int(rng.integers(1, 40)), int(rng.integers(1, 8))
        w = rng.random(n) * (rng.random(n) < 0.8)
        u = rng.random(n)
        one = Reservoir(cap)
        for i in range(n):
            one.offer(i, float(w[i]), float(u[i]))
        many = Reservoir(cap)
        cuts = np.sort(rng.integers(0, n + 1, 3))
        held = None
        for a, b in zip([0, *cuts], [*cuts, n]):
            held = many.offer_many(np.arange(a, b), w[a:b], u[a:b])
        # same items, except which of several zero-weight items (tied keys, −∞) fills a slot
        positive = set(np.flatnonzero(w > 0).tolist())
        assert len(many) == len(one) and set(many.contents()) & positive == set(one.contents()) & positive, trial
        assert set(np.arange(cuts[-1], n)[held].tolist()) == set(many.contents()) & set(range(cuts[-1], n))
    with pytest.raises(ValueError, match="finite and >= 0"):
        Reservoir(2).offer_many([0, 1], [1.0, -1.0], [0.5, 0.5])


def reservoir_many_subset_counts(trials, seed=0):
    rng = np.random.default_rng(seed)
    counts = {}
    w = np.array(WEIGHTS)
    for _ in range(trials):
        r = Reservoir(K)
        order = rng.permutation(len(WEIGHTS))
        cut = int(rng.integers(0, len(WEIGHTS) + 1))
        for part in (order[:cut], order[cut:]):
            r.offer_many(part, w[part], smp._uniform_open_many(rng, len(part)))
        key = frozenset(r.contents())
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_offer_many_matches_weighted_sampling_without_replacement(monkeypatch):
    trials = 6_000
    probs = exact_subset_probabilities(WEIGHTS, K)
    assert chi_square_pvalue(reservoir_many_subset_counts(trials), probs, trials) > 1e-3
    monkeypatch.setattr(smp, "_log_keys", lambda u, w: np.log(u) * w)  # k = u^r: detected
    assert chi_square_pvalue(reservoir_many_subset_counts(trials), probs, trials) < 1e-6


def test_stream_memory_stays_bounded_by_categories_times_capacity():
    import tracemalloc

    cap, n_cat, chunk = 16, 7, 5_000
    s = BufferedTripletSampler(lambda i, j: 1.0, capacity=cap, t_p=1.0, t_r=0.1, seed=0)
    heap = []
    tracemalloc.start()
    try:
        for s0 in range(0, 200_000, chunk):
            ids = np.arange(s0, s0 + chunk)
            s.extend(ids, ids % n_cat, 1.0 + (ids % 13))
            del ids
            heap.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert s.seen == 200_000 and s.memory_items() == n_cat * cap
    assert all(len(b) == cap for b in s.buffers.values())
    assert sum(b.nbytes() for b in s.buffers.values()) <= n_cat * cap * 24
    # what the sampler holds after 10 % of the stream is what it holds at the end (no growth with the stream)
    assert heap[-1] - heap[len(heap) // 10] < 64 * 1024, heap


def test_batch_sampling_is_deterministic_for_a_seed_and_uses_the_given_generator():
    rel = random_relevance([6, 5, 7], seed=2, zero_frac=0.1)

    def buffered():
        s = BufferedTripletSampler(rel, capacity=4, t_p=0.8, t_r=0.05, seed=3)
        s.extend(np.arange(len(rel)), rel.categories, rel.total)
        return s

    for make in (lambda: OfflineTripletSampler(rel, t_p=0.8, t_r=0.05, seed=3), buffered):
        a, b = make(), make()
        assert np.array_equal(a.sample(500).as_array(), b.sample(500).as_array())
        t1, t2 = a.sample(64, np.random.default_rng(9)), b.sample(64, np.random.default_rng(9))
        assert np.array_equal(t1.as_array(), t2.as_array()) and np.array_equal(t1.out_of_class, t2.out_of_class)
        assert not np.array_equal(a.sample(64, np.random.default_rng(10)).as_array(), t1.as_array())


def test_category_relevance_pairs_match_the_lookup():
    rel = random_relevance([4, 5, 3], seed=5)
    i, j = np.meshgrid(np.arange(len(rel)), np.arange(len(rel)), indexing="ij")
    expected = np.array([[rel(a, b) for b in range(len(rel))] for a in range(len(rel))])
    assert np.array_equal(rel.pairs(i, j), expected)
