"""Pad a list of queries into dense (B, N_max, .) tensors with masks, on one device.

Every query is its own graph G_q (Sect. 3 of DCMM). Rather than a block-sparse edge list we pad the
lists to the longest one and carry a boolean ``mask`` (B, N): padded nodes have no edges, no BPR
pairs and no scores. Per-query preprocessing follows the official code:

- text features are z-scored within each query (each feature: mean 0, std 1 over the list; the
  population std by default, the released code's sample std + 1e-6 with ``zscore_ddof=1``);
- visual features are divided by their norm, ``v / (||v|| + 1e-6)``, so that ``sim = v v^T`` is the
  cosine of DCMM-cos (Eq. 5) and the s_V of Eq. (1).

A departure that neither paper nor code makes, off by default: ``centre_visual="query"`` subtracts
each query's mean visual feature before the normalisation. Pooled CNN features are non-negative, so
all their cosines are positive and similar (a "flat" graph); centred, an image that looks like the
rest of the list no longer resembles everything, and dissimilar images get negative edges.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from xmlib.core.device import get_device
from xmlib.dcmm.data import QueryList

VISUAL_EPS = 1e-6
ZSCORE_EPS = 1e-6   # added to the sample std by the released code's z-score (zscore_ddof = 1)


@dataclass
class PaddedQueries:
    """A batch of B query graphs padded to N nodes. Shapes in the field comments."""

    qids: list[str]
    doc_ids: list[list[str]]
    text: torch.Tensor     # (B, N, F) node features h^0 input (z-scored per query if asked)
    s_text: torch.Tensor   # (B, N) raw text score s_T(q, d) of Eq. (1) (one chosen text feature)
    visual: torch.Tensor   # (B, N, D) v / (||v|| + 1e-6)
    sim: torch.Tensor      # (B, N, N) cosine s_V(d_i, d_j) = v_i . v_j (0 where padded)
    rel: torch.Tensor      # (B, N) long, 0 where padded
    mask: torch.Tensor     # (B, N) bool, True for real candidates

    def __len__(self) -> int:
        return len(self.qids)

    @property
    def device(self) -> torch.device:
        return self.text.device

    def select(self, index: Sequence[int]) -> "PaddedQueries":
        """The sub-batch of queries ``index``, trimmed to its own longest list."""
        idx = torch.as_tensor(list(index), dtype=torch.long, device=self.device)
        if idx.numel() == 0:
            raise ValueError("select() needs at least one query index")
        n = int(self.mask.index_select(0, idx).sum(1).max())

        def rows(t: torch.Tensor) -> torch.Tensor:            # row copies (index_select copies whole rows fast)
            return t.narrow(1, 0, n).index_select(0, idx)

        return PaddedQueries(
            qids=[self.qids[i] for i in index], doc_ids=[self.doc_ids[i] for i in index],
            text=rows(self.text), s_text=rows(self.s_text), visual=rows(self.visual),
            sim=rows(self.sim.narrow(2, 0, n)), rel=rows(self.rel), mask=rows(self.mask))

    def with_extra_feature(self, feature: torch.Tensor, zscore: bool = True, zscore_ddof: int = 0) -> "PaddedQueries":
        """Append one node feature (B, N) to ``text`` (LTR+CM: the CM score as an LTR feature), z-scored
        as :func:`zscore_per_query` does with ``zscore``."""
        if feature.shape != self.mask.shape:
            raise ValueError(f"feature must be (B, N) = {tuple(self.mask.shape)}, got {tuple(feature.shape)}")
        f = feature.to(self.text.dtype)[..., None]
        if zscore:
            f = zscore_per_query(f, self.mask, zscore_ddof)
        return replace(self, text=torch.cat([self.text, f * self.mask[..., None]], dim=-1))

    def to(self, device: torch.device | str) -> "PaddedQueries":
        return replace(self, text=self.text.to(device), s_text=self.s_text.to(device),
                       visual=self.visual.to(device), sim=self.sim.to(device), rel=self.rel.to(device),
                       mask=self.mask.to(device))

    def scores_to_lists(self, scores: torch.Tensor) -> list[np.ndarray]:
        """Unpad (B, N) scores into one float64 array per query."""
        lengths = self.mask.sum(1).tolist()
        s = scores.detach().to("cpu", torch.float64).numpy()
        return [s[b, :n] for b, n in enumerate(lengths)]


def zscore_per_query(x: torch.Tensor, mask: torch.Tensor, zscore_ddof: int = 0) -> torch.Tensor:
    """z-score each feature over the real nodes of each query. ``x``: (B, N, F), ``mask``: (B, N).

    ``zscore_ddof = 0`` (default): (x − mean) / σ, σ the population standard deviation; a constant
    feature becomes 0. ``zscore_ddof = 1``: the released code's (x − mean) / (s + 1e-6), s the sample
    standard deviation (divisor n − 1; a one-candidate list, where the release divides 0 by 0, gets
    s = 0 here). Padded rows are set to 0.
    """
    if zscore_ddof not in (0, 1):
        raise ValueError(f"zscore_ddof must be 0 or 1, got {zscore_ddof}")
    m = mask[..., None].to(x.dtype)                           # (B, N, 1)
    n = m.sum(1, keepdim=True).clamp_min(1)                   # (B, 1, 1)
    mean = (x * m).sum(1, keepdim=True) / n                   # (B, 1, F)
    sq = (((x - mean) * m) ** 2).sum(1, keepdim=True)         # (B, 1, F): Σ_i (x_i − mean)²
    if zscore_ddof == 1:
        s = (sq / (n - 1).clamp_min(1)).sqrt()                # sample std
        return (x - mean) / (s + ZSCORE_EPS) * m
    std = (sq / n).sqrt()                                     # population std
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return (x - mean) / std * m


def pad_queries(queries: Sequence[QueryList], *, device: torch.device | None = None,
                dtype: torch.dtype = torch.float32, zscore_text: bool = True, zscore_ddof: int = 0,
                cm_text_feature: int = 0, centre_visual: str = "none") -> PaddedQueries:
    """Stack ``queries`` into a :class:`PaddedQueries` on ``device`` (default: ``get_device()``).

    ``zscore_text``, ``zscore_ddof``: z-score the text features per query, see :func:`zscore_per_query`.
    ``centre_visual``: ``"none"`` (paper and code) or ``"query"`` (subtract each query's mean v_i
    over its real candidates before the L2 normalisation; see the module docstring).
    """
    if centre_visual not in ("none", "query"):
        raise ValueError(f"centre_visual must be 'none' or 'query', got {centre_visual!r}")
    if len(queries) == 0:
        raise ValueError("pad_queries() got an empty list of queries")
    device = device if device is not None else get_device()
    F, D = queries[0].text.shape[1], queries[0].visual.shape[1]
    for q in queries:
        if q.text.shape[1] != F or q.visual.shape[1] != D:
            raise ValueError(f"query {q.qid!r} has (F, D) = ({q.text.shape[1]}, {q.visual.shape[1]}), "
                             f"the first query has ({F}, {D}); all queries need the same feature sizes")
    if not 0 <= cm_text_feature < F:
        raise ValueError(f"cm_text_feature = {cm_text_feature} is not a column of the {F} text features")
    B, N = len(queries), max(len(q) for q in queries)
    text = np.zeros((B, N, F), np.float64)
    visual = np.zeros((B, N, D), np.float64)
    rel = np.zeros((B, N), np.int64)
    mask = np.zeros((B, N), bool)
    for b, q in enumerate(queries):
        n = len(q)
        text[b, :n], visual[b, :n], rel[b, :n], mask[b, :n] = q.text, q.visual, q.rel, True
    text_t = torch.as_tensor(text, dtype=dtype, device=device)
    mask_t = torch.as_tensor(mask, device=device)
    s_text = text_t[..., cm_text_feature].clone()
    if zscore_text:
        text_t = zscore_per_query(text_t, mask_t, zscore_ddof)
    vis = torch.as_tensor(visual, dtype=dtype, device=device)
    if centre_visual == "query":
        m = mask_t[..., None].to(dtype)                          # (B, N, 1)
        mean = (vis * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)  # (B, 1, D)
        vis = (vis - mean) * m
    vis = vis / (vis.norm(dim=-1, keepdim=True) + VISUAL_EPS)   # (B, N, D)
    sim = vis @ vis.transpose(1, 2)                              # (B, N, N)
    sim = sim * (mask_t[:, :, None] & mask_t[:, None, :])
    return PaddedQueries(qids=[q.qid for q in queries], doc_ids=[list(q.doc_ids) for q in queries],
                         text=text_t, s_text=s_text, visual=vis, sim=sim,
                         rel=torch.as_tensor(rel, device=device), mask=mask_t)
