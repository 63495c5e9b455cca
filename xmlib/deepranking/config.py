"""Configuration of the Deep Ranking chapter (Wang et al., CVPR 2014).

The defaults are the book's CPU profile: the ConvNet branch (EfficientNet-Lite0, standing in for the
paper's AlexNet-like net) is **frozen** and its pooled features are computed once and cached, and only
the two shallow branches and the linear embedding are trained, on small inputs. The reason is the
budget: on 2 CPU cores EfficientNet-Lite0 runs at about 16 images/s at 224 px forward only, so
fine-tuning it on triplets (3 images each, forward and backward) would take hours per epoch. The
``paper`` profile fine-tunes the ConvNet at 224 px with the paper's 4096-d embedding.

Symbols (paper → field): g of Eq. (3) → ``gap`` (< 4: on the unit sphere D⁻ − D⁺ ≤ 4, in the chapter
:math:numref:`eq-dr-sphere`, so a larger gap could never be met); λ → ``weight_decay``; T_p → ``t_p``; T_r → ``t_r``; keep
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

from xmlib.core.config import BaseConfig, Range, analysis_field, at_least, between, field, positive


@dataclass(frozen=True)
class Config(BaseConfig):
    seed: int = 0
    # --- network (Fig. 3) ---
    multiscale: bool = True  # False: the single-scale variant (ConvNet branch + embedding only)
    # side of the network input (the paper: 225; we use multiples of 8)
    image_size: int = field(64, Range(32, step=8, why="the 8:1 branch then sees >= 4 pixels"))
    convnet: Literal["frozen", "finetune"] = "frozen"
    init: Literal["random", "convnet"] = "convnet"  # how the linear embedding starts (see the docstring)
    convnet_image_size: int = at_least(32, 224)  # side the ConvNet branch sees (features cached at this size when frozen)
    shallow_channels: int = at_least(1, 96)  # conv 8×8 stride 4, 96 channels in each shallow branch
    embed_dim: int = at_least(1, 256)  # paper: 4096
    dropout: float = between(0.0, 1.0, 0.4, high_open=True, why="a drop probability; paper: keep 0.6 → 0.4")
    pixel_shift: int = at_least(0, 4)  # random shift of up to ± this many pixels (augmentation)
    # --- objective (Eqs. 3–4) ---
    gap: float = between(0.0, 4.0, 0.5, low_open=True, high_open=True,  # g
                         why="D is a squared distance between unit vectors, so D ∈ [0, 4]")
    weight_decay: float = at_least(0.0, 1e-3)  # λ of Eq. (4), given to SGD as its weight_decay
    lr: float = positive(0.05)  # chosen on val (w_concept = 20, 10 epochs): 0.02 → 0.811, 0.05 → 0.814
    momentum: float = between(0.0, 1.0, 0.9, high_open=True)
    batch_size: int = at_least(1, 32)  # triplets per step
    epochs: int = at_least(0, 10)
    steps_per_epoch: int = at_least(1, 50)
    max_steps: int = at_least(0, 0, "0 = no cap")  # optimiser steps of each trained model at most (xmlib.core.train.fit; a check's cap)
    # --- GPU speed (xmlib.core.device.autocast / set_tf32; nothing changes on CPU unless amp="bf16") ---
    amp: Literal["off", "bf16", "auto"] = "off"  # bf16 autocast of the forward pass: off (float32, the paper), bf16, auto = bf16 on a GPU that has it
    tf32: bool = False  # TF32 matrix products and convolutions on a GPU
    # --- triplet sampling (Sec. 5.1) ---
    sampler: Literal["offline", "online"] = "offline"
    # T_p: cap on the positive's sampling weight min{T_p, r_{i,i+}} (> 1 + golden_concept)
    t_p: float = positive(25.0, "T_p caps the positive's weight")
    # T_r: in-class negatives need r_{i,i+} − r_{i,i−} ≥ T_r
    t_r: float = positive(0.05, "T_r > 0 so that r(i, i+) > r(i, i−) holds strictly (Eq. 2)")
    out_of_class_fraction: float = between(0.0, 1.0, 0.2)  # Table 1's DeepRanking uses 20%
    max_failures: int = at_least(1, 20)  # rejected triplets before a query is dropped
    buffer_size: int = at_least(1, 32)  # online sampler: images kept per category
    online_rescale: bool = True  # online sampler: rescale the acceptance (same distribution, fewer rejections; paper: False)
    golden_alpha: float = between(0.0, 1.0, 0.5)  # golden relevance: w_cnn = α (ConvNet cosine), w_color = 1 − α (colour BC)
    golden_concept: float = at_least(0.0, 20.0, "0 = the paper's rule")  # w_concept: bonus of the same concept by another designer (paper: 0)
    # --- data and protocol (the chapter) ---
    benchmark: str = "default"  # profile of xmlib.data.benchmarks.emoji to load
    # a folder in the image-stream layout (xmlib.data.image_stream: image_list.tsv + golden.npy, e.g. written by
    # python -m xmlib.data synth --like deepranking): the chapter streams it through the buffered sampler; "" = none
    stream_dir: str = analysis_field("")
    seeds: int = analysis_field(3, Range(1, why="verdicts are judged over seeds"))  # training seeds of every compared model
    bootstrap: int = analysis_field(2000, Range(100))  # two-level bootstrap replicates (seeds, then query emoji)
    fractions: tuple[float, ...] = analysis_field((0.0, 0.2, 1.0), Range(0.0, 1.0))  # out-of-class fractions of the Fig. 6 sweep
    # --- evaluation ---
    top_k: int = at_least(1, 30)  # K of score-at-top-K
    # --- CPU ---
    # torch CPU threads (0 = torch's default): the network's operations are small (16- and 8-px maps, one
    # linear layer), so one thread is about as fast as two, and several times faster when
    # other processes share the cores; set through xmlib.core.device (nothing changes on an accelerator)
    cpu_threads: int = analysis_field(1, Range(0, why="0 = leave torch's setting"))

    def validate(self) -> None:
        """The rules that tie fields together (each field's own range is declared next to it)."""
        self.require(self.pixel_shift < self.image_size // 2, "pixel_shift",
                     "must be less than half the image side")


PROFILES: dict[str, dict[str, object]] = {
    "smoke": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 8, "embed_dim": 32, "shallow_channels": 8,
              "buffer_size": 8, "benchmark": "smoke", "seeds": 2, "bootstrap": 400, "fractions": (0.0, 0.2, 1.0)},
    "default": {},
    "paper": {"online_rescale": False, "image_size": 224, "convnet": "finetune", "embed_dim": 4096, "pixel_shift": 16, "lr": 0.001,
              "epochs": 30, "steps_per_epoch": 1000, "batch_size": 32, "buffer_size": 200, "seeds": 5,
              "fractions": (0.0, 0.2, 0.5, 1.0)},
}
