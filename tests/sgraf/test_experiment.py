"""The chapter's runs: the ablation rows of Tables 3–5, which of them are a main model already, the
corner of a score matrix that stands for a smaller test set, and the order jobs are submitted in."""

import numpy as np
import torch

from xmlib.core.config import resolve_config
from xmlib.sgraf import experiment as X
from xmlib.sgraf.config import PROFILES, Config
from xmlib.sgraf.train import CaptionData


def test_ablations_share_one_schedule_and_the_main_models_are_recognised():
    cfg = resolve_config(Config, PROFILES, "default", {})
    main, abl = X.main_configs(cfg), X.ablation_configs(cfg)
    assert list(abl) == list(X.ablation_variants(cfg))
    assert {(c.epochs, c.saf_epochs, c.lr_step, c.test_images) for c in abl.values()} == {(4, 4, 3, 300)}
    assert abl["SV + SAF (i2t)"].attention == "i2t" and not abl["SV + SAF (i2t)"].use_global
    # the 3-step SGR row and the independent SAF row are the main models, tested on fewer images
    assert X.same_models(abl, main) == {"global + local, 3 steps": "SGR", "SAF (independent)": "SAF"}
    # a main model tested on fewer images than the ablations cannot stand for them
    assert X.same_models(abl, {k: c.replace(test_images=100) for k, c in main.items()}) == {}
    # another schedule for the ablations makes them other models
    longer = X.ablation_configs(cfg.replace(ablation_epochs=6))
    assert X.same_models(longer, main) == {}


def test_the_corner_of_a_score_matrix_is_the_score_matrix_of_the_first_images():
    rng = np.random.default_rng(0)
    data = CaptionData(np.zeros((6, 2, 3), np.float32), torch.zeros(30, 4, dtype=torch.long), torch.full((30,), 4), 5)
    scores = rng.normal(size=(6, 30))
    sub = data.first_images(4)
    corner = X.first_images(scores, 4)
    assert corner.shape == (sub.n_images, len(sub.lengths)) == (4, 20)
    np.testing.assert_array_equal(corner, scores[:4, :20])
    assert X.first_images(scores, 0) is scores and X.first_images(scores, 9) is scores


def test_the_costliest_ablations_are_submitted_first():
    cfg = resolve_config(Config, PROFILES, "default", {})
    order = list(X.by_cost(X.ablation_configs(cfg)))
    assert sorted(order) == sorted(X.ablation_configs(cfg))
    assert order[0] == "SV + SAF (i2t)"  # one node per region: the most work per pair
    assert order.index("global only, no reasoning") > order.index("global + local, 3 steps")
