"""Clipart candidate lists: the first stage (reciprocal-rank fusion of BM25 and MiniLM over the whole
collection) and the text LTR features h^0 of every candidate (DCMM Eq. (6) input), plus the tie rule
that turns scores into trec_eval ranks."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from xmlib.data.benchmarks.clipart.corpus import ClipartImage
from xmlib.data.benchmarks.clipart.queries import ClipartQuery, is_relevant
from xmlib.data.benchmarks.clipart.text import analyse, deleak_keywords

__all__ = ["FEATURES", "FEATURE_GROUPS", "FEATURE_SETS", "rank_scores", "build_lists"]

#: Text LTR feature columns (without the ``_feature`` suffix), in file order.
FEATURES: tuple[str, ...] = ("bm25_all", "bm25_title", "bm25_description", "bm25_keywords",
                             "minilm_cosine", "first_stage_score", "first_stage_rank", "text_length")
FEATURE_GROUPS: dict[str, list[str]] = {
    "bm25": ["bm25_all", "bm25_title", "bm25_description", "bm25_keywords"],
    "dense": ["minilm_cosine"],
    "first_stage": ["first_stage_score", "first_stage_rank"],
    "length": ["text_length"],
}
FEATURE_SETS: dict[str, list[str]] = {
    "weak": list(FEATURE_GROUPS["bm25"]),
    "strong": list(FEATURES),
}


def rank_scores(scores: Sequence[float]) -> np.ndarray:
    """Strictly decreasing stand-ins for ``scores`` that keep the tie rule.

    Sorting on ``-score`` with a stable sort keeps the stored row order among ties; the returned
    values are ``n - position`` in that order, so trec_eval (which breaks ties by document id) ranks
    exactly as the tie rule says.
    """
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    out = np.empty(len(s), dtype=np.float64)
    out[order] = np.arange(len(s), 0, -1, dtype=np.float64)
    return out


def _doc_text(title: str, description: str, keywords: Sequence[str]) -> str:
    parts = [p for p in (title, description, ", ".join(keywords)) if p]
    return ". ".join(parts)


def _rank_positions(scores: np.ndarray, positive_only: bool) -> np.ndarray:
    """1-based rank of each document (ties by collection order); 0 where ``positive_only`` and score <= 0."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    if positive_only:
        ranks[scores <= 0] = 0
    return ranks


class _Bm25Field:
    """BM25 (bm25s defaults: Lucene variant, k1 = 1.5, b = 0.75) over one field of the collection;
    a field empty on every document scores 0 everywhere."""

    def __init__(self, token_lists: list[list[str]]):
        self.n = len(token_lists)
        self.index = None
        if any(token_lists):
            import bm25s

            self.index = bm25s.BM25()
            self.index.index(token_lists, show_progress=False)

    def get_scores(self, query_tokens: list[str]) -> np.ndarray:
        if self.index is None or not query_tokens:
            return np.zeros(self.n)
        return np.asarray(self.index.get_scores(query_tokens), dtype=np.float64)


def _l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def build_lists(
    images: Sequence[ClipartImage],
    queries: Sequence[ClipartQuery],
    leaks: set[tuple[str, ...]],
    *,
    n_candidates: int,
    rrf_k: int = 60,
    seed: int = 0,
    text_encoder: Callable[[list[str]], np.ndarray],
) -> tuple[dict[str, list[dict[str, Any]]], list[list[str]]]:
    """First stage + text features for every query.

    Returns ``{qid: rows}`` with one row per candidate in the stored (shuffled) order — ``img_id``,
    ``rel`` and every feature of :data:`FEATURES` — and the de-leaked keywords of every image.
    ``text_encoder(texts) -> (n, 384)`` embeds queries and documents (MiniLM in the book).
    """
    kws = [deleak_keywords(im.keywords, leaks) for im in images]
    fields = {
        "title": [analyse(im.title) for im in images],
        "description": [analyse(im.description) for im in images],
        "keywords": [analyse(" ; ".join(k)) for k in kws],
    }
    fields["all"] = [a + b + c for a, b, c in zip(fields["title"], fields["description"], fields["keywords"])]
    indexes = {name: _Bm25Field(toks) for name, toks in fields.items()}
    texts = [_doc_text(im.title, im.description, k) for im, k in zip(images, kws)]
    doc_emb = _l2n(text_encoder(texts))  # (n_docs, 384)
    q_emb = _l2n(text_encoder([q.text for q in queries]))  # (n_queries, 384)
    lengths = np.array([len(t) for t in fields["all"]], dtype=np.float64)

    lists: dict[str, list[dict[str, Any]]] = {}
    for qi, q in enumerate(queries):
        q_toks = analyse(q.text)
        bm = {name: np.asarray(ix.get_scores(q_toks), dtype=np.float64) for name, ix in indexes.items()}
        cos = doc_emb @ q_emb[qi]  # (n_docs,)
        r_bm = _rank_positions(bm["all"], positive_only=True)
        r_ds = _rank_positions(cos, positive_only=False)
        rrf = np.where(r_bm > 0, 1.0 / (rrf_k + np.maximum(r_bm, 1)), 0.0) + 1.0 / (rrf_k + r_ds)
        top = np.argsort(-rrf, kind="stable")[:n_candidates]
        rows = []
        for rank, d in enumerate(top, start=1):
            im = images[d]
            rows.append({
                "img_id": im.img_id,
                "rel": int(is_relevant(im.folders, q.folder)),
                "bm25_all": float(bm["all"][d]),
                "bm25_title": float(bm["title"][d]),
                "bm25_description": float(bm["description"][d]),
                "bm25_keywords": float(bm["keywords"][d]),
                "minilm_cosine": float(cos[d]),
                "first_stage_score": float(rrf[d]),
                "first_stage_rank": float(rank),
                "text_length": float(lengths[d]),
            })
        perm = np.random.default_rng([seed, qi]).permutation(len(rows))
        lists[q.qid] = [rows[i] for i in perm]
    return lists, kws
