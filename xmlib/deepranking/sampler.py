"""Triplet sampling with relevance weights (Sec. 5.1 of Wang et al., CVPR 2014), chapter "Sampling triplets".

Relevance ``r_ij`` is defined within a category only (``r_ij = 0`` across categories and on the
diagonal); the total relevance of an image is ``r_i = Σ_{j: c_j = c_i, j ≠ i} r_ij``.

:class:`OfflineTripletSampler` — the paper's sampler over a dense per-category relevance
(:class:`CategoryRelevance`, memory Σ_c n_c²):

- query ``p_i`` drawn with probability ∝ ``r_i``;
- positive ``p_i+`` from the query's category with ``P(p_i+) = min{T_p, r_{i,i+}} / Z_i``;
- negative: with probability ``out_of_class_fraction`` **out-of-class** (uniform over the images of the
  other categories), else **in-class**, drawn like the positive and kept only if
  ``r_{i,i+} − r_{i,i−} ≥ T_r``; a failing triplet is rejected and redrawn (positive and negative);
  after ``max_failures`` rejections the query is dropped and a new one drawn.

:class:`BufferedTripletSampler` — the streaming version: one fixed-capacity buffer per category filled
by weighted reservoir sampling (Efraimidis & Spirakis 2006): image j with weight ``r_j`` gets the key
``k_j = u_j^{1/r_j}``, ``u_j ~ U(0, 1)``; a full buffer replaces its minimum-key item when ``k_j`` is
larger, else drops image j. The top-``m`` keys are a weighted sample without replacement. Keys are
kept as ``log k_j = log(u_j) / r_j`` (same order, no underflow). Sampling touches only the buffers and
the relevance callable ``r(i, j)``:

- the category is drawn ∝ the total weight Σ r_j of the images offered to it so far (so the query
  marginal follows the offline sampler's ∝ r_i), the query uniformly from its buffer;
- positive: uniform proposal from the same buffer, accepted with probability
  ``min(1, min{T_p, r_{i,i+}} / r_{i+})`` (optionally times a constant κ, ``rescale=True``) (an image is in the buffer with probability growing with
  ``r_{i+}``; dividing by it aims the positive at ∝ min{T_p, r_{i,i+}}); with ``T_p ≥ max r`` this is
  the paper's ``min(1, r_{i,i+} / r_{i+})``;
- in-class negative: drawn like the positive, subject to ``T_r`` with rejection as above;
- out-of-class negative: uniform over the union of the other buffers.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Callable, Hashable, NamedTuple, Sequence

import numpy as np

_MAX_DROPS = 1_000  # consecutive dropped queries before giving up
_STUCK = (f"{_MAX_DROPS} queries in a row were dropped: no valid triplet exists under these settings; "
          "lower t_r, raise max_failures, or use categories with more images")


class Triplets(NamedTuple):
    """Indices of a batch of triplets t_i = (p_i, p_i+, p_i−), plus which negatives are out-of-class."""

    query: np.ndarray  # (B,) int64
    positive: np.ndarray  # (B,) int64
    negative: np.ndarray  # (B,) int64
    out_of_class: np.ndarray  # (B,) bool

    def as_array(self) -> np.ndarray:
        """(B, 3) int64 array of (query, positive, negative)."""
        return np.stack([self.query, self.positive, self.negative], axis=1)


# ----------------------------------------------------------------------------- relevance
class CategoryRelevance:
    """Dense within-category relevance ``r_ij``, one (n_c, n_c) block per category.

    Args:
        categories: (N,) category id of each image (any integers).
        blocks: ``{category: (n_c, n_c) array}``; row/column order = the category's images in
            increasing index order (``members[c]``). Values must be finite and ≥ 0; the diagonal is
            set to 0 (r_ii is not a relevance).
    """

    def __init__(self, categories: Sequence[int] | np.ndarray, blocks: dict[int, np.ndarray]):
        cats = np.asarray(categories)
        if cats.ndim != 1:
            raise ValueError(f"categories must be 1-D (N,), got shape {cats.shape}")
        self.categories = cats.astype(np.int64)
        self.labels = np.unique(self.categories)
        self.members: dict[int, np.ndarray] = {int(c): np.flatnonzero(self.categories == c) for c in self.labels}
        self.position = np.empty(len(cats), dtype=np.int64)  # index of image i inside its category
        for c, idx in self.members.items():
            self.position[idx] = np.arange(len(idx))
        self.blocks: dict[int, np.ndarray] = {}
        for c, idx in self.members.items():
            if c not in blocks:
                raise ValueError(f"relevance blocks lack category {c} ({len(idx)} images)")
            b = np.array(blocks[c], dtype=np.float64)
            if b.shape != (len(idx), len(idx)):
                raise ValueError(f"relevance block of category {c} has shape {b.shape}, expected {(len(idx), len(idx))}")
            if not np.all(np.isfinite(b)) or (b < 0).any():
                raise ValueError(f"relevance block of category {c} must be finite and >= 0")
            np.fill_diagonal(b, 0.0)
            self.blocks[c] = b
        self.total = np.zeros(len(cats))  # r_i
        for c, idx in self.members.items():
            self.total[idx] = self.blocks[c].sum(axis=1)

    @classmethod
    def from_function(cls, categories, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> "CategoryRelevance":
        """Blocks from ``fn(rows, cols)`` → (len(rows), len(cols)) relevance of image indices."""
        cats = np.asarray(categories)
        blocks = {}
        for c in np.unique(cats):
            idx = np.flatnonzero(cats == c)
            blocks[int(c)] = np.asarray(fn(idx, idx), dtype=np.float64)
        return cls(cats, blocks)

    def __len__(self) -> int:
        return len(self.categories)

    def __call__(self, i: int, j: int) -> float:
        """``r_ij`` (0 across categories and for i = j)."""
        c = self.categories[i]
        if c != self.categories[j]:
            return 0.0
        return float(self.blocks[int(c)][self.position[i], self.position[j]])

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices of i's category, r_i· over them)."""
        c = int(self.categories[i])
        return self.members[c], self.blocks[c][self.position[i]]

    def memory_bytes(self) -> int:
        return int(sum(b.nbytes for b in self.blocks.values()))


# ----------------------------------------------------------------------------- offline sampler
@dataclass
class SamplerStats:
    triplets: int = 0
    out_of_class: int = 0
    rejected: int = 0  # triplets failing T_r
    dropped_queries: int = 0  # queries abandoned after max_failures rejections
    proposals: int = 0  # (buffered) uniform proposals drawn for positives/negatives


class OfflineTripletSampler:
    """The paper's relevance-weighted triplet sampler over a dense :class:`CategoryRelevance` (Sec. 5.1 of
    Deep Ranking; the positive's distribution is chapter label `eq-dr-positive`).

    Args:
        relevance: r_ij.
        t_p: T_p, cap in ``P(p_i+) ∝ min{T_p, r_{i,i+}}``.
        t_r: T_r > 0, margin for in-class negatives.
        out_of_class_fraction: probability that a triplet's negative is out-of-class.
        max_failures: rejections before a query is dropped.
        seed: for the sampler's own ``numpy.random.Generator``, used when :meth:`sample` is not given one.
    """

    def __init__(self, relevance: CategoryRelevance, t_p: float, t_r: float, out_of_class_fraction: float = 0.2,
                 max_failures: int = 20, seed: int = 0):
        _check_params(t_p, t_r, out_of_class_fraction, max_failures)
        self.r = relevance
        self.t_p, self.t_r, self.f_out, self.max_failures = t_p, t_r, out_of_class_fraction, max_failures
        self._rng = np.random.default_rng(seed)
        self.stats = SamplerStats()
        if self.r.total.sum() <= 0:
            raise ValueError("all relevances are 0: no image can be a query (need r_ij > 0 within some category)")
        self._query_cdf = np.cumsum(self.r.total)  # P(p_i) ∝ r_i
        # per category: cumulative min{T_p, r_ij} along each row, for P(p_i+) ∝ min{T_p, r_{i,i+}}
        self._pos_cdf = {c: np.cumsum(np.minimum(t_p, b), axis=1) for c, b in self.r.blocks.items()}
        order = np.argsort(self.r.categories, kind="stable")
        self._order = order  # images sorted by category, for uniform out-of-class draws
        self._start = {c: int(np.searchsorted(self.r.categories[order], c, "left")) for c in self.r.members}
        if out_of_class_fraction > 0 and len(self.r.members) < 2:
            raise ValueError("out_of_class_fraction > 0 needs at least 2 categories")

    def _draw_query(self, rng: np.random.Generator) -> int:
        u = rng.random() * self._query_cdf[-1]
        return int(min(np.searchsorted(self._query_cdf, u, side="right"), len(self._query_cdf) - 1))

    def _draw_in_class(self, i: int, rng: np.random.Generator) -> int:
        """An image of i's category with probability min{T_p, r_ij} / Z_i (Sec. 5.1 of Deep Ranking;
        chapter label `eq-dr-positive`)."""
        c = int(self.r.categories[i])
        row = self._pos_cdf[c][self.r.position[i]]
        t = int(np.searchsorted(row, rng.random() * row[-1], side="right"))
        return int(self.r.members[c][min(t, len(row) - 1)])

    def _draw_out_of_class(self, i: int, rng: np.random.Generator) -> int:
        c = int(self.r.categories[i])
        n_c = len(self.r.members[c])
        k = int(rng.integers(len(self._order) - n_c))
        start = self._start[c]
        return int(self._order[k if k < start else k + n_c])

    def sample_one(self, rng: np.random.Generator) -> tuple[int, int, int, bool]:
        """One triplet (query, positive, negative, out_of_class) drawn with ``rng``."""
        for _ in range(_MAX_DROPS):
            i = self._draw_query(rng)
            out = bool(rng.random() < self.f_out)
            for _ in range(self.max_failures + 1):
                pos = self._draw_in_class(i, rng)
                if out:
                    return i, pos, self._draw_out_of_class(i, rng), True
                neg = self._draw_in_class(i, rng)
                if self.r(i, pos) - self.r(i, neg) >= self.t_r:
                    return i, pos, neg, False
                self.stats.rejected += 1
            self.stats.dropped_queries += 1
        raise RuntimeError(_STUCK)

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> Triplets:
        """``batch_size`` triplets drawn with ``rng`` (default: the sampler's own generator, from ``seed``)."""
        rng = self._rng if rng is None else rng
        rows = [self.sample_one(rng) for _ in range(batch_size)]
        return _pack(rows, self.stats)


# ----------------------------------------------------------------------------- buffered (online) sampler
def _log_key(u: float, weight: float) -> float:
    """``log k = log(u^{1/r}) = log(u) / r`` (Efraimidis–Spirakis key, in log space); −∞ for r = 0."""
    if weight <= 0:
        return -math.inf
    return math.log(u) / weight


class Reservoir:
    """Weighted reservoir of fixed ``capacity``: keeps the items with the largest keys u^{1/w} (the online
    sampler of Sec. 5.1 of Deep Ranking, after Efraimidis & Spirakis; chapter label `eq-dr-reservoir`)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._heap: list[tuple[float, int, Hashable, float]] = []  # (log key, counter, item, weight), min-heap
        self._counter = 0
        self.items: list[Hashable] = []
        self.weights: list[float] = []
        self._dirty = False

    def offer(self, item: Hashable, weight: float, u: float) -> bool:
        """Insert ``item`` if the buffer is not full or its key beats the minimum; return whether kept."""
        if weight < 0 or not math.isfinite(weight):
            raise ValueError(f"weight of item {item!r} must be finite and >= 0, got {weight}")
        key = _log_key(u, weight)
        self._counter += 1
        entry = (key, self._counter, item, weight)
        if len(self._heap) < self.capacity:
            heapq.heappush(self._heap, entry)
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, entry)
        else:
            return False
        self._dirty = True
        return True

    def _sync(self) -> None:
        if self._dirty:
            self.items = [e[2] for e in self._heap]
            self.weights = [e[3] for e in self._heap]
            self._dirty = False

    def contents(self) -> list[Hashable]:
        self._sync()
        return list(self.items)

    def __len__(self) -> int:
        return len(self._heap)


class BufferedTripletSampler:
    """The paper's online triplet sampler over per-category reservoirs.

    Args:
        relevance: callable ``r(i, j)`` → r_ij for items i, j (only called on buffered items).
        capacity: buffer size per category.
        t_p, t_r, out_of_class_fraction, max_failures: as :class:`OfflineTripletSampler`.
        max_proposals: uniform proposals for one positive/negative before the query is dropped.
        rescale: multiply the acceptance probability by ``κ = max(1, min_{j ∈ buffer} r_j / T_p)``, the
            largest factor that never clips at 1, so the positive's distribution is unchanged while far
            fewer proposals are rejected. The paper's rule is ``rescale=False``: with large categories
            (Fashion-MNIST: 7,000 per class) ``r_{i,i+} / r_{i+}`` is about 1/7,000 and almost every
            proposal is rejected.
        seed: for the sampler's own ``numpy.random.Generator``, used to fill the buffers and when
            :meth:`sample` is not given one.
    """

    def __init__(self, relevance: Callable[[Hashable, Hashable], float], capacity: int, t_p: float, t_r: float,
                 out_of_class_fraction: float = 0.2, max_failures: int = 20, max_proposals: int = 10_000,
                 rescale: bool = False, seed: int = 0):
        _check_params(t_p, t_r, out_of_class_fraction, max_failures)
        if max_proposals < 1:
            raise ValueError(f"max_proposals must be >= 1, got {max_proposals}")
        self.r = relevance
        self.capacity = capacity
        self.t_p, self.t_r, self.f_out, self.max_failures = t_p, t_r, out_of_class_fraction, max_failures
        self.max_proposals = max_proposals
        self.rescale = rescale
        self._rng = np.random.default_rng(seed)
        self.buffers: dict[Hashable, Reservoir] = {}
        self.seen_weight: dict[Hashable, float] = {}  # Σ r_j offered per category
        self.seen = 0
        self.stats = SamplerStats()

    # -- filling
    def offer(self, item: Hashable, category: Hashable, weight: float) -> bool:
        """Stream one image (its id, category and total relevance r_j) into its category's buffer."""
        buf = self.buffers.get(category)
        if buf is None:
            buf = self.buffers[category] = Reservoir(self.capacity)
            self.seen_weight[category] = 0.0
        self.seen += 1
        self.seen_weight[category] += float(weight)
        return buf.offer(item, float(weight), _uniform_open(self._rng))

    def extend(self, items, categories, weights) -> int:
        """Offer many images; returns how many were kept at the time of offering."""
        return sum(self.offer(i, c, w) for i, c, w in zip(items, categories, weights))

    def memory_items(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    # -- sampling
    def _scale(self, weights: list) -> float:
        if not self.rescale:
            return 1.0
        positive = [w for w in weights if w > 0]
        return max(1.0, min(positive) / self.t_p) if positive else 1.0

    def _propose(self, i: Hashable, items: list, weights: list, skip: int,
                 rng: np.random.Generator) -> tuple[Hashable, float] | None:
        """Uniform proposal j ≠ i from ``items``, accepted with prob. min(1, κ·min{T_p, r_ij} / r_j)."""
        n = len(items)
        kappa = self._scale(weights)
        for _ in range(self.max_proposals):
            self.stats.proposals += 1
            k = int(rng.integers(n - 1))
            k = k + 1 if k >= skip else k  # skip the query's own slot
            j, w_j = items[k], weights[k]
            r_ij = float(self.r(i, j))
            if r_ij <= 0.0:
                continue
            accept = 1.0 if w_j <= 0 else min(1.0, kappa * min(self.t_p, r_ij) / w_j)
            if rng.random() < accept:
                return j, r_ij
        return None

    def sample_one(self, rng: np.random.Generator) -> tuple[Hashable, Hashable, Hashable, bool]:
        """One triplet (query, positive, negative, out_of_class) drawn with ``rng``."""
        cats = [c for c, b in self.buffers.items() if len(b) >= 2]
        if not cats:
            raise RuntimeError("no buffer holds 2 images yet: offer() more images before sampling")
        w = np.array([self.seen_weight[c] for c in cats])
        if w.sum() <= 0:
            raise RuntimeError("all offered images have weight 0")
        if self.f_out > 0 and len(self.buffers) < 2:
            raise RuntimeError("out-of-class negatives need images from at least 2 categories")
        cdf = np.cumsum(w)
        for _ in range(_MAX_DROPS):
            c = cats[min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cats) - 1)]
            buf = self.buffers[c]
            buf._sync()
            q = int(rng.integers(len(buf.items)))
            i = buf.items[q]
            out = bool(rng.random() < self.f_out)
            for _ in range(self.max_failures + 1):
                pos = self._propose(i, buf.items, buf.weights, q, rng)
                if pos is None:
                    break
                if out:
                    return i, pos[0], self._draw_out_of_class(c, rng), True
                neg = self._propose(i, buf.items, buf.weights, q, rng)
                if neg is None:
                    break
                if pos[1] - float(self.r(i, neg[0])) >= self.t_r:
                    return i, pos[0], neg[0], False
                self.stats.rejected += 1
            self.stats.dropped_queries += 1
        raise RuntimeError(_STUCK)

    def _draw_out_of_class(self, c: Hashable, rng: np.random.Generator) -> Hashable:
        others = [b for k, b in self.buffers.items() if k != c and len(b) > 0]
        sizes = np.array([len(b) for b in others])
        k = int(rng.integers(sizes.sum()))
        b = int(np.searchsorted(np.cumsum(sizes), k, side="right"))
        others[b]._sync()
        return others[b].items[k - int(sizes[:b].sum())]

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> Triplets:
        """``batch_size`` triplets drawn with ``rng`` (default: the sampler's own generator, from ``seed``)."""
        rng = self._rng if rng is None else rng
        rows = [self.sample_one(rng) for _ in range(batch_size)]
        return _pack(rows, self.stats)


# ----------------------------------------------------------------------------- helpers
def check_triplets(triplets: Triplets, categories: np.ndarray, relevance: Callable[[int, int], float], t_r: float) -> None:
    """Raise AssertionError unless every triplet satisfies its constraints (Eq. 2 plus T_r for in-class).

    In-class: same category for all three, ``r(q, p+) − r(q, p−) ≥ T_r``. Out-of-class: p+ in q's category,
    p− in another, ``r(q, p+) > 0``. Always p+ ≠ q ≠ p−.
    """
    cats = np.asarray(categories)
    for q, p, n, out in zip(*triplets):
        assert p != q and n != q, f"triplet ({q}, {p}, {n}) repeats the query"
        assert cats[p] == cats[q], f"positive {p} is not in the query {q}'s category"
        r_p = relevance(q, p)
        assert r_p > 0, f"positive {p} has r = 0 to query {q}"
        if out:
            assert cats[n] != cats[q], f"out-of-class negative {n} is in the query {q}'s category"
        else:
            assert cats[n] == cats[q], f"in-class negative {n} is not in the query {q}'s category"
            assert r_p - relevance(q, n) >= t_r - 1e-12, f"triplet ({q}, {p}, {n}) violates T_r"


def _pack(rows, stats: SamplerStats) -> Triplets:
    """Columns of (query, positive, negative, out_of_class) rows; items must be integer ids."""
    cols = list(zip(*rows)) if rows else [(), (), (), ()]
    q, p, n = (np.asarray(c, dtype=np.int64) for c in cols[:3])
    o = np.asarray(cols[3], dtype=bool)
    stats.triplets += len(rows)
    stats.out_of_class += int(o.sum())
    return Triplets(q, p, n, o)


def _uniform_open(rng: np.random.Generator) -> float:
    """u ~ U(0, 1) excluding 0 (log(0) is undefined)."""
    u = rng.random()
    while u == 0.0:
        u = rng.random()
    return u


def _check_params(t_p: float, t_r: float, f_out: float, max_failures: int) -> None:
    if not t_p > 0:
        raise ValueError(f"T_p (t_p) must be > 0, got {t_p}")
    if not t_r > 0:
        raise ValueError(f"T_r (t_r) must be > 0 so that r(i,i+) > r(i,i-) holds strictly, got {t_r}")
    if not 0.0 <= f_out <= 1.0:
        raise ValueError(f"out_of_class_fraction must be in [0, 1], got {f_out}")
    if max_failures < 0:
        raise ValueError(f"max_failures must be >= 0, got {max_failures}")
