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

Both samplers draw a whole batch with numpy (:meth:`~OfflineTripletSampler.sample`): queries, positives
and negatives for every row at once, then only the rows whose triplet failed ``T_r`` (or whose query was
dropped) are redrawn, so every row follows exactly the per-triplet rules above (on a small batch each
pending row gets several (positive, negative) tries per round and keeps the first that passes: the same as
trying them one after another). The offline sampler draws from one alias table (Walker) per row of
min{T_p, r_ij}, O(1) a draw, laid out like the relevance (Σ n_c² entries of 12 bytes). The buffered sampler runs
the uniform-proposal/acceptance loop in closed form: for a fixed query the first accepted of i.i.d.
uniform proposals is ``j`` with probability ∝ its acceptance ``a_ij``, independently of how many proposals
it took, and that number is geometric with success ``mean_j a_ij`` (capped at ``max_proposals``, beyond
which the query is dropped), so one row of ``a_i·`` over the buffer replaces the loop. ``sample_one`` keeps
the per-triplet path (one Python call per triplet) as the reference the tests and the benchmark compare with.
"""

from __future__ import annotations

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
        sizes = {c: len(idx) for c, idx in self.members.items()}
        # all blocks in one flat array (the blocks are views of it): image i's row starts at row_start[i]
        self.flat = np.empty(sum(n * n for n in sizes.values()), dtype=np.float64)
        self.row_start = np.empty(len(cats), dtype=np.int64)
        self.blocks: dict[int, np.ndarray] = {}
        offset = 0
        for c, idx in self.members.items():
            if c not in blocks:
                raise ValueError(f"relevance blocks lack category {c} ({len(idx)} images)")
            n = len(idx)
            b = np.asarray(blocks[c], dtype=np.float64)
            if b.shape != (n, n):
                raise ValueError(f"relevance block of category {c} has shape {b.shape}, expected {(n, n)}")
            if not np.all(np.isfinite(b)) or (b < 0).any():
                raise ValueError(f"relevance block of category {c} must be finite and >= 0")
            view = self.flat[offset:offset + n * n].reshape(n, n)
            view[:] = b
            np.fill_diagonal(view, 0.0)
            self.blocks[c] = view
            self.row_start[idx] = offset + n * np.arange(n)
            offset += n * n
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

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Elementwise ``r_{i[k], j[k]}`` for two index arrays of one shape (0 across categories and for i = j)."""
        i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
        same = self.categories[i] == self.categories[j]
        return np.where(same, self.flat[self.row_start[i] + np.where(same, self.position[j], 0)], 0.0)

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
    Deep Ranking; the positive's distribution is in the chapter :math:numref:`eq-dr-positive`).

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
        order = np.argsort(self.r.categories, kind="stable")
        self._order = order  # images sorted by category, for uniform out-of-class draws
        self._start = {c: int(np.searchsorted(self.r.categories[order], c, "left")) for c in self.r.members}
        if out_of_class_fraction > 0 and len(self.r.members) < 2:
            raise ValueError("out_of_class_fraction > 0 needs at least 2 categories")
        # batch draws: an alias table (Walker; Vose's construction) per row of min{T_p, r_ij}, laid out like
        # the flat relevance (1.5 × its memory, Σ n_c² values): image i's row is [row_start[i], + n_{c_i})
        self._n_c = np.array([len(self.r.members[int(c)]) for c in self.r.categories], dtype=np.int64)
        self._cat_start = np.array([self._start[int(c)] for c in self.r.categories], dtype=np.int64)
        self._alias_prob = np.zeros(len(self.r.flat))
        self._alias = np.zeros(len(self.r.flat), dtype=np.int32)  # column index within the row
        for i in range(len(self.r)):
            a, b = int(self.r.row_start[i]), int(self.r.row_start[i] + self._n_c[i])
            self._alias_prob[a:b], self._alias[a:b] = _alias_table(np.minimum(t_p, self.r.flat[a:b]))
        self._pos_cdf_cache: dict[int, np.ndarray] | None = None

    @property
    def _pos_cdf(self) -> dict[int, np.ndarray]:
        """Per category: cumulative min{T_p, r_ij} along each row (for the per-triplet reference path only)."""
        if self._pos_cdf_cache is None:
            self._pos_cdf_cache = {c: np.cumsum(np.minimum(self.t_p, b), axis=1) for c, b in self.r.blocks.items()}
        return self._pos_cdf_cache

    # -- batch draws
    def _draw_queries(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` queries, P(p_i) ∝ r_i."""
        q = np.searchsorted(self._query_cdf, rng.random(n) * self._query_cdf[-1], side="right")
        return np.minimum(q, len(self._query_cdf) - 1)

    def _draw_in_class_many(self, i: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each query in ``i``, an image of its category with probability min{T_p, r_ij} / Z_i."""
        n_c = self._n_c[i]
        k = np.minimum((rng.random(len(i)) * n_c).astype(np.int64), n_c - 1)  # a column, uniformly
        cell = self.r.row_start[i] + k
        local = np.where(rng.random(len(i)) < self._alias_prob[cell], k, self._alias[cell])
        return self._order[self._cat_start[i] + local]

    def _draw_out_of_class_many(self, i: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each query in ``i``, an image uniformly from the other categories."""
        n_c = self._n_c[i]
        k = rng.integers(len(self._order) - n_c)
        return self._order[np.where(k < self._cat_start[i], k, k + n_c)]

    def _sample_rows(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """``n`` triplets drawn row by row exactly as :meth:`sample_one`, all pending rows at once."""
        q, p, neg = (np.zeros(n, dtype=np.int64) for _ in range(3))
        out = np.zeros(n, dtype=bool)
        failures, drops = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        fresh = np.arange(n)  # rows needing a new query
        pending = np.arange(n)
        while len(pending):
            if len(fresh):
                q[fresh] = self._draw_queries(len(fresh), rng)
                out[fresh] = rng.random(len(fresh)) < self.f_out
                failures[fresh] = 0
            rows_out = pending[out[pending]]
            p[rows_out] = self._draw_in_class_many(q[rows_out], rng)
            neg[rows_out] = self._draw_out_of_class_many(q[rows_out], rng)
            rows_in = pending[~out[pending]]
            # several (positive, negative) attempts per row at once; the first passing one is the row's
            m = _attempts(len(rows_in), self.max_failures + 1 - failures[rows_in].min(initial=0))
            i_rep = np.repeat(q[rows_in], m)
            p_rep, n_rep = self._draw_in_class_many(i_rep, rng), self._draw_in_class_many(i_rep, rng)
            passed = (self.r.pairs(i_rep, p_rep) - self.r.pairs(i_rep, n_rep) >= self.t_r).reshape(-1, m)
            done, first, used = _first_attempt(passed, self.max_failures + 1 - failures[rows_in])
            pick = np.arange(len(rows_in)) * m + first
            p[rows_in[done]], neg[rows_in[done]] = p_rep[pick[done]], n_rep[pick[done]]
            rejected = np.where(done, first, used)
            self.stats.rejected += int(rejected.sum())
            failures[rows_in] += rejected
            pending = rows_in[~done]
            fresh = pending[failures[pending] > self.max_failures]
            _count_drops(fresh, drops, self.stats)
        return q, p, neg, out

    # -- per-triplet reference
    def _draw_query(self, rng: np.random.Generator) -> int:
        u = rng.random() * self._query_cdf[-1]
        return int(min(np.searchsorted(self._query_cdf, u, side="right"), len(self._query_cdf) - 1))

    def _draw_in_class(self, i: int, rng: np.random.Generator) -> int:
        """An image of i's category with probability min{T_p, r_ij} / Z_i (Sec. 5.1 of Deep Ranking;
        in the chapter :math:numref:`eq-dr-positive`)."""
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
        """``batch_size`` triplets drawn with ``rng`` (default: the sampler's own generator, from ``seed``),
        the whole batch at once."""
        rng = self._rng if rng is None else rng
        return _pack_batches(batch_size, lambda n: self._sample_rows(n, rng), self.stats)


# ----------------------------------------------------------------------------- buffered (online) sampler
def _log_key(u: float, weight: float) -> float:
    """``log k = log(u^{1/r}) = log(u) / r`` (Efraimidis–Spirakis key, in log space); −∞ for r = 0."""
    if weight <= 0:
        return -math.inf
    return math.log(u) / weight


def _log_keys(u: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """:func:`_log_key` over arrays."""
    with np.errstate(divide="ignore"):
        return np.where(weight > 0, np.log(u) / np.where(weight > 0, weight, 1.0), -np.inf)


def _item_array(items) -> np.ndarray:
    """Item ids as an int64 array when they are integers, else as an object array (any hashables)."""
    a = np.asarray(items)
    if a.size == 0 or a.dtype.kind in "iu":
        return a.astype(np.int64).reshape(-1)
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


class Reservoir:
    """Weighted reservoir of fixed ``capacity``: keeps the items with the largest keys u^{1/w} (the online
    sampler of Sec. 5.1 of Deep Ranking, after Efraimidis & Spirakis; in the chapter :math:numref:`eq-dr-reservoir`).

    Held as arrays of at most ``capacity`` keys, items and weights. :meth:`offer_many` offers a whole
    array: after it the reservoir holds the ``capacity`` largest keys of everything offered so far, as
    offering the items one by one would (a full buffer keeps its item on a tie).
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._n = 0  # slots in use
        self._all_keys = np.empty(capacity)
        self._all_items = np.empty(capacity, dtype=np.int64)
        self._all_weights = np.empty(capacity)

    @property
    def _keys(self) -> np.ndarray:
        return self._all_keys[:self._n]

    @property
    def items(self) -> np.ndarray:
        return self._all_items[:self._n]

    @property
    def weights(self) -> np.ndarray:
        return self._all_weights[:self._n]

    def _set(self, keys: np.ndarray, items: np.ndarray, weights: np.ndarray) -> None:
        self._n = len(keys)
        if items.dtype == object and self._all_items.dtype != object:
            self._all_items = self._all_items.astype(object)
        self._all_keys[:self._n], self._all_items[:self._n], self._all_weights[:self._n] = keys, items, weights

    def offer(self, item: Hashable, weight: float, u: float) -> bool:
        """Insert ``item`` if the buffer is not full or its key beats the minimum; return whether kept."""
        if weight < 0 or not math.isfinite(weight):
            raise ValueError(f"weight of item {item!r} must be finite and >= 0, got {weight}")
        key = _log_key(u, weight)
        if self._n < self.capacity:
            k = self._n
            self._n += 1
        else:
            k = int(np.argmin(self._all_keys))
            if not key > self._all_keys[k]:
                return False
        if self._all_items.dtype != object and not isinstance(item, (int, np.integer)):
            self._all_items = self._all_items.astype(object)
        self._all_keys[k], self._all_items[k], self._all_weights[k] = key, item, weight
        return True

    def offer_many(self, items, weights, u) -> np.ndarray:
        """Offer arrays of items, weights and uniforms u ∈ (0, 1) at once; return which of them the reservoir
        holds afterwards (bool array)."""
        items, w, u = _item_array(items), np.asarray(weights, dtype=np.float64), np.asarray(u, dtype=np.float64)
        if not len(items) == len(w) == len(u):
            raise ValueError(f"offer_many needs as many weights and uniforms as items, got {len(items)} items, "
                             f"{len(w)} weights, {len(u)} uniforms")
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"weight of item {items[k]!r} must be finite and >= 0, got {w[k]}")
        keys = _log_keys(u, w)
        n_old = len(self._keys)
        cand = np.arange(len(items))
        if n_old == self.capacity:  # only keys above the current minimum can enter (the minimum only grows)
            cand = cand[keys > self._keys.min()]
        all_keys = np.concatenate([self._keys, keys[cand]])
        keep = np.arange(len(all_keys))
        if len(all_keys) > self.capacity:  # the largest keys; on a tie the earlier offer stays
            keep = np.sort(np.argsort(-all_keys, kind="stable")[:self.capacity])
        all_items = np.concatenate([self.items, items[cand]])
        all_w = np.concatenate([self.weights, w[cand]])
        self._set(all_keys[keep], all_items[keep], all_w[keep])
        held = np.zeros(len(items), dtype=bool)
        new = keep[keep >= n_old] - n_old
        held[cand[new]] = True
        return held

    def _sync(self) -> None:
        """No-op: the arrays are always current (kept for callers of the list-based reservoir)."""

    def contents(self) -> list[Hashable]:
        return self.items.tolist()

    def __len__(self) -> int:
        return self._n

    def nbytes(self) -> int:
        return int(self._all_keys.nbytes + self._all_items.nbytes + self._all_weights.nbytes)


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
        relevance_pairs: elementwise ``r`` over two integer arrays of one shape, for :meth:`sample`;
            default ``relevance.pairs`` when it exists (:class:`CategoryRelevance`), else ``relevance`` is
            called once per pair. Only buffered items are passed.
    """

    def __init__(self, relevance: Callable[[Hashable, Hashable], float], capacity: int, t_p: float, t_r: float,
                 out_of_class_fraction: float = 0.2, max_failures: int = 20, max_proposals: int = 10_000,
                 rescale: bool = False, seed: int = 0,
                 relevance_pairs: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None):
        _check_params(t_p, t_r, out_of_class_fraction, max_failures)
        if max_proposals < 1:
            raise ValueError(f"max_proposals must be >= 1, got {max_proposals}")
        self.r = relevance
        self.capacity = capacity
        self.t_p, self.t_r, self.f_out, self.max_failures = t_p, t_r, out_of_class_fraction, max_failures
        self.max_proposals = max_proposals
        self.rescale = rescale
        if relevance_pairs is None:
            relevance_pairs = getattr(relevance, "pairs", None) or _pairs_by_calls(relevance)
        self.r_pairs = relevance_pairs
        self._rng = np.random.default_rng(seed)
        self.buffers: dict[Hashable, Reservoir] = {}
        self.seen_weight: dict[Hashable, float] = {}  # Σ r_j offered per category
        self.seen = 0
        self.stats = SamplerStats()
        self._view: _BufferView | None = None  # the buffers as arrays, rebuilt when images were offered since
        self._view_seen = -1

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

    def extend(self, items, categories, weights, chunk: int = 1 << 16) -> int:
        """Offer many images (arrays or sequences of ids, categories and total relevances r_j), ``chunk`` at
        a time (memory O(chunk) besides the buffers); returns how many of them the buffers hold afterwards."""
        items, cats, w = _item_array(items), np.asarray(categories), np.asarray(weights, dtype=np.float64)
        if not len(items) == len(cats) == len(w):
            raise ValueError(f"extend needs as many categories and weights as items, got {len(items)} items, "
                             f"{len(cats)} categories, {len(w)} weights")
        held = []
        for s0 in range(0, len(items), chunk):
            it, ca, wt = items[s0:s0 + chunk], cats[s0:s0 + chunk], w[s0:s0 + chunk]
            u = _uniform_open_many(self._rng, len(it))
            labels, inv = np.unique(ca, return_inverse=True)
            order = np.argsort(inv, kind="stable")  # arrival order kept within a category
            bounds = np.searchsorted(inv[order], np.arange(len(labels) + 1))
            for k, label in enumerate(labels.tolist()):
                rows = order[bounds[k]:bounds[k + 1]]
                buf = self.buffers.get(label)
                if buf is None:
                    buf = self.buffers[label] = Reservoir(self.capacity)
                    self.seen_weight[label] = 0.0
                kept = buf.offer_many(it[rows], wt[rows], u[rows])
                self.seen_weight[label] += float(wt[rows].sum())
                held.extend(it[rows][kept].tolist())
            self.seen += len(it)
        held = set(held)  # kept when offered (a few per buffer and doubling of the stream): still there?
        return sum(x in held for b in self.buffers.values() for x in b.contents())

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
            items, weights = buf.items.tolist(), buf.weights.tolist()
            q = int(rng.integers(len(items)))
            i = items[q]
            out = bool(rng.random() < self.f_out)
            for _ in range(self.max_failures + 1):
                pos = self._propose(i, items, weights, q, rng)
                if pos is None:
                    break
                if out:
                    return i, pos[0], self._draw_out_of_class(c, rng), True
                neg = self._propose(i, items, weights, q, rng)
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
        return others[b].items[k - int(sizes[:b].sum())].item()

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> Triplets:
        """``batch_size`` triplets drawn with ``rng`` (default: the sampler's own generator, from ``seed``),
        the whole batch at once."""
        rng = self._rng if rng is None else rng
        if self._view is None or self._view_seen != self.seen:  # the buffers changed since the last batch
            self._view, self._view_seen = _BufferView(self), self.seen
        view = self._view
        return _pack_batches(batch_size, lambda n: self._sample_rows(view, n, rng), self.stats,
                             rows_per_call=max(1, (1 << 19) // view.items.shape[1]))

    def _acceptance(self, view: "_BufferView", cat: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, ...]:
        """For queries (category index, slot), per row: r to every buffered item of the category, the
        cumulative acceptance min(1, κ·min{T_p, r_ij} / r_j) along the buffer (0 on the query's own slot,
        empty slots and r_ij = 0), and the probability that one uniform proposal among the other n_c − 1
        items is accepted. Computed once per distinct query."""
        key, inv = np.unique(cat * view.items.shape[1] + slot, return_inverse=True)
        cat, slot = np.divmod(key, view.items.shape[1])
        items, w = np.take(view.items, cat, axis=0), np.take(view.weights, cat, axis=0)  # (np.take: faster rows)
        valid = np.arange(items.shape[1])[None, :] < view.sizes[cat][:, None]
        valid[np.arange(len(cat)), slot] = False
        query = view.items[cat, slot]
        r = np.zeros(items.shape)
        r[valid] = self.r_pairs(np.broadcast_to(query[:, None], items.shape)[valid], items[valid])
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(w > 0, np.minimum(1.0, view.kappa[cat][:, None] * np.minimum(self.t_p, r) / w), 1.0)
        cdf = np.cumsum(np.where(r > 0, a, 0.0), axis=1)
        p = np.minimum(1.0, cdf[:, -1] / (view.sizes[cat] - 1))
        return np.take(r, inv, axis=0), np.take(cdf, inv, axis=0), p[inv]

    def _accept_many(self, cdf: np.ndarray, p: np.ndarray, rows: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """The uniform-proposal loop of :meth:`_propose` for each of ``rows``, in closed form: (slot drawn ∝ its
        acceptance, whether an acceptance came within ``max_proposals``, the proposals that took)."""
        p = p[rows]
        g = rng.geometric(np.where(p > 0, p, 1.0))  # proposals up to and including the first acceptance
        ok = (p > 0) & (g <= self.max_proposals)
        cap = cdf.shape[1]
        lo = rows * cap
        total = cdf[rows, -1]
        target = np.minimum(rng.random(len(rows)) * total, np.nextafter(total, 0))  # < total: lands on a weight > 0
        if cap <= _COMPARE_BELOW:  # short rows: count the entries <= target (one comparison of the rows)
            t = lo + (cdf[rows] <= target[:, None]).sum(axis=1)
        else:
            t = _search_rows(cdf.reshape(-1), target, lo, lo + cap, cap.bit_length())
        return np.minimum(t - lo, cap - 1), ok, np.where(ok, g, self.max_proposals)

    def _sample_rows(self, view: "_BufferView", n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """``n`` triplets drawn row by row exactly as :meth:`sample_one`, all pending rows at once."""
        cap = view.items.shape[1]
        cat, slot = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        pos, neg = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        out = np.zeros(n, dtype=bool)
        r, cdf, p = np.zeros((n, cap)), np.zeros((n, cap)), np.zeros(n)
        failures, drops = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        fresh = pending = np.arange(n)
        while len(pending):
            if len(fresh):
                cat[fresh] = view.query_cats[np.minimum(np.searchsorted(
                    view.cat_cdf, rng.random(len(fresh)) * view.cat_cdf[-1], side="right"), len(view.cat_cdf) - 1)]
                slot[fresh] = rng.integers(view.sizes[cat[fresh]])
                out[fresh] = rng.random(len(fresh)) < self.f_out
                failures[fresh] = 0
                r[fresh], cdf[fresh], p[fresh] = self._acceptance(view, cat[fresh], slot[fresh])
            rows_out = pending[out[pending]]
            pos[rows_out], ok, used = self._accept_many(cdf, p, rows_out, rng)
            self.stats.proposals += int(used.sum())
            neg[rows_out] = view.out_of_class(cat[rows_out], rng)
            dropped = [rows_out[~ok]]
            done_out = rows_out[ok]
            # in-class rows: several attempts (positive, negative, T_r) per row at once, in order; a row ends at
            # its first attempt that passes or that runs out of proposals (the query is then dropped)
            rows_in = pending[~out[pending]]
            m = _attempts(len(rows_in), self.max_failures + 1 - failures[rows_in].min(initial=0))
            rep = np.repeat(rows_in, m)
            p_slot, ok_p, used_p = self._accept_many(cdf, p, rep, rng)
            n_slot, ok_n, used_n = self._accept_many(cdf, p, rep, rng)
            passed = ok_p & ok_n & (r[rep, p_slot] - r[rep, n_slot] >= self.t_r)
            ran_out = ~(ok_p & ok_n)
            ended, first, used = _first_attempt((passed | ran_out).reshape(-1, m),
                                                self.max_failures + 1 - failures[rows_in])
            last = np.where(ended, first, used - 1)  # last attempt made by each row
            cost = (used_p + np.where(ok_p, used_n, 0)).reshape(-1, m)
            self.stats.proposals += int((cost * (np.arange(m)[None, :] <= last[:, None])).sum())
            pick = np.arange(len(rows_in)) * m + first
            won = ended & passed[pick]
            pos[rows_in[won]], neg[rows_in[won]] = p_slot[pick[won]], n_slot[pick[won]]
            dropped.append(rows_in[ended & ~won])
            rejected = np.where(ended, first, used)
            self.stats.rejected += int(rejected.sum())
            failures[rows_in] += rejected
            stay = rows_in[~ended]
            dropped.append(stay[failures[stay] > self.max_failures])
            fresh = np.concatenate(dropped)
            _count_drops(fresh, drops, self.stats)
            pending = np.concatenate([fresh, stay[failures[stay] <= self.max_failures]])
            for rows in (done_out, rows_in[won]):
                pos[rows] = view.items[cat[rows], pos[rows]]
            neg[rows_in[won]] = view.items[cat[rows_in[won]], neg[rows_in[won]]]
        return view.items[cat, slot], pos, neg, out


class _BufferView:
    """The buffers of a :class:`BufferedTripletSampler` as padded arrays (C, capacity) for batch draws."""

    def __init__(self, s: BufferedTripletSampler):
        bufs = list(s.buffers.values())
        self.sizes = np.array([len(b) for b in bufs], dtype=np.int64)
        self.query_cats = np.flatnonzero(self.sizes >= 2)
        if not len(self.query_cats):
            raise RuntimeError("no buffer holds 2 images yet: offer() more images before sampling")
        w = np.array([s.seen_weight[k] for k in s.buffers])[self.query_cats]
        if w.sum() <= 0:
            raise RuntimeError("all offered images have weight 0")
        if s.f_out > 0 and len(bufs) < 2:
            raise RuntimeError("out-of-class negatives need images from at least 2 categories")
        if any(b.items.dtype == object for b in bufs):
            raise TypeError("sample() needs integer item ids; offer images by their integer index")
        self.cat_cdf = np.cumsum(w)
        cap = int(self.sizes.max())
        self.items = np.zeros((len(bufs), cap), dtype=np.int64)
        self.weights = np.zeros((len(bufs), cap))
        for k, b in enumerate(bufs):
            self.items[k, :len(b)], self.weights[k, :len(b)] = b.items, b.weights
        self.kappa = np.array([s._scale(b.weights) for b in bufs])
        self.start = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.flat = np.concatenate([b.items for b in bufs]).astype(np.int64)

    def out_of_class(self, cat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each category index, an item uniformly from the union of the other buffers."""
        n_c = self.sizes[cat]
        k = rng.integers(len(self.flat) - n_c)
        start = self.start[cat]
        return self.flat[np.where(k < start, k, k + n_c)]


# ----------------------------------------------------------------------------- helpers
def check_triplets(triplets: Triplets, categories: np.ndarray, relevance: Callable[[int, int], float], t_r: float) -> None:
    """Raise AssertionError unless every triplet satisfies its constraints (Eq. 2 of Deep Ranking, in the chapter
    :math:numref:`eq-dr-constraint`, plus T_r for in-class).

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


def _pack_batches(batch_size: int, draw: Callable[[int], tuple[np.ndarray, ...]], stats: SamplerStats,
                  rows_per_call: int = 1 << 16) -> Triplets:
    """``draw(n)`` → (query, positive, negative, out_of_class) arrays, called on at most ``rows_per_call``
    rows at a time (bounded temporaries), concatenated into one :class:`Triplets`."""
    parts = [draw(min(rows_per_call, batch_size - s0)) for s0 in range(0, batch_size, rows_per_call)]
    if not parts:
        return _pack([], stats)
    q, p, n, o = (np.concatenate(c) for c in zip(*parts))
    stats.triplets += len(q)
    stats.out_of_class += int(o.sum())
    return Triplets(q.astype(np.int64), p.astype(np.int64), n.astype(np.int64), o.astype(bool))


def _alias_table(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table for P(k) ∝ w_k (w ≥ 0), built as Vose does: (prob, alias) such that drawing a
    column k uniformly and keeping it with probability prob[k], else taking alias[k], gives k ∝ w_k
    (a zero weight is never drawn). All-zero ``w``: every column points to itself (the row is never used)."""
    n, total = len(w), float(w.sum())
    prob, alias = np.ones(n), np.arange(n)
    if total <= 0:
        return prob, alias
    scaled = (w * (n / total)).tolist()
    small = [k for k in range(n) if scaled[k] < 1.0]
    large = [k for k in range(n) if scaled[k] >= 1.0]
    while small and large:
        s, g = small.pop(), large[-1]
        prob[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        if scaled[g] < 1.0:
            small.append(large.pop())
    for k in small:  # left over by rounding only: keep it when it has weight, else send it to a heavy column
        if w[k] <= 0:
            prob[k], alias[k] = 0.0, int(np.argmax(w))
    return prob, alias


_COMPARE_BELOW = 128
"""Buffers up to this capacity find a drawn slot by comparing the whole row with the target (the same index
as :func:`_search_rows`, in one pass: faster than log2(capacity) rounds of a binary search at batch sizes
of a training step)."""


def _search_rows(cum: np.ndarray, target: np.ndarray, lo: np.ndarray, hi: np.ndarray, steps: int) -> np.ndarray:
    """For each k, the first index t in [lo_k, hi_k) with ``cum[t] > target_k`` (``hi_k`` if none), ``cum``
    non-decreasing on each range: ``searchsorted(side="right")`` within each row, by ``steps`` ≥
    log2(longest range + 1) halvings of all rows at once."""
    for _ in range(steps):
        active = lo < hi
        mid = (lo + hi) >> 1
        below = cum[np.minimum(mid, len(cum) - 1)] <= target
        lo = np.where(active & below, mid + 1, lo)
        hi = np.where(active & ~below, mid, hi)
    return lo


def _attempts(rows: int, allowed: int) -> int:
    """Attempts drawn at once per pending row: one on large batches, up to 8 on small ones (fewer rounds)."""
    return int(max(1, min(8, allowed, 4096 // max(rows, 1))))


def _first_attempt(terminal: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For (rows, m) attempts in order, of which only the first ``allowed`` of each row count: (whether a
    terminal attempt came, the index of the first one, the attempts used when none came)."""
    terminal = terminal & (np.arange(terminal.shape[1])[None, :] < allowed[:, None])
    return terminal.any(axis=1), np.argmax(terminal, axis=1), np.minimum(terminal.shape[1], allowed)


def _count_drops(rows: np.ndarray, drops: np.ndarray, stats: SamplerStats) -> None:
    """Record dropped queries of these rows; give up once a row has dropped ``_MAX_DROPS`` in a row."""
    drops[rows] += 1
    stats.dropped_queries += len(rows)
    if len(rows) and drops[rows].max() >= _MAX_DROPS:
        raise RuntimeError(_STUCK)


def _pairs_by_calls(relevance: Callable[[Hashable, Hashable], float]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Elementwise relevance over arrays by one call of the scalar ``relevance`` per pair."""
    def pairs(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.array([float(relevance(a, b)) for a, b in zip(i.tolist(), j.tolist())], dtype=np.float64)
    return pairs


def _uniform_open_many(rng: np.random.Generator, n: int) -> np.ndarray:
    """n draws of u ~ U(0, 1) excluding 0."""
    u = rng.random(n)
    while not u.all():
        zero = u == 0.0
        u[zero] = rng.random(int(zero.sum()))
    return u


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
