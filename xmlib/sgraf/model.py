"""SGRAF models and block scoring (Diao et al. 2021; chapter "SGRAF").

:class:`SGRAFModel` = encoders → similarity nodes → one aggregator: ``"sgr"`` (:class:`~xmlib.sgraf.sgr.SGR`),
``"saf"`` (:class:`~xmlib.sgraf.saf.SAF`), ``"average"`` (Table 4's AA) or ``"joint"`` (Table 5: one
model with both heads on shared encoders and nodes, score = the mean of the SGR and SAF scores, trained
as one). SGRAF itself is two such models trained independently, their similarity matrices averaged
(:func:`sgraf_scores`).

Speed: :meth:`SGRAFModel.score_block` scores a whole block of n_i images × n_c captions in one pass
(no Python loop over captions); :meth:`SGRAFModel.score_per_caption` is the official code's form (one
caption against all images at a time) and gives the same numbers. :func:`score_matrix` fills the full
test matrix block by block with bounded memory, grouping captions of similar length so that padding
costs almost nothing.

Training with hardest negatives: :meth:`SGRAFModel.hardest_scores` scores every pair of the batch without
autograd and differentiates only the ≤ 3B pairs the loss reads, for every aggregator. SAF's batch norm
(``"saf"``, and the joint model's SAF head) couples every pair of the block through the mean and variance
of its logits: :func:`block_logit_statistics` computes them tile by tile and differentiates them tile by
tile in the backward pass, so that step too holds one tile's graph instead of B² pairs' and gives the
loss and gradients of the whole block.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from xmlib.core.device import linear
from xmlib.core.progress import progress
from xmlib.sgraf.config import ModelConfig
from xmlib.sgraf.encoders import ImageEncoder, TextEncoder, length_mask
from xmlib.sgraf.normalize import EPS, l2_normalize, l2_normalize_
from xmlib.sgraf.saf import SAF, AverageAggregation
from xmlib.sgraf.sgr import SGR
from xmlib.sgraf.similarity import SimilarityNodes


class JointAggregation(nn.Module):
    """Table 5's joint training: SGR and SAF heads on the same nodes, ``S = (S_SGR + S_SAF) / 2``.

    The paper says only that the two modules were trained jointly; sharing everything below the heads
    and averaging the scores (as SGRAF averages at inference) is our reading.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.sgr = SGR(cfg)
        self.saf = SAF(cfg)

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return (self.sgr(nodes, mask) + self.saf(nodes, mask)) / 2


BATCH_STATISTICS = ("saf", "joint")
"""Aggregators whose training forward uses statistics of the whole block (SAF's batch norm)."""

AGGREGATORS: dict[str, type[nn.Module]] = {"sgr": SGR, "saf": SAF, "average": AverageAggregation,
                                           "joint": JointAggregation}
"""The module of each ``aggregator`` value."""


class SGRAFModel(nn.Module):
    """One SGRAF model: SGR, SAF or an ablation of Tables 3–5.

    Args:
        cfg: the architecture (:class:`~xmlib.sgraf.config.ModelConfig`; a chapter
            :class:`~xmlib.sgraf.config.Config` is narrowed to it with ``cfg.model()``). Every module
            below reads its fields under the same names: the encoders (``img_dim``, ``word_dim``,
            ``embed_size``, ``global_norm``, ``num_regions``, ``dropout``), the similarity nodes
            (``sim_dim``, ``similarity``, ``attention``, ``use_global``, ``use_local``,
            ``lambda_softmax``, ``attn_leaky``, ``l2_context``, ``sim_bias``) and the aggregator
            (``aggregator``, ``sgr_steps``, ``sgr_bias``); all of them read ``norm_eps``;
            ``length_buckets`` groups captions in the training forward (speed only, see
            :meth:`score_block`).
        vocab_size: number of word ids (from the data's vocabulary).
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        cfg = cfg.model()
        self.cfg = cfg
        self.img_enc = ImageEncoder(cfg)
        self.txt_enc = TextEncoder(cfg, vocab_size)
        self.nodes = SimilarityNodes(cfg)
        self.aggregate = AGGREGATORS[cfg.aggregator](cfg)

    # --- encoders -------------------------------------------------------------------------------
    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, K, D) → V (n, K, d), v̄ (n, d)."""
        return self.img_enc(images)

    def encode_captions(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, L) ids, (n,) lengths → T (n, L, d), t̄ (n, d)."""
        return self.txt_enc(tokens, lengths)

    # --- scoring --------------------------------------------------------------------------------
    def score_block(self, regions: torch.Tensor, img_glob: torch.Tensor, words: torch.Tensor,
                    txt_glob: torch.Tensor, lengths: torch.Tensor, buckets: int = 1) -> torch.Tensor:
        """S(v, t) for every image × caption of the block: (n_i, n_c), all at once.

        regions (n_i, K, d), img_glob (n_i, d), words (n_c, L, d), txt_glob (n_c, d), lengths (n_c,).
        ``buckets`` groups captions by length (the same numbers, less arithmetic): 1 = one group padded
        to the longest caption; k > 1 = k groups of similar length, each trimmed to its longest caption;
        0 = one group per distinct length (no padding at all). Each group's nodes are aggregated on their
        own, except for SAF in training, whose batch statistics must cover the whole block: its groups'
        nodes are padded to one width and aggregated together.
        """
        lengths = lengths.to(words.device)
        n_c = words.shape[0]
        if buckets == 1 or (buckets > 1 and n_c < 2 * buckets):
            mask = _padding_mask(lengths, words.shape[1])  # (n_c, L), None without padding
            nodes, node_mask = self.nodes(regions, img_glob, words, txt_glob, mask)  # (n_i, n_c, P, m), (n_c, P)
            return self.aggregate(nodes, node_mask)  # (n_i, n_c)
        if buckets < 0:
            raise ValueError(f"buckets must be 0 (one group per caption length) or a positive number, got {buckets}")
        order = torch.argsort(lengths, stable=True)
        if buckets == 0:
            groups = list(torch.split(order, torch.unique_consecutive(lengths[order], return_counts=True)[1].tolist()))
        else:
            groups = list(order.chunk(buckets))
        joint_stats = self.training and self.cfg.aggregator in BATCH_STATISTICS
        if buckets == 0 and not joint_stats:
            return self._score_tiles(regions, img_glob, words, txt_glob, lengths)
        parts, masks = [], []
        for idx in groups:
            n = int(lengths[idx].max())
            nodes, node_mask = self.nodes(regions, img_glob, words[idx, :n], txt_glob[idx], _padding_mask(lengths[idx], n))
            parts.append(nodes if joint_stats else self.aggregate(nodes, node_mask))
            masks.append(node_mask if node_mask is not None else
                         torch.ones(nodes.shape[1:3], dtype=torch.bool, device=nodes.device))
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)
        if not joint_stats:
            return torch.cat(parts, dim=1)[:, inverse]  # back to the callers' caption order
        width = max(p.shape[2] for p in parts)
        nodes = torch.cat([nn.functional.pad(p, (0, 0, 0, width - p.shape[2])) for p in parts], dim=1)
        node_mask = torch.cat([nn.functional.pad(m, (0, width - m.shape[1])) for m in masks], dim=0)
        return self.aggregate(nodes, node_mask)[:, inverse]

    def _score_tiles(self, regions: torch.Tensor, img_glob: torch.Tensor, words: torch.Tensor,
                     txt_glob: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The block in tiles of captions of one length × as many images as keep a tile's intermediates
        within :data:`EVAL_BYTES` (:func:`plan_tiles`): no padding, and working sets near the caches.
        Differentiable (the training forward of ``buckets=0``)."""
        k, itemsize = regions.shape[1], regions.element_size()
        tiles = plan_tiles(lengths, regions.shape[0], lambda n: pair_bytes(self.cfg, n, k, itemsize), EVAL_BYTES)
        cols, col_idx, rows = [], [], []
        for length, idx, i0, n_it in tiles:
            dev_idx = idx.to(words.device)
            mask = _padding_mask(lengths[dev_idx], length)
            nodes, node_mask = self.nodes(regions[i0:i0 + n_it], img_glob[i0:i0 + n_it], words[dev_idx, :length],
                                          txt_glob[dev_idx], mask)
            rows.append(self.aggregate(nodes, node_mask))  # (n_it, len(idx))
            if i0 + n_it == regions.shape[0]:  # the last image tile of these captions
                cols.append(torch.cat(rows, dim=0))
                col_idx.append(dev_idx)
                rows = []
        order = torch.cat(col_idx)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)
        return torch.cat(cols, dim=1)[:, inverse]

    def score_per_caption(self, regions: torch.Tensor, img_glob: torch.Tensor, words: torch.Tensor,
                          txt_glob: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The same matrix as :meth:`score_block`, one caption (unpadded) against all images at a time.

        This is the official code's evaluation form (a Python loop over captions); it exists as the
        reference for tests and the benchmark.
        """
        cols = []
        for c in range(words.shape[0]):
            n = int(lengths[c])
            cols.append(self.score_block(regions, img_glob, words[c:c + 1, :n], txt_glob[c:c + 1], lengths[c:c + 1]))
        return torch.cat(cols, dim=1)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Training form: a batch of images (B, K, D) and captions → the (B, B) score matrix S[i, c]."""
        regions, img_glob = self.encode_images(images)
        words, txt_glob = self.encode_captions(tokens, lengths)
        return self.score_block(regions, img_glob, words, txt_glob, lengths, buckets=self.cfg.length_buckets)

    def hardest_scores(self, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                       image_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The (B, B) matrix of :meth:`forward` for the hardest-negative loss, at a fraction of its memory.

        With hardest negatives, :func:`~xmlib.sgraf.loss.contrastive_loss` reads from the whole matrix only
        the diagonal and, per row and per column, its largest negative: the gradient reaches no other pair.
        So every pair is scored once without autograd (tiles within :data:`EVAL_BYTES`), the hardest
        negative of each image and of each caption is found there, and only those ≤ 3B pairs are scored
        again with autograd and written into the matrix. The loss and its gradient are those of
        :meth:`forward` (to float rounding: a pair scored alone may differ in its last bits from the same pair
        in a tile), and the memory autograd keeps is that of ≤ 3B pairs instead of B². The encoders run
        once (one dropout draw).

        SAF (and the joint model's SAF head) normalises its logits ``x = W_f s_p`` with the mean μ and
        variance σ² of every real node of every pair of the block (:class:`~xmlib.sgraf.saf.MaskedBatchNorm`),
        so every pair's score depends on every other pair and the gradient reaches all of them through
        (μ, σ²). In training those two numbers come from :func:`block_logit_statistics`: computed tile by
        tile without autograd, and differentiated tile by tile in the backward pass (one tile's graph at a
        time); the ≤ 3B pairs are scored with them, and the running statistics are updated once, with the
        values the whole-block forward gives them. The loss and every gradient are again those of
        :meth:`forward`; the price is two passes over the block without autograd and one with it, tile by tile.
        """
        regions, img_glob = self.encode_images(images)
        words, txt_glob = self.encode_captions(tokens, lengths)
        return self.hardest_block(regions, img_glob, words, txt_glob, lengths, image_ids)

    def hardest_block(self, regions: torch.Tensor, img_glob: torch.Tensor, words: torch.Tensor,
                      txt_glob: torch.Tensor, lengths: torch.Tensor,
                      image_ids: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`hardest_scores` from encoded features (as :meth:`score_block` takes them)."""
        lengths = lengths.to(words.device)
        saf = self.saf_head()
        if saf is None or not self.training:  # no batch statistics: the BN (if any) uses its running ones
            return self._hardest_pairs(regions, img_glob, words, txt_glob, lengths, image_ids)
        summaries: list = []
        mean, var, count = block_logit_statistics(self, regions, img_glob, words, txt_glob, lengths, summaries)
        saf.bn.update_running(mean, var, int(count))  # once per step, as the whole-block forward does
        with saf.bn.given_statistics(mean, var):
            full = torch.empty(regions.shape[0], words.shape[0], dtype=words.dtype, device=words.device)
            for (_, idx, i0, n_it), x, u, gram, other in summaries:  # every pair's score, from the statistics pass
                s = saf.score_summaries(x, u, gram)  # (n_it, n_ct)
                full[i0:i0 + n_it, idx.to(full.device)] = s if other is None else (other + s) / 2
            return self._hardest_pairs(regions, img_glob, words, txt_glob, lengths, image_ids, full)

    def saf_head(self) -> SAF | None:
        """The SAF aggregator of this model (``"saf"``, or the joint model's SAF head), None without one."""
        agg = self.aggregate
        return agg if isinstance(agg, SAF) else getattr(agg, "saf", None)

    def _hardest_pairs(self, regions: torch.Tensor, img_glob: torch.Tensor, words: torch.Tensor,
                       txt_glob: torch.Tensor, lengths: torch.Tensor, image_ids: torch.Tensor | None,
                       full: torch.Tensor | None = None) -> torch.Tensor:
        """Every pair without autograd (unless ``full`` has them), then autograd through the ≤ 3B pairs the
        hardest-negative loss reads."""
        if full is None:
            with torch.no_grad():
                full = self._score_tiles(regions.detach(), img_glob.detach(), words.detach(), txt_glob.detach(),
                                         lengths)  # (B, B), no graph
        b = full.shape[0]
        not_neg = torch.eye(b, dtype=torch.bool, device=full.device)
        if image_ids is not None:
            not_neg = not_neg | (image_ids[:, None] == image_ids[None, :])
        masked = full.masked_fill(not_neg, float("-inf"))
        diag = torch.arange(b, device=full.device)
        rows = torch.cat([diag, diag, masked.argmax(0)])  # positives, (i, hardest caption), (hardest image, c)
        cols = torch.cat([diag, masked.argmax(1), diag])
        pairs = torch.unique(torch.stack([cols, rows], dim=1), dim=0)  # sorted by caption, then image
        caps, counts = torch.unique_consecutive(pairs[:, 0], return_counts=True)
        counts = counts.tolist()
        # each input gathered or cut once for all captions (one index or split in the graph: their backward
        # writes every pair's gradient in one pass; an index per caption would fill a zero tensor of the
        # input's full size per caption)
        img_parts = zip(torch.split(regions[pairs[:, 1]], counts), torch.split(img_glob[pairs[:, 1]], counts))
        cap_words, cap_glob = words.unbind(0), txt_glob.unbind(0)  # (L, d), (d,) per caption
        values = []
        for c, (reg, glob) in zip(caps.tolist(), img_parts):
            n_tok = int(lengths[c])
            s = self.score_block(reg, glob, cap_words[c][None, :n_tok], cap_glob[c][None],
                                 lengths[c:c + 1])  # (n, 1) with autograd
            values.append(s[:, 0])
        values = torch.cat(values)  # under autocast the two passes may differ in dtype: the matrix takes the graph's
        return full.to(values.dtype).index_put((pairs[:, 1], pairs[:, 0]), values)

    @torch.no_grad()
    def word_attention(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The attention α (L, K) of each word of one caption over the regions of one image, as this
        model computes it (its own ``lambda_softmax``, ``attn_leaky``, ``l2_context``): row j is
        ``α_·j = softmax_i(λ c̄_ij)`` of SGRAF's text-to-visual attention (Sec. "Similarity Representation
        Learning"; in the chapter :math:numref:`eq-sgraf-attn`).

        Args:
            image: (K, D) region features; tokens: (L,) the caption's word ids (no padding).
        Call it in eval mode (dropout off) for a picture of a trained model.
        """
        if self.cfg.attention != "t2i" or not self.cfg.use_local:
            raise ValueError(f"this model has no word-to-region attention (attention={self.cfg.attention!r}, "
                             f"use_local={self.cfg.use_local}); it needs attention='t2i' and use_local=True")
        if image.ndim != 2 or tokens.ndim != 1:
            raise ValueError(f"image must be (K, D) and tokens (L,), got {tuple(image.shape)} and {tuple(tokens.shape)}")
        regions, _ = self.encode_images(image[None])  # (1, K, d)
        words, _ = self.encode_captions(tokens[None], torch.tensor([tokens.shape[0]]))  # (1, L, d)
        _, alpha = self.nodes.attend(regions, words, None)  # (1, 1, L, K)
        return alpha[0, 0]


def sgraf_scores(sgr: torch.Tensor | np.ndarray, saf: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """SGRAF = the average of the similarity matrices of independently trained SGR and SAF models."""
    if sgr.shape != saf.shape:
        raise ValueError(f"SGR and SAF matrices differ in shape: {tuple(sgr.shape)} vs {tuple(saf.shape)}")
    return (sgr + saf) / 2


@torch.no_grad()
def encode_split(model: SGRAFModel, images: np.ndarray | torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                 *, device: torch.device | None = None, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Encode every image and caption once (eval mode): V, v̄, T, t̄ and lengths, on ``device``."""
    param = next(model.parameters())
    device = device or param.device
    model.eval()
    regions, img_glob, words, txt_glob = [], [], [], []
    for s in range(0, len(images), batch_size):
        block = images[s:s + batch_size]
        if not isinstance(block, torch.Tensor):  # numpy or a memmap: copy the block out as float32
            block = torch.from_numpy(np.array(block, dtype=np.float32))
        x = block.to(device, param.dtype)
        r, g = model.encode_images(x)
        regions.append(r)
        img_glob.append(g)
    for s in range(0, len(tokens), batch_size):
        ln = lengths[s:s + batch_size]
        w, g = model.encode_captions(tokens[s:s + batch_size, : int(ln.max())].to(device), ln.to(device))
        words.append(nn.functional.pad(w, (0, 0, 0, tokens.shape[1] - w.shape[1])))
        txt_glob.append(g)
    return {"regions": torch.cat(regions), "img_glob": torch.cat(img_glob), "words": torch.cat(words),
            "txt_glob": torch.cat(txt_glob), "lengths": lengths.to(device)}


def _padding_mask(lengths: torch.Tensor, width: int) -> torch.Tensor | None:
    """:func:`length_mask` of captions trimmed to ``width`` tokens, or None when none of them is padded
    (every tile of :func:`plan_tiles` holds one length): the attention and the aggregators then skip
    their masking, with the same numbers."""
    return None if bool((lengths == width).all()) else length_mask(lengths, width)


def pair_bytes(cfg: ModelConfig, length: int, regions: int, itemsize: int = 4) -> int:
    """An upper estimate of the bytes that ONE image–caption pair holds at once in :meth:`SGRAFModel.score_block`
    (no autograd): attention scores, weights and contexts, Eq. (1)'s squared differences, the nodes and
    the aggregator's buffers, for a caption of ``length`` tokens and images of ``regions`` regions.

    :func:`score_matrix` sizes its tiles with it, so a tile's intermediates stay within ``max_bytes``.
    """
    cfg = cfg.model()
    d, m = cfg.embed_size, (cfg.sim_dim if cfg.similarity == "vector" else 1)
    ctx_rows = length if cfg.attention == "t2i" else regions  # one context per word (t2i) or per region (i2t)
    p = int(cfg.use_global) + (ctx_rows if cfg.use_local else 0)
    floats = 2 * d  # the global difference
    if cfg.use_local:
        floats += 3 * length * regions + 3 * ctx_rows * d  # scores / weights; contexts, squared differences
    floats += 8 * p * m + 3 * p * p  # nodes, their normalised copy, the aggregator's products and edges
    return itemsize * floats


def plan_tiles(lengths: torch.Tensor, n_img: int, bytes_of_pair, max_bytes: int,
               captions: int | None = None) -> list[tuple[int, torch.Tensor, int, int]]:
    """Cut an images × captions matrix into tiles of captions of ONE length (no padding at all).

    Args:
        lengths: (n_cap,) caption lengths; n_img: number of images.
        bytes_of_pair: ``length -> bytes`` one pair of that caption length holds (:func:`pair_bytes`).
        max_bytes: the bound on one tile's intermediates.
        captions: at most this many captions per tile (None: :data:`TILE_CAPTIONS`).
    Returns:
        ``(length, caption indices, first image, number of images)`` per tile. Captions are grouped by
        exact length; within a group a tile takes up to ``max_bytes // bytes_of_pair(length)`` pairs,
        as several captions × as many images as fit (at least one pair, whatever the bound).
    """
    lengths = lengths.cpu()
    tiles = []
    for length in torch.unique(lengths).tolist():
        idx = torch.nonzero(lengths == length).squeeze(1)
        pairs = max(1, int(max_bytes) // max(1, bytes_of_pair(length)))
        n_ct = max(1, min(len(idx), TILE_CAPTIONS if captions is None else captions, pairs))  # a few captions per tile: bigger matrix products
        n_it = max(1, min(n_img, pairs // n_ct))
        for c0 in range(0, len(idx), n_ct):
            for i0 in range(0, n_img, n_it):
                tiles.append((int(length), idx[c0:c0 + n_ct], i0, min(n_it, n_img - i0)))
    return tiles


class _BlockLogitStatistics(torch.autograd.Function):
    """(μ, σ², N) of SAF's logits over every real node of every pair of a block, in tiles; see
    :func:`block_logit_statistics`."""

    @staticmethod
    def forward(ctx, model, lengths, summaries, keep_bytes, regions, img_glob, words, txt_glob, *params):
        saf = model.saf_head()
        k, itemsize = regions.shape[1], regions.element_size()
        tiles = plan_tiles(lengths, regions.shape[0], lambda n: pair_bytes(model.cfg, n, k, itemsize),
                           STATISTICS_TILES * EVAL_BYTES)
        count, mean, m2 = 0, 0.0, 0.0  # Chan et al.'s pairwise update of (N, mean, Σ (x − mean)²), in float64
        kept, left = [], keep_bytes
        for tile in tiles:
            length, idx, i0, n_it = tile
            idx = idx.to(words.device)
            need = len(idx) * n_it * kept_pair_bytes(model.cfg, length, k, itemsize)
            keep = need <= left  # a tile beyond the budget is recomputed whole in the backward pass
            left -= need if keep else 0
            nodes, state = _tile_nodes(model, regions[i0:i0 + n_it], img_glob[i0:i0 + n_it], words[idx, :length],
                                       txt_glob[idx], keep)  # (n_it, n_ct, P, m), every node real
            kept.append(state)
            summary = saf.summarise(nodes)  # x (n_it, n_ct, P), u, Gram
            if summaries is not None:  # the joint model's SGR head needs no statistics: its scores now
                other = model.aggregate.sgr(nodes) if isinstance(model.aggregate, JointAggregation) else None
                summaries.append((tile, *summary, other))
            x = summary[0].double()
            n, t_mean = x.numel(), float(x.mean())
            t_m2 = float((x - t_mean).square().sum())
            delta, total = t_mean - mean, count + n
            mean += delta * n / total
            m2 += t_m2 + delta * delta * count * n / total
            count = total
        ctx.model, ctx.tiles, ctx.kept, ctx.count, ctx.mean = model, tiles, kept, count, mean
        ctx.save_for_backward(regions, img_glob, words, txt_glob)
        n_nodes = torch.tensor(count)
        ctx.mark_non_differentiable(n_nodes)
        return (torch.tensor(mean, dtype=regions.dtype, device=regions.device),
                torch.tensor(m2 / count, dtype=regions.dtype, device=regions.device), n_nodes)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_mean, g_var, _):
        # dμ/dx_j = 1/N, dσ²/dx_j = 2 (x_j − μ)/N: each tile is recomputed (but for what the forward pass kept of it:
        # Eq. (1)'s projections y, the attention's r and α) and g_j = (g_μ + 2 g_σ² (x_j − μ)) / N pulled back into
        # the inputs and the parameters its logits depend on: by hand through Eq. (1)'s projection and SAF's W_f
        # (_eq1_logit_vjp) and the text-to-image attention (_t2i_attention_vjp); by autograd through the
        # image-to-text attention of the ablation
        model, saf, count, mean = ctx.model, ctx.model.saf_head(), ctx.count, ctx.mean
        saved = ctx.saved_tensors  # under autocast (bf16) the encodings may be of a lower precision than the weights:
        dtype = model.nodes.w_global.weight.dtype  # the backward runs in the weights' (outside autocast)
        regions, img_glob, words, txt_glob = full = tuple(t.to(dtype) for t in saved)
        g_in: list[torch.Tensor | None] = [None] * 4  # a gradient no tile produces stays None, as in the block's graph
        g_par: dict[nn.Parameter, torch.Tensor] = {}
        g_mean, g_var = g_mean.double(), g_var.double()

        def upstream(x: torch.Tensor) -> torch.Tensor:
            return ((g_mean + 2 * g_var * (x.double() - mean)) / count).to(x.dtype)

        for j, tile in enumerate(ctx.tiles):
            length, idx, i0, n_it = tile
            idx = idx.to(words.device)
            inputs = (regions[i0:i0 + n_it], img_glob[i0:i0 + n_it], words[idx, :length], txt_glob[idx])
            ys, weights = ctx.kept[j] or ((None,) * 2, None)  # the forward's projections y (and (r, α)), if kept
            ctx.kept[j] = None  # freed as the pass goes
            ys = [None if y is None else y.to(dtype) for y in ys]
            if model.cfg.attention == "t2i":  # by hand all the way (the paper's attention)
                weights = None if weights is None else tuple(w.to(dtype) for w in weights)
                grads = _t2i_tile_vjp(model, saf, *inputs, upstream, g_par, ys, weights)
            else:  # by hand through Eq. (1) and W_f, by autograd through the image-to-text attention
                leaves = [t.detach().requires_grad_() for t in inputs]
                outputs, cotangents = [], []
                with torch.enable_grad():
                    ops = model.nodes.operands(*leaves, None)  # Eq. (1)'s operands, with the attention's graph
                for (x_op, y_op, proj), y in zip(ops, ys):
                    d_diff = _eq1_logit_vjp(x_op.detach(), y_op.detach(), proj, saf, upstream, g_par, y=y)
                    outputs += [x_op, y_op]
                    cotangents += [d_diff.sum_to_size(x_op.shape), d_diff.sum_to_size(y_op.shape).neg()]
                    del d_diff
                grads = torch.autograd.grad(outputs, leaves, cotangents, allow_unused=True)
            for k, gr in enumerate(grads):
                if gr is None:
                    continue
                if g_in[k] is None:
                    g_in[k] = torch.zeros_like(full[k])
                if k < 2:  # image rows i0 .. i0 + n_it
                    g_in[k][i0:i0 + n_it].add_(gr)
                elif k == 2:  # the tile's captions, their first `length` words
                    g_in[k][:, :length].index_add_(0, idx, gr)
                else:
                    g_in[k].index_add_(0, idx, gr)
        g_in = [g.to(t.dtype) if need and g is not None else None for g, t, need in zip(g_in, saved, ctx.needs_input_grad[4:8])]
        g_params = [g_par.get(p) if p.requires_grad else None for p in _logit_parameters(model)]
        return (None, None, None, None, *g_in, *g_params)


def kept_pair_bytes(cfg: ModelConfig, length: int, regions: int, itemsize: int = 4) -> int:
    """The bytes that :func:`block_logit_statistics` keeps from its forward pass for its backward pass per
    image–caption pair (caption of ``length`` tokens, images of ``regions`` regions): the projections
    y = W δ + b of SGRAF's Eq. (1) (in the chapter :math:numref:`eq-sgraf-sim`) of the pair's P nodes (m each)
    and, with the text-to-image attention (:math:numref:`eq-sgraf-attn`), its rectified scores r and weights α
    (L × K each)."""
    cfg = cfg.model()
    rows = length if cfg.attention == "t2i" else regions
    p = int(cfg.use_global) + (rows if cfg.use_local else 0)
    attention = 2 * length * regions if cfg.use_local and cfg.attention == "t2i" else 0
    return itemsize * (p * cfg.sim_dim + attention)


@torch.no_grad()
def _tile_nodes(model: SGRAFModel, regions: torch.Tensor, img_glob: torch.Tensor, words: torch.Tensor,
                txt_glob: torch.Tensor, keep: bool) -> tuple[torch.Tensor, tuple | None]:
    """The nodes (n_i, n_c, P, m) of a tile of captions of one length (no padding), as
    :class:`~xmlib.sgraf.similarity.SimilarityNodes` computes them, and, with ``keep``, what the backward pass of
    :func:`block_logit_statistics` would otherwise recompute: ``(ys, weights)`` with ys the projections
    y = W δ + b of Eq. (1) of each group of nodes (global first) before their L2 normalisation, and weights the
    text-to-image attention's (r, α) (None with the image-to-text attention); None without ``keep``."""
    cfg = model.cfg
    weights = []

    def attend(regions: torch.Tensor, words: torch.Tensor, mask: None) -> tuple[torch.Tensor, torch.Tensor]:
        ctx, _, kept = _t2i_attention_vjp(cfg, regions, words)  # the same contexts, and (r, α)
        weights.append(kept)
        return ctx, kept[1]

    t2i = keep and cfg.attention == "t2i"
    ys = []
    for x_op, y_op, proj in model.nodes.operands(regions, img_glob, words, txt_glob, None, attend if t2i else None):
        own = proj is model.nodes.w_local and cfg.attention == "t2i"  # the contexts: this call's own buffer
        diff = x_op.sub_(y_op) if own and x_op.is_contiguous() else x_op - y_op  # (n_i, n_c, R, d)
        ys.append(linear(diff.square_(), proj.weight, proj.bias))  # (n_i, n_c, R, m): W δ + b
        del diff
    y = ys[0] if len(ys) == 1 else torch.cat(ys, dim=2)
    nodes = l2_normalize(y, norm_eps=cfg.norm_eps) if keep else l2_normalize_(y, norm_eps=cfg.norm_eps)
    return nodes, ((ys, weights[0] if weights else None) if keep else None)


@torch.no_grad()
def _t2i_tile_vjp(model: SGRAFModel, saf: SAF, regions: torch.Tensor, img_glob: torch.Tensor, words: torch.Tensor,
                  txt_glob: torch.Tensor, upstream, g_par: dict[nn.Parameter, torch.Tensor], ys=(None, None),
                  weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[torch.Tensor | None]:
    """Gradients of ``Σ_j g_j x_j`` (SAF's logits of one tile without padding, text-to-image attention) with
    respect to regions, v̄, words and t̄ (None where the model does not use them); the parameters' into ``g_par``.
    ``ys``, ``weights``: what :func:`_tile_nodes` kept of this tile (not recomputed), or None."""
    cfg, nodes = model.cfg, model.nodes
    g_regions = g_img = g_words = g_txt = None
    ys = list(ys)
    if cfg.use_global:  # s^g = Eq. (1) of (v̄, t̄)
        d = _eq1_logit_vjp(img_glob[:, None, None, :], txt_glob[None, :, None, :], nodes.w_global, saf, upstream, g_par,
                           y=ys.pop(0))
        g_img, g_txt = d.sum((1, 2)), d.sum((0, 2)).neg_()  # (n_i, d), (n_c, d)
    if cfg.use_local:  # s^l_j = Eq. (1) of (a^v_j, t_j)
        ctx, back, _ = _t2i_attention_vjp(cfg, regions, words, weights)
        d = _eq1_logit_vjp(ctx, words.unsqueeze(0), nodes.w_local, saf, upstream, g_par, consume=True,
                           y=ys.pop(0))  # (n_i, n_c, L, d)
        del ctx  # its buffer became the difference a^v_j − t_j
        direct = d.sum(0)  # t_j's own term in a^v_j − t_j
        g_regions, g_words = back(d)  # (d is overwritten)
        g_words.sub_(direct)
    return [g_regions, g_img, g_words, g_txt]


@torch.no_grad()
def _t2i_attention_vjp(cfg: ModelConfig, regions: torch.Tensor, words: torch.Tensor,
                       weights: tuple[torch.Tensor, torch.Tensor] | None = None):
    """:func:`~xmlib.sgraf.similarity.attend_text_to_image` without padding (the same numbers up to rounding) and
    its vector–Jacobian product: returns the contexts (n_i, n_c, L, d), ``back(d_ctx) -> (d_regions, d_words)``
    and the weights ``(r, α)`` (n_i, n_c, L, K) each, which a later call may be given (``weights``) instead of
    computing them again.

    Forward: ``c = T Vᵀ``, ``r = [c]_+`` (or LeakyReLU), ``c̄ = r / D_w`` with D_w the norm of r over the words
    (its ε as ``norm_eps``), ``α = softmax_K(λ c̄)``, ``a = α V``, L2-normalised with ``l2_context``."""
    n_i, k, d = regions.shape
    n_c, length, _ = words.shape
    flat_v, flat_t = regions.reshape(n_i * k, d), words.reshape(n_c * length, d)
    if weights is None:
        c = (flat_t @ flat_v.T).view(n_c, length, n_i, k).permute(2, 0, 1, 3)  # (n_i, n_c, L, K) view
        r = F.relu(c) if cfg.attn_leaky == 0.0 else F.leaky_relu(c, cfg.attn_leaky)
        del c
    else:
        r, alpha = weights
    if cfg.norm_eps == "add":
        s = r.norm(dim=2, keepdim=True)  # (n_i, n_c, 1, K)
        denom, live = s + EPS, s > 0
    else:
        s = r.square().sum(2, keepdim=True).add_(1e-16).sqrt_()
        denom, live = s.clamp_min(EPS), s > EPS
    if weights is None:
        alpha = torch.softmax(cfg.lambda_softmax * (r / denom), dim=-1)  # (n_i, n_c, L, K)
    ctx0 = torch.bmm(alpha.reshape(n_i, n_c * length, k), regions).view(n_i, n_c, length, d)  # Σ_i α_ij v_i
    if cfg.l2_context:
        n0 = ctx0.norm(dim=-1, keepdim=True)
        d0, live0 = (n0.clamp_min(EPS), n0 > EPS) if cfg.norm_eps == "clamp" else (n0 + EPS, n0 > 0)
        ctx = ctx0 / d0
    else:
        ctx = ctx0

    def back(d_ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(d_regions, d_words) from d_ctx (n_i, n_c, L, d), which it overwrites."""
        if cfg.l2_context:  # d/dctx0 of ctx0 / D(‖ctx0‖) = (d_ctx − ctx0 (ctx0·d_ctx) D / (D² ‖ctx0‖)) / D, in place
            dot = (ctx0 * d_ctx).sum(-1, keepdim=True)
            coef = torch.where(live0, dot / (d0 * n0.clamp_min(torch.finfo(n0.dtype).tiny)), 0.0)  # (..., 1)
            d_ctx0 = d_ctx.addcmul_(ctx0, coef, value=-1.0).div_(d0)
        else:
            d_ctx0 = d_ctx
        flat_d = d_ctx0.reshape(n_i, n_c * length, d)
        d_alpha = torch.bmm(flat_d, regions.transpose(1, 2)).view(n_i, n_c, length, k)
        d_regions = torch.bmm(alpha.reshape(n_i, n_c * length, k).transpose(1, 2), flat_d)  # (n_i, K, d)
        d_cbar = alpha * (d_alpha - (alpha * d_alpha).sum(-1, keepdim=True)) * cfg.lambda_softmax  # softmax
        dot_w = (r * d_cbar).sum(2, keepdim=True)  # (n_i, n_c, 1, K)
        d_r = d_cbar / denom - r * torch.where(live, dot_w / (denom * denom * s.clamp_min(torch.finfo(s.dtype).tiny)), 0.0)
        d_c = d_r * torch.where(r > 0, 1.0, cfg.attn_leaky)  # ReLU / LeakyReLU (r > 0 exactly where c > 0)
        flat_dc = d_c.permute(1, 2, 0, 3).reshape(n_c * length, n_i * k)  # (n_c·L, n_i·K)
        d_words = (flat_dc @ flat_v).view(n_c, length, d)
        d_regions += (flat_dc.T @ flat_t).view(n_i, k, d)
        return d_regions, d_words

    return ctx, back, (r, alpha)


@torch.no_grad()
def _eq1_logit_vjp(x_op: torch.Tensor, y_op: torch.Tensor, proj: nn.Linear, saf: SAF, upstream,
                   g_par: dict[nn.Parameter, torch.Tensor], consume: bool = False,
                   y: torch.Tensor | None = None) -> torch.Tensor:
    """The vector–Jacobian product of SAF's logits ``x = W_f s + b_f`` of the nodes ``s = L2(W δ + b)``,
    ``δ = (x_op − y_op)²`` (Eq. (1)), written out: returns the cotangent of ``x_op − y_op`` (broadcast shape,
    (..., d)) and adds the gradients of W, b, W_f, b_f into ``g_par``. ``upstream(x)`` gives each logit's
    cotangent g; ``consume``: x_op (of the broadcast shape) may be overwritten; ``y``: the projections W δ + b
    (..., m) when the forward pass kept them (else computed here). With ``D`` the normaliser
    of y (``max(‖y‖, ε)`` or ``‖y‖ + ε``, as :func:`~xmlib.sgraf.normalize.l2_normalize`):
    ``∂x/∂y = w_f / D − (w_f·y) y / (D² ‖y‖)`` where D grows with ‖y‖, else ``w_f / D``."""
    weight, w_f = proj.weight, saf.w_f.weight[0]  # (m, d), (m,)
    diff = x_op.sub_(y_op) if consume else x_op - y_op  # (..., d) broadcast
    delta = diff.square()
    if y is None:
        y = F.linear(delta, weight, proj.bias)  # (..., m)
    norm = y.norm(dim=-1, keepdim=True)  # (..., 1)
    if saf.norm_eps == "clamp":
        denom, live = norm.clamp_min(EPS), norm > EPS
    else:
        denom, live = norm + EPS, norm > 0
    s = y / denom  # the nodes
    x = s @ w_f + saf.w_f.bias[0]  # (...,) the logits
    g = upstream(x).unsqueeze(-1)  # (..., 1)
    coef = torch.where(live, g * (y @ w_f).unsqueeze(-1) / (denom * denom * norm.clamp_min(torch.finfo(y.dtype).tiny)), 0.0)
    dy = (g / denom) * w_f - coef * y  # (..., m)
    flat_dy = dy.reshape(-1, dy.shape[-1])
    for param, grad in ((weight, flat_dy.T @ delta.reshape(-1, delta.shape[-1])),
                        (proj.bias, None if proj.bias is None else flat_dy.sum(0)),
                        (saf.w_f.weight, (g * s).reshape(-1, s.shape[-1]).sum(0, keepdim=True)),
                        (saf.w_f.bias, g.sum().reshape(1))):
        if param is not None and param.requires_grad:
            g_par[param] = grad if param not in g_par else g_par[param].add_(grad)
    del delta, y, s
    return F.linear(dy.mul_(2), weight.T).mul_(diff)  # ∂/∂(x_op − y_op) = 2 (x_op − y_op) W^T dy


def _logit_parameters(model: SGRAFModel) -> list[torch.Tensor]:
    """The parameters SAF's logits depend on beyond the encoded features: Eq. (1)'s W_g, W_l (and biases), W_f, b_f."""
    return [*model.nodes.parameters(), *model.saf_head().w_f.parameters()]


def block_logit_statistics(model: SGRAFModel, regions: torch.Tensor, img_glob: torch.Tensor, words: torch.Tensor,
                           txt_glob: torch.Tensor, lengths: torch.Tensor, summaries: list | None = None,
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The statistics of SAF's batch norm over a whole block, in bounded memory and differentiable.

    Returns μ and the population σ² (0-dim, the inputs' dtype) of the logits ``x = W_f s_p`` over every
    real node of every pair of the images × captions block (what :class:`~xmlib.sgraf.saf.MaskedBatchNorm`
    computes in :meth:`SGRAFModel.forward`), and their number N (0-dim int64, not differentiable).
    The forward pass runs tile by tile without autograd (:func:`plan_tiles`, :data:`STATISTICS_TILES` ×
    :data:`EVAL_BYTES`; captions of one length per tile, so no padded word counts) and keeps, within
    :data:`KEEP_BYTES`, each tile's Eq. (1) projections y = W δ + b before their normalisation and, with the
    text-to-image attention, its rectified scores r and weights α (:func:`kept_pair_bytes`; nothing when no
    gradient is recorded); the backward pass recomputes the rest of each tile (the contexts α V and the
    differences δ, (…, d) each: four times y's size at the paper's d = 4 m, too large to keep for a whole block)
    and pulls
    ``g_j = (g_μ + 2 g_σ² (x_j − μ)) / N`` back into the encoded features and into W_g, W_l, W_f (and their
    biases), one tile at a time: by hand through Eq. (1) (in the chapter :math:numref:`eq-sgraf-sim`), W_f
    (:math:numref:`eq-sgraf-saf`) and the text-to-image attention (fewer
    passes over the tile than autograd makes; tested against autograd on the whole block), by autograd
    through the image-to-text attention. Not differentiable twice.

    ``summaries``: a list that receives, per tile, ``(tile, x, u, Gram, other)`` (:meth:`SAF.summarise
    <xmlib.sgraf.saf.SAF.summarise>`; ``other``: the joint model's SGR scores of the tile, else None),
    from which :meth:`SGRAFModel.hardest_block` scores every pair without a second pass over the nodes.
    """
    if model.saf_head() is None:
        raise ValueError(f"aggregator={model.cfg.aggregator!r} has no SAF batch norm; block_logit_statistics "
                         "needs aggregator='saf' or 'joint'")
    params = _logit_parameters(model)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (regions, img_glob, words, txt_glob, *params))
    return _BlockLogitStatistics.apply(model, lengths, summaries, KEEP_BYTES if grad else 0, regions, img_glob, words,
                                       txt_glob, *params)


KEEP_BYTES = 512 * 2**20
"""Bound of what :func:`block_logit_statistics` keeps from its forward pass for its backward pass (512 MiB):
per tile, Eq. (1)'s projections y and the text-to-image attention's (r, α) (:func:`kept_pair_bytes`, about
19 kB per pair of a 14-token caption at the paper's dimensions, so a 128 × 128 block keeps about 300 MiB), so
that the backward pass computes neither the W_l and W_g products nor the attention's scores again; tiles beyond
the bound are recomputed whole. 0 = recompute every tile (the memory of one tile)."""


STATISTICS_TILES = 2
"""The tiles of :func:`block_logit_statistics` are bounded by this many times :data:`EVAL_BYTES` (32 MiB): at the
paper's dimensions a 128 × 128 SAF training step ran about 10 % faster than with 16 MiB tiles and as fast as with
64 MiB ones (one thread, ``hardest_block``, interleaved in one process, load 3–5)."""

TILE_CAPTIONS = 16
"""Captions per tile in :func:`plan_tiles` (more captions of one length per tile make the attention's
matrix products larger: its scores are one product over the tile's words and regions; 16 and 32 ran
faster than 8 at the paper's dimensions, SAF most, measured with ``score_matrix`` over 100 images × 60
captions, 1 thread)."""

EVAL_BYTES = 16 * 2**20
"""Bound of one tile's intermediates in the training step's pass over every pair without autograd
(:meth:`SGRAFModel.hardest_scores`) and the unit of :data:`STATISTICS_TILES` (16 MiB: at the paper's dimensions
tiles of 16 MiB ran as fast as 32 MiB ones for SAF and faster for SGR, 4 MiB ones slower (the Python
work per tile); 100 images × 60 captions, 1 thread, before the scoring streamed images and used oneDNN)."""

SCORE_BYTES = 128 * 2**20
"""Default bound of :func:`score_matrix` on one tile's intermediates (128 MiB, with up to :data:`SCORE_CAPTIONS`
captions per tile). With the local nodes streamed image by image and oneDNN's products, 100 images × 200 captions
at the paper's dimensions took, for SGR and SAF, 4.42 and 2.38 s with tiles of 8 MiB, 3.50 and 1.95 s with 16, 3.21
and 1.75 s with 32, 3.02 and 1.62 s with 64, 3.05 and 1.60 s with 128 (16 captions each); then, best of three:
2.88 and 1.59 s (64 MiB, 16 captions), 2.80 and 1.49 s (128, 16), 2.75 and 1.45 s (128, 32), 2.74 and 1.42 s
(256, 32). One thread, AMD EPYC, load below 1."""

SCORE_CAPTIONS = 32
"""Captions per tile in :func:`score_matrix` (see :data:`SCORE_BYTES`; :data:`TILE_CAPTIONS` in training)."""


@torch.no_grad()
def score_matrix(model: SGRAFModel, encoded: dict[str, torch.Tensor], *, max_bytes: int = SCORE_BYTES,
                 dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
    """The full (N_img, N_cap) similarity matrix, tile by tile (eval mode).

    Captions are grouped by exact length, so no tile computes anything for padding; each tile scores
    several captions of one length against as many images as keep its intermediates within
    ``max_bytes`` (:func:`plan_tiles`, :func:`pair_bytes`). Peak memory is then the encoded inputs, the
    (N_img, N_cap) result and about ``max_bytes``. ``dtype``: of the result; float32 (the default)
    halves a float64 model's matrix, None keeps the dtype the model computes in (float64 checks
    against a reference need that).
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes}")
    model.eval()
    regions, img_glob = encoded["regions"], encoded["img_glob"]
    words, txt_glob, lengths = encoded["words"], encoded["txt_glob"], encoded["lengths"]
    n_img, n_cap = regions.shape[0], words.shape[0]
    itemsize = regions.element_size()
    out = torch.empty(n_img, n_cap, dtype=words.dtype if dtype is None else dtype)
    tiles = plan_tiles(lengths, n_img, lambda n: pair_bytes(model.cfg, n, regions.shape[1], itemsize), max_bytes,
                       captions=SCORE_CAPTIONS)
    for length, idx, i0, n_it in progress(tiles, desc="score matrix"):
        dev_idx = idx.to(words.device)
        s = model.score_block(regions[i0:i0 + n_it], img_glob[i0:i0 + n_it], words[dev_idx, :length],
                              txt_glob[dev_idx], lengths[dev_idx])
        out[i0:i0 + n_it, idx] = s.to(out.dtype).cpu()
    return out
