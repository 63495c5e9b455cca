"""The MediaEval'17 layout that the DCMM code reads (one split = interactions CSV + per-query features).

API
---
- ``write_mediaeval(root, split, interactions, visual, qrels=None, *, folds=None, meta=None,
  feature_dir="inception_resnet") -> Path`` — write one split (every file atomically).
- ``read_mediaeval(root, split, *, feature_dir=None) -> MediaEvalData`` — read, align and validate.
- ``MediaEvalData`` — ``feature_names``; ``queries`` (dict qid → ``MediaEvalQuery``, CSV order);
  ``qrels``; ``folds`` (list of qid lists or None); ``meta``; ``query_ids``; ``len``, ``[qid]``, iteration.
- ``MediaEvalQuery`` — ``query_id``, ``img_ids`` (n), ``features`` (n, F) float32 text LTR features h^0,
  ``rel`` (n,) int64, ``visual`` (n, D) float32 v_i, all in the interactions' row order.
- ``make_query_folds(query_ids, n_folds=5, seed=0) -> list[list[str]]``; ``write_folds(root, split,
  folds)``; ``read_folds(root, split) -> list[list[str]] | None``; ``qrels_from_interactions(df)``.

Layout (the released subset's tree, plus the project's additions marked +)
---------------------------------------------------------------------------
::

    {root}/interactions/interactions_{split}.csv       query_id, img_id, rel, <name>_feature ...
    {root}/DeepFeatures/{split}/{feature_dir}/{qid}_PreLogits.npy   (n_imgs, D) visual features
    {root}/DeepFeatures/{split}/imlist/{qid}_imlist.txt           image id of each .npy row
    {root}/qrels_{split}.json                        + pytrec_eval qrels {qid: {img_id: rel}}
    {root}/folds.json                                + {"split": ..., "folds": [[qid, ...] x 5]}
    {root}/meta.json                                 + free-form description

``split`` is ``train`` or ``test``. The released data uses ``feature_dir = "inception_resnet"``
(1536-d Inception-ResNet pre-logits); the reader takes the only folder beside ``imlist`` unless told.
Every column whose name ends in ``_feature`` is an LTR feature; as in the DCMM code they are used in
sorted name order. Ids stay strings (``"007"`` is not ``"7"``). The ``.npy`` file may list more images
than the CSV (and in another order): the reader re-orders rows through the image list. Without a qrels
file the reader derives qrels from the ``rel`` column; with one, it must agree with that column (an
image absent from the qrels counts as rel 0, pytrec_eval's rule).
"""

from __future__ import annotations

import io
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from xmlib.core.io import (
    atomic_path,
    atomic_save_npy,
    atomic_write_json,
    atomic_write_text,
    load_json_checked,
    load_npy_checked,
    read_text_checked,
    require_finite,
)
from xmlib.data.formats._common import FormatError, check_single_line, read_lines, require_file

__all__ = [
    "FEATURE_SUFFIX",
    "MediaEvalData",
    "MediaEvalQuery",
    "interactions_path",
    "make_query_folds",
    "qrels_from_interactions",
    "qrels_path",
    "read_folds",
    "read_mediaeval",
    "write_folds",
    "write_mediaeval",
]

FEATURE_SUFFIX = "_feature"
_ID_COLS = ("query_id", "img_id")
_QID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NA = ["", "NA", "N/A", "NaN", "nan", "null", "None"]


def interactions_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / "interactions" / f"interactions_{split}.csv"


def qrels_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / f"qrels_{split}.json"


def _features_root(root: Path, split: str) -> Path:
    return root / "DeepFeatures" / split


def _npy_path(root: Path, split: str, feature_dir: str, qid: str) -> Path:
    return _features_root(root, split) / feature_dir / f"{qid}_PreLogits.npy"


def _imlist_path(root: Path, split: str, qid: str) -> Path:
    return _features_root(root, split) / "imlist" / f"{qid}_imlist.txt"


@dataclass(frozen=True, eq=False)
class MediaEvalQuery:
    """One query's candidate list (graph G_q): n images in the interactions' row order."""

    query_id: str
    img_ids: list[str]
    features: np.ndarray  # (n, F) float32 text LTR features h_i^0
    rel: np.ndarray  # (n,) int64 relevance labels
    visual: np.ndarray  # (n, D) float32 visual features v_i (raw, not normalised)

    def __len__(self) -> int:
        return len(self.img_ids)


@dataclass(frozen=True, eq=False)
class MediaEvalData:
    """One split: queries in the order they first appear in the interactions CSV."""

    root: Path
    split: str
    feature_names: tuple[str, ...]
    queries: dict[str, MediaEvalQuery]
    qrels: dict[str, dict[str, int]]
    folds: list[list[str]] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def query_ids(self) -> list[str]:
        return list(self.queries)

    @property
    def visual_dim(self) -> int:
        return int(next(iter(self.queries.values())).visual.shape[1])

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, qid: str) -> MediaEvalQuery:
        return self.queries[qid]

    def __iter__(self) -> Iterator[MediaEvalQuery]:
        return iter(self.queries.values())


# ----------------------------------------------------------------------------------------- helpers
def qrels_from_interactions(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """pytrec_eval qrels ``{qid: {img_id: rel}}`` from the ``rel`` column."""
    out: dict[str, dict[str, int]] = {}
    for q, i, r in zip(df["query_id"].astype(str), df["img_id"].astype(str), df["rel"]):
        out.setdefault(q, {})[i] = int(r)
    return out


def make_query_folds(query_ids: Sequence[str], n_folds: int = 5, seed: int = 0) -> list[list[str]]:
    """Partition query ids into ``n_folds`` folds of near-equal size (seeded shuffle, deterministic)."""
    ids = sorted({str(q) for q in query_ids})
    if len(ids) != len(query_ids):
        raise ValueError("query_ids contains duplicates")
    if not 2 <= n_folds <= len(ids):
        raise ValueError(f"n_folds must be between 2 and the number of queries ({len(ids)}), got {n_folds}")
    random.Random(seed).shuffle(ids)
    return [ids[f::n_folds] for f in range(n_folds)]


def _check_folds(folds: Sequence[Sequence[str]], qids: Sequence[str], where: str) -> list[list[str]]:
    folds = [[str(q) for q in f] for f in folds]
    seen: dict[str, int] = {}
    for k, f in enumerate(folds):
        if not f:
            raise FormatError(f"{where}: fold {k} is empty")
        for q in f:
            if q in seen:
                raise FormatError(f"{where}: query {q!r} is in folds {seen[q]} and {k}; folds must be disjoint")
            seen[q] = k
    missing = [q for q in qids if q not in seen]
    extra = [q for q in seen if q not in set(qids)]
    if missing or extra:
        raise FormatError(
            f"{where}: folds must partition the split's queries; missing {missing[:5]}, unknown {extra[:5]}"
        )
    return folds


def write_folds(root: str | os.PathLike, split: str, folds: Sequence[Sequence[str]]) -> Path:
    """Write ``{root}/folds.json`` = ``{"split": split, "folds": [[qid, ...], ...]}`` (not checked here
    against the interactions; ``write_mediaeval`` and ``read_mediaeval`` check it)."""
    path = Path(root) / "folds.json"
    atomic_write_json(path, {"split": split, "folds": [[str(q) for q in f] for f in folds]})
    return path


def read_folds(root: str | os.PathLike, split: str) -> list[list[str]] | None:
    """The folds over ``split``'s queries from ``folds.json``; None if there is none for this split."""
    path = Path(root) / "folds.json"
    if not path.is_file():
        return None
    obj = load_json_checked(path, fix=_REWRITE)
    if not isinstance(obj, dict) or "folds" not in obj or "split" not in obj:
        raise FormatError(f"{path}: expected {{\"split\": ..., \"folds\": [[query ids], ...]}}")
    if obj["split"] != split:
        return None
    if not isinstance(obj["folds"], list) or not all(isinstance(f, list) for f in obj["folds"]):
        raise FormatError(path=path, record="field 'folds'", problem=f"is {obj['folds']!r:.60}",
                          expected="a list of lists of query ids", fix="rewrite it with write_folds")
    return [[str(q) for q in f] for f in obj["folds"]]


def _check_qid(qid: str, where: str) -> None:
    if not _QID_RE.fullmatch(qid) or qid in (".", ".."):
        raise FormatError(
            f"{where}: query id {qid!r} cannot name files ({{qid}}_PreLogits.npy); use letters, digits, "
            "'.', '_' or '-' (e.g. a number or a slug such as 'big-cats')"
        )


def _check_img_id(img: str, where: str) -> None:
    check_single_line(img, f"{where}: image id")
    if not img or img != img.strip():
        raise FormatError(f"{where}: image id {img!r} is empty or has surrounding whitespace")


def _check_qrels_agree(qrels: Mapping, df: pd.DataFrame, where: str) -> None:
    for q, i, r in zip(df["query_id"], df["img_id"], df["rel"]):
        judged = qrels.get(q, {}).get(i, 0)
        if int(judged) != int(r):
            raise FormatError(
                f"{where}: qrels give query {q!r} image {i!r} rel {judged} but the interactions' rel column "
                f"says {int(r)}; rebuild the qrels from the interactions (qrels_from_interactions)"
            )


def _normalise_interactions(df: pd.DataFrame, where: str) -> tuple[pd.DataFrame, list[str]]:
    """Check columns and values; ids as str, rel as int64, features as float64. Returns (df, feature names)."""
    missing = [c for c in (*_ID_COLS, "rel") if c not in df.columns]
    if missing:
        raise FormatError(
            f"{where}: column(s) {missing} missing; the interactions CSV needs query_id, img_id, rel and "
            f"one or more LTR feature columns named '*{FEATURE_SUFFIX}'"
        )
    feats = sorted(c for c in df.columns if str(c).endswith(FEATURE_SUFFIX))
    if not feats:
        raise FormatError(
            f"{where}: no LTR feature columns; every text feature must be a column whose name ends in "
            f"'{FEATURE_SUFFIX}' (found columns {list(df.columns)})"
        )
    if len(df) == 0:
        raise FormatError(f"{where}: no rows")
    df = df.copy()
    for c in _ID_COLS:
        if df[c].isna().any():
            raise FormatError(f"{where}: column {c!r} has empty values (row {int(df[c].isna().to_numpy().argmax())})")
        df[c] = [str(v) for v in df[c]]
    for c in ["rel", *feats]:
        try:
            vals = pd.to_numeric(df[c], errors="raise").astype(np.float64)
        except (ValueError, TypeError) as exc:
            raise FormatError(f"{where}: column {c!r} must be numeric ({exc})") from exc
        if not np.isfinite(vals.to_numpy()).all():
            bad = int((~np.isfinite(vals.to_numpy())).argmax())
            raise FormatError(path=where, record=f"data row {bad} (line {bad + 2} of the CSV)",
                              problem=f"column {c!r} has a missing or non-finite value ({df[c].iloc[bad]})",
                              expected="a finite number",
                              fix="fill in or drop the row (a missing LTR feature has no default)")
        df[c] = vals
    rel = df["rel"].to_numpy()
    if not (rel == np.round(rel)).all():
        raise FormatError(f"{where}: column 'rel' must hold integer relevance grades")
    df["rel"] = rel.astype(np.int64)
    dup = df.duplicated(list(_ID_COLS))
    if dup.any():
        r = df[dup].iloc[0]
        raise FormatError(f"{where}: query {r['query_id']!r} lists image {r['img_id']!r} twice")
    return df, feats


# ------------------------------------------------------------------------------------------ writer
def write_mediaeval(
    root: str | os.PathLike,
    split: str,
    interactions: pd.DataFrame,
    visual: Mapping[str, tuple[Sequence[str], np.ndarray]],
    qrels: Mapping[str, Mapping[str, int]] | None = None,
    *,
    folds: Sequence[Sequence[str]] | None = None,
    meta: Mapping | None = None,
    feature_dir: str = "inception_resnet",
) -> Path:
    """Write one split in the MediaEval'17 layout under ``root``; returns ``root``.

    interactions: one row per (query, image) candidate with query_id, img_id, rel and ``*_feature``
    columns (other columns are written too and ignored by the reader). visual: qid → (img_ids, array
    (n_imgs, D)); each query's images must include all its candidates. qrels: written as
    ``qrels_{split}.json``; default: derived from ``rel``. folds: query-id folds over this split
    (``folds.json``); meta: free-form JSON (``meta.json``). feature_dir: the folder name of the visual
    features (``inception_resnet`` in the released data; name ours after the extractor).
    """
    root = Path(root)
    where = str(interactions_path(root, split))
    df, _ = _normalise_interactions(interactions, where)
    qids = list(dict.fromkeys(df["query_id"]))
    for q in qids:
        _check_qid(q, where)
    for i in df["img_id"]:
        _check_img_id(i, where)
    check_single_line(feature_dir, "feature_dir")
    if not _QID_RE.fullmatch(feature_dir) or feature_dir == "imlist":
        raise ValueError(f"feature_dir must be a plain folder name other than 'imlist', got {feature_dir!r}")

    visual = {str(k): v for k, v in visual.items()}
    dims = set()
    per_query: dict[str, tuple[list[str], np.ndarray]] = {}
    for q, group in df.groupby("query_id", sort=False):
        if q not in visual:
            raise FormatError(f"visual features for query {q!r} are missing (it has {len(group)} rows in {where})")
        ids, arr = visual[q]
        ids = [str(i) for i in ids]
        arr = np.asarray(arr)
        vwhere = str(_npy_path(root, split, feature_dir, q))
        if arr.ndim != 2 or arr.shape[0] != len(ids):
            raise FormatError(
                f"{vwhere}: visual features of query {q!r} must have shape (len(img_ids), D) = "
                f"({len(ids)}, D), got {arr.shape}"
            )
        if arr.dtype.kind not in "fiu" or not np.isfinite(arr).all():
            raise FormatError(f"{vwhere}: visual features of query {q!r} must be finite numbers")
        for i in ids:
            _check_img_id(i, vwhere)
        if len(set(ids)) != len(ids):
            raise FormatError(f"{vwhere}: the image list of query {q!r} names an image twice")
        have = set(ids)
        lost = [i for i in group["img_id"] if i not in have]
        if lost:
            raise FormatError(f"{vwhere}: query {q!r} image {lost[0]!r} is in the interactions but has no visual row")
        dims.add(arr.shape[1])
        per_query[q] = (ids, arr if arr.dtype in (np.float16, np.float32) else arr.astype(np.float32))
    if len(dims) != 1:
        raise FormatError(f"visual features of the queries have different dimensions {sorted(dims)}")
    extra = sorted(set(visual) - set(qids))
    if extra:
        raise FormatError(f"visual features given for queries {extra[:5]} that are not in the interactions")

    qrels_obj = qrels_from_interactions(df) if qrels is None else {
        str(q): {str(i): int(r) for i, r in d.items()} for q, d in qrels.items()
    }
    _check_qrels_agree(qrels_obj, df, str(qrels_path(root, split)))
    if folds is not None:
        folds = _check_folds(folds, qids, str(root / "folds.json"))

    for q, (ids, arr) in per_query.items():
        atomic_save_npy(_npy_path(root, split, feature_dir, q), arr)
        atomic_write_text(_imlist_path(root, split, q), "".join(i + "\n" for i in ids))
    atomic_write_json(qrels_path(root, split), qrels_obj)
    if folds is not None:
        write_folds(root, split, folds)
    if meta is not None:
        atomic_write_json(root / "meta.json", dict(meta))
    out = interactions_path(root, split)
    with atomic_path(out) as tmp:  # the CSV last: a complete CSV means the per-query files are there
        df.to_csv(tmp, index=False)
    return root


# ------------------------------------------------------------------------------------------ reader
_REWRITE = "restore the split's files, or rewrite the split with write_mediaeval"


def _bad_qrels_entry(raw: object) -> str | None:
    """Where a qrels object breaks ``{qid: {img_id: int}}`` (None when it does not)."""
    if not isinstance(raw, dict):
        return f"the top level ({type(raw).__name__})"
    for q, d in raw.items():
        if not isinstance(d, dict):
            return f"query {q!r}"
        for i, r in d.items():
            if isinstance(r, bool) or not isinstance(r, int):
                return f"query {q!r} image {i!r} ({r!r})"
    return None


def _find_feature_dir(root: Path, split: str) -> str:
    base = _features_root(root, split)
    if not base.is_dir():
        raise FileNotFoundError(
            f"{base} is missing: expected DeepFeatures/{split}/<features>/{{qid}}_PreLogits.npy and "
            f"DeepFeatures/{split}/imlist/{{qid}}_imlist.txt (extract the dataset under {root})"
        )
    dirs = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name != "imlist")
    if len(dirs) != 1:
        raise FormatError(
            f"{base}: expected exactly one visual-feature folder beside 'imlist', found {dirs}; "
            "pass feature_dir= to choose one"
        )
    return dirs[0]


def _read_interactions(csv: Path) -> pd.DataFrame:
    """The interactions CSV as read by pandas (ids as str); a non-UTF-8 byte, an empty file or a row
    with the wrong number of fields raise :class:`FormatError` naming the file and the line."""
    text = read_text_checked(csv, fix=_REWRITE)
    if not text.strip():
        raise FormatError(path=csv, problem="the file is empty",
                          expected="a header query_id,img_id,rel,<name>_feature... and one row per candidate",
                          fix=_REWRITE)
    try:
        header = pd.read_csv(io.StringIO(text), nrows=0).columns
        return pd.read_csv(
            io.StringIO(text),
            dtype={c: str for c in _ID_COLS if c in header},
            keep_default_na=False,
            na_values={c: _NA for c in header if c not in _ID_COLS},
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise FormatError(path=csv, line=int(m.group(1)) if m else None, problem=f"not valid CSV ({exc})",
                          expected="the same number of comma-separated fields on every line as in the header",
                          fix=_REWRITE) from exc


def read_mediaeval(root: str | os.PathLike, split: str, *, feature_dir: str | None = None) -> MediaEvalData:
    """Read one split, aligning each query's visual rows to its interactions rows through the image list."""
    root = Path(root)
    csv = interactions_path(root, split)
    require_file(csv, "the interactions CSV (query_id, img_id, rel, *_feature)",
                 f"The MediaEval layout keeps it under {root}/interactions/")
    df, feats = _normalise_interactions(_read_interactions(csv), str(csv))
    for q in dict.fromkeys(df["query_id"]):
        _check_qid(q, str(csv))  # a query id names files: it must not lead out of the folder
    if feature_dir is not None and (not _QID_RE.fullmatch(feature_dir) or feature_dir in (".", "..", "imlist")):
        raise ValueError(f"feature_dir must be a plain folder name under {_features_root(root, split)}, got {feature_dir!r}")
    feature_dir = feature_dir or _find_feature_dir(root, split)

    queries: dict[str, MediaEvalQuery] = {}
    for q, group in df.groupby("query_id", sort=False):
        npy, iml = _npy_path(root, split, feature_dir, q), _imlist_path(root, split, q)
        require_file(npy, f"the visual features of query {q!r}", f"Every query in {csv.name} needs one")
        require_file(iml, f"the image list (row order of {npy.name}) of query {q!r}",
                     f"Every query in {csv.name} needs one")
        arr = load_npy_checked(npy, fix=_REWRITE)
        ids = [line.strip() for line in read_lines(iml)]
        if arr.ndim != 2:
            raise FormatError(f"{npy} has shape {arr.shape}; expected (n_imgs, D)")
        require_finite(arr, npy, f"the visual features of query {q!r}", fix=_REWRITE)
        if arr.shape[0] != len(ids):
            raise FormatError(
                f"{npy} has {arr.shape[0]} rows but {iml} lists {len(ids)} images; "
                "the image list must name the image of every row, in order"
            )
        row_of = {}
        for r, i in enumerate(ids):
            if i in row_of:
                raise FormatError(f"{iml}: image {i!r} is listed twice (lines {row_of[i] + 1} and {r + 1})")
            row_of[i] = r
        img_ids = list(group["img_id"])
        missing = [i for i in img_ids if i not in row_of]
        if missing:
            raise FormatError(
                f"query {q!r}: image {missing[0]!r} is in {csv.name} but not in {iml}; "
                "its visual features are missing"
            )
        rows = np.fromiter((row_of[i] for i in img_ids), dtype=np.int64, count=len(img_ids))
        queries[q] = MediaEvalQuery(
            query_id=q,
            img_ids=img_ids,
            features=group[feats].to_numpy(dtype=np.float32),  # (n, F)
            rel=group["rel"].to_numpy(dtype=np.int64),  # (n,)
            visual=np.ascontiguousarray(arr[rows], dtype=np.float32),  # (n, D)
        )
    dims = {qq.visual.shape[1] for qq in queries.values()}
    if len(dims) != 1:
        raise FormatError(f"{_features_root(root, split) / feature_dir}: queries have different visual dims {sorted(dims)}")

    qp = qrels_path(root, split)
    if qp.is_file():
        raw = load_json_checked(qp, fix=_REWRITE)
        bad = _bad_qrels_entry(raw)
        if bad is not None:
            raise FormatError(path=qp, record=bad, problem="is not a relevance grade",
                              expected="pytrec_eval qrels {query_id: {img_id: integer rel}}", fix=_REWRITE)
        qrels = {str(q): {str(i): int(r) for i, r in d.items()} for q, d in raw.items()}
        _check_qrels_agree(qrels, df, str(qp))
    else:
        qrels = qrels_from_interactions(df)

    folds = read_folds(root, split)
    if folds is not None:
        folds = _check_folds(folds, list(queries), str(root / "folds.json"))
    mp = root / "meta.json"
    meta = load_json_checked(mp, fix=_REWRITE) if mp.is_file() else {}
    return MediaEvalData(root=root, split=split, feature_names=tuple(feats), queries=queries,
                         qrels=qrels, folds=folds, meta=meta)
