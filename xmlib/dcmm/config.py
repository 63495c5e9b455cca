"""The DCMM chapter's configuration: one frozen dataclass and three named profiles.

Paper/code switches (each defaults to the paper; the official release is one flag away,
see :data:`OFFICIAL_CODE`):

- ``conv_relu``: Eq. (5) applies a ReLU after each cross-modal convolution; the released code has
  no nonlinearity there.
- ``self_loops``: in Eqs. (1) and (3) a document is its own neighbour (a top-K document counts in
  its own CM score; a k-NN graph on visual features contains the node itself); the released code
  removes self-loops, leaving k − 1 neighbours.
- ``conv_bias``: Eq. (5) is ``W h_j`` without a bias; the released conv computes ``W h_j + b``.
- ``degree_norm``: Eq. (5) sums over neighbours without normalisation, and so does the code
  (no degree normalisation, no softmax). ``True`` divides by ``|N_i|`` (a mean), an ablation only.
- ``conv_dropout``: the paper names no dropout after the convolutions; the released model applies
  dropout, with the model's rate ``dropout``, to the output of every convolution (after its
  activation, the last one included, before the score projection). ``False`` keeps dropout in the
  text MLP only.
- ``zscore_ddof``: the text features are z-scored within each query (``zscore_text``; the paper
  does not say how). ``0``: (x − mean) / σ with the population standard deviation σ (a constant
  feature becomes 0). ``1``: the released code's (x − mean) / (s + 1e-6), s the sample standard
  deviation (n − 1 in the denominator), the 1e-6 added to s.

``k = 0`` means a fully connected graph (Fig. 2's "full" column).

Data: ``data`` is a clipart benchmark profile name (``"smoke"``, ``"default"``) or the path of a
folder in the MediaEval'17 layout (the paper's data, for a reader who has it: pass
``{"data": "/path/to/mediaeval", "text_features": "all", "query_set": "all"}``). ``data_split`` is the
split read from such a folder. ``test_split``: ``""`` (the book's open data, which has one split) scores
every query once by cross-validation over ``data_split``; ``"test"`` runs MediaEval'17's own protocol
(``xmlib.dcmm.protocol.held_out_test``): select on ``data_split`` by cross-validation, retrain on
all of it, score the queries of the ``test`` split. ``text_features``: ``"weak"`` (BM25 only, paper-like), ``"strong"``
(+ MiniLM, first-stage score/rank, length) or ``"all"``. ``query_set``: ``"no_flags"`` or ``"all"``.
``centre_visual``: ``"none"`` (paper and code) or ``"query"`` (a departure: centre each query's
visual features before the cosine, see :mod:`xmlib.dcmm.batching`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xmlib.core.config import BaseConfig, Range, analysis_field, at_least, between, one_of, positive


@dataclass(frozen=True)
class Config(BaseConfig):
    seed: int = 0
    # ---- synthetic data (used when the clipart benchmark is not available) ----
    n_queries: int = at_least(1, 60)
    n_docs: int = at_least(1, 50)
    visual_dim: int = at_least(1, 1280)
    # ---- model (Eqs. 5-6) ----
    hidden: int = at_least(1, 16)  # input_channels c: width of h^0 = MLP(text features)
    mlp_layers: int = at_least(1, 2)  # Linear layers in the text MLP
    conv_channels: int = at_least(1, 16)  # width of each conv layer's output h^{l+1}
    n_conv: int = at_least(0, 2, "0 = no conv, the LTR model")  # cross-modal conv layers (Fig. 2's depth)
    k: int = at_least(0, 10, "0 = fully connected graph")  # k of the visual k-NN graph (counts the node itself)
    dropout: float = between(0.0, 1.0, 0.2, high_open=True)
    # ---- paper/code switches (defaults = the paper) ----
    conv_relu: bool = True
    self_loops: bool = True
    conv_bias: bool = False
    degree_norm: bool = False
    conv_dropout: bool = False  # dropout after every conv (the released code), rate ``dropout``
    zscore_ddof: int = one_of((0, 1), 0, "0: population std; 1: the released code's sample std + 1e-6")
    # ---- data ----
    data: str = "default"       # clipart profile name or a MediaEval'17-layout folder
    data_split: str = "train"   # split read from a MediaEval'17 folder
    test_split: str = ""        # "": cross-validate over data_split's queries; "test": MediaEval'17's protocol
    text_features: str = "weak"  # weak | strong | all
    query_set: str = "no_flags"  # no_flags | all
    # ---- features ----
    centre_visual: Literal["none", "query"] = "none"
    zscore_text: bool = True    # z-score each text feature within each query (official code)
    cm_text_feature: int = at_least(0, 0)  # column of the text features used as s_T in Eq. (1)
    cm_k: int = at_least(1, 10)  # K of Eq. (1) when not selected on validation
    # ---- training (Eq. 7) ----
    lr: float = positive(1e-3)
    batch_queries: int = at_least(1, 16)
    epochs: int = at_least(1, 30)
    max_steps: int = at_least(0, 0, "0 = no cap")  # optimiser steps of each trained model at most (xmlib.core.train.fit; a check's cap)
    bpr_reduction: Literal["mean", "sum"] = "mean"
    select_metric: Literal["ndcg", "map", "ndcg_cut_20", "P_20"] = "ndcg"
    # ---- protocol ----
    folds: int = at_least(2, 5, "cross-validation needs at least 2 folds")
    inner_folds: int = at_least(1, 1)  # 1: one of the training folds validates; >1: inner CV, curves averaged
    retrain: bool = True        # retrain on all non-test folds for the selected number of epochs
    lr_grid: tuple[float, ...] = positive((1e-3, 1e-2))
    hidden_grid: tuple[int, ...] = at_least(1, (16,))
    cm_k_grid: tuple[int, ...] = at_least(1, (3, 5, 10, 20))
    method: Literal["ltr", "cm", "ltr+cm", "dcmm-cos", "dcmm-edge"] = "dcmm-edge"  # what one training run
                                # cross-validates (the chapter sets it for each method of Table 1)
    select_lr: bool = True      # False: lr fixed to ``lr`` instead of chosen from lr_grid (Fig. 2's grid)
    # ---- the chapter's analysis (never changes a trained model) ----
    seeds: int = analysis_field(3, Range(1, why="verdicts are judged over seeds"))  # training seeds per compared model
    n_boot: int = analysis_field(2000, Range(100))  # two-level bootstrap replicates of each claim
    fig2_k: tuple[int, ...] = analysis_field((3, 10, 0), Range(0, why="0 = fully connected"))
    fig2_depth: tuple[int, ...] = analysis_field((1, 3), Range(1))
    fig2_method: Literal["dcmm-cos", "dcmm-edge"] = analysis_field("dcmm-edge")  # the paper plots its best model
    n_examples: int = analysis_field(3, Range(0))  # queries shown as images (top 10 before / after re-ranking)
    # ---- CPU ----
    cpu_threads: int = at_least(0, 1, "0 = leave torch's setting")  # torch threads while training on CPU; the
                                # per-query graphs are tiny, and extra threads only add sync overhead

    def validate(self) -> None:
        """The rules that tie fields together (each field's own range is declared next to it)."""
        self.require(not (self.inner_folds > 1 and not self.retrain), "retrain",
                     "retrain=False keeps the inner model, which needs inner_folds=1")
        self.require(self.inner_folds < self.folds, "inner_folds", "must be smaller than folds")
        self.require(self.test_split != self.data_split, "test_split",
                     f"must differ from data_split = {self.data_split!r} (the test queries are held out)")


OFFICIAL_CODE: dict[str, object] = {"conv_relu": False, "self_loops": False, "conv_bias": True,
                                    "degree_norm": False, "conv_dropout": True, "zscore_ddof": 1}
"""Overrides that make the model behave as the released code does (``cfg.replace(**OFFICIAL_CODE)``)."""

PROFILES: dict[str, dict[str, object]] = {
    # a couple of minutes on 2 CPU cores: tiny data, few epochs, one-point grids
    "smoke": {"data": "smoke", "n_queries": 30, "n_docs": 30, "visual_dim": 256, "epochs": 8, "lr": 1e-2,
              "lr_grid": (1e-2,), "cm_k_grid": (5, 10), "fig2_k": (5, 0), "fig2_depth": (1, 2),
              "folds": 3, "seeds": 2, "n_boot": 400},
    # the book's CPU profile (~60 queries x 50 candidates, 1280-d visual features)
    "default": {},
    # the paper's grid (official code's search): c in {16, 32}, conv 32, lr in {1e-3, 1e-4, 1e-5},
    # 100 epochs, batches of 16 queries; Fig. 2: k in {3, 5, 10, 15, 20, full} x 1-4 layers
    "paper": {"hidden": 32, "conv_channels": 32, "hidden_grid": (16, 32), "lr_grid": (1e-3, 1e-4, 1e-5),
              "epochs": 100, "inner_folds": 4, "fig2_k": (3, 5, 10, 15, 20, 0), "fig2_depth": (1, 2, 3, 4),
              "seeds": 5},
}
