"""SGRAF's encoders (Diao et al. 2021, Sec. "Generic Representation Extraction").

- :class:`ImageEncoder`: region features → FC (Xavier) → L2 per region: V = {v_1..v_K}, plus the
  attention-pooled global vector v̄.
- :class:`TextEncoder`: word ids → embedding U(−0.1, 0.1) → dropout → 1-layer BiGRU; the word
  feature is the **mean** of the forward and backward states → L2 per word: T = {t_1..t_L}, plus t̄.
- :class:`AttentionPool`: ``w = softmax_r(W_c(tanh(norm(W_l x_r)) ⊙ tanh(norm(W_g mean(X)))))``,
  ``x̄ = L2(Σ_r w_r x_r)`` over the real (unmasked) rows, any number of rows.

Padded words are masked everywhere, so a caption gives the same features alone or in a padded batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from xmlib.sgraf.config import ModelConfig
from xmlib.sgraf.normalize import NormEps, l2_normalize


def length_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(n,) lengths → (n, L) bool mask, True on real words."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(n, L, d), (n, L) → (n, d) mean over the real rows."""
    if mask is None:
        return x.mean(1)
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


class _FeatureNorm(nn.Module):
    """BatchNorm1d over the last (feature) axis with statistics over every other axis (any K)."""

    def __init__(self, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.reshape(-1, x.shape[-1])).view_as(x)


class AttentionPool(nn.Module):
    """Attention pooling with the mean as query; returns L2(Σ_r w_r x_r) and the weights w.

    Args:
        embed_size: d.
        global_norm: ``"feature"`` (BatchNorm1d over features, any number of rows), ``"region"`` (the
            official code's BatchNorm1d over the row axis; needs exactly ``num_regions`` rows) or
            ``"none"`` (the text branch). The image branch takes it from :class:`ModelConfig`, which
            checks the value.
        num_regions: K of ``global_norm="region"``.
        dropout: of the pooling's hidden activations.
        norm_eps: where the ε of the final L2 norm goes (:mod:`xmlib.sgraf.normalize`).
    """

    def __init__(self, embed_size: int, *, global_norm: str = "none", num_regions: int = 49, dropout: float = 0.4,
                 norm_eps: NormEps = "clamp"):
        super().__init__()
        self.norm_eps = norm_eps
        self.local = nn.Linear(embed_size, embed_size)  # W_l
        self.glob = nn.Linear(embed_size, embed_size)  # W_g
        self.common = nn.Linear(embed_size, 1)  # W_c
        self.dropout = nn.Dropout(dropout)
        self.global_norm = global_norm
        self.num_regions = num_regions
        if global_norm == "feature":
            self.norm_l, self.norm_g = _FeatureNorm(embed_size), _FeatureNorm(embed_size)
        elif global_norm == "region":
            self.norm_l, self.norm_g = nn.BatchNorm1d(num_regions), _FeatureNorm(embed_size)
        else:  # "none"
            self.norm_l = self.norm_g = nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # x (n, R, d), mask (n, R) or None
        if self.global_norm == "region" and x.shape[1] != self.num_regions:
            raise ValueError(f"global_norm='region' was built for num_regions = K = {self.num_regions}, the images "
                             f"have K = {x.shape[1]}; set num_regions = {x.shape[1]} or use global_norm='feature' "
                             "(any number of regions)")
        query = masked_mean(x, mask)  # (n, d)
        h_l = self.dropout(torch.tanh(self.norm_l(self.local(x))))  # (n, R, d)
        h_g = self.dropout(torch.tanh(self.norm_g(self.glob(query))))  # (n, d)
        logits = self.common(h_l * h_g.unsqueeze(1)).squeeze(-1)  # (n, R)
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        w = logits.softmax(-1)  # (n, R)
        pooled = torch.einsum("nr,nrd->nd", w, x)  # Σ_r w_r x_r
        return l2_normalize(pooled, norm_eps=self.norm_eps), w


class ImageEncoder(nn.Module):
    """Region features (n, K, D) → V (n, K, d) L2 per region, and v̄ (n, d).

    Reads from ``cfg``: ``img_dim`` (D), ``embed_size`` (d), ``global_norm``, ``num_regions``, ``dropout``,
    ``norm_eps``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.img_dim, cfg.embed_size)
        bound = math.sqrt(6.0) / math.sqrt(cfg.img_dim + cfg.embed_size)  # Xavier uniform
        nn.init.uniform_(self.fc.weight, -bound, bound)
        nn.init.zeros_(self.fc.bias)
        self.pool = AttentionPool(cfg.embed_size, global_norm=cfg.global_norm, num_regions=cfg.num_regions,
                                  dropout=cfg.dropout, norm_eps=cfg.norm_eps)
        self.norm_eps = cfg.norm_eps

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 3:
            raise ValueError(f"images must be (n, K, D) region features, got shape {tuple(images.shape)}")
        regions = l2_normalize(self.fc(images), norm_eps=self.norm_eps)  # (n, K, d)
        glob, _ = self.pool(regions)  # (n, d)
        return regions, glob


class TextEncoder(nn.Module):
    """Token ids (n, L) with lengths (n,) → T (n, L, d) L2 per word (zeros on padding), and t̄ (n, d).

    Reads from ``cfg``: ``word_dim``, ``embed_size`` (d), ``dropout``, ``norm_eps``; ``vocab_size`` comes
    from the data.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.word_dim)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.word_dim, cfg.embed_size, num_layers=1, batch_first=True, bidirectional=True)
        self.pool = AttentionPool(cfg.embed_size, global_norm="none", dropout=cfg.dropout, norm_eps=cfg.norm_eps)
        self.embed_size = cfg.embed_size
        self.norm_eps = cfg.norm_eps

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tokens.ndim != 2 or lengths.shape != tokens.shape[:1]:
            raise ValueError(f"tokens must be (n, L) and lengths (n,), got {tuple(tokens.shape)} and {tuple(lengths.shape)}")
        if int(lengths.min()) < 1 or int(lengths.max()) > tokens.shape[1]:
            raise ValueError(f"lengths must be in 1..{tokens.shape[1]}, got {lengths.tolist()}")
        x = self.dropout(self.embed(tokens))  # (n, L, word_dim)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])  # (n, L, 2d)
        words = (out[..., : self.embed_size] + out[..., self.embed_size:]) / 2  # mean of both directions
        mask = length_mask(lengths.to(tokens.device), tokens.shape[1])
        words = l2_normalize(words, norm_eps=self.norm_eps) * mask.unsqueeze(-1)  # (n, L, d), padding rows are 0
        glob, _ = self.pool(words, mask)  # (n, d)
        return words, glob
