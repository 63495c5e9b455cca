"""SGRAF's training runs for the chapter's seeds, and their outcomes for the replication engine.

:func:`train_and_score` is the job of :mod:`xmlib.core.jobs` for one model (SGR, SAF or an ablation of
Tables 3–5) and one seed: it loads the SCAN precomp data the config names (the open captions
benchmark, or a ``data_dir`` with the paper's features; cached per process), trains with the best
epoch chosen on dev rSum (checkpoints in the job's work folder, so an interrupted run resumes and a
new test subset reuses the trained model), and scores the first ``test_images`` test images against
their captions. :func:`outcomes` turns score matrices of several seeds into per-query R@K hits: each
image (image-to-text) and each caption (text-to-image) is a query, resampled separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from xmlib.core.config import BaseConfig
from xmlib.core.device import get_device
from xmlib.core.train import count_parameters
from xmlib.metrics.retrieval import recall_hits
from xmlib.replication import Metric, Outcomes
from xmlib.sgraf.config import Config
from xmlib.sgraf.train import CaptionData, find_vocab, load_precomp, score_split, train_model

JOB = "xmlib.sgraf.experiment:train_and_score"

RSUM = Metric("rSum", "mean", 100.0, 6.0)
"""rSum = 100 × (mean image-to-text hits + mean text-to-image hits), hits counted over K = 1, 5, 10;
one point on each of its six R@K is 6 rSum points."""


def data_dir_of(cfg: Config) -> Path:
    """``cfg.data_dir``, or the open captions benchmark of profile ``cfg.benchmark`` (built if missing)."""
    if cfg.data_dir:
        return Path(cfg.data_dir)
    from xmlib.data.benchmarks import captions

    return captions.folder(cfg.benchmark)


IN_MEMORY_BYTES = 2 * 1024**3
"""Training features up to this size (as float32) are read into memory once per process: gathering a
batch from memory is several times faster than from the memory-mapped float16 file. Larger ones (the
papers' Flickr30K and COCO features) stay memory-mapped."""


@lru_cache(maxsize=2)
def splits(data_dir: str, vocab_path: str, max_words: int) -> tuple[Any, CaptionData, CaptionData, CaptionData]:
    """(vocabulary, train, dev, test) of a precomp folder, loaded once per process (the training
    features in memory when they fit :data:`IN_MEMORY_BYTES`, every other split memory-mapped)."""
    from dataclasses import replace

    from xmlib.data.formats.vocab import load_vocab

    vocab = load_vocab(vocab_path)
    train, dev, test = (load_precomp(data_dir, s, vocab, max_words=max_words) for s in ("train", "dev", "test"))
    if train.images.size * 4 <= IN_MEMORY_BYTES:
        train = replace(train, images=np.asarray(train.images, dtype=np.float32))
    return vocab, train, dev, test


def load(cfg: Config) -> tuple[Any, CaptionData, CaptionData, CaptionData]:
    root = data_dir_of(cfg)
    vocab_path = find_vocab(cfg) if cfg.data_dir else root / "vocab.json"
    return splits(str(root), str(vocab_path), cfg.max_words)


def train_and_score(cfg: Config, seed: int, workdir: Path) -> dict[str, Any]:
    """Train one model with ``seed`` and score its test subset (the job of one seed)."""
    device = get_device()
    vocab, train, dev, test = load(cfg)
    model, result = train_model(cfg.replace(seed=seed), train, dev, len(vocab), checkpoint_dir=workdir, device=device)
    test = test.first_images(cfg.test_images)
    scores = score_split(model, test, max_bytes=cfg.eval_mib * 2**20, device=device)
    return {"scores": scores.float(), "history": result.history, "best_epoch": result.best_epoch,
            "best_score": result.best_score, "n_params": count_parameters(model)}


def main_configs(cfg: Config) -> dict[str, Config]:
    """The chapter's two trained models of Table 1 (SGRAF is their averaged scores)."""
    return {"SGR": cfg.replace(aggregator="sgr"), "SAF": cfg.replace(aggregator="saf")}


def ablation_variants(cfg: Config) -> dict[str, dict[str, Any]]:
    """Tables 3–5 of the paper as config changes: ``{row name: the fields it changes}``.

    Table 3 varies the nodes and the number of reasoning steps N, Table 4 the similarity
    representation (SV / SS), the aggregation (AA / SAF) and the attention's direction (t2i / i2t) on
    local nodes, Table 5 trains SGR and SAF as one model (``joint``)."""
    def steps(n: int) -> str:
        return f"{n} step{'s' if n > 1 else ''}"

    return {
        "global only, no reasoning": dict(aggregator="sgr", use_local=False, sgr_steps=0),
        **{f"local only, {steps(n)}": dict(aggregator="sgr", use_global=False, sgr_steps=n)
           for n in cfg.ablation_local_steps},
        **{f"global + local, {steps(n)}": dict(aggregator="sgr", sgr_steps=n) for n in cfg.steps_grid},
        "SS + AA (t2i)": dict(aggregator="average", similarity="scalar", use_global=False),
        "SV + AA (t2i)": dict(aggregator="average", use_global=False),
        "SV + SAF (t2i)": dict(aggregator="saf", use_global=False),
        "SV + SAF (i2t)": dict(aggregator="saf", use_global=False, attention="i2t"),
        "SAF (independent)": dict(aggregator="saf"),
        "joint SGR + SAF": dict(aggregator="joint"),
    }


def ablation_configs(cfg: Config) -> dict[str, Config]:
    """Every row of Tables 3–5 with one schedule (``ablation_epochs`` / ``ablation_lr_step``, or SGR's,
    for SAF and the joint model alike), tested on the first ``ablation_test_images`` test images."""
    epochs, lr_step = cfg.ablation_epochs or cfg.epochs, cfg.ablation_lr_step or cfg.lr_step
    base = cfg.replace(epochs=epochs, lr_step=lr_step, saf_epochs=epochs, saf_lr_step=lr_step,
                       test_images=cfg.ablation_test_images or cfg.test_images)
    return {name: base.replace(**changes) for name, changes in ablation_variants(cfg).items()}


def same_models(configs: dict[str, Config], trained: dict[str, Config]) -> dict[str, str]:
    """``{name in configs: name in trained}`` for the configs that train the same model as one of
    ``trained`` (they differ in evaluation-only fields, e.g. the test subset): their scores are a
    corner of that model's matrix (:func:`first_images`) instead of a second scoring. Only where that
    model's test set holds theirs (its ``test_images`` is 0 = all, or at least theirs)."""
    def covers(big: Config, small: Config) -> bool:
        return big.test_images == 0 or 0 < small.test_images <= big.test_images

    keys = {c.model_fingerprint(evaluation=False): name for name, c in trained.items()}
    return {name: keys[k] for name, c in configs.items()
            if (k := c.model_fingerprint(evaluation=False)) in keys and covers(trained[keys[k]], c)}


def first_images(scores: np.ndarray, n: int, captions_per_image: int = 5) -> np.ndarray:
    """The scores of the first ``n`` test images against their captions (:meth:`CaptionData.first_images`)."""
    if n <= 0 or n >= scores.shape[0]:
        return scores
    return scores[:n, : captions_per_image * n]


def by_cost(configs: dict[str, Config], length: int = 5, regions: int = 49) -> dict[str, Config]:
    """``configs`` with the most expensive first (one pair's work, :func:`~xmlib.sgraf.model.pair_bytes`,
    times the reasoning steps), so that submitted jobs end together instead of one long job running
    alone at the end."""
    from xmlib.sgraf.model import pair_bytes

    def cost(c: Config) -> float:
        return pair_bytes(c, length, regions) * (1 + (c.sgr_steps if c.aggregator in ("sgr", "joint") else 0))

    return dict(sorted(configs.items(), key=lambda kv: -cost(kv[1])))


VSE_JOB = "xmlib.sgraf.experiment:linear_vse"


@dataclass(frozen=True)
class ReferenceConfig(BaseConfig):
    """Everything the linear VSE reference job reads (its own key: the chapter's SGRAF fields cannot
    change it). Built from the chapter's config by :func:`reference_config`."""

    seed: int = 0
    data_dir: str = ""
    benchmark: str = "default"
    vocab_path: str = ""
    max_words: int = 12
    test_images: int = 0
    epochs: int = 15
    margin: float = 0.2
    max_steps: int = 0  # the chapter's step cap (0 = none)


def reference_config(cfg: Config) -> ReferenceConfig:
    return ReferenceConfig(seed=cfg.seed, data_dir=cfg.data_dir, benchmark=cfg.benchmark, vocab_path=cfg.vocab_path,
                           max_words=cfg.max_words, test_images=cfg.test_images, epochs=cfg.baseline_epochs,
                           margin=cfg.margin, max_steps=cfg.max_steps)


def linear_vse(cfg: ReferenceConfig, seed: int, workdir: Path) -> dict[str, Any]:
    """The linear VSE reference of Table 1 as a job (it then trains beside the SGRAF models): its test
    score matrix on the first ``test_images`` test images."""
    from xmlib.sgraf.baseline import LinearVSEConfig, linear_vse_reference

    _, _, _, test = load(cfg)
    n_test = test.first_images(cfg.test_images).n_images
    vse_cfg = LinearVSEConfig(epochs=cfg.epochs, margin=cfg.margin, seed=seed, max_steps=cfg.max_steps)
    return {"scores": np.asarray(linear_vse_reference(data_dir_of(cfg), vse_cfg, n_test=n_test, device=get_device()),
                                 dtype=np.float32)}


def load_model(cfg: Config, result) -> torch.nn.Module:
    """The trained model of a job's result (its best checkpoint), for figures."""
    from xmlib.core.checkpoint import load_checkpoint
    from xmlib.sgraf.model import SGRAFModel

    vocab, *_ = load(cfg)
    model = SGRAFModel(cfg.model(), len(vocab))
    model.load_state_dict(load_checkpoint(Path(result.workdir) / "best.pt")["model"])
    return model.to(get_device()).eval()


def outcomes(score_matrices: Sequence[np.ndarray], seeds: Sequence[int | None], captions_per_image: int = 5) -> Outcomes:
    """Per-seed R@K hits (K = 1, 5, 10 summed): images for image-to-text, captions for text-to-image."""
    per_seed = []
    for s in score_matrices:
        h_i, h_t = recall_hits(np.asarray(s), captions_per_image)
        per_seed.append({"i2t": h_i.sum(1), "t2i": h_t.sum(1)})
    return Outcomes.stack(per_seed, seeds)


def averaged(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> list[np.ndarray]:
    """SGRAF of each seed: the average of that seed's SGR and SAF score matrices."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} SGR matrices for {len(b)} SAF matrices")
    return [(np.asarray(x, dtype=np.float32) + np.asarray(y, dtype=np.float32)) / 2 for x, y in zip(a, b)]
