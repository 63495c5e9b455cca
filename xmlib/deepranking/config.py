"""Configuration of the Deep Ranking chapter (Wang et al., CVPR 2014).

The defaults are the book's CPU profile: the ConvNet branch (EfficientNet-Lite0, standing in for the
paper's AlexNet-like net) is **frozen** and its pooled features are computed once and cached, and only
the two shallow branches and the linear embedding are trained, on small inputs. The reason is the
budget: on 2 CPU cores EfficientNet-Lite0 runs at about 16 images/s at 224 px forward only, so
fine-tuning it on triplets (3 images each, forward and backward) would take hours per epoch. The
``paper`` profile fine-tunes the ConvNet at 224 px with the paper's 4096-d embedding.

Symbols (paper → field): g of Eq. (3) → ``gap`` (< 4: on the unit sphere D⁻ − D⁺ ≤ 4, chapter label
`eq-dr-sphere`, so a larger gap could never be met); λ → ``weight_decay``; T_p → ``t_p``; T_r → ``t_r``; keep
probability 0.6 → ``dropout = 0.4``; the fraction of out-of-class negatives → ``out_of_class_fraction``.
T_p, T_r, g and the buffer size are not given in the paper; our values are choices to be swept.

Two choices are ours and not the paper's (the chapter measures both): ``init = "convnet"`` starts the
linear embedding from the pretrained ConvNet's principal directions
(:meth:`~xmlib.deepranking.network.DeepRankingNet.init_from_convnet`) instead of a random projection,
and ``golden_concept`` (w_concept) adds to r_ij a bonus for the same emoji drawn by another designer —
the benchmark's human judgement, used on *training* concepts only (``0`` is the paper's rule: golden
features alone). With that bonus r_ij reaches 1 + w_concept, so ``t_p`` must exceed it not to flatten it.
Learning rate and epochs were chosen on the **val** split (never test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xmlib.core.config import BaseConfig, analysis_field


@dataclass(frozen=True)
class Config(BaseConfig):
    seed: int = 0
    # --- network (Fig. 3) ---
    multiscale: bool = True  # False: the single-scale variant (ConvNet branch + embedding only)
    image_size: int = 64  # side of the network input (the paper: 225; we use multiples of 8)
    convnet: Literal["frozen", "finetune"] = "frozen"
    init: Literal["random", "convnet"] = "convnet"  # how the linear embedding starts (see the docstring)
    convnet_image_size: int = 224  # side the ConvNet branch sees (features cached at this size when frozen)
    shallow_channels: int = 96  # conv 8×8 stride 4, 96 channels in each shallow branch
    embed_dim: int = 256  # paper: 4096
    dropout: float = 0.4  # = 1 − keep probability 0.6
    pixel_shift: int = 4  # random shift of up to ± this many pixels (augmentation)
    # --- objective (Eqs. 3–4) ---
    gap: float = 0.5  # g; embeddings are unit-norm, so D ∈ [0, 4] and g must be < 4
    weight_decay: float = 1e-3  # λ of Eq. (4), given to SGD as its weight_decay
    lr: float = 0.05  # chosen on val (w_concept = 20, 10 epochs): 0.02 → 0.811, 0.05 → 0.814
    momentum: float = 0.9
    batch_size: int = 32  # triplets per step
    epochs: int = 10
    steps_per_epoch: int = 50
    # --- triplet sampling (Sec. 5.1) ---
    sampler: Literal["offline", "online"] = "offline"
    t_p: float = 25.0  # T_p: cap on the positive's sampling weight min{T_p, r_{i,i+}} (> 1 + golden_concept)
    t_r: float = 0.05  # T_r: in-class negatives need r_{i,i+} − r_{i,i−} ≥ T_r
    out_of_class_fraction: float = 0.2  # Table 1's DeepRanking uses 20%
    max_failures: int = 20  # rejected triplets before a query is dropped
    buffer_size: int = 32  # online sampler: images kept per category
    online_rescale: bool = True  # online sampler: rescale the acceptance (same distribution, fewer rejections; paper: False)
    golden_alpha: float = 0.5  # golden relevance: w_cnn = α (ConvNet cosine), w_color = 1 − α (colour BC)
    golden_concept: float = 20.0  # w_concept: bonus of the same concept by another designer (paper: 0)
    # --- data and protocol (the chapter) ---
    benchmark: str = "default"  # profile of xmlib.data.benchmarks.emoji to load
    seeds: int = analysis_field(3)  # training seeds of every compared model (verdicts over seeds)
    bootstrap: int = analysis_field(2000)  # two-level bootstrap replicates (seeds, then query emoji)
    fractions: tuple[float, ...] = analysis_field((0.0, 0.2, 1.0))  # out-of-class fractions of the Fig. 6 sweep
    # --- evaluation ---
    top_k: int = 30  # K of score-at-top-K
    # --- CPU ---
    cpu_threads: int = analysis_field(1)  # torch CPU threads (0 = torch's default): the network's operations are small (16- and
    # 8-px maps, one linear layer), so one thread is about as fast as two, and several times faster when
    # other processes share the cores; set through xmlib.core.device (nothing changes on an accelerator)

    def validate(self) -> None:
        self.require(0.0 < self.gap < 4.0, "gap", "g must lie in (0, 4): D is a squared distance between unit vectors, so D ∈ [0, 4]")
        self.require(self.weight_decay >= 0.0, "weight_decay", "λ must be >= 0")
        self.require(self.lr > 0.0, "lr", "the learning rate must be > 0")
        self.require(0.0 <= self.momentum < 1.0, "momentum", "must be in [0, 1)")
        self.require(0.0 <= self.dropout < 1.0, "dropout", "drop probability must be in [0, 1) (paper: keep 0.6 → 0.4)")
        self.require(self.image_size >= 32 and self.image_size % 8 == 0, "image_size",
                     "must be a multiple of 8 and >= 32 (the 8:1 branch then sees >= 4 pixels)")
        self.require(self.convnet_image_size >= 32, "convnet_image_size", "must be >= 32")
        self.require(self.pixel_shift >= 0 and self.pixel_shift < self.image_size // 2, "pixel_shift",
                     "must be >= 0 and less than half the image side")
        self.require(self.shallow_channels >= 1, "shallow_channels", "must be >= 1")
        self.require(self.embed_dim >= 1, "embed_dim", "must be >= 1")
        for name in ("batch_size", "steps_per_epoch", "buffer_size", "max_failures", "top_k"):
            self.require(getattr(self, name) >= 1, name, "must be >= 1")
        self.require(self.epochs >= 0, "epochs", "must be >= 0")
        self.require(self.t_p > 0.0, "t_p", "T_p must be > 0 (a cap on the positive's weight)")
        self.require(self.t_r > 0.0, "t_r", "T_r must be > 0 so that r(i, i+) > r(i, i−) holds strictly (Eq. 2)")
        self.require(0.0 <= self.out_of_class_fraction <= 1.0, "out_of_class_fraction", "must be in [0, 1]")
        self.require(0.0 <= self.golden_alpha <= 1.0, "golden_alpha", "must be in [0, 1]")
        self.require(self.golden_concept >= 0.0, "golden_concept", "w_concept must be >= 0 (0 = the paper's rule)")
        self.require(self.seeds >= 1, "seeds", "must be >= 1 (3 in the default profile: verdicts are judged over seeds)")
        self.require(self.bootstrap >= 100, "bootstrap", "must be >= 100 replicates")
        self.require(all(0.0 <= f <= 1.0 for f in self.fractions), "fractions", "out-of-class fractions lie in [0, 1]")
        self.require(self.cpu_threads >= 0, "cpu_threads", "must be >= 0 (0 = leave torch's setting)")


PROFILES: dict[str, dict[str, object]] = {
    "smoke": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 8, "embed_dim": 32, "shallow_channels": 8,
              "buffer_size": 8, "benchmark": "smoke", "seeds": 2, "bootstrap": 400, "fractions": (0.0, 0.2, 1.0)},
    "default": {},
    "paper": {"online_rescale": False, "image_size": 224, "convnet": "finetune", "embed_dim": 4096, "pixel_shift": 16, "lr": 0.001,
              "epochs": 30, "steps_per_epoch": 1000, "batch_size": 32, "buffer_size": 200, "seeds": 5,
              "fractions": (0.0, 0.2, 0.5, 1.0)},
}
