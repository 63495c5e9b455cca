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
#   xmlib:
#     after:
#     - 02_dcmm
#     - 03_deepranking
#     - 04_sgraf
# ---

# %% [markdown]
# # Scorecard: every claim of the three papers
#
# The three paper chapters each end with a replication table. This page puts all of their claims in
# one table and one picture. Every row is judged the same way ({ref}`method`): each compared model is
# trained with several seeds and scored on the same test queries, and the effect's interval comes from
# a two-level bootstrap over the seeds and the queries. The verdict is **{term}`held`**, **{term}`reversed`**,
# **{term}`not resolved`**, or, for claims that a method is no worse than another, **{term}`no worse` (within margin)**.
# A "not resolved" row gives the smallest effect our setup could have detected ({term}`MDE`, 80 % power).
#
# The notebook takes two parameters: `profile` (the profile the chapters ran with) and `overrides`;
# `seed` is the first training seed of the chapters' seed set (a second set, e.g. `seed = 100`, shows
# whether the verdicts survive new seeds).

# %% [markdown]
# :::{admonition} In this chapter
# :class: tip
# **You will**
# - read every claim of the three papers in one table, with its verdict and the chapter section that tests it;
# - explain why a "not resolved" verdict is not a "false" one, using the smallest detectable effect (MDE);
# - check by simulation whether the book's interval covers the true effect as often as it says;
# - rerun the chapters with a second set of seeds and compare the two scorecards.
#
# **Before you start.** {ref}`method` (how a verdict is reached) and the replication sections of
# {doc}`02_dcmm`, {doc}`03_deepranking` and {doc}`04_sgraf`. Terms are in {ref}`glossary`.
#
# **Time.** Reading: {glue:text}`page_reading` (an estimate: the words of the page at 200 a minute).
# Running: {glue:text}`page_run` (see {doc}`/book/reproducing`).
# :::

# %% tags=["parameters", "remove-cell"]
profile = "default"  # smoke | default | paper
overrides = {}  # single values to change, e.g. {"seed": 100}

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import HTML, Markdown, display

from xmlib import replication as R
from xmlib.book import display as book_display
from xmlib.book import scorecard
from xmlib.book.configs import SCORECARD_PROFILES, ScorecardConfig
from xmlib.core.config import resolve_config
from xmlib.core.runinfo import start_run

book_display.setup()  # tables: whole cells, integer counts, "–" for missing values
cfg = resolve_config(ScorecardConfig, SCORECARD_PROFILES, profile, overrides)
run = start_run("scorecard", profile, cfg)
by_chapter = scorecard.load(profile, base_seed=cfg.seed)
judgements = [j for _, js in by_chapter.values() for j in js]
run

# %% tags=["remove-input"]
from myst_nb import glue

from xmlib.book.chapter import header_values

for key, value in header_values("05_scorecard", profile).items():
    glue(key, value, display=False)

# %% [markdown]
# ## The verdicts at a glance

# %%
counts = pd.DataFrame({scorecard.CHAPTERS[ch][0]: scorecard.verdict_counts(js) for ch, (_, js) in by_chapter.items()})
counts["all three papers"] = counts.sum(axis=1)
counts.index.name = "verdict"
display(counts)
budget = pd.DataFrame({scorecard.CHAPTERS[ch][0]: {k: str(v) for k, v in meta.items()} for ch, (meta, _) in by_chapter.items()})
budget = budget.astype(object).fillna("–")
budget.index.name = "what the CPU budget bought"
display(budget)

# %% [markdown]
# (scorecard-table)=
# ## Every claim
#
# Each claim links to the section of its chapter that tests it. "The paper's effect" is the difference
# the paper's own tables show (on its data); "ours" is the effect on our open benchmark with its 95 %
# interval, in the units of the claim's metric. A row whose method departs from the paper's says so
# under the claim.

# %%
display(HTML(scorecard.scorecard_html(by_chapter)))

# %% [markdown]
# ## All effects in one picture
#
# The effects are in percentage points of their metric, the unit of the book's "no worse" margin (one
# point: 0.01 of MAP, one point of precision, six points of rSum). Each line is a 95 % interval over
# seeds and test queries, the dot its estimate, the small crosses the effect of each seed alone
# (when the compared models share their seeds), and the hollow diamond the paper's own effect where its
# tables give one.

# %% mystnb={"figure": {"caption": "Every claim of the three papers: our effect with its 95 % interval over training seeds and test queries (colour = verdict), the per-seed effects (crosses) and the paper's effect (diamond), in percentage points of the claim's metric. The grey band is the ±1-point margin of the no-worse claims.", "name": "fig-scorecard-forest"}} tags=["hide-input"]
fig, ax = plt.subplots(figsize=(8, 0.36 * len(judgements) + 1.4))
scorecard.forest(judgements, ax=ax)
n = len(judgements)
for i, j in enumerate(judgements):
    if j.estimate.per_seed:
        ax.plot(np.array(j.estimate.per_seed) / j.claim.metric.point, [n - 1 - i] * len(j.estimate.per_seed), "x",
                color="0.35", ms=3.5, zorder=3)
fig.tight_layout()
fig.savefig(run.out_dir / "forest.png", dpi=120)
plt.show()

# %% [markdown]
# ## Does the interval mean what it says?
#
# The interval is built to contain the true effect 95 % of the time when both the seeds and the test
# queries are random. We check that on simulated data shaped like ours: two models paired by seed,
# with a random effect per seed, per query and per seed × query, and a known true effect. Each setting
# is simulated many times; the table gives the share of intervals that contained the true effect and
# the median degrees of freedom of the interval (low when the seeds dominate).

# %% tags=["hide-input"]
rng = np.random.default_rng(cfg.seed)
true_effect = 0.02
rows = []
for n_seeds in cfg.sim_seeds:
    for sd_seed, sd_query in ((0.02, 0.02), (0.05, 0.01), (0.0, 0.05)):
        hits, dfs = 0, []
        for i in range(cfg.n_sim):
            base = rng.normal(0.5, 0.2, size=cfg.sim_queries)
            b = base + rng.normal(0, 0.02, size=(n_seeds, cfg.sim_queries))
            a = b + true_effect + rng.normal(0, sd_seed, (n_seeds, 1)) + rng.normal(0, sd_query, (1, cfg.sim_queries)) \
                + rng.normal(0, 0.02, (n_seeds, cfg.sim_queries))
            seeds = tuple(range(n_seeds))
            est = R.difference(R.Outcomes({"q": a}, seeds), R.Outcomes({"q": b}, seeds), R.Metric("MAP"),
                               n_boot=cfg.sim_boot, seed=i)
            hits += est.low <= true_effect <= est.high
            dfs.append(est.df)
        rows.append({"seeds": n_seeds, "queries": cfg.sim_queries, "sd of a seed's effect": sd_seed,
                     "sd of a query's effect": sd_query, "simulations": cfg.n_sim,
                     "coverage of the 95% interval": hits / cfg.n_sim, "median df": float(np.median(dfs))})
calibration = pd.DataFrame(rows)
calibration.to_csv(run.out_dir / "calibration.csv", index=False)
display(calibration.round(3))
lo = calibration["coverage of the 95% interval"].min()
display(Markdown(f"Over these settings the coverage ranges from {lo:.1%} to "
                 f"{calibration['coverage of the 95% interval'].max():.1%} "
                 f"(each from {cfg.n_sim} simulations, so ±{1.96 * np.sqrt(0.05 * 0.95 / cfg.n_sim):.1%} "
                 "is simulation noise)."))

# %% [markdown]
# ## Reading the scorecard
#
# - Our benchmarks are not the papers' data, and our models are trained on two CPU cores. A "held"
#   row says the paper's *direction* holds on our data; the size of the effect is not comparable.
# - "Not resolved" is not "false": compare the MDE with the paper's effect. When the MDE is larger,
#   our setup could not have confirmed the claim even if it is true.
# - Rerunning the book with other seeds (`-p seed 100` on every chapter, then on this page) gives a
#   second scorecard; `python -m xmlib.book.scorecard --compare 0 100` sets the two side by side.

# %% tags=["remove-input"]
glue("sc_verdicts", ", ".join(f"{n} {v}" for v, n in counts["all three papers"].items() if n) or "no verdicts saved yet",
     display=False)
glue("sc_claims", len(judgements), display=False)
glue("sc_coverage", f"{lo:.1%} to {calibration['coverage of the 95% interval'].max():.1%}", display=False)

# %% [markdown]
# ## Rerunning this chapter
#
# ```{xmlib-rerun}
# ```

# %% [markdown]
# ## Summary
#
# - The three chapters test {glue:text}`sc_claims` claims of their papers, each judged the same way: models
#   trained with several seeds, an interval over the seeds and the test queries ({ref}`method`).
# - Verdicts over all three papers: {glue:text}`sc_verdicts`.
# - Each verdict is about the *direction* of a paper's claim on our open benchmarks, not about the size
#   of its effect.
# - A "not resolved" row is read against its MDE: when the MDE exceeds the paper's effect, our setup could
#   not have confirmed the claim.
# - On simulated data shaped like ours, the 95 % interval covered the true effect in {glue:text}`sc_coverage`
#   of the simulations, per setting.
