"""SAF: similarity attention filtration (Diao et al. 2021, Sec. "Similarity Attention Filtration").

``β_p = σ(BN(W_f s_p)) / Σ_q σ(BN(W_f s_q))`` (sigmoid weights, L1-normalised over the pair's real
nodes), ``s_f = L2(Σ_p β_p s_p)``, score ``sigmoid(W_s s_f)``. BN is a BatchNorm with **one** channel
whose statistics run over every real node of every pair in the block (:class:`MaskedBatchNorm`:
padded words neither count in the statistics nor get weight). The official code scores one caption
against all images per call, so its training statistics cover images × nodes of one caption; here
they cover the whole images × captions block (the same in evaluation, which uses running statistics).
In a hardest-negative training step the block's statistics are computed in tiles
(:func:`xmlib.sgraf.model.block_logit_statistics`) and handed to the batch norm
(:meth:`MaskedBatchNorm.given_statistics`), which scores the few pairs the loss reads with them;
:meth:`SAF.summarise` / :meth:`SAF.score_summaries` score every other pair from three small summaries.

:class:`AverageAggregation` is Table 4's "AA": the same read-out with uniform weights
(``β_p = 1 / P``); with scalar similarities (Table 4's "SS") the score is the mean cosine.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from xmlib.sgraf.config import ModelConfig
from xmlib.sgraf.normalize import EPS, NormEps, l1_normalize_positive, l2_normalize


class MaskedBatchNorm(nn.Module):
    """BatchNorm1d with one channel over the entries where ``mask`` is True (any shape).

    Inside :meth:`given_statistics` it normalises with the block statistics it is given (and leaves
    its running statistics alone): :meth:`~xmlib.sgraf.model.SGRAFModel.hardest_scores` computes them
    over the whole block in tiles and scores a few pairs of the block with them.
    """

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_var", torch.ones(1))
        self.momentum, self.eps = momentum, eps
        self._given: tuple[torch.Tensor, torch.Tensor] | None = None

    @contextlib.contextmanager
    def given_statistics(self, mean: torch.Tensor, var: torch.Tensor) -> Iterator[None]:
        """Normalise with ``mean`` and the population variance ``var`` (0-dim tensors; gradients flow into
        them) until the block ends, in training and in evaluation, without touching the running statistics."""
        before, self._given = self._given, (mean, var)
        try:
            yield
        finally:
            self._given = before

    @torch.no_grad()
    def update_running(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        """One training step's update of the running statistics from a batch of ``n`` values with ``mean``
        and population variance ``var`` (the running variance takes the unbiased one, as BatchNorm1d)."""
        unbiased = var.detach() * n / max(n - 1, 1)
        self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
        self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self._given is not None:
            mean, var = self._given
        elif self.training:
            vals = x.reshape(-1) if mask is None else x[mask.expand_as(x)]
            mean, var = vals.mean(), vals.var(unbiased=False)
            self.update_running(mean, var, vals.numel())
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def saf_weights(logits: torch.Tensor, mask: torch.Tensor | None = None, *, norm_eps: NormEps = "clamp") -> torch.Tensor:
    """β of SAF from the batch-normalised logits ``BN(W_f s_p)``: ``σ(·)`` L1-normalised over the nodes
    (SGRAF, Sec. "Similarity Attention Filtration"; in the chapter :math:numref:`eq-sgraf-saf`).

    Args:
        logits: (..., P); mask: (..., P) bool or None.
        norm_eps: ``"clamp"`` divides by the sum; ``"add"`` by the sum + ε, as the official code
            (:mod:`xmlib.sgraf.normalize`).
    Returns:
        (..., P) non-negative weights, zero on masked nodes, summing to 1 over each pair's nodes.
    """
    w = torch.sigmoid(logits)
    if mask is not None:
        w = w * mask.to(w.dtype)
    return l1_normalize_positive(w, norm_eps=norm_eps)


class SAF(nn.Module):
    """Similarity attention filtration: nodes (..., P, m), mask (..., P) → scores (...) in (0, 1) (SGRAF,
    Sec. "Similarity Attention Filtration"; in the chapter :math:numref:`eq-sgraf-saf`).

    Reads ``sim_dim`` (m) and ``norm_eps`` from ``cfg``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w_f = nn.Linear(cfg.sim_dim, 1)  # W_f
        self.bn = MaskedBatchNorm()
        self.score = nn.Linear(cfg.sim_dim, 1)  # W_s
        self.norm_eps = cfg.norm_eps

    def weights(self, nodes: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """β (..., P) of every node."""
        logits = self.w_f(nodes).squeeze(-1)  # (..., P)
        full = None if mask is None else mask.expand(logits.shape)
        return saf_weights(self.bn(logits, full), full, norm_eps=self.norm_eps)

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        beta = self.weights(nodes, mask)  # (..., P)
        s_f = l2_normalize((beta.unsqueeze(-1) * nodes).sum(-2), norm_eps=self.norm_eps)  # (..., m)
        return torch.sigmoid(self.score(s_f)).squeeze(-1)

    @torch.no_grad()
    def summarise(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the score of a pair of unpadded nodes (..., P, m) needs once its batch statistics are known:
        the logits ``x_p = W_f s_p`` (..., P), ``u_p = W_s s_p`` (..., P) and the Gram matrix ``s_p·s_q``
        (..., P, P); for :meth:`score_summaries` (P² numbers per pair instead of P·m)."""
        x = self.w_f(nodes).squeeze(-1)  # (..., P)
        u = nodes @ self.score.weight[0]  # (..., P)
        return x, u, nodes @ nodes.transpose(-1, -2)

    @torch.no_grad()
    def score_summaries(self, x: torch.Tensor, u: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
        """:meth:`forward`'s scores (...) from :meth:`summarise`'s summaries (the batch norm as it stands: in
        evaluation, inside :meth:`MaskedBatchNorm.given_statistics`). With β the weights and s_f = Σ_p β_p s_p,
        ``W_s L2(s_f) = β·u / ‖s_f‖`` and ``‖s_f‖² = βᵀ G β``: the same numbers up to rounding."""
        beta = saf_weights(self.bn(x), None, norm_eps=self.norm_eps)  # (..., P)
        norm = (beta.unsqueeze(-2) @ gram @ beta.unsqueeze(-1))[..., 0, 0].clamp_min(0.0).sqrt()  # ‖s_f‖
        norm = norm.clamp_min(EPS) if self.norm_eps == "clamp" else norm + EPS  # as l2_normalize puts its ε
        return torch.sigmoid((beta * u).sum(-1) / norm + self.score.bias[0])


class AverageAggregation(nn.Module):
    """Table 4's AA: uniform weights over the real nodes.

    Vector nodes: ``sigmoid(W_s L2(mean_p s_p))``. Scalar nodes (``similarity="scalar"``, m = 1,
    cosines): their mean. Reads ``sim_dim`` (m), ``similarity`` and ``norm_eps`` from ``cfg``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.similarity = cfg.similarity
        self.norm_eps = cfg.norm_eps
        self.score = None if cfg.similarity == "scalar" else nn.Linear(cfg.sim_dim, 1)  # W_s

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        w = torch.ones(nodes.shape[:-1], dtype=nodes.dtype, device=nodes.device) if mask is None else \
            mask.to(nodes.dtype).expand(nodes.shape[:-1])
        mean = (nodes * w.unsqueeze(-1)).sum(-2) / w.sum(-1, keepdim=True)  # (..., m)
        if self.similarity == "scalar":
            return mean.squeeze(-1)
        return torch.sigmoid(self.score(l2_normalize(mean, norm_eps=self.norm_eps))).squeeze(-1)
