"""A reference point for the SGRAF chapter: a linear visual-semantic embedding (VSE) of global vectors.

The image is the mean of its K region features (D), the caption is a frozen, pretrained sentence
embedding (MiniLM, 384-d, from :func:`xmlib.data.features.text_embeddings`). Two linear maps take
them to a joint space of size d, both are L2-normalised, and the score is their cosine:

    S(v, t) = <W_v v̄ / ||W_v v̄||, W_t e(t) / ||W_t e(t)||>

trained with the same bidirectional hinge as SGRAF (:func:`xmlib.sgraf.loss.contrastive_loss`) and
selected by dev rSum. It has no regions, no word-level attention and no reasoning, but its text side
has seen far more English than our training captions: words that never occur in our train split
still get a meaningful vector. It tells the reader how hard the benchmark is, not how good SGRAF is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xmlib.core.seed import seed_everything
from xmlib.core.train import FitResult, fit
from xmlib.metrics.retrieval import retrieval_metrics
from xmlib.sgraf.loss import contrastive_loss


@dataclass(frozen=True)
class LinearVSEConfig:
    """Hyperparameters of the linear VSE baseline."""

    embed_size: int = 256
    margin: float = 0.2
    max_violation: bool = True  # hardest negatives, as SGRAF's paper
    lr: float = 2e-3
    batch_size: int = 128
    epochs: int = 15
    seed: int = 0
    max_steps: int = 0  # optimiser steps at most (0 = no cap)

    def __post_init__(self) -> None:
        for name in ("embed_size", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"LinearVSEConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.margin < 0:
            raise ValueError(f"LinearVSEConfig: lr must be > 0 and margin >= 0, got lr={self.lr}, margin={self.margin}")


class LinearVSE(nn.Module):
    """Two linear maps to a joint space; S = cosine of the mapped, L2-normalised global vectors."""

    def __init__(self, img_dim: int, txt_dim: int, embed_size: int):
        super().__init__()
        self.img = nn.Linear(img_dim, embed_size)
        self.txt = nn.Linear(txt_dim, embed_size)

    def embed_images(self, pooled: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.img(pooled), dim=-1)  # (N_img, d)

    def embed_texts(self, sentences: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.txt(sentences), dim=-1)  # (N_cap, d)

    def forward(self, pooled: torch.Tensor, sentences: torch.Tensor) -> torch.Tensor:
        return self.embed_images(pooled) @ self.embed_texts(sentences).T  # (N_img, N_cap)


def pooled_regions(images: np.ndarray, chunk: int = 512) -> np.ndarray:
    """(N, K, D) region features → (N, D) float32 means over the K regions (chunked: works on a memmap)."""
    if images.ndim != 3:
        raise ValueError(f"images must be (N, K, D) region features, got shape {images.shape}")
    out = np.empty((images.shape[0], images.shape[2]), np.float32)
    for s in range(0, images.shape[0], chunk):
        out[s:s + chunk] = np.asarray(images[s:s + chunk], dtype=np.float32).mean(axis=1)
    return out


@torch.no_grad()
def score_linear_vse(model: LinearVSE, pooled: np.ndarray, sentences: np.ndarray) -> np.ndarray:
    """(N_img, N_cap) scores of a split."""
    model.eval()
    dev = next(model.parameters()).device
    return model(torch.from_numpy(pooled).to(dev), torch.from_numpy(sentences).to(dev)).cpu().numpy()


def train_linear_vse(cfg: LinearVSEConfig, train: tuple[np.ndarray, np.ndarray], dev: tuple[np.ndarray, np.ndarray],
                     *, captions_per_image: int = 5, device: torch.device | None = None) -> tuple[LinearVSE, FitResult]:
    """Train on (pooled images (N, D), sentence embeddings (c·N, E)); keep the epoch with the best dev rSum.

    Each epoch visits every caption once with its image (caption j ↔ image j // c), in a shuffled
    order fixed by (seed, epoch).
    """
    (tr_img, tr_txt), (dv_img, dv_txt) = train, dev
    for name, (im, tx) in (("train", train), ("dev", dev)):
        if im.ndim != 2 or tx.ndim != 2 or tx.shape[0] != captions_per_image * im.shape[0]:
            raise ValueError(f"{name}: need pooled images (N, D) and {captions_per_image}·N sentence embeddings, "
                             f"got {im.shape} and {tx.shape}")
    device = device or torch.device("cpu")
    seed_everything(cfg.seed)
    model = LinearVSE(tr_img.shape[1], tr_txt.shape[1], cfg.embed_size).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    img_t, txt_t = torch.from_numpy(tr_img).to(device), torch.from_numpy(tr_txt).to(device)

    def batches(epoch: int) -> list[np.ndarray]:
        order = np.random.default_rng([cfg.seed, epoch]).permutation(tr_txt.shape[0])
        return [b for b in (order[s:s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size)) if len(b) > 1]

    def step(caps: np.ndarray) -> torch.Tensor:
        idx = torch.from_numpy(caps).to(device)
        scores = model(img_t[idx // captions_per_image], txt_t[idx])  # (B, B), positives on the diagonal
        return contrastive_loss(scores, cfg.margin, cfg.max_violation)

    def evaluate() -> dict[str, float]:
        return retrieval_metrics(score_linear_vse(model, dv_img, dv_txt), captions_per_image)

    result = fit(model, opt, epochs=cfg.epochs, batches=batches, step=step, evaluate=evaluate, select="rsum",
                 desc="train linear VSE", max_steps=cfg.max_steps)
    model.eval()
    return model, result


def linear_vse_reference(data_dir: str | Path, cfg: LinearVSEConfig, *, n_test: int,
                         device: torch.device | None = None) -> np.ndarray:
    """Train the linear VSE reference of the SGRAF chapter's Table 1 on a precomp folder and return its
    (n_test, 5·n_test) test score matrix: pooled regions and MiniLM sentence embeddings (cached on disk),
    the best epoch by dev rSum."""
    from xmlib.data.features import text_embeddings
    from xmlib.data.formats.scan_precomp import read_split

    splits = {name: read_split(data_dir, name) for name in ("train", "dev", "test")}
    data = {name: (pooled_regions(sp.images),
                   text_embeddings(list(sp.captions), cache_key="captions-baseline", device=device))
            for name, sp in splits.items()}
    model, _ = train_linear_vse(cfg, data["train"], data["dev"], device=device)
    return score_linear_vse(model, data["test"][0][:n_test], data["test"][1][:5 * n_test])
