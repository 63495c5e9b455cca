"""The book's replication engine: judging a paper's claim over training seeds *and* test queries.

A trained model's score on a test set varies for two reasons: which test queries were drawn (the test
set is a sample) and which training seed was used (initialisation, batch order, sampled triplets).
A verdict that looks at one of them only changes when the other does: a paired test over the queries
of ONE trained model says nothing about a second seed. This module estimates a claim's effect from
several seeds and all test queries, with an interval that covers both sources of variance, and turns
it into one of four verdicts used by every chapter (the chapter "How a verdict is decided" explains
the rules in prose; ``book/method.md``).

Data. :class:`Outcomes` holds one model's per-seed, per-query outcomes on one test set: for each
*stratum* (a family of test queries; SGRAF has two, images for image-to-text and captions for
text-to-image) an array (S, Q) of per-query values, optional *clusters* (queries resampled together,
e.g. all triplets of one emoji), and the seeds. A :class:`Metric` says how per-query values make the
reported number (a mean or a sum per stratum, times a scale, summed over strata), and what one
percentage point of it is (the unit of the book's "no worse" margin).

Interval. The effect of a claim is a contrast ``Σ_j c_j · metric(model_j)`` (``A − B`` for "A beats
B"; a longer contrast for a trend). :func:`contrast` draws ``n_boot`` two-level bootstrap replicates:
each replicate resamples the seeds (jointly for models trained with the same seeds, i.e. paired by
seed) and, independently, the test query clusters (jointly for all models: they share the test set),
and recomputes the contrast. Seed deviations are first rescaled by ``sqrt(S / (S − 1))`` so that the
resampled seed mean has the variance ``s² / S`` of the usual estimator instead of the plug-in's
``(S − 1) s² / S²`` (the query level gets the same ``sqrt(C / (C − 1))`` correction for C clusters). The
two levels add: a replicate is the contrast of the seed-averaged outcomes on the resampled queries plus
the deviation of the resampled seeds' mean from the seed mean, so the seed × query interaction is
not counted twice. With three seeds the seed variance has only two degrees of freedom, which a
percentile interval ignores; so the interval is ``estimate ± t_ν · SE`` with SE the replicates'
standard deviation and ν the Welch–Satterthwaite degrees of freedom of the two variance components
(seeds: S − 1; queries: clusters − 1). When the seed term dominates, ν is near S − 1 and the interval
widens accordingly; when the query term dominates it is the usual normal interval. The tests check the
vectorised replicates against a plain loop and the interval's coverage on simulated data.

Verdicts (:func:`verdict`), with the effect oriented so that positive is what the paper says:

- **held**: the whole interval is above 0;
- **reversed**: the whole interval is below 0 (for "no worse" claims: below −margin);
- **no worse (within margin)**: only for "A ≥ B" claims, a non-inferiority test: the interval's lower
  end is above −margin but not above 0;
- **not resolved**: anything else; the row then gives the minimum detectable effect at 80 % power
  (:attr:`Estimate.mde`), what this setup could have seen.

The margin is one rule for the whole book, fixed before any result was seen: one percentage point on
each percentage the metric is made of (MAP 0.01, similarity precision 1 point, rSum 6 points, i.e. one
point on each of its six R@K).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from scipy import special  # the t distribution: stdtr / stdtrit (what scipy.stats.t calls, without importing scipy.stats)

MARGIN_POINTS = 1.0
"""The "no worse" margin in percentage points of the metric (the same rule in every chapter)."""

POWER = 0.8
"""Power at which the minimum detectable effect of an unresolved claim is stated."""

HELD, REVERSED, NO_WORSE, NOT_RESOLVED = "held", "reversed", "no worse (within margin)", "not resolved"
VERDICTS = (HELD, NO_WORSE, NOT_RESOLVED, REVERSED)

Kind = Literal["greater", "not_worse", "trend", "best"]
KINDS: tuple[str, ...] = ("greater", "not_worse", "trend", "best")


# ------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Metric:
    """How per-query values make a reported number.

    Attributes:
        name: as the tables print it (``"MAP"``, ``"precision %"``, ``"rSum"``).
        reduce: per stratum, ``"mean"`` or ``"sum"`` of the per-query values.
        scale: multiplies each stratum's mean or sum (e.g. 100 for a percentage).
        point: how many units of the metric make one percentage point (MAP 0.01, precision in % 1,
            rSum 6); the "no worse" margin is ``MARGIN_POINTS * point``.
    """

    name: str
    reduce: Literal["mean", "sum"] = "mean"
    scale: float = 1.0
    point: float = 0.01

    def __post_init__(self) -> None:
        if self.reduce not in ("mean", "sum"):
            raise ValueError(f"Metric {self.name!r}: reduce must be 'mean' or 'sum', got {self.reduce!r}")
        if not (self.point > 0 and math.isfinite(self.point)):
            raise ValueError(f"Metric {self.name!r}: point must be a positive number, got {self.point!r}")

    @property
    def margin(self) -> float:
        return MARGIN_POINTS * self.point

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reduce": self.reduce, "scale": self.scale, "point": self.point}


@dataclass(frozen=True)
class Outcomes:
    """One model's per-seed, per-query outcomes on one test set.

    Attributes:
        values: stratum name → (S, Q) array, row s = training seed ``seeds[s]``, column q = test query q
            (AP of a query, 1/0 for a correctly ranked triplet, the number of R@K hits of a caption, ...).
        seeds: the training seeds, one per row (a deterministic method has one row; its seed is ``None``).
        clusters: stratum name → (Q,) ids of queries that are resampled together (default: each query
            alone).
    """

    values: Mapping[str, np.ndarray]
    seeds: tuple[int | None, ...] = (None,)
    clusters: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("Outcomes need at least one stratum of per-query values")
        vals = {}
        for name, v in self.values.items():
            a = np.asarray(v, dtype=np.float64)
            if a.ndim == 1:
                a = a[None]
            if a.ndim != 2 or a.shape[1] == 0:
                raise ValueError(f"stratum {name!r}: values must be (seeds, queries), got shape {np.shape(v)}")
            if a.shape[0] != len(self.seeds):
                raise ValueError(f"stratum {name!r}: {a.shape[0]} rows of values for {len(self.seeds)} seeds")
            if not np.isfinite(a).all():
                raise ValueError(f"stratum {name!r}: values must be finite (found NaN or inf)")
            vals[name] = a
        object.__setattr__(self, "values", vals)
        for name, c in self.clusters.items():
            if name not in vals or len(np.asarray(c)) != vals[name].shape[1]:
                raise ValueError(f"clusters of stratum {name!r} must give one id per query")

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def cluster_ids(self, stratum: str) -> np.ndarray:
        c = self.clusters.get(stratum)
        return np.arange(self.values[stratum].shape[1]) if c is None else np.asarray(c)

    def per_seed(self, metric: Metric) -> np.ndarray:
        """The metric of each seed on the whole test set: (S,)."""
        out = np.zeros(self.n_seeds)
        for v in self.values.values():
            out += metric.scale * (v.mean(1) if metric.reduce == "mean" else v.sum(1))
        return out

    def value(self, metric: Metric) -> float:
        """The metric averaged over seeds."""
        return float(self.per_seed(metric).mean())

    @classmethod
    def stack(cls, per_seed: Sequence[Mapping[str, np.ndarray]], seeds: Sequence[int | None],
              clusters: Mapping[str, np.ndarray] | None = None) -> "Outcomes":
        """From one ``{stratum: (Q,) values}`` per seed."""
        if len(per_seed) != len(seeds) or not per_seed:
            raise ValueError(f"{len(per_seed)} outcome sets for {len(seeds)} seeds")
        names = list(per_seed[0])
        return cls({n: np.stack([np.asarray(p[n], dtype=np.float64) for p in per_seed]) for n in names},
                   tuple(seeds), dict(clusters or {}))


# --------------------------------------------------------------------------------- resampling plan
@dataclass(frozen=True)
class _Prepared:
    """Cluster sums of every model: ``sums[j][k]`` (S_j, C_k), cluster sizes ``counts[k]`` (C_k,)."""

    strata: tuple[str, ...]
    counts: tuple[np.ndarray, ...]
    sums: tuple[tuple[np.ndarray, ...], ...]
    groups: tuple[tuple[int, ...], ...]  # models resampled jointly over seeds (paired by seed)


def _prepare(models: Sequence[Outcomes]) -> _Prepared:
    strata = tuple(models[0].values)
    for m in models[1:]:
        if tuple(m.values) != strata:
            raise ValueError(f"models measured on different strata: {strata} vs {tuple(m.values)}")
    counts, inverse = [], []
    for name in strata:
        ref = models[0].cluster_ids(name)
        q = models[0].values[name].shape[1]
        for m in models[1:]:
            if m.values[name].shape[1] != q or not np.array_equal(m.cluster_ids(name), ref):
                raise ValueError(f"stratum {name!r}: models must be scored on the same test queries and clusters")
        _, inv = np.unique(ref, return_inverse=True)
        counts.append(np.bincount(inv).astype(np.float64))
        inverse.append(inv)
    sums = []
    for m in models:
        per = []
        for name, inv, n in zip(strata, inverse, counts):
            v = m.values[name]
            s = np.zeros((v.shape[0], len(n)))
            np.add.at(s.T, inv, v.T)
            per.append(s)
        sums.append(tuple(per))
    groups: dict[tuple, list[int]] = {}
    for j, m in enumerate(models):
        key = m.seeds if m.n_seeds > 1 else ("single", j)
        groups.setdefault(key, []).append(j)
    return _Prepared(strata, tuple(counts), tuple(sums), tuple(tuple(g) for g in groups.values()))


@dataclass(frozen=True)
class Plan:
    """One resampling plan: how often each query cluster (``clusters[k]``: (B, C_k)) and each seed of
    each seed group (``seeds[g]``: (B, S_g), or None for a single-seed group) is drawn per replicate."""

    clusters: tuple[np.ndarray, ...]
    seeds: tuple[np.ndarray | None, ...]

    @property
    def n_boot(self) -> int:
        return len(self.clusters[0])


def draw_plan(prep: _Prepared, n_seeds: Sequence[int], n_boot: int, rng: np.random.Generator) -> Plan:
    """Multinomial resampling counts: query clusters per stratum, then seeds per seed group."""
    clusters = tuple(rng.multinomial(len(c), np.full(len(c), 1 / len(c)), size=n_boot) for c in prep.counts)
    seeds = []
    for g in prep.groups:
        s = n_seeds[g[0]]
        seeds.append(rng.multinomial(s, np.full(s, 1 / s), size=n_boot) if s > 1 else None)
    return Plan(clusters, tuple(seeds))


def _rescaled(values: np.ndarray) -> np.ndarray:
    """Deviations around the mean of axis 0 scaled by sqrt(S / (S − 1)) (see the module docstring)."""
    s = values.shape[0]
    if s == 1:
        return values
    mean = values.mean(0, keepdims=True)
    return mean + math.sqrt(s / (s - 1)) * (values - mean)


def _stat_of_sums(sums: np.ndarray, w: np.ndarray, counts: np.ndarray, metric: Metric) -> np.ndarray:
    """The metric of one stratum from cluster sums ``sums`` (..., C) under cluster weights ``w`` (b, C)."""
    num = w @ sums if sums.ndim == 1 else (w * sums).sum(-1)
    return metric.scale * (num / (w @ counts) if metric.reduce == "mean" else num)


def replicates(models: Sequence[Outcomes], weights: Sequence[float], metric: Metric, plan: Plan,
               *, seed_resampling: bool = True, chunk: int = 512) -> np.ndarray:
    """The contrast ``Σ_j c_j metric(model_j)`` in every replicate of ``plan``: (B,).

    A replicate is the contrast of the seed-averaged outcomes on the resampled queries, plus the
    deviation of the resampled seeds' mean metric (rescaled, on all queries) from the seed mean: the
    two levels are resampled independently, and the seed × query interaction is not counted twice.
    ``seed_resampling=False`` leaves the seed level out (queries only).
    """
    prep = _prepare(models)
    group_of = {j: g for g, members in enumerate(prep.groups) for j in members}
    out = np.zeros(plan.n_boot)
    for j, c in enumerate(weights):
        for k in range(len(prep.strata)):
            mean_sums = prep.sums[j][k].mean(0)  # (C,) seed-averaged cluster sums
            n_c = len(mean_sums)
            full = _stat_of_sums(mean_sums, np.ones((1, n_c)), prep.counts[k], metric)[0]
            factor = math.sqrt(n_c / (n_c - 1)) if n_c > 1 else 1.0  # the same small-sample rescaling
            for b0 in range(0, plan.n_boot, chunk):
                w = plan.clusters[k][b0:b0 + chunk]
                rep = _stat_of_sums(mean_sums, w, prep.counts[k], metric)
                out[b0:b0 + chunk] += c * (full + factor * (rep - full))
        u = plan.seeds[group_of[j]]
        if seed_resampling and u is not None:
            theta = _rescaled(models[j].per_seed(metric))  # (S,) each seed's metric on all queries
            out += c * ((u / u.sum(1, keepdims=True)) @ theta - theta.mean())
    return out


def replicates_reference(models: Sequence[Outcomes], weights: Sequence[float], metric: Metric,
                         plan: Plan) -> np.ndarray:
    """:func:`replicates` written as plain loops over replicates, seeds and queries (for the tests)."""
    prep = _prepare(models)
    group_of = {j: g for g, members in enumerate(prep.groups) for j in members}
    out = []
    for b in range(plan.n_boot):
        effect = 0.0
        for j, (m, c) in enumerate(zip(models, weights)):
            stat = 0.0
            for k, name in enumerate(prep.strata):
                mean_values = m.values[name].mean(0)  # each query's value averaged over seeds
                ids = m.cluster_ids(name)
                picked = [q for ci, cid in enumerate(np.unique(ids)) for _ in range(int(plan.clusters[k][b, ci]))
                          for q in np.flatnonzero(ids == cid)]
                vals = [mean_values[q] for q in picked]
                rep = metric.scale * (sum(vals) / len(vals) if metric.reduce == "mean" else sum(vals))
                full = metric.scale * (mean_values.mean() if metric.reduce == "mean" else mean_values.sum())
                n_c = len(np.unique(ids))
                stat += full + (math.sqrt(n_c / (n_c - 1)) if n_c > 1 else 1.0) * (rep - full)
            u = plan.seeds[group_of[j]]
            if u is not None:
                per_seed = [sum(metric.scale * (v[s].mean() if metric.reduce == "mean" else v[s].sum())
                                for v in m.values.values()) for s in range(m.n_seeds)]
                centre = sum(per_seed) / len(per_seed)
                factor = math.sqrt(m.n_seeds / (m.n_seeds - 1))
                drawn = [centre + factor * (per_seed[s] - centre) for s in range(m.n_seeds) for _ in range(int(u[b, s]))]
                stat += sum(drawn) / len(drawn) - centre
            effect += c * stat
        out.append(effect)
    return np.array(out)


# --------------------------------------------------------------------------------------- estimates
@dataclass(frozen=True)
class Estimate:
    """A contrast's estimate over seeds and queries, its interval and what it could detect.

    ``estimate`` is the contrast of the seed-averaged metrics on all test queries; ``low``/``high`` the
    ``1 − alpha`` interval ``estimate ± t_df · se``; ``se`` the two-level bootstrap standard error;
    ``se_seeds``/``se_queries`` the two variance components' standard errors; ``df`` the
    Welch–Satterthwaite degrees of freedom; ``p`` the two-sided p-value of "no effect"; ``mde`` the
    smallest true effect that a test at ``alpha`` detects with 80 % power here; ``per_seed`` the
    contrast of each seed (models paired by seed) or None; ``values`` each model's seed-averaged metric.
    """

    estimate: float
    low: float
    high: float
    se: float
    se_seeds: float
    se_queries: float
    df: float
    p: float
    mde: float
    alpha: float
    n_boot: int
    n_seeds: tuple[int, ...]
    n_queries: tuple[int, ...]
    values: tuple[float, ...]
    per_seed: tuple[float, ...] | None
    spread: tuple[float, ...] = ()  # each model's standard deviation over seeds (0 for one seed)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["n_seeds"], d["n_queries"], d["values"] = list(self.n_seeds), list(self.n_queries), list(self.values)
        d["per_seed"] = None if self.per_seed is None else list(self.per_seed)
        d["spread"] = list(self.spread)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    def scaled(self, factor: float) -> "Estimate":
        """The same estimate in other units (e.g. ×100 for percentage points)."""
        f = float(factor)
        lo, hi = sorted((self.low * f, self.high * f))
        return Estimate(self.estimate * f, lo, hi, self.se * abs(f), self.se_seeds * abs(f), self.se_queries * abs(f),
                        self.df, self.p, self.mde * abs(f), self.alpha, self.n_boot, self.n_seeds, self.n_queries,
                        tuple(v * f for v in self.values),
                        None if self.per_seed is None else tuple(v * f for v in self.per_seed),
                        tuple(v * abs(f) for v in self.spread))


def _satterthwaite(components: Sequence[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of variance components ``(variance, df)``."""
    num = sum(v for v, _ in components) ** 2
    den = sum(v * v / d for v, d in components if d > 0 and v > 0)
    return math.inf if den == 0 else num / den


def _t_quantile(q: float, df: float) -> float:
    """Student's t quantile, ``scipy.stats.t.ppf(q, df)`` (the same function, df = inf included)."""
    return float(special.stdtrit(df, q))


def _t_sf(x: float, df: float) -> float:
    """Student's t upper tail, ``scipy.stats.t.sf(x, df)``."""
    return float(special.stdtr(df, -x))


def mde(se: float, df: float, alpha: float = 0.05, power: float = POWER) -> float:
    """Minimum detectable effect of a two-sided test at ``alpha`` with ``power``: (t_{1−α/2} + t_power)·SE."""
    return float((_t_quantile(1 - alpha / 2, df) + _t_quantile(power, df)) * se)


def contrast(models: Sequence[Outcomes], weights: Sequence[float], metric: Metric, *, n_boot: int = 2000,
             seed: int = 0, alpha: float = 0.05) -> Estimate:
    """Estimate ``Σ_j weights[j] · metric(models[j])`` with its interval over seeds and queries.

    Models with the same seed tuple (more than one seed) are paired by seed; all models must be scored
    on the same test queries (they are paired over queries).
    """
    if len(models) != len(weights) or not models:
        raise ValueError(f"{len(models)} models for {len(weights)} contrast weights")
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    prep = _prepare(models)
    n_seeds = [m.n_seeds for m in models]
    rng = np.random.default_rng(seed)
    plan = draw_plan(prep, n_seeds, n_boot, rng)
    both = replicates(models, weights, metric, plan)
    queries_only = replicates(models, weights, metric, plan, seed_resampling=False)
    per_model = [m.per_seed(metric) for m in models]
    estimate = float(sum(c * v.mean() for c, v in zip(weights, per_model)))
    # variance components: queries (bootstrap over queries with the seed means) and seeds (per group)
    v_query = float(queries_only.var(ddof=1))
    n_clusters = [len(c) for c in prep.counts]
    components = [(v_query, min(n_clusters) - 1)]
    per_seed_effect = None
    for members in prep.groups:
        s = n_seeds[members[0]]
        if s < 2:
            continue
        theta = sum(weights[j] * per_model[j] for j in members)  # (S,) the group's part of the contrast per seed
        components.append((float(np.var(theta, ddof=1)) / s, s - 1))
        if len(prep.groups) == 1:
            per_seed_effect = tuple(float(t) for t in theta)
    se = float(both.std(ddof=1))
    df = _satterthwaite(components)
    t_crit = _t_quantile(1 - alpha / 2, df)
    p = 2 * _t_sf(abs(estimate) / se, df) if se > 0 else (0.0 if estimate != 0 else 1.0)
    v_seed = sum(v for v, _ in components[1:])
    return Estimate(estimate=estimate, low=estimate - t_crit * se, high=estimate + t_crit * se, se=se,
                    se_seeds=math.sqrt(v_seed), se_queries=math.sqrt(v_query), df=df, p=p,
                    mde=mde(se, df, alpha), alpha=alpha, n_boot=n_boot, n_seeds=tuple(n_seeds),
                    n_queries=tuple(int(v.shape[1]) for v in models[0].values.values()),
                    values=tuple(float(v.mean()) for v in per_model), per_seed=per_seed_effect,
                    spread=tuple(float(v.std(ddof=1)) if len(v) > 1 else 0.0 for v in per_model))


def difference(a: Outcomes, b: Outcomes, metric: Metric, **kw: Any) -> Estimate:
    """``metric(a) − metric(b)`` over seeds and queries (:func:`contrast` with weights (1, −1))."""
    return contrast([a, b], [1.0, -1.0], metric, **kw)


def trend_weights(settings: Sequence[float]) -> list[float]:
    """Contrast weights whose contrast is the least-squares slope of the metric against ``settings``
    (per unit of the setting). Negate the settings for a claim that the metric *falls* with them."""
    x = np.asarray(settings, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("a trend needs at least two different settings")
    return ((x - x.mean()) / ((x - x.mean()) ** 2).sum()).tolist()


def linear_trend(models: Sequence[Outcomes], settings: Sequence[float], metric: Metric, **kw: Any) -> Estimate:
    """The least-squares slope of the metric against ``settings`` (per unit of the setting)."""
    if len(settings) != len(models):
        raise ValueError(f"{len(models)} models for {len(settings)} settings")
    return contrast(models, trend_weights(settings), metric, **kw)


# ---------------------------------------------------------------------------------------- verdicts
def verdict(kind: str, est: Estimate, margin: float = 0.0) -> str:
    """The book's verdict for a claim of ``kind`` whose effect ``est`` is oriented as the paper says.

    ``greater`` / ``trend``: held if the interval is above 0, reversed if below 0. ``not_worse``
    (A ≥ B): held if above 0, no worse (within margin) if above −margin, reversed if below 0 and not
    within the margin, else not resolved. ``best`` claims are judged by :func:`best_cell`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown claim kind {kind!r}; choose one of {KINDS}")
    if kind == "best":
        raise ValueError("'best' claims are judged with best_cell(), which compares every cell")
    if est.low > 0:
        return HELD
    if kind == "not_worse":
        if margin <= 0:
            raise ValueError("a 'not_worse' claim needs a positive margin")
        if est.low > -margin:
            return NO_WORSE
        return REVERSED if est.high < 0 else NOT_RESOLVED
    return REVERSED if est.high < 0 else NOT_RESOLVED


@dataclass(frozen=True)
class BestCell:
    """The claimed cell against every other cell of a grid (Bonferroni over the comparisons)."""

    claimed: str
    observed_best: str
    comparisons: dict[str, Estimate]  # other cell → claimed − other
    closest: str  # the other cell with the smallest estimated difference
    verdict: str

    @property
    def estimate(self) -> Estimate:
        return self.comparisons[self.closest]


def best_cell(cells: Mapping[str, Outcomes], claimed: str, metric: Metric, *, n_boot: int = 2000, seed: int = 0,
              alpha: float = 0.05) -> BestCell:
    """Is ``claimed`` the best cell? Held if it beats every other cell, reversed if some cell beats it,
    each at ``alpha / (cells − 1)``; otherwise not resolved."""
    if claimed not in cells or len(cells) < 2:
        raise ValueError(f"the claimed cell {claimed!r} must be one of at least two cells: {list(cells)}")
    a = alpha / (len(cells) - 1)
    comps = {name: difference(cells[claimed], other, metric, n_boot=n_boot, seed=seed, alpha=a)
             for name, other in cells.items() if name != claimed}
    closest = min(comps, key=lambda n: comps[n].estimate)
    if all(e.low > 0 for e in comps.values()):
        v = HELD
    elif any(e.high < 0 for e in comps.values()):
        v = REVERSED
    else:
        v = NOT_RESOLVED
    observed = max(cells, key=lambda n: cells[n].value(metric))
    return BestCell(claimed, observed, comps, closest, v)


# ------------------------------------------------------------------------------------------ claims
@dataclass(frozen=True)
class Claim:
    """A paper's claim as the book tests it.

    Attributes:
        key: short id, e.g. ``"dcmm-a"``.
        paper: ``"DCMM"``, ``"Deep Ranking"`` or ``"SGRAF"``.
        statement: the claim as the paper supports it, oriented so that a positive effect agrees.
        kind: ``greater`` (A > B), ``not_worse`` (A ≥ B, judged with the margin), ``trend`` (a
            contrast over a setting), ``best`` (a cell of a grid is the best).
        metric: the metric the effect is measured in.
        paper_effect: the paper's own effect in the same units where its tables give it (else None),
            and ``paper_detail`` its numbers as text.
        section: the chapter section (a MyST target) that tests it.
        modified: empty when the method is the paper's; else what our method changes (the row says so).
    """

    key: str
    paper: str
    statement: str
    kind: str
    metric: Metric
    paper_effect: float | None = None
    paper_detail: str = ""
    section: str = ""
    modified: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.key!r}: unknown kind {self.kind!r}; choose one of {KINDS}")


@dataclass(frozen=True)
class Judgement:
    """A claim, the evidence and the verdict: one row of a chapter's replication table and of the
    book's scorecard."""

    claim: Claim
    estimate: Estimate
    verdict: str
    comparison: str = ""  # what was compared, e.g. "DCMM-edge − LTR+CM"
    notes: str = ""
    labels: tuple[str, ...] = ()  # the compared models' names, in the order of ``estimate.values``

    @property
    def effect_points(self) -> Estimate:
        """The estimate in percentage points of the metric (for plots across metrics)."""
        return self.estimate.scaled(1 / self.claim.metric.point)

    def to_dict(self) -> dict[str, Any]:
        c = self.claim
        return {"key": c.key, "paper": c.paper, "statement": c.statement, "kind": c.kind, "metric": c.metric.to_dict(),
                "paper_effect": c.paper_effect, "paper_detail": c.paper_detail, "section": c.section,
                "modified": c.modified, "comparison": self.comparison, "notes": self.notes,
                "verdict": self.verdict, "margin": c.metric.margin, "estimate": self.estimate.to_dict(),
                "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Judgement":
        m = d["metric"]
        claim = Claim(d["key"], d["paper"], d["statement"], d["kind"], Metric(m["name"], m["reduce"], m["scale"], m["point"]),
                      d.get("paper_effect"), d.get("paper_detail", ""), d.get("section", ""), d.get("modified", ""))
        e = dict(d["estimate"])
        for k in ("low", "high", "df", "mde", "p", "se", "se_seeds", "se_queries"):
            if e.get(k) is None:
                e[k] = math.inf if k in ("df",) else math.nan
        e["n_seeds"], e["n_queries"], e["values"] = tuple(e["n_seeds"]), tuple(e["n_queries"]), tuple(e["values"])
        e["per_seed"] = None if e.get("per_seed") is None else tuple(e["per_seed"])
        e["spread"] = tuple(e.get("spread", ()))
        return cls(claim, Estimate(**e), d["verdict"], d.get("comparison", ""), d.get("notes", ""),
                   tuple(d.get("labels", ())))


def judge(claim: Claim, models: Sequence[Outcomes], weights: Sequence[float], *, comparison: str = "",
          labels: Sequence[str] = (), notes: str = "", n_boot: int = 2000, seed: int = 0,
          alpha: float = 0.05) -> Judgement:
    """Estimate the claim's contrast and decide its verdict (``greater``, ``not_worse``, ``trend``)."""
    est = contrast(models, weights, claim.metric, n_boot=n_boot, seed=seed, alpha=alpha)
    return Judgement(claim, est, verdict(claim.kind, est, claim.metric.margin), comparison, notes, tuple(labels))


def judge_best(claim: Claim, cells: Mapping[str, Outcomes], claimed: str, *, notes: str = "", n_boot: int = 2000,
               seed: int = 0, alpha: float = 0.05) -> Judgement:
    """A ``best`` claim: the claimed cell against the closest other cell (all compared, Bonferroni)."""
    if claim.kind != "best":
        raise ValueError(f"claim {claim.key!r} is of kind {claim.kind!r}, not 'best'")
    b = best_cell(cells, claimed, claim.metric, n_boot=n_boot, seed=seed, alpha=alpha)
    extra = f"observed best: {b.observed_best}; closest other cell: {b.closest}"
    return Judgement(claim, b.estimate, b.verdict, f"{claimed} − {b.closest}", "; ".join(x for x in (notes, extra) if x),
                     (claimed, b.closest))
