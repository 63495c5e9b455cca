# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Shared building blocks
#
# The three papers of this book share three ingredients. They compare vectors (cosine similarity
# in DCMM and SGRAF, squared Euclidean distance in Deep Ranking), they learn from *pairs* of items
# of which one should rank above the other (a hinge in Deep Ranking and SGRAF, the logistic {term}`BPR` loss
# in DCMM), and they are judged by ranking metrics that reward putting relevant items first. This
# chapter sets each of them up once: the equation, the `xmlib` function that computes it, a check
# against a plain Python loop, and a picture.
#
# The notebook takes two parameters: `profile` (`smoke`, `default` or `paper`) and `overrides`,
# a dictionary of single values to change.

# %% [markdown]
# :::{admonition} In this chapter
# :class: tip
# **You will**
# - derive $D = 2 - 2\cos$ for unit vectors, and explain why Deep Ranking's gap must stay below 4;
# - derive the gradients of the hinge and BPR losses, and explain what each does to a pair that is
#   already well ordered;
# - compute P@k, AP and nDCG by hand, and explain two details of `trec_eval` (the divisor of P@k, ties);
# - rerun the chapter with another margin and read which training curve moves.
#
# **Before you start.** No earlier chapter. Basic PyTorch; the symbols are listed in {ref}`notation`,
# the terms in {ref}`glossary`.
#
# **Time.** Reading: {glue:text}`page_reading` (an estimate: the words of the page at 200 a minute).
# Running: {glue:text}`page_run` (see {doc}`/book/reproducing`).
# :::

# %% tags=["parameters", "remove-cell"]
profile = "default"  # smoke | default | paper
overrides = {}  # e.g. {"epochs": 10}

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from xmlib.book import display as book_display
from xmlib.book.configs import BLOCKS_PROFILES, BlocksConfig
from xmlib.core.config import resolve_config
from xmlib.core.device import get_device
from xmlib.core.runinfo import start_run
from xmlib.core.train import fit
from xmlib.distances import cosine_similarity_matrix, l2_normalize, squared_euclidean_matrix
from xmlib.losses import bpr_loss, pairwise_hinge
from xmlib.metrics.ranking import evaluate_run

book_display.setup()  # tables: whole cells, integer counts, "–" for missing values
cfg = resolve_config(BlocksConfig, BLOCKS_PROFILES, profile, overrides)
run = start_run("blocks", profile, cfg)
device = get_device()
run

# %% [markdown]
# This chapter replicates no paper, so its `paper` profile only makes the toy problems larger. The
# table is generated from the two configs.

# %% tags=["remove-input"]
from myst_nb import glue

from xmlib.book.chapter import config_table, header_values

for key, value in header_values("00_building_blocks", profile).items():
    glue(key, value, display=False)
config_table(resolve_config(BlocksConfig, BLOCKS_PROFILES, "paper"), cfg, [
    ("random vectors", "n_points"), ("their dimension", "dim"), ("toy queries", "n_queries"),
    ("candidates per query", "docs_per_query"), ("epochs", "epochs"), ("learning rate (Adam)", "lr"),
    ("hinge margin γ", "margin"), ("seed", "seed"),
], columns=("paper profile", f"this page ({profile})"))

# %% [markdown]
# ## Distances on the unit sphere
#
# For two vectors $x, y \in \mathbb{R}^d$ the cosine similarity and the squared Euclidean distance
# are
#
# $$
# \begin{aligned}
# \cos(x, y) &= \frac{x^\top y}{\lVert x \rVert_2 \, \lVert y \rVert_2}, \\
# D(x, y) &= \lVert x - y \rVert_2^2 = \lVert x \rVert_2^2 + \lVert y \rVert_2^2 - 2\, x^\top y .
# \end{aligned}
# $$ (eq-blocks-cos-dist)
#
# DCMM weighs the edges of its graph by the cosine of two images' features (its Eq. 5), SGRAF
# attends over image regions by cosine, and Deep Ranking compares embeddings by $D$ (its Eq. 1).
# Once the vectors are normalised to unit length, $\lVert x \rVert = \lVert y \rVert = 1$ and
# {eq}`eq-blocks-cos-dist` gives
#
# $$
# D(x, y) = 2 - 2 \cos(x, y), \qquad 0 \le D(x, y) \le 4 .
# $$ (eq-blocks-sphere)
#
# So on the sphere the two are the same ordering of neighbours, read in opposite directions, and
# a squared distance can never exceed 4. This is why Deep Ranking's gap parameter $g$ must stay
# below 4 once its embeddings are L2-normalised: a larger gap asks for the impossible.
#
# {py:mod}`xmlib.distances` computes both as one matrix product. First we check them against a plain loop
# over pairs, in single and double precision.

# %% tags=["nbval-check-output"]
def cosine_loop(x, y):
    out = torch.empty(len(x), len(y), dtype=x.dtype)
    for i in range(len(x)):
        for j in range(len(y)):
            out[i, j] = (x[i] * y[j]).sum() / (x[i].norm() * y[j].norm())
    return out


def sq_euclid_loop(x, y):
    out = torch.empty(len(x), len(y), dtype=x.dtype)
    for i in range(len(x)):
        for j in range(len(y)):
            out[i, j] = ((x[i] - y[j]) ** 2).sum()
    return out


gen = torch.Generator().manual_seed(cfg.seed)
for dtype in (torch.float32, torch.float64):
    x = torch.randn(12, cfg.dim, generator=gen, dtype=dtype)
    y = torch.randn(9, cfg.dim, generator=gen, dtype=dtype)
    torch.testing.assert_close(cosine_similarity_matrix(x, y), cosine_loop(x, y))
    torch.testing.assert_close(squared_euclidean_matrix(x, y), sq_euclid_loop(x, y))
    print(f"{dtype}: matrix forms agree with the loops")

# %% [markdown]
# Now {eq}`eq-blocks-sphere` on random vectors: before normalisation the squared distance is not a
# function of the cosine (a cloud of points); after it, every pair falls on the line $D = 2 - 2\cos$.

# %% mystnb={"figure": {"caption": "Squared Euclidean distance against cosine similarity for random pairs, before (left) and after (right) L2-normalisation. On the unit sphere every pair lies on the line D = 2 − 2 cos.", "name": "fig-blocks-sphere"}} tags=["hide-input"]
x = torch.randn(cfg.n_points, cfg.dim, generator=gen, dtype=torch.float64) * torch.rand(cfg.n_points, 1, generator=gen, dtype=torch.float64) * 3
y = torch.randn(cfg.n_points, cfg.dim, generator=gen, dtype=torch.float64) * torch.rand(cfg.n_points, 1, generator=gen, dtype=torch.float64) * 3
cos_raw = cosine_similarity_matrix(x, y).diagonal()
d_raw = squared_euclidean_matrix(x, y).diagonal()
xn, yn = l2_normalize(x), l2_normalize(y)
d_unit = squared_euclidean_matrix(xn, yn).diagonal()
gap = (d_unit - (2 - 2 * cosine_similarity_matrix(xn, yn).diagonal())).abs().max().item()

fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
axes[0].scatter(cos_raw, d_raw, s=6, alpha=0.6)
axes[0].set(title="raw vectors", xlabel="cos(x, y)", ylabel="‖x − y‖²")
axes[1].scatter(cos_raw, d_unit, s=6, alpha=0.6, label="pairs")
c = np.linspace(-1, 1, 50)
axes[1].plot(c, 2 - 2 * c, color="C3", lw=1, label="2 − 2 cos")
axes[1].set(title="unit vectors", xlabel="cos(x, y)", ylabel="‖x − y‖²", ylim=(-0.1, 4.1))
axes[1].legend()
fig.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
print(f"largest |D - (2 - 2 cos)| over {cfg.n_points} unit pairs: {'< 1e-12' if gap < 1e-12 else gap}")
# Same neighbours: ranking a gallery by cosine (descending) or by D (ascending) gives the same order.
q, gallery = xn[:5], yn
order_cos = torch.argsort(cosine_similarity_matrix(q, gallery), dim=1, descending=True, stable=True)
order_d = torch.argsort(squared_euclidean_matrix(q, gallery), dim=1, stable=True)
print("same nearest-neighbour order:", bool((order_cos[:, :10] == order_d[:, :10]).all()))

# %% [markdown]
# ## Pairwise ranking losses
#
# A ranking model scores items; it is trained on pairs $(d^+, d^-)$ where $d^+$ should rank above
# $d^-$ for the query $q$. Both losses below are functions of the score margin
# $\Delta = s(q, d^+) - s(q, d^-)$. The hinge with margin $\gamma$,
#
# $$
# \ell_{\text{hinge}}(\Delta) = \max(0,\ \gamma - \Delta),
# $$ (eq-blocks-hinge)
#
# is Deep Ranking's triplet loss (its Eq. 3, with $\Delta$ a difference of distances) and SGRAF's
# ranking loss. The logistic loss of Bayesian Personalised Ranking {cite}`rendle2009bpr`,
#
# $$
# \ell_{\text{BPR}}(\Delta) = -\log \sigma(\Delta) = \log\bigl(1 + e^{-\Delta}\bigr),
# $$ (eq-blocks-bpr)
#
# is DCMM's Eq. (7). Their derivatives tell what each does with a pair that is already well ordered:
#
# $$
# \frac{\partial \ell_{\text{hinge}}}{\partial \Delta} = -\mathbb{1}[\Delta < \gamma],
# \qquad
# \frac{\partial \ell_{\text{BPR}}}{\partial \Delta} = -\sigma(-\Delta) = -\frac{1}{1 + e^{\Delta}} .
# $$ (eq-blocks-grads)
#
# The hinge ignores a pair once its margin exceeds $\gamma$; BPR keeps pushing every pair, with a
# force that decays exponentially. {py:mod}`xmlib.losses` computes BPR as $\operatorname{softplus}(-\Delta)$,
# which does not overflow for large negative $\Delta$ as the naive $-\log\sigma(\Delta)$ would.

# %% tags=["nbval-check-output"]
for dtype in (torch.float32, torch.float64):
    delta = torch.randn(200, generator=gen, dtype=dtype) * 4
    hinge_ref = torch.tensor([max(0.0, cfg.margin - d) for d in delta.tolist()], dtype=dtype)
    bpr_ref = torch.tensor([-math.log(1 / (1 + math.exp(-d))) for d in delta.tolist()], dtype=dtype)
    torch.testing.assert_close(pairwise_hinge(delta, cfg.margin, reduction="none"), hinge_ref)
    torch.testing.assert_close(bpr_loss(delta, reduction="none"), bpr_ref)
    print(f"{dtype}: hinge and BPR agree with the loops")
print("BPR at Delta = -1000:", bpr_loss(torch.tensor([-1000.0]), reduction="none").item(), "(finite)")

# %% mystnb={"figure": {"caption": "The hinge (margin γ) and the BPR loss as functions of the score margin Δ (left), and the force each applies to a pair, −∂ℓ/∂Δ (right).", "name": "fig-blocks-losses"}} tags=["hide-input"]
delta = torch.linspace(-4, 6, 401, dtype=torch.float64, requires_grad=True)
curves = {"hinge": pairwise_hinge(delta, cfg.margin, reduction="none"), "BPR": bpr_loss(delta, reduction="none")}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
for name, values in curves.items():
    (grad,) = torch.autograd.grad(values.sum(), delta)
    axes[0].plot(delta.detach(), values.detach(), label=name)
    axes[1].plot(delta.detach(), -grad, label=name)
axes[0].set(xlabel="Δ = s(q, d⁺) − s(q, d⁻)", ylabel="loss", title="loss")
axes[1].set(xlabel="Δ", ylabel="−∂ℓ/∂Δ", title="push on the pair")
for ax in axes:
    ax.axvline(cfg.margin, color="grey", lw=0.6, ls=":")
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Both losses on a toy ranking problem
#
# To see the losses at work we train a linear scorer $s(q, d) = w^\top x_{q,d}$ on a synthetic
# learning-to-rank problem: each query has {glue:text}`n_docs` candidates with feature vectors
# $x_{q,d}$, and a candidate is relevant when a hidden linear score plus noise is in the top fifth
# of its list. Training uses every (relevant, non-relevant) pair of each query, as DCMM does. We use
# `xmlib.core.train.fit`, the training loop shared by every chapter: it selects the epoch with the
# best *validation* MAP and checkpoints after each epoch.

# %%
def toy_problem(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(cfg.n_queries, cfg.docs_per_query, cfg.n_features, generator=g)
    w_true = torch.randn(cfg.n_features, generator=g)
    latent = x @ w_true + 1.5 * torch.randn(cfg.n_queries, cfg.docs_per_query, generator=g)
    k = max(1, cfg.docs_per_query // 5)
    thresh = latent.topk(k, dim=1).values[:, -1:]
    rel = (latent >= thresh).long()
    return x, rel


def pair_deltas(scores, rel):
    """All (relevant, non-relevant) score margins of each query: (B, N) -> (P,)."""
    delta = scores[:, :, None] - scores[:, None, :]
    mask = (rel[:, :, None] == 1) & (rel[:, None, :] == 0)
    return delta[mask]


def to_run(scores, rel, offset):
    run_, qrels = {}, {}
    for q in range(scores.shape[0]):
        qid = f"q{offset + q}"
        run_[qid] = {f"d{d}": float(scores[q, d]) for d in range(scores.shape[1])}
        qrels[qid] = {f"d{d}": int(rel[q, d]) for d in range(scores.shape[1])}
    return run_, qrels


x, rel = toy_problem(cfg, cfg.seed)
n_train = int(0.8 * cfg.n_queries)
x_tr, rel_tr, x_va, rel_va = x[:n_train].to(device), rel[:n_train].to(device), x[n_train:], rel[n_train:]


def train_toy_ranker(loss_name, epochs, checkpoint_dir=None):
    torch.manual_seed(cfg.seed)
    model = torch.nn.Linear(cfg.n_features, 1, bias=False).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = (lambda d: pairwise_hinge(d, cfg.margin)) if loss_name == "hinge" else bpr_loss

    def batches(epoch):
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        return [order[i : i + 16] for i in range(0, n_train, 16)]

    def step(idx):
        return loss_fn(pair_deltas(model(x_tr[idx]).squeeze(-1), rel_tr[idx]))

    def evaluate():
        s = model(x_va.to(device)).squeeze(-1).cpu()
        run_, qrels = to_run(s, rel_va, n_train)
        per_q = evaluate_run(qrels, run_, measures=("map",))
        return {"val_map": float(np.mean([m["map"] for m in per_q.values()]))}

    result = fit(model, opt, epochs=epochs, batches=batches, step=step, evaluate=evaluate,
                 select="val_map", checkpoint_dir=checkpoint_dir, fingerprint=f"{loss_name}-{cfg.fingerprint()}",
                 desc=f"{loss_name} ranker")
    return model, result


results = {name: train_toy_ranker(name, cfg.epochs) for name in ("hinge", "BPR")}

# %% mystnb={"figure": {"caption": "Validation MAP of the linear ranker trained with each loss, per epoch.", "name": "fig-blocks-curves"}} tags=["hide-input"]
fig, ax = plt.subplots(figsize=(5.5, 3.4))
for name, (_, res) in results.items():
    ax.plot(res.column("epoch"), res.column("val_map"), marker=".", label=f"{name} (best epoch {res.best_epoch})")
ax.set(xlabel="epoch", ylabel="validation MAP")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# **Interrupted runs lose nothing.** `fit` writes a checkpoint (model, optimiser, RNG state,
# history) atomically after every epoch. Below, a BPR run is stopped halfway and started again on
# the same folder: it resumes from its checkpoint and ends with exactly the weights of the
# uninterrupted run above.

# %% tags=["nbval-check-output"]
ckpt = run.out_dir / "resume-demo"
if ckpt.exists():
    import shutil

    shutil.rmtree(ckpt)
half = max(1, cfg.epochs // 2)
train_toy_ranker("BPR", half, checkpoint_dir=ckpt)  # "interrupted" after half the epochs
model_resumed, res_resumed = train_toy_ranker("BPR", cfg.epochs, checkpoint_dir=ckpt)
model_full, res_full = results["BPR"]
print("resumed from epoch", res_resumed.resumed_from)
print("same weights as the uninterrupted run:", torch.equal(model_resumed.weight, model_full.weight))
print("same selected epoch:", res_resumed.best_epoch == res_full.best_epoch)

# %% [markdown]
# ## What a ranking metric rewards
#
# For one query with a ranked list $d_1, d_2, \dots$ and binary relevance $r_i \in \{0, 1\}$ of
# the item at rank $i$, with $R$ relevant items in total:
#
# $$
# \begin{aligned}
# \mathrm{P@}k &= \frac{1}{k}\sum_{i=1}^{k} r_i,
# \qquad
# \mathrm{AP} = \frac{1}{R}\sum_{i:\ r_i = 1} \mathrm{P@}i, \\
# \mathrm{nDCG@}k &= \frac{\sum_{i=1}^{k} r_i / \log_2(i+1)}{\sum_{i=1}^{\min(k, R)} 1 / \log_2(i+1)} .
# \end{aligned}
# $$ (eq-blocks-metrics)
#
# MAP is the mean of AP over queries. These are the measures of DCMM's Table 1, computed exactly as
# `trec_eval` does through `pytrec_eval` in {py:mod}`xmlib.metrics.ranking`. Two details of `trec_eval`
# matter: P@$k$ divides by $k$ even when the list is shorter, and items with *equal* scores are
# ordered by document id, which can leak an order into a tied ranking (our benchmarks shuffle each
# list with the seed and say so). First a check against the formulas written as loops:

# %% tags=["nbval-check-output"]
def metrics_loop(rels_in_rank_order, k):
    r = list(rels_in_rank_order)
    R = sum(r)
    p_at_k = sum(r[:k]) / k
    ap = sum(sum(r[: i + 1]) / (i + 1) for i in range(len(r)) if r[i]) / R if R else 0.0
    dcg = sum(r[i] / math.log2(i + 2) for i in range(min(k, len(r))))
    idcg = sum(1 / math.log2(i + 2) for i in range(min(k, R)))
    return {"P": p_at_k, "AP": ap, "nDCG": dcg / idcg if idcg else 0.0}


rng = np.random.default_rng(cfg.seed)
worst = 0.0
for trial in range(20):
    n = int(rng.integers(5, 40))
    r = (rng.random(n) < 0.3).astype(int)
    r[rng.integers(n)] = 1
    scores = rng.permutation(n).astype(float)  # distinct scores: no ties
    order = np.argsort(-scores)
    ref = metrics_loop(r[order], k=10)
    got = evaluate_run({"q": {f"d{i}": int(r[i]) for i in range(n)}}, {"q": {f"d{i}": scores[i] for i in range(n)}},
                       measures=("P_10", "map", "ndcg_cut_10"))["q"]
    worst = max(worst, abs(got["P_10"] - ref["P"]), abs(got["map"] - ref["AP"]), abs(got["ndcg_cut_10"] - ref["nDCG"]))
print("largest difference between trec_eval and the loops over 20 random lists:", "< 1e-6" if worst < 1e-6 else worst)

# %% [markdown]
# What do the three reward? Take a list of {glue:text}`list_length` items with a single relevant
# item and move it down from rank 1. AP falls as $1/i$ — a relevant item at rank 2 is already worth
# half — nDCG falls as $1/\log_2(i+1)$, slowly, and P@10 does not care where the item is as long
# as it is in the top 10, and then drops to zero.

# %% mystnb={"figure": {"caption": "One relevant item moved down a list: AP (= MAP for one query) punishes rank sharply, nDCG gently, P@10 only at the cut-off.", "name": "fig-blocks-metrics"}} tags=["hide-input"]
rows = []
n = cfg.list_length
for pos in range(1, n + 1):
    scores = {f"d{i}": float(n - i) for i in range(n)}  # d0 ranked first
    qrels = {"q": {f"d{i}": int(i == pos - 1) for i in range(n)}}
    m = evaluate_run(qrels, {"q": scores}, measures=("P_10", "map", "ndcg"))["q"]
    rows.append({"rank of the relevant item": pos, "AP": m["map"], "nDCG": m["ndcg"], "P@10": m["P_10"]})
sweep = pd.DataFrame(rows).set_index("rank of the relevant item")
ax = sweep.plot(figsize=(5.5, 3.4), marker=".", ms=3)
ax.set(ylabel="metric value")
plt.tight_layout()
plt.show()

# %% [markdown]
# A second view: with *two* relevant items in a list of ten, which of two rankings is better —
# one relevant item at rank 1 and the other at rank 10, or both at ranks 3 and 4?

# %% tags=["nbval-check-output"]
def score_ranking(positions, n=10):
    qrels = {"q": {f"d{i}": int(i + 1 in positions) for i in range(n)}}
    run_ = {"q": {f"d{i}": float(n - i) for i in range(n)}}
    m = evaluate_run(qrels, run_, measures=("P_5", "map", "ndcg"))["q"]
    return {"P@5": m["P_5"], "AP": m["map"], "nDCG": m["ndcg"]}


table = pd.DataFrame({"ranks 1 and 10": score_ranking({1, 10}), "ranks 3 and 4": score_ranking({3, 4})}).T.round(3)
print(table.to_string())

# %% tags=["remove-input"]
def prefers(metric):
    first, second = table.loc["ranks 1 and 10", metric], table.loc["ranks 3 and 4", metric]
    side = "the first ranking" if first > second else "the second" if second > first else "neither"
    return f"{metric} prefers {side} ({first:.3f} against {second:.3f})"


display(Markdown(f"{prefers('AP')}: a relevant item at the very top weighs most; {prefers('nDCG')}; "
                 f"{prefers('P@5')}. A claim that one model \"beats\" another is a claim about a metric; "
                 "the chapters report several, as the papers do."))

# %% [markdown]
# ## Rerunning this chapter
#
# ```{xmlib-rerun}
# ```

# %% [markdown]
#
# ## Summary
#
# - On the unit sphere the squared distance is $2 - 2\cos$ ({eq}`eq-blocks-sphere`): cosine and
#   squared distance give the same neighbours, and no squared distance exceeds 4
#   ({numref}`fig-blocks-sphere`).
# - The hinge stops pushing a pair once its margin passes $\gamma$; BPR never stops, with a force that
#   decays exponentially ({eq}`eq-blocks-grads`, {numref}`fig-blocks-losses`).
# - {py:mod}`xmlib.distances`, {py:mod}`xmlib.losses` and {py:mod}`xmlib.metrics.ranking` agree with plain loops in float32 and
#   float64. The cells assert it, so a page that renders has passed these checks.
# - Both losses train a linear ranker on a toy problem with {glue:text}`n_docs` candidates per query
#   ({numref}`fig-blocks-curves`). A run stopped halfway and resumed ends with
#   {glue:text}`resume_same` weights as the uninterrupted run.
# - AP punishes a low rank sharply, nDCG gently, P@10 only at the cut-off ({numref}`fig-blocks-metrics`),
#   and two metrics can prefer different rankings of the same items.
#
# | building block | equation | `xmlib` | used by |
# |---|---|---|---|
# | cosine similarity | {eq}`eq-blocks-cos-dist` | {py:func}`distances.cosine_similarity_matrix <xmlib.distances.cosine_similarity_matrix>` | DCMM-cos, SGRAF attention (each in its own batched form) |
# | squared Euclidean distance | {eq}`eq-blocks-cos-dist`, {eq}`eq-blocks-sphere` | {py:func}`distances.squared_euclidean_matrix <xmlib.distances.squared_euclidean_matrix>` | Deep Ranking |
# | hinge | {eq}`eq-blocks-hinge` | {py:func}`losses.pairwise_hinge <xmlib.losses.pairwise_hinge>` | Deep Ranking, SGRAF |
# | BPR | {eq}`eq-blocks-bpr` | {py:func}`losses.bpr_loss <xmlib.losses.bpr_loss>` | DCMM |
# | P@k, AP, nDCG | {eq}`eq-blocks-metrics` | {py:func}`metrics.ranking.evaluate_run <xmlib.metrics.ranking.evaluate_run>` | DCMM |

# %% tags=["remove-input"]
from myst_nb import glue

glue("n_docs", cfg.docs_per_query, display=False)
glue("list_length", cfg.list_length, display=False)
glue("resume_same", "the same" if torch.equal(model_resumed.weight, model_full.weight) else "different", display=False)

# %% [markdown]
# ## Exercises
#
# **Exercise 1 (derive).** A linear scorer $s(q, d) = w^\top x_{q,d}$ is trained on one pair with
# $\Delta = w^\top (x^+ - x^-)$. Derive $\partial \ell / \partial w$ for the hinge {eq}`eq-blocks-hinge`
# and for BPR {eq}`eq-blocks-bpr`. Which pairs give the hinge no gradient at all?
#
# *Hint.* Chain rule through $\Delta$: $\partial \Delta / \partial w = x^+ - x^-$, then use {eq}`eq-blocks-grads`.
#
# :::{dropdown} Solution
# For the hinge, $\partial \ell / \partial w = -\mathbb{1}[\Delta < \gamma]\,(x^+ - x^-)$: a pair whose
# margin is at least $\gamma$ gives no gradient (at $\Delta = \gamma$ the hinge has a kink, and any value
# between the two one-sided derivatives is a subgradient). For BPR,
# $\partial \ell / \partial w = -\sigma(-\Delta)\,(x^+ - x^-) = -\frac{x^+ - x^-}{1 + e^{\Delta}}$:
# every pair pulls $w$ towards $x^+ - x^-$, with a weight that decays like $e^{-\Delta}$ once the pair
# is well ordered.
# :::
#
# **Exercise 2 (derive).** Show that both losses bound the ranking error $\mathbb{1}[\Delta \le 0]$ of a
# pair from above: $\max(0, 1 - \Delta) \ge \mathbb{1}[\Delta \le 0]$ and
# $\ell_{\text{BPR}}(\Delta) / \log 2 \ge \mathbb{1}[\Delta \le 0]$. Then show that $\ell_{\text{BPR}}$ is convex.
#
# *Hint.* Treat $\Delta \le 0$ and $\Delta > 0$ apart; for convexity differentiate {eq}`eq-blocks-grads` once more.
#
# :::{dropdown} Solution
# For $\Delta \le 0$: $1 - \Delta \ge 1$, and $\log(1 + e^{-\Delta}) \ge \log 2$ because $e^{-\Delta} \ge 1$.
# For $\Delta > 0$ the right-hand side is 0 and both losses are non-negative. So minimising either loss
# minimises an upper bound on the number of misordered pairs. Convexity:
# $\frac{d^2}{d\Delta^2} \log(1 + e^{-\Delta}) = \frac{d}{d\Delta}\bigl(-\sigma(-\Delta)\bigr) = \sigma(\Delta)\,\sigma(-\Delta) > 0$.
# The hinge is convex too, as the maximum of two linear functions.
# :::
#
# **Exercise 3 (predict, then run).** Set the margin to zero and rerun the chapter:
#
# ```bash
# python -m xmlib.book.run notebooks/00_building_blocks.py --profile smoke -p margin 0.0
# ```
#
# Before you run it: which of the two curves of {numref}`fig-blocks-curves` will change, and which
# weights $w$ make the hinge loss zero on every pair?
#
# *Hint.* Look at which of the two losses reads `cfg.margin`, and set $w = 0$ in {eq}`eq-blocks-hinge`.
#
# :::{dropdown} Solution
# The BPR curve does not move: BPR does not use the margin, and both runs start from the same seed and
# see the same batches. The hinge curve can change. With $\gamma = 0$ the hinge is $\max(0, -\Delta)$:
# a pair ordered by any amount costs nothing, and $w = 0$ (every $\Delta = 0$) already gives zero loss
# on every pair. The loss no longer asks for any separation, so nothing but the misordered pairs shapes
# $w$. How much the validation MAP changes is what the rerun's figure shows.
# :::
#
# **Exercise 4 (compute by hand).** A query has only 5 candidates, all relevant, ranked in any order.
# What do P@10, AP and nDCG@10 come to under `trec_eval`'s rules?
#
# *Hint.* Read the two details under {eq}`eq-blocks-metrics`: what P@$k$ divides by, and the upper
# limit of the sum in nDCG's denominator.
#
# :::{dropdown} Solution
# P@10 $= 5/10 = 0.5$, since P@$k$ divides by $k$ even when the list is shorter. AP $= 1$: every
# relevant item has precision 1 at its rank. nDCG@10 $= 1$: the ideal list holds $\min(k, R) = 5$
# relevant items, as the ranked list does. To check:
# `evaluate_run({"q": {f"d{i}": 1 for i in range(5)}}, {"q": {f"d{i}": float(5 - i) for i in range(5)}}, measures=("P_10", "map", "ndcg_cut_10"))`.
# :::
