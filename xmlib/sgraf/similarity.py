"""Similarity representations of SGRAF (Diao et al. 2021, Sec. "Similarity Representation Learning").

Every function scores a whole **block** of ``n_i`` images × ``n_c`` captions at once: image tensors
have a leading ``n_i`` axis, caption tensors a leading ``n_c`` axis, and results are
(n_i, n_c, ...). A caption's padded words are masked, so a caption scores the same alone or padded.

- :func:`vector_similarity` — Eq. (1): ``s(x, y; W) = W|x − y|² / ‖W|x − y|²‖₂`` (with the official
  code's bias b inside the norm when ``sim_bias`` is on).
- :func:`attend_text_to_image` — one attended visual context per word (the paper's choice):
  ``c_ij = cos(v_i, t_j)``, ``c̄_ij = [c_ij]_+ / sqrt(Σ_j [c_ij]_+²)``, ``α_ij = softmax_i(λ c̄_ij)``,
  ``a_j^v = Σ_i α_ij v_i``.
- :func:`attend_image_to_text` — the mirror (Table 4's image-to-text ablation): one attended textual
  context per region.
- :class:`SimilarityNodes` — the graph nodes N = {s^g, s_1^l .. s_L^l} (global first) with their mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xmlib.core.device import linear
from xmlib.sgraf.config import ModelConfig
from xmlib.sgraf.normalize import EPS, NormEps, l2_normalize, l2_normalize_


def vector_similarity(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                      norm_eps: NormEps = "clamp", consume: bool = False) -> torch.Tensor:
    """Eq. (1) of SGRAF: ``s(x, y; W) = W|x − y|² / ‖W|x − y|²‖₂`` (element-wise square); in the chapter
    :math:numref:`eq-sgraf-sim`.

    Args:
        x, y: (..., d) broadcastable.
        weight: W, (m, d).
        bias: b, (m,) or None (the paper). The official code's projection has one:
            ``s = (W|x − y|² + b) / ‖W|x − y|² + b‖₂`` (``sim_bias``).
        norm_eps: where the ε of the L2 norm goes (:mod:`xmlib.sgraf.normalize`).
        consume: ``x`` is a temporary of the broadcast shape that the caller gives up: without autograd the
            difference and its square are written into it (no new (…, d) buffer; the same numbers).
    Returns:
        (..., m) the similarity vector (unit L2 norm).
    """
    if _no_grad(x, y, weight):  # scoring: square in place, one (…, d) buffer instead of two (none with consume)
        if consume and x.shape == torch.broadcast_shapes(x.shape, y.shape) and x.is_contiguous():
            diff2 = x.sub_(y)
        else:
            diff2 = torch.sub(x, y)
        diff2.square_()  # the same numbers as .pow(2)
    else:
        diff2 = (x - y).pow(2)  # (..., d)
    proj = linear(diff2, weight, bias)  # (..., m): W|x − y|² (+ b, official code)
    del diff2
    if _no_grad(proj):
        return l2_normalize_(proj, norm_eps=norm_eps)
    return l2_normalize(proj, norm_eps=norm_eps)  # (..., m)


def _no_grad(*tensors: torch.Tensor) -> bool:
    """True when no autograd graph is being recorded for these tensors (in-place shortcuts are safe)."""
    return not torch.is_grad_enabled() or not any(t.requires_grad for t in tensors)


def _normalise_scores(c: torch.Tensor, mask: torch.Tensor | None, dim: int, attn_leaky: float,
                      norm_eps: NormEps = "clamp") -> torch.Tensor:
    """``[c]_+ / sqrt(Σ_dim [c]_+²)`` with ReLU (attn_leaky = 0, the paper) or LeakyReLU(attn_leaky) (official
    code); the ε goes into a clamp (``norm_eps="clamp"``) or is added to the norm (``"add"``, official code)."""
    if _no_grad(c):  # scoring: the same numbers in place
        c = F.relu_(c) if attn_leaky == 0.0 else F.leaky_relu_(c, attn_leaky)
        if mask is not None:
            c.mul_(mask)
        if norm_eps == "add":
            return c.div_(c.norm(dim=dim, keepdim=True).add_(EPS))
        return c.div_(c.square().sum(dim, keepdim=True).add_(1e-16).sqrt_().clamp_min_(EPS))
    c = F.relu(c) if attn_leaky == 0.0 else F.leaky_relu(c, attn_leaky)
    if mask is not None:
        c = c * mask
    if norm_eps == "add":
        return c / (c.norm(dim=dim, keepdim=True) + EPS)
    return c / c.pow(2).sum(dim, keepdim=True).add(1e-16).sqrt().clamp_min(EPS)


def attend_text_to_image(regions: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor | None, *,
                         lambda_softmax: float = 9.0, attn_leaky: float = 0.0, l2_context: bool = False,
                         norm_eps: NormEps = "clamp") -> tuple[torch.Tensor, torch.Tensor]:
    """Text-to-visual attention: for every word j of every caption, a context ``a_j^v`` over the regions
    (SGRAF, Sec. "Similarity Representation Learning"; in the chapter :math:numref:`eq-sgraf-attn`).

    Args:
        regions: V, (n_i, K, d), L2-normalised rows.
        words: T, (n_c, L, d), L2-normalised rows (padding anything).
        word_mask: (n_c, L) bool, True on real words (None = all real).
        lambda_softmax: λ (inverse temperature); attn_leaky: 0 = ReLU (paper), 0.1 = LeakyReLU (code);
        l2_context: L2-normalise ``a_j^v`` (official code) or not (paper);
        norm_eps: where the ε of the normalisations goes (:mod:`xmlib.sgraf.normalize`).
    Returns:
        contexts (n_i, n_c, L, d) and attention α (n_i, n_c, L, K) (softmax over the K regions).
    """
    n_i, k, d = regions.shape
    n_c, length, _ = words.shape
    alpha = text_to_image_weights(regions, words, word_mask, lambda_softmax=lambda_softmax, attn_leaky=attn_leaky,
                                  norm_eps=norm_eps)
    ctx = torch.bmm(alpha.view(n_i, n_c * length, k), regions)  # (n_i, n_c·L, d): Σ_i α_ij v_i
    ctx = ctx.view(n_i, n_c, length, d)
    if l2_context:
        ctx = l2_normalize_(ctx, norm_eps=norm_eps) if _no_grad(ctx) else l2_normalize(ctx, norm_eps=norm_eps)
    return ctx, alpha


def text_to_image_weights(regions: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor | None, *,
                          lambda_softmax: float = 9.0, attn_leaky: float = 0.0,
                          norm_eps: NormEps = "clamp") -> torch.Tensor:
    """The weights α (n_i, n_c, L, K) of :func:`attend_text_to_image` (the same arguments):
    ``c_ij = cos(v_i, t_j)``, ``c̄_ij = [c_ij]_+ / sqrt(Σ_j [c_ij]_+²)``, ``α_ij = softmax_i(λ c̄_ij)``."""
    n_i, k, d = regions.shape
    n_c, length, _ = words.shape
    # c_ij = cos(v_i, t_j) in the (image, caption, word, region) order the softmax and the context product read
    if n_c > 1:  # several captions (a tile): every word against every region of the block in one matrix
        # product (n_c·L, d) × (d, n_i·K), faster than one per image; then a copy of the scores (K/d of the
        # contexts' size) into that order
        c = linear(words.reshape(n_c * length, d), regions.reshape(n_i * k, d)).view(n_c, length, n_i, k)
        c = c.permute(2, 0, 1, 3).contiguous()  # (n_i, n_c, L, K)
    else:  # one caption: one product per image (measured faster than the single product and its copy)
        c = torch.bmm(words.reshape(1, length, d).expand(n_i, -1, -1), regions.transpose(1, 2)).view(n_i, 1, length, k)
    mask = None if word_mask is None else word_mask[None, :, :, None].to(c.dtype)  # (1, n_c, L, 1)
    c_bar = _normalise_scores(c, mask, dim=2, attn_leaky=attn_leaky, norm_eps=norm_eps)  # normalised over the words j
    logits = c_bar.mul_(lambda_softmax) if _no_grad(c_bar) else lambda_softmax * c_bar  # c_bar: a temporary
    return torch.softmax(logits, dim=-1)  # softmax over regions i


def attend_image_to_text(regions: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor | None, *,
                         lambda_softmax: float = 9.0, attn_leaky: float = 0.0, l2_context: bool = False,
                         norm_eps: NormEps = "clamp") -> tuple[torch.Tensor, torch.Tensor]:
    """Image-to-text attention (Table 4 ablation): for every region i, a context ``a_i^t`` over the words.

    ``c̄_ij = [c_ij]_+ / sqrt(Σ_i [c_ij]_+²)`` (normalised over the regions, the query axis),
    ``α_ij = softmax_j(λ c̄_ij)`` over the real words, ``a_i^t = Σ_j α_ij t_j``.

    Returns:
        contexts (n_i, n_c, K, d) and attention α (n_i, n_c, K, L) (softmax over the words).
    """
    n_i, k, d = regions.shape
    n_c, length, _ = words.shape
    c = (regions.reshape(n_i * k, d) @ words.reshape(n_c * length, d).T)  # (n_i·K, n_c·L)
    c = c.view(n_i, k, n_c, length).permute(0, 2, 1, 3)  # (n_i, n_c, K, L)
    c_bar = _normalise_scores(c, None, dim=2, attn_leaky=attn_leaky, norm_eps=norm_eps)  # normalised over the regions i
    logits = lambda_softmax * c_bar
    if word_mask is not None:
        logits = logits.masked_fill(~word_mask[None, :, None, :], float("-inf"))
    alpha = torch.softmax(logits, dim=-1)  # softmax over words j
    # a_i^t = Σ_j α_ij t_j: per caption, (n_i·K, L) @ (L, d)
    ctx = torch.einsum("ickl,cld->ickd", alpha, words)  # (n_i, n_c, K, d)
    if l2_context:
        ctx = l2_normalize(ctx, norm_eps=norm_eps)
    return ctx, alpha


STREAM_ROWS = 64
"""Words per image (captions × their length) from which :class:`SimilarityNodes` scores image by image
(:meth:`SimilarityNodes.local_nodes_streamed`)."""

STREAM_MACS = 2 ** 22
"""Smallest number of multiply-adds in one image's projection (words × d × m) for which it does so too. With
the book's small model (d = 64, m = 16, 448 words per image) scoring image by image ran 1.5–3 % slower than the
whole block (300 images × 1,500 captions, one thread), at the paper's size (d = 1024, m = 256) faster."""


class SimilarityNodes(nn.Module):
    """The similarity graph's nodes for a block of image–caption pairs: s^g and s^l_j of SGRAF's Eq. (1)
    on the attended contexts (in the chapter :math:numref:`eq-sgraf-sim`, :math:numref:`eq-sgraf-attn`).

    ``forward(regions, img_glob, words, txt_glob, word_mask)`` → ``(nodes, mask)`` (mask None when every
    node is real: no padded word among the local nodes) with nodes
    (n_i, n_c, 1 + L, m) = [s^g, s_1^l .. s_L^l] (text-to-visual) or (n_i, n_c, 1 + K, m)
    (image-to-text); without the global node (``use_global=False``) the first entry is dropped,
    without local nodes (``use_local=False``) only s^g remains. ``similarity="scalar"`` gives cosines
    (…, 1) instead of Eq. (1) vectors (Table 4 SS).

    Reads from ``cfg``: ``embed_size`` (d), ``sim_dim`` (m), ``similarity``, ``attention``
    (``"t2i"`` | ``"i2t"``), ``use_global``, ``use_local``, ``sim_bias`` (W_g and W_l with a bias, the
    official code), ``norm_eps`` and the attention's ``lambda_softmax``, ``attn_leaky``, ``l2_context``
    (see :func:`attend_text_to_image`).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.w_global = nn.Linear(cfg.embed_size, cfg.sim_dim, bias=cfg.sim_bias)  # W_g (and b_g) of Eq. (1) for s^g
        self.w_local = nn.Linear(cfg.embed_size, cfg.sim_dim, bias=cfg.sim_bias)  # W_l (and b_l) of Eq. (1) for s_j^l
        if cfg.sim_bias:  # the official code starts both biases at zero
            nn.init.zeros_(self.w_global.bias)
            nn.init.zeros_(self.w_local.bias)

    def _sim(self, x: torch.Tensor, y: torch.Tensor, proj: nn.Linear, consume: bool = False) -> torch.Tensor:
        norm_eps = self.cfg.norm_eps
        if self.cfg.similarity == "scalar":
            return (l2_normalize(x, norm_eps=norm_eps) * l2_normalize(y, norm_eps=norm_eps)).sum(-1, keepdim=True)  # cosine
        return vector_similarity(x, y, proj.weight, proj.bias, norm_eps=norm_eps, consume=consume)

    def attend(self, regions: torch.Tensor, words: torch.Tensor,
               word_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The local nodes' attention with this model's settings: :func:`attend_text_to_image` for
        ``attention="t2i"`` (contexts (n_i, n_c, L, d), α (n_i, n_c, L, K)), :func:`attend_image_to_text`
        for ``"i2t"`` (contexts (n_i, n_c, K, d), α (n_i, n_c, K, L))."""
        attend = attend_text_to_image if self.cfg.attention == "t2i" else attend_image_to_text
        return attend(regions, words, word_mask, lambda_softmax=self.cfg.lambda_softmax,
                      attn_leaky=self.cfg.attn_leaky, l2_context=self.cfg.l2_context, norm_eps=self.cfg.norm_eps)

    def operands(self, regions: torch.Tensor, img_glob: torch.Tensor, words: torch.Tensor, txt_glob: torch.Tensor,
                 word_mask: torch.Tensor | None, attend=None) -> list[tuple[torch.Tensor, torch.Tensor, nn.Linear]]:
        """``(x, y, projection)`` of each group of nodes, global first: SGRAF's Eq. (1) ``s(x, y; W)`` (in the
        chapter :math:numref:`eq-sgraf-sim`) with the projection's W (and b) gives that group's nodes
        (n_i, n_c, R, m). x and y broadcast to (n_i, n_c, R, d): (v̄, t̄) for s^g (R = 1); (a^v_j, t_j) per word
        (t2i) or (v_i, a^t_i) per region (i2t) for s^l. ``attend``: a function computing :meth:`attend`'s
        contexts in another way (the same arguments and results), None = :meth:`attend`."""
        ops = []
        if self.cfg.use_global:
            ops.append((img_glob[:, None, None, :], txt_glob[None, :, None, :], self.w_global))
        if self.cfg.use_local:
            ctx, _ = (attend or self.attend)(regions, words, word_mask)
            if self.cfg.attention == "t2i":
                ops.append((ctx, words.unsqueeze(0), self.w_local))  # (n_i, n_c, L, d), (1, n_c, L, d)
            else:
                ops.append((regions.unsqueeze(1), ctx, self.w_local))  # (n_i, 1, K, d), (n_i, n_c, K, d)
        return ops

    def streams(self, regions: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor | None) -> bool:
        """True when :meth:`forward` computes the local nodes image by image (:meth:`local_nodes_streamed`):
        scoring (no autograd) on a CPU, the paper's text-to-image attention with vector similarities, no
        padded word, at least :data:`STREAM_ROWS` words per image (several captions: a tile of
        :func:`~xmlib.sgraf.model.score_matrix`; one caption's words per image make products too small) and
        one image's projection of at least :data:`STREAM_MACS` multiply-adds."""
        cfg = self.cfg
        rows = words.shape[0] * words.shape[1]
        return (cfg.use_local and cfg.attention == "t2i" and cfg.similarity == "vector" and word_mask is None
                and regions.device.type == "cpu" and rows >= STREAM_ROWS
                and rows * cfg.embed_size * cfg.sim_dim >= STREAM_MACS
                and _no_grad(regions, words, self.w_local.weight))

    @torch.no_grad()
    def local_nodes_streamed(self, regions: torch.Tensor, words: torch.Tensor, lead: int = 0) -> torch.Tensor:
        """The local nodes s^l_j of a block without padding, one image at a time: the same numbers as
        :meth:`operands` and SGRAF's Eq. (1) give (to float rounding), in less memory traffic (SGRAF, Sec.
        "Similarity Representation Learning"; in the chapter :math:numref:`eq-sgraf-sim` and
        :math:numref:`eq-sgraf-attn`). Returns (n_i, n_c, lead + L, m) with the local nodes in
        ``[..., lead:, :]`` and ``lead`` node slots left for the caller (the global node).

        The attention weights α of the whole block come first (one product for the scores, as
        :func:`attend_text_to_image`); then, per image, its contexts ``a^v = α V`` (n_c·L, d), their
        difference with the words, its square and the projection ``W_l`` follow each other while the
        (n_c·L, d) buffer is still in the processor's cache, instead of four passes over an (n_i, n_c, L, d)
        tensor in memory. With L2-normalised contexts (``l2_context``, the official code) the division by the
        context's norm D is moved past the projection: ``|a/D − t|² = |a − D t|² / D²``, so ``W_l`` applied to
        ``|a − D t|²`` is divided by D² (m numbers a word instead of d)."""
        cfg = self.cfg
        n_i, k, d = regions.shape
        n_c, length, _ = words.shape
        rows = n_c * length
        flat_t = words.reshape(rows, d)
        alpha = text_to_image_weights(regions, words, None, lambda_softmax=cfg.lambda_softmax,
                                      attn_leaky=cfg.attn_leaky, norm_eps=cfg.norm_eps).view(n_i, rows, k)
        weight, bias = self.w_local.weight, self.w_local.bias
        out = torch.empty(n_i, n_c, lead + length, weight.shape[0], dtype=words.dtype, device=words.device)
        local = out[:, :, lead:]
        for i in range(n_i):
            ctx = linear(alpha[i], regions[i].T)  # (n_c·L, d): Σ_i α_ij v_i
            if cfg.l2_context:  # D = max(‖a‖, ε) or ‖a‖ + ε, as l2_normalize puts its ε
                norm = ctx.norm(dim=-1, keepdim=True)
                denom = norm.clamp_min_(EPS) if cfg.norm_eps == "clamp" else norm.add_(EPS)
                y = linear(ctx.addcmul_(denom, flat_t, value=-1.0).square_(), weight)  # W_l |a − D t|²
                y.div_(denom.square_())
                if bias is not None:
                    y.add_(bias)
            else:
                y = linear(ctx.sub_(flat_t).square_(), weight, bias)  # W_l |a^v_j − t_j|² (+ b_l)
            local[i] = l2_normalize_(y, norm_eps=cfg.norm_eps).view(n_c, length, -1)  # s^l_j, still in cache
        return out

    def forward(self, regions: torch.Tensor, img_glob: torch.Tensor, words: torch.Tensor, txt_glob: torch.Tensor,
                word_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        n_c = words.shape[0]
        padded = self.cfg.use_local and self.cfg.attention == "t2i" and word_mask is not None
        if self.streams(regions, words, word_mask):  # scoring a tile: the local nodes image by image
            lead = int(self.cfg.use_global)
            nodes = self.local_nodes_streamed(regions, words, lead)
            if lead:  # s^g into its slot
                nodes[:, :, 0] = self._sim(img_glob[:, None, :], txt_glob[None, :, :], self.w_global)
            return nodes, None
        # the text-to-image contexts are this call's own temporaries: Eq. (1) may write into them (no autograd)
        parts = [self._sim(x, y, proj, consume=proj is self.w_local and self.cfg.attention == "t2i")
                 for x, y, proj in self.operands(regions, img_glob, words, txt_glob, word_mask)]
        nodes = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)  # (n_i, n_c, P, m)
        if not padded:  # every node is real: the aggregators skip their masking
            return nodes, None
        glob = [torch.ones(n_c, 1, dtype=torch.bool, device=words.device)] if self.cfg.use_global else []
        return nodes, torch.cat([*glob, word_mask], dim=1)  # (n_c, P): the same for every image
