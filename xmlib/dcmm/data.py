"""Per-query candidate lists, the unit of data of DCMM, and a synthetic generator for tests.

A :class:`QueryList` is what a first-stage text engine returns for one query q: the candidates d_i
with their text learning-to-rank features (the input of h^0 = MLP(.), Eq. 6), their visual
embeddings v_i (the graph's edge weights g(v_i, v_j), Eq. 5) and binary relevance labels (for the
BPR pairs of Eq. 7 and for evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class QueryList:
    """One query's candidates: ``text`` (n_q, F), ``visual`` (n_q, D), ``rel`` (n_q,), ``doc_ids``."""

    qid: str
    doc_ids: list[str]
    text: np.ndarray     # (n_q, F) float: text LTR features of (q, d_i)
    visual: np.ndarray   # (n_q, D) float: visual embedding v_i
    rel: np.ndarray      # (n_q,) int: 1 relevant, 0 not

    def __post_init__(self) -> None:
        self.qid = str(self.qid)
        self.doc_ids = [str(d) for d in self.doc_ids]
        self.text = np.asarray(self.text, dtype=np.float32)
        self.visual = np.asarray(self.visual, dtype=np.float32)
        self.rel = np.asarray(self.rel).astype(np.int64).reshape(-1)
        n = len(self.doc_ids)
        where = f"QueryList {self.qid!r}"
        if n == 0:
            raise ValueError(f"{where}: no candidates")
        if self.text.ndim != 2 or self.text.shape[0] != n:
            raise ValueError(f"{where}: text must be (n_docs={n}, F), got {self.text.shape}")
        if self.visual.ndim != 2 or self.visual.shape[0] != n:
            raise ValueError(f"{where}: visual must be (n_docs={n}, D), got {self.visual.shape}")
        if self.rel.shape != (n,):
            raise ValueError(f"{where}: rel must be (n_docs={n},), got {self.rel.shape}")
        if len(set(self.doc_ids)) != n:
            raise ValueError(f"{where}: duplicate doc ids")
        if not (np.isfinite(self.text).all() and np.isfinite(self.visual).all()):
            raise ValueError(f"{where}: non-finite text or visual features")

    def __len__(self) -> int:
        return len(self.doc_ids)

    @property
    def n_pos(self) -> int:
        return int((self.rel > 0).sum())


def make_synthetic_queries(n_queries: int = 60, n_docs: int = 50, seed: int = 0, *, n_text: int = 4,
                           visual_dim: int = 1280, rel_rate: tuple[float, float] = (0.15, 0.5),
                           text_noise: float = 1.5, visual_noise: float = 2.0, visual_confusion: float = 0.15,
                           n_distractors: int = 4, ragged: bool = False) -> list[QueryList]:
    """Synthetic web-image-search lists where visual PRF helps, as in DCMM's setting.

    - relevant images of a query share one visual "concept" (a random centre), irrelevant ones come
      from ``n_distractors`` other centres, so relevant images cluster visually;
    - text features are noisy signals of relevance (feature 0 is a non-negative BM25-like score, the
      s_T of Eq. (1); feature 3 is pure noise), weaker than the visual clustering;
    - each list is shuffled and document ids are random, so ids carry no rank (trec_eval's tie rule);
    - ``visual_confusion``: the share of images whose look disagrees with their label (a relevant image
      drawn from a distractor centre, or an irrelevant one from the relevant centre), so that visual
      PRF has a ceiling below 1;
    - ``ragged``: list lengths vary in [n_docs // 2, n_docs] (exercises padding and masks).
    """
    if n_queries < 1 or n_docs < 2:
        raise ValueError(f"need n_queries >= 1 and n_docs >= 2, got {n_queries}, {n_docs}")
    if n_text < 1:
        raise ValueError(f"n_text must be >= 1, got {n_text}")
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n_queries * n_docs * 10)
    out: list[QueryList] = []
    for q in range(n_queries):
        n = int(rng.integers(n_docs // 2, n_docs + 1)) if ragged else n_docs
        rate = rng.uniform(*rel_rate)
        n_rel = int(np.clip(round(rate * n), 1, n - 1))
        rel = np.zeros(n, dtype=np.int64)
        rel[:n_rel] = 1
        centres = rng.normal(size=(n_distractors + 1, visual_dim)).astype(np.float32)
        which = np.where(rel == 1, 0, rng.integers(1, n_distractors + 1, size=n))
        flip = rng.uniform(size=n) < visual_confusion
        which = np.where(flip, np.where(rel == 1, rng.integers(1, n_distractors + 1, size=n), 0), which)
        visual = centres[which] + visual_noise * rng.normal(size=(n, visual_dim))
        visual = np.maximum(visual, 0.0)  # non-negative, like pooled CNN features
        signal = rel.astype(np.float64)
        text = np.empty((n, n_text), dtype=np.float64)
        text[:, 0] = np.maximum(0.0, 1.0 + signal + text_noise * rng.normal(size=n))  # BM25-like s_T
        for f in range(1, n_text):
            strength = 0.0 if f == 3 else 1.0 / f
            text[:, f] = strength * signal + text_noise * rng.normal(size=n)
        order = rng.permutation(n)
        doc_ids = [f"d{ids[q * n_docs * 10 + i]:07d}" for i in range(n)]
        out.append(QueryList(qid=f"q{q:03d}", doc_ids=doc_ids, text=text[order],
                             visual=visual[order], rel=rel[order]))
    return out


@dataclass
class LoadedQueries:
    """What :func:`load_queries` returns: the lists, the text feature names (columns of ``text``) and
    the benchmark's folds (query ids), if it ships any."""

    queries: list[QueryList]
    feature_names: list[str]
    folds: list[list[str]] | None

    def column(self, name: str) -> int:
        """Index of a text feature, for ``Config.cm_text_feature`` (``"bm25_all"`` or its full name)."""
        for cand in (name, name + "_feature"):
            if cand in self.feature_names:
                return self.feature_names.index(cand)
        raise KeyError(f"no text feature {name!r}; have {self.feature_names}")


def load_queries(source="default", *, feature_set: str | list[str] | None = "weak",
                 query_set: str | None = "no_flags", split: str = "train") -> LoadedQueries:
    """Adapt data in the MediaEval'17 layout (:mod:`xmlib.data.formats.mediaeval`) to QueryLists.

    ``source``: a ``MediaEvalData``, a clipart benchmark profile name (``"smoke"``, ``"default"``), a
    folder holding a built clipart benchmark, or any folder in the MediaEval'17 layout (the paper's
    data; ``split`` names the split to read, ``"train"`` or ``"test"``). ``feature_set``: a name from
    ``meta["feature_sets"]`` (clipart: ``"weak"`` = the four BM25 features, ``"strong"`` = all eight),
    ``"all"`` or None for every feature, or an explicit list of column names. ``query_set``: a name
    from ``meta["query_sets"]`` (clipart: ``"all"``, ``"no_flags"``), or ``"all"`` / None for every
    query. Folds are restricted to the kept queries.
    """
    if hasattr(source, "queries"):
        data = source
    else:
        from pathlib import Path

        from xmlib.core.io import load_json_checked
        from xmlib.data.benchmarks import clipart

        p = Path(source)
        if not p.exists():
            data = clipart.load(str(source))
        elif (p / "meta.json").is_file() and load_json_checked(p / "meta.json").get("benchmark") == "clipart":
            data = clipart.load(p)
        else:
            from xmlib.data.formats.mediaeval import read_mediaeval

            data = read_mediaeval(p, split)
    names = list(data.feature_names)
    sets = data.meta.get("feature_sets", {})
    if feature_set is None or (feature_set == "all" and "all" not in sets):
        cols = names
    elif isinstance(feature_set, str):
        if feature_set not in sets:
            raise KeyError(f"feature_set {feature_set!r} not in this data's meta.json feature_sets {sorted(sets)}; "
                           "pass 'all', a list of column names or None")
        cols = list(sets[feature_set])
    else:
        cols = list(feature_set)
    missing = [c for c in cols if c not in names]
    if missing:
        raise KeyError(f"text feature columns {missing} not in the data's {names}")
    idx = [names.index(c) for c in cols]
    qsets = data.meta.get("query_sets", {})
    if query_set is None or (query_set == "all" and "all" not in qsets):
        qids = list(data.query_ids)
    elif query_set not in qsets:
        raise KeyError(f"query_set {query_set!r} not in this data's meta.json query_sets {sorted(qsets)}; "
                       "pass 'all' (or None) for every query")
    else:
        qids = [q for q in qsets[query_set] if q in data.queries]
    queries = [QueryList(qid=q, doc_ids=list(data[q].img_ids), text=data[q].features[:, idx],
                         visual=data[q].visual, rel=data[q].rel) for q in qids]
    keep = set(qids)
    folds = None
    if data.folds is not None:
        folds = [[q for q in f if q in keep] for f in data.folds]
        folds = [f for f in folds if f]
    return LoadedQueries(queries=queries, feature_names=cols, folds=folds)
