"""Reading a built clipart benchmark: :func:`load` (through the MediaEval'17 reader), :func:`stats`
for the data card and :func:`examples` (pictures of candidate lists)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xmlib.core.io import load_json_checked
from xmlib.data.benchmarks._build import locate, read_stamp, rebuild_hint
from xmlib.data.benchmarks.clipart.builder import FEATURE_DIR, NAME, PROFILES, SPLIT, VERSION, build
from xmlib.data.benchmarks.clipart.lists import rank_scores

__all__ = ["load", "stats", "examples", "pictures"]

_REBUILD = rebuild_hint(NAME)


def _folder(source: str | os.PathLike) -> Path:
    return locate(NAME, PROFILES, source, VERSION, build)


def load(profile_or_path: str | os.PathLike = "default"):
    """Read a built benchmark through the MediaEval'17 reader: a ``MediaEvalData`` (split ``train``,
    5 ``folds``, ``meta`` with queries, query sets and feature sets). ``profile_or_path``: a profile
    name (built first if it has no build yet) or a built folder."""
    from xmlib.data.formats.mediaeval import read_mediaeval

    return read_mediaeval(_folder(profile_or_path), SPLIT, feature_dir=FEATURE_DIR)


def _trec(data, qids: Sequence[str], column: str) -> dict[str, float]:
    import pytrec_eval

    names = list(data.feature_names)
    j = names.index(column + "_feature")
    sign = -1.0 if column == "first_stage_rank" else 1.0
    run = {}
    for q in qids:
        qq = data[q]
        s = rank_scores(sign * qq.features[:, j].astype(np.float64))
        run[q] = {i: float(v) for i, v in zip(qq.img_ids, s)}
    qrels = {q: data.qrels[q] for q in qids}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"map", "P.20", "ndcg_cut.20"})
    res = ev.evaluate(run)
    return {
        "map": float(np.mean([res[q]["map"] for q in qids])),
        "P@20": float(np.mean([res[q]["P_20"] for q in qids])),
        "nDCG@20": float(np.mean([res[q]["ndcg_cut_20"] for q in qids])),
    }




def stats(source: str | os.PathLike | Any = "default") -> dict[str, Any]:
    """Summary of a built benchmark (a profile name, a folder, or loaded data), per query set
    (``all`` and ``no_flags``): number of queries, candidates per query, relevant-rate quartiles, and
    MAP / P@20 / nDCG@20 (pytrec_eval, tie rule of :func:`rank_scores`) of single-feature rankers over the
    candidate lists: the first stage (RRF), BM25 alone and MiniLM alone."""
    data = source if hasattr(source, "queries") else load(source)
    out: dict[str, Any] = {"images_in_collection": data.meta.get("counts", {}).get("images_in_collection"),
                           "images_featurised": data.meta.get("counts", {}).get("images_featurised")}
    for name, qids in data.meta["query_sets"].items():
        qids = [q for q in qids if q in data.queries]
        if not qids:
            continue
        n = np.array([len(data[q]) for q in qids])
        rate = np.array([data[q].rel.mean() for q in qids])
        out[name] = {
            "queries": len(qids),
            "candidates_mean": float(n.mean()),
            "candidates_min": int(n.min()),
            "relevant_rate_quartiles": [float(x) for x in np.quantile(rate, [0.25, 0.5, 0.75])],
            "relevant_rate_mean": float(rate.mean()),
            "lists_with_rate_10_90": float(np.mean((rate >= 0.1) & (rate <= 0.9))),
            "lists_without_relevant": int((rate == 0).sum()),
            "first_stage": _trec(data, qids, "first_stage_rank"),
            "bm25": _trec(data, qids, "bm25_all"),
            "minilm": _trec(data, qids, "minilm_cosine"),
        }
    return out


def examples(source: str | os.PathLike = "default", n: int = 4, *, n_images: int = 4, seed: int = 0,
             include_flags: bool = False) -> list[dict[str, Any]]:
    """Pictures for the data chapter: for ``n`` queries (seeded choice) of a built benchmark (a profile
    name or a folder), the query text and folder, and up to ``n_images`` relevant and non-relevant
    candidates in first-stage order, each a dict with ``img_id``, ``png`` (absolute path), ``title``,
    ``keywords`` (de-leaked) and ``folders``."""
    import pandas as pd

    root = _folder(source)
    meta = load_json_checked(root / "meta.json", fix=_REBUILD)
    imgs = pd.read_csv(root / "images.csv", dtype=str, keep_default_na=False).set_index("img_id")
    inter = pd.read_csv(root / "interactions" / f"interactions_{SPLIT}.csv", dtype={"query_id": str, "img_id": str},
                        usecols=["query_id", "img_id", "rel", "first_stage_rank_feature"])
    png_root = Path(meta["params"]["png_root"])
    qids = [q for q in meta["query_sets"]["all" if include_flags else "no_flags"]]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(qids), min(n, len(qids)), replace=False))
    out = []
    for k in chosen:
        q = qids[k]
        g = inter[inter["query_id"] == q].sort_values("first_stage_rank_feature", kind="stable")

        def pick(rows):
            res = []
            for i in rows["img_id"][:n_images]:
                r = imgs.loc[i]
                res.append({"img_id": i, "png": str(png_root / r["png"]), "title": r["title"],
                            "keywords": r["keywords"], "folders": r["folders"]})
            return res

        out.append({"query_id": q, "text": meta["queries"][q]["text"], "folder": meta["queries"][q]["folder"],
                    "relevant": pick(g[g["rel"] > 0]), "non_relevant": pick(g[g["rel"] == 0])})
    return out


@dataclass(frozen=True)
class Pictures:
    """The pictures of a built benchmark's candidates and the texts of its queries (for figures)."""

    png_root: Path
    png_of: dict[str, str]  # img_id -> PNG path relative to png_root
    query_texts: dict[str, str]

    def png(self, img_id: str) -> Path:
        return self.png_root / self.png_of[str(img_id)]

    def query_text(self, qid: str) -> str:
        return self.query_texts[str(qid)]


def pictures(source: str | os.PathLike = "default") -> Pictures | None:
    """:class:`Pictures` of a built clipart benchmark (a profile name or folder), or None when
    ``source`` is other data in the MediaEval'17 layout (e.g. the paper's), which ships no pictures."""
    p = Path(source)
    if p.exists() and read_stamp(p) is None:
        return None
    root = _folder(source)
    if not (root / "images.csv").is_file():
        return None
    import pandas as pd

    from xmlib.data.assets import asset_root
    from xmlib.data.sources.openclipart import png_folder

    meta = load_json_checked(root / "meta.json", fix=_REBUILD)
    imgs = pd.read_csv(root / "images.csv", dtype=str, keep_default_na=False)
    png_root = Path(meta["params"]["png_root"])
    if not png_root.is_dir():  # the cache moved since the build: the pictures are in this cache's asset
        png_root = png_folder(asset_root("openclipart-png"))
    return Pictures(png_root, dict(zip(imgs["img_id"], imgs["png"])), {q: v["text"] for q, v in meta["queries"].items()})
