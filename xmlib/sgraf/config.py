"""Configuration of the SGRAF chapter: the model's architecture (:class:`ModelConfig`), the chapter's
:class:`Config` (the architecture plus training and budget fields) and three named profiles.

The dataclass defaults are a mid-size CPU model on the open captions benchmark (R = 49 EfficientNet
grid regions of D = 1280); ``default`` (the book's CPU profile) shrinks them to fit about ten models in
20 minutes on two cores. ``paper`` restores the paper's sizes and schedule
(Diao et al., AAAI 2021, Sec. "Implementation details") for SCAN precomp Flickr30K / COCO given a
``data_dir``; ``smoke`` is a tiny run for tests and CI.

Symbols: ``embed_size`` is d (the joint embedding), ``sim_dim`` is m (the similarity vector of
Eq. 1), ``lambda_softmax`` is λ of the text-to-visual attention, ``sgr_steps`` is N, ``margin`` is γ.

Departure switches (each defaults to the paper; the notebook's admonitions name them):

- ``attn_leaky``: 0.0 = the paper's ReLU ``[c_ij]_+`` before the attention normalisation; 0.1 = the
  official code's LeakyReLU(0.1).
- ``l2_context``: False = the paper's attended context ``a_j = Σ_i α_ij v_i``; True = the official
  code's extra L2 normalisation of ``a_j``.
- ``global_norm``: the BatchNorm inside the image's attention pooling. ``"feature"`` (default) is
  BatchNorm1d over the d features with statistics over batch × regions, which works for any number of
  regions K; ``"region"`` is the official code's BatchNorm1d over the region axis, which needs exactly
  ``num_regions`` regions. The paper does not say which (a code detail), so the K-agnostic form is
  the default; ``"none"`` drops it.
- ``sim_bias``: False = the paper's Eq. (1), ``s = W|x − y|² / ‖W|x − y|²‖₂``; True = the official
  code's projections W_g and W_l with a bias, ``s = L2(W|x − y|² + b)`` (SAF reads these nodes too).
- ``sgr_bias``: False = the paper's SGR step (W_in, W_out, W_r without bias); True = the official code's
  three step linears with biases, ``e_pq ∝ exp((W_in s_p + b_in)·(W_out s_q + b_out))`` and
  ``s_p ← ReLU(W_r Σ_q e_pq s_q + b_r)``. b_out cancels in the row softmax (it adds a term that does
  not depend on q) but is kept as a parameter, so that the official checkpoints load; b_in does not
  cancel (it adds ``b_in·W_out s_q``, which depends on the key node q).
- ``norm_eps``: where the ε of every L2 / L1 normalisation goes (:mod:`xmlib.sgraf.normalize`):
  ``"clamp"`` = xmlib's ``x / max(‖x‖, ε)``; ``"add"`` = the official code's ``x / (‖x‖ + ε)``. The
  paper writes ``x / ‖x‖``, which both approach; they differ by about 1e-8 relative.
- ``mask_same_image``: False = the paper (a batch that holds two captions of one image treats the
  other as a negative); True = such pairs are not negatives in the hinge.
- ``captions_per_epoch``: 5 = the paper's epoch (every caption once); fewer = that many distinct
  captions per image per epoch (the CPU profile's shorter epoch).
- ``max_words``: 0 = the paper (no limit); else captions are cut to that many tokens including
  ``<start>``/``<end>``.
- ``warmup_epochs``: 0 = the paper (hardest negatives from the first step); k > 0 = the first k epochs
  sum the hinge over all negatives, then hardest negatives. A short CPU run needs it: from a random
  start the hardest-negative loss collapses every score to one value and stays there.

The official code's settings of these switches are one preset, :data:`OFFICIAL_CODE`
(``cfg.replace(**OFFICIAL_CODE)``). ``mask_same_image``, ``captions_per_epoch``, ``max_words`` and
``warmup_epochs`` are not in it: the official code does what their defaults do (it treats a second
caption of the same image as a negative, shows every caption once per epoch, keeps whole captions and
uses the hardest negatives from the first step). ``lambda_softmax`` = 9 and ``dropout`` = 0.4 are
written into the official code and equal the defaults.

Chapter-level fields (the notebook's budget; they do not change one model): ``test_images`` (images
of the test split the main models are evaluated on, 0 = all), ``ablation_epochs`` /
``ablation_lr_step`` / ``ablation_test_images`` (every ablation model of Tables 3–5 gets the same
schedule and test subset), ``steps_grid`` (SGR steps of Table 3), ``n_boot`` (bootstrap replicates),
``baseline_epochs`` (the linear VSE reference of Table 1), ``loader_workers`` (processes gathering training
batches from the memory-mapped features, ``xmlib.sgraf.loader``; 0 = none, the same batches), ``cpu_threads`` (0 = torch's default; 1 is
fastest on a shared 2-core machine; set through :func:`xmlib.core.device.set_cpu_threads`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from xmlib.core.config import BaseConfig, Range, analysis_field, at_least, between, evaluation_field, positive

Aggregator = Literal["sgr", "saf", "average", "joint"]
NormEps = Literal["clamp", "add"]  # where a normalisation's ε goes (xmlib.sgraf.normalize)


@dataclass(frozen=True)
class ModelConfig(BaseConfig):
    """The architecture of one SGRAF model: every field :class:`~xmlib.sgraf.model.SGRAFModel` and its
    modules read, under the same name as in the chapter's :class:`Config` (``cfg.model()``).

    ``length_buckets`` changes only how the training forward pass groups captions (the same numbers).
    The rules that tie these fields together are checked here, once.
    """

    # --- sizes ---------------------------------------------------------------------------
    img_dim: int = at_least(1, 1280)  # D: region feature size (2048 for BUTD)
    word_dim: int = at_least(1, 300)  # word embedding size
    embed_size: int = at_least(1, 256)  # d: joint embedding (1024 in the paper)
    sim_dim: int = at_least(1, 64)  # m: similarity vector size of Eq. 1 (256 in the paper)
    num_regions: int = at_least(1, 49)  # K, only used by global_norm="region"
    dropout: float = between(0.0, 1.0, 0.4, high_open=True)
    # --- model variant (Tables 3 and 4) ----------------------------------------------------
    aggregator: Aggregator = "sgr"  # sgr | saf | average (AA of Table 4) | joint (Table 5)
    similarity: Literal["vector", "scalar"] = "vector"  # SV (Eq. 1) or SS (cosine) of Table 4
    attention: Literal["t2i", "i2t"] = "t2i"  # text-to-visual (paper) or image-to-text (Table 4)
    use_global: bool = True
    use_local: bool = True
    sgr_steps: int = at_least(0, 3, "0 = no reasoning")  # N
    lambda_softmax: float = positive(9.0)  # λ
    # --- departure switches (see the module docstring) ------------------------------------
    attn_leaky: float = at_least(0.0, 0.0, "0 = ReLU as in the paper, 0.1 = official code")
    l2_context: bool = False
    global_norm: Literal["feature", "region", "none"] = "feature"
    sim_bias: bool = False
    sgr_bias: bool = False
    norm_eps: NormEps = "clamp"
    # --- speed only -----------------------------------------------------------------------
    length_buckets: int = at_least(0, 4, "0 = one group per caption length")  # caption length groups per training batch (the same numbers)

    def validate(self) -> None:
        """The rules that tie fields together (each field's own range is declared next to it)."""
        self.require(self.use_global or self.use_local, "use_local", "use_global and use_local cannot both be False")
        self.require(self.similarity == "vector" or self.aggregator == "average", "similarity",
                     "scalar (cosine) similarities only go with aggregator='average' (Table 4: SS+AA)")

    def model(self) -> "ModelConfig":
        """The architecture fields alone, as a :class:`ModelConfig` (what the model keeps)."""
        return ModelConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ModelConfig)})


@dataclass(frozen=True)
class Config(ModelConfig):
    """Hyperparameters of one SGRAF model (SGR, SAF or an ablation) and its training run.

    The architecture fields are inherited from :class:`ModelConfig`, so each keeps one name from the
    profile to the module that reads it; :meth:`model` hands them to the model.
    """

    seed: int = 0
    data_dir: str = ""  # a SCAN precomp folder ({split}_ims.npy, {split}_caps.txt, vocab JSON); "" = open captions
    benchmark: str = "default"  # the open captions build used when data_dir is "" ("smoke" or "default")
    vocab_path: str = ""  # the vocabulary JSON ("" = look for one in data_dir)
    # --- departure switch of the objective (see the module docstring) -----------------------
    mask_same_image: bool = False
    # --- objective and optimisation ---------------------------------------------------------
    margin: float = at_least(0.0, 0.2)  # γ
    max_violation: bool = True  # hardest negative (VSE++); False = sum over all negatives
    hardest_pairs: bool = True  # with hardest negatives: autograd only through the ≤ 3B pairs the loss reads (SGRAFModel.hardest_scores)
    warmup_epochs: int = at_least(0, 0)  # epochs of all-negatives hinge before the hardest negatives (0 = the paper)
    lr: float = positive(2e-4)  # Adam's learning rate
    batch_size: int = at_least(2, 128, "a batch needs negatives")
    grad_clip: float = positive(2.0)
    epochs: int = at_least(0, 8)  # SGR and the ablations
    lr_step: int = at_least(0, 6)  # lr × lr_decay after this many epochs
    saf_epochs: int = at_least(0, 8)  # SAF (and average aggregation)
    saf_lr_step: int = at_least(0, 6)
    lr_decay: float = between(0.0, 1.0, 0.1, low_open=True)
    max_steps: int = at_least(0, 0, "0 = no cap")  # optimiser steps of each trained model at most (xmlib.core.train.fit; a check's cap)
    captions_per_epoch: int = between(1, 5, 1, why="captions of each image per epoch")
    max_words: int = at_least(0, 12, "0 = no limit")
    max_train_images: int = at_least(0, 0)  # 0 = all
    dev_images: int = at_least(0, 1000)  # best checkpoint by rSum on the first dev_images dev images
    # --- GPU speed (xmlib.core.device.autocast / set_tf32; nothing changes on CPU unless amp="bf16") ---
    amp: Literal["off", "bf16", "auto"] = "off"  # bf16 autocast of the forward pass: off (float32, the paper), bf16, auto = bf16 on a GPU that has it
    tf32: bool = False  # TF32 matrix products on a GPU
    # --- evaluation cost --------------------------------------------------------------------
    eval_mib: int = evaluation_field(32, Range(0, low_open=True))  # MiB of intermediates per scoring tile (bounds memory)
    # --- the chapter's budget (see the module docstring) -------------------------------------
    test_images: int = evaluation_field(0, Range(0))  # main models (SGR, SAF, SGRAF) on the first test_images test images (0 = all)
    seeds: int = analysis_field(3, Range(1, why="verdicts are judged over seeds"))  # training seeds of every compared model (verdicts over seeds)
    ablation_epochs: int = analysis_field(0, Range(0))  # 0 = the SGR schedule's epochs
    ablation_lr_step: int = analysis_field(0, Range(0))  # 0 = the SGR schedule's lr_step
    ablation_test_images: int = analysis_field(0, Range(0))  # 0 = the main models' test set
    steps_grid: tuple[int, ...] = analysis_field((1, 2, 3, 4), Range(0))  # N of Table 3
    ablation_local_steps: tuple[int, ...] = analysis_field((1, 3), Range(0))  # N of Table 3's local-only rows
    n_boot: int = analysis_field(2000, Range(100, why="bootstrap replicates"))
    baseline_epochs: int = analysis_field(15, Range(0))  # the linear VSE reference (xmlib.sgraf.baseline); 0 = not trained
    loader_workers: int = analysis_field(0, Range(0))  # processes gathering training batches (xmlib.sgraf.loader; 0 = none)
    cpu_threads: int = analysis_field(0, Range(0))  # torch CPU threads (0 = torch's default), set through xmlib.core.device

    def validate(self) -> None:
        super().validate()  # the architecture's rules
        self.require(self.max_words == 0 or self.max_words >= 3, "max_words", "0 (no limit) or >= 3 (<start> w <end>)")
        self.require(self.benchmark in ("smoke", "default"), "benchmark", "the open captions build: 'smoke' or 'default'")

    def schedule(self) -> tuple[int, int]:
        """(epochs, lr_step) of this model: the SGR schedule for ``sgr`` / ``joint``, the SAF one otherwise."""
        if self.aggregator in ("sgr", "joint"):
            return self.epochs, self.lr_step
        return self.saf_epochs, self.saf_lr_step


OFFICIAL_CODE: dict[str, object] = {"attn_leaky": 0.1, "l2_context": True, "global_norm": "region",
                                    "sim_bias": True, "sgr_bias": True, "norm_eps": "add"}
"""Overrides that make the model compute what the released code computes (``cfg.replace(**OFFICIAL_CODE)``;
``global_norm="region"`` also needs ``num_regions`` = the data's K, 36 for the BUTD features)."""

PROFILES: dict[str, dict[str, object]] = {
    "smoke": {
        "word_dim": 32, "embed_size": 32, "sim_dim": 16, "batch_size": 32, "epochs": 1, "lr_step": 1,
        "saf_epochs": 1, "saf_lr_step": 1, "max_train_images": 256, "dev_images": 100,
        "lr": 1e-3, "max_violation": False, "steps_grid": (1, 3), "ablation_local_steps": (3,),
        "n_boot": 400, "baseline_epochs": 2, "cpu_threads": 1, "benchmark": "smoke", "seeds": 2,
    },
    # the book's CPU profile: 10 models x 3 seeds on 2 cores, SGR and SAF shared by the ablation tables (see the chapter)
    "default": {
        "word_dim": 100, "embed_size": 64, "sim_dim": 16, "batch_size": 32, "lr": 5e-3, "max_violation": False,
        "epochs": 4, "lr_step": 3, "saf_epochs": 4, "saf_lr_step": 3, "dev_images": 100,
        "ablation_test_images": 300, "steps_grid": (1, 3), "ablation_local_steps": (3,), "cpu_threads": 1,
    },
    "paper": {
        # Flickr30K settings; COCO: epochs=20, lr_step=10, saf_epochs=20, saf_lr_step=10
        "img_dim": 2048, "embed_size": 1024, "sim_dim": 256, "num_regions": 36, "epochs": 40, "lr_step": 30,
        "saf_epochs": 30, "saf_lr_step": 20, "captions_per_epoch": 5, "max_words": 0, "seeds": 5,
        "length_buckets": 0,  # captions 6-80 tokens: one group per length (benchmarks/sgraf_paper_speed.py --train-step)
        "loader_workers": 2,  # batches gathered from the memory-mapped features ahead of the training step (xmlib.sgraf.loader)
        "eval_mib": 128,  # scoring tiles of 128 MiB (xmlib.sgraf.model.SCORE_BYTES)
    },
}
