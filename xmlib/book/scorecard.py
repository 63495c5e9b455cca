"""Verdict tables: each chapter's replication table, and the book-wide scorecard built from them.

Each paper chapter judges its claims with :mod:`xmlib.replication` and saves the judgements with
:func:`save` to ``runs/scorecard/<profile>/<chapter>.json``. The scorecard page loads all three with
:func:`load` (recorded as inputs, so the book's runner re-executes the page when a chapter's verdicts
change) and shows them in one table and one forest plot.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from xmlib.book import inputs
from xmlib.core.io import atomic_write_json
from xmlib.core.paths import runs_dir
from xmlib.replication import HELD, NO_WORSE, NOT_RESOLVED, REVERSED, Judgement

CHAPTERS: dict[str, tuple[str, str]] = {  # chapter key → (paper, notebook page)
    "dcmm": ("DCMM", "02_dcmm"),
    "deepranking": ("Deep Ranking", "03_deepranking"),
    "sgraf": ("SGRAF", "04_sgraf"),
}
VERDICT_COLOURS = {HELD: "#1a7f37", NO_WORSE: "#2f81f7", NOT_RESOLVED: "#8c959f", REVERSED: "#cf222e"}
KIND_TEXT = {"greater": "A > B", "not_worse": "A ≥ B", "trend": "trend", "best": "best cell"}


def claims_path(chapter: str, profile: str, base_seed: int = 0) -> Path:
    """Where a chapter's verdicts for ``profile`` and the seed set starting at ``base_seed`` are kept."""
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; choose one of {sorted(CHAPTERS)}")
    return runs_dir() / "scorecard" / profile / f"seed-{base_seed}" / f"{chapter}.json"


def save(chapter: str, profile: str, judgements: Sequence[Judgement], *, base_seed: int = 0, **meta: Any) -> Path:
    """Write a chapter's judgements (and ``meta``: seeds, test sizes, ...) for the scorecard page."""
    path = claims_path(chapter, profile, base_seed)
    atomic_write_json(path, {"chapter": chapter, "profile": profile, "base_seed": base_seed, "meta": meta,
                             "judgements": [j.to_dict() for j in judgements]})
    return path


def load(profile: str, chapters: Iterable[str] = CHAPTERS, *,
         base_seed: int = 0) -> dict[str, tuple[dict[str, Any], list[Judgement]]]:
    """Each chapter's (meta, judgements) for ``profile``; a chapter not run yet is an error naming the fix."""
    out = {}
    for chapter in chapters:
        path = claims_path(chapter, profile, base_seed)
        if not path.is_file():
            seed_arg = f" -p seed {base_seed}" if base_seed else ""
            raise FileNotFoundError(f"{path} is missing: run the {CHAPTERS[chapter][0]} chapter first "
                                    f"(python -m xmlib.book.run notebooks/{CHAPTERS[chapter][1]}.py --profile {profile}"
                                    f"{seed_arg})")
        doc = json.loads(inputs.record(path).read_text(encoding="utf-8"))
        out[chapter] = (doc.get("meta", {}), [Judgement.from_dict(d) for d in doc["judgements"]])
    return out


# ------------------------------------------------------------------------------------------ formats
def decimals(point: float) -> int:
    """Decimals that show a tenth of a percentage point of a metric whose point is ``point``."""
    return max(0, 1 - math.floor(math.log10(point))) if point > 0 else 3


def number(x: float | None, point: float, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    s = f"{x:+.{decimals(point)}f}" if signed else f"{x:.{decimals(point)}f}"
    return s.replace("-", "−")


def effect_text(j: Judgement) -> str:
    """``+0.031 [−0.004, +0.066]`` in the metric's units."""
    e, p = j.estimate, j.claim.metric.point
    return f"{number(e.estimate, p, True)} [{number(e.low, p, True)}, {number(e.high, p, True)}]"


def mde_text(j: Judgement) -> str:
    return number(j.estimate.mde, j.claim.metric.point) if j.verdict == NOT_RESOLVED else ""


def models_text(j: Judgement) -> str:
    """Each compared model's seed mean ± seed standard deviation."""
    e, p = j.estimate, j.claim.metric.point
    labels = list(j.labels) if len(j.labels) == len(e.values) else [f"model {i + 1}" for i in range(len(e.values))]
    parts = []
    for name, v, sd, s in zip(labels, e.values, e.spread or [0.0] * len(e.values), e.n_seeds):
        parts.append(f"{name} {number(v, p)}" + (f" ± {number(sd, p)}" if s > 1 else " (deterministic)"))
    return "; ".join(parts)


def chapter_table(judgements: Sequence[Judgement]):
    """A chapter's replication table: one row per claim (pandas DataFrame, index = claim)."""
    import pandas as pd

    rows = []
    for j in judgements:
        c, e = j.claim, j.estimate
        rows.append({
            "claim": f"({c.key.split('-')[-1]}) {c.statement}" + (f" [modified method: {c.modified}]" if c.modified else ""),
            "kind": KIND_TEXT[c.kind],
            "paper": c.paper_detail,
            "compared": j.comparison,
            "ours, per model (mean ± sd over seeds)": models_text(j),
            f"effect [{100 * (1 - e.alpha):.0f}% CI]": f"{effect_text(j)} {c.metric.name}",
            "verdict": j.verdict,
            "MDE (80% power)": mde_text(j),
            "seeds × queries": f"{'/'.join(str(s) for s in sorted(set(e.n_seeds)))} × {'+'.join(str(q) for q in e.n_queries)}",
        })
    return pd.DataFrame(rows).set_index("claim")


def scorecard_rows(by_chapter: Mapping[str, tuple[dict[str, Any], list[Judgement]]]) -> list[dict[str, Any]]:
    rows = []
    for chapter, (_, judgements) in by_chapter.items():
        page = CHAPTERS[chapter][1]
        for j in judgements:
            c = j.claim
            rows.append({"paper": c.paper, "key": c.key, "claim": c.statement, "modified": c.modified,
                         "paper effect": c.paper_detail, "ours": f"{effect_text(j)} {c.metric.name}",
                         "verdict": j.verdict, "MDE": mde_text(j), "href": f"{page}.html#{c.section}" if c.section else
                         f"{page}.html", "judgement": j})
    return rows


def scorecard_html(by_chapter: Mapping[str, tuple[dict[str, Any], list[Judgement]]]) -> str:
    """The book-wide table as HTML (verdicts coloured, each claim linked to the section that tests it)."""
    head = ["paper", "claim", "the paper's effect", "ours: effect [95% CI]", "verdict", "MDE (80% power)"]
    out = ["<table class='xmlib-scorecard'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in scorecard_rows(by_chapter):
        claim = html.escape(r["claim"])
        if r["modified"]:
            claim += f"<br><small>modified method: {html.escape(r['modified'])}</small>"
        colour = VERDICT_COLOURS.get(r["verdict"], "#000")
        out.append(
            f"<tr><td>{html.escape(r['paper'])}</td><td><a href='{html.escape(r['href'])}'>{claim}</a></td>"
            f"<td>{html.escape(r['paper effect'])}</td><td>{html.escape(r['ours'])}</td>"
            f"<td style='color:{colour}'><b>{html.escape(r['verdict'])}</b></td><td>{html.escape(r['MDE'])}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def verdict_counts(judgements: Iterable[Judgement]) -> dict[str, int]:
    counts = {v: 0 for v in (HELD, NO_WORSE, NOT_RESOLVED, REVERSED)}
    for j in judgements:
        counts[j.verdict] = counts.get(j.verdict, 0) + 1
    return counts


def forest(judgements: Sequence[Judgement], ax=None, labels: Sequence[str] | None = None):
    """Every claim's effect with its interval, in percentage points of its metric (the margin's unit),
    coloured by verdict; the paper's own effect as a hollow diamond where its tables give one."""
    import matplotlib.pyplot as plt

    n = len(judgements)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.34 * n + 1.2))
    if not labels:
        labels = []
        for j in judgements:
            text = f"{j.claim.paper} ({j.claim.key.split('-')[-1]}){'†' if j.claim.modified else ''} {j.claim.statement}"
            labels.append(text if len(text) <= 62 else text[:61] + "…")
    for i, j in enumerate(judgements):
        y = n - 1 - i
        e = j.effect_points
        colour = VERDICT_COLOURS.get(j.verdict, "k")
        ax.plot([e.low, e.high], [y, y], color=colour, lw=2, solid_capstyle="butt")
        ax.plot([e.estimate], [y], "o", color=colour, ms=5)
        if j.claim.paper_effect is not None:
            ax.plot([j.claim.paper_effect / j.claim.metric.point], [y], "D", mfc="none", mec="k", ms=5)
    ax.axvline(0, color="k", lw=0.8)
    ax.axvspan(-1, 1, color="0.92", zorder=0)
    ax.set_yticks(range(n), labels[::-1], fontsize=7)
    ax.set_xlabel("effect in percentage points of the claim's metric (grey band: the ±1-point margin)")
    handles = [plt.Line2D([], [], color=c, lw=2, label=v) for v, c in VERDICT_COLOURS.items()]
    handles.append(plt.Line2D([], [], ls="", marker="D", mfc="none", mec="k", label="the paper's effect"))
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.06 - 2.0 / max(n, 8)), ncol=3,
              frameon=False)
    ax.set_title("† the method departs from the paper's (see the row)", fontsize=7, loc="left")
    return ax


def compare(profile: str, seed_a: int, seed_b: int) -> list[dict[str, str]]:
    """The verdicts of two disjoint seed sets side by side (the stability check)."""
    a, b = load(profile, base_seed=seed_a), load(profile, base_seed=seed_b)
    rows = []
    for chapter in CHAPTERS:
        jb = {j.claim.key: j for j in b[chapter][1]}
        for ja in a[chapter][1]:
            other = jb.get(ja.claim.key)
            rows.append({"claim": f"{ja.claim.paper} {ja.claim.key}: {ja.claim.statement}",
                         f"seeds from {seed_a}": f"{ja.verdict} ({effect_text(ja)})",
                         f"seeds from {seed_b}": "–" if other is None else f"{other.verdict} ({effect_text(other)})",
                         "agree": "–" if other is None else agreement(ja.verdict, other.verdict)})
    return rows


def agreement(a: str, b: str) -> str:
    """``"yes"`` (the same verdict), ``"OPPOSITE"`` (the claim supported in one — held, or no worse for a
    ≥ claim — and reversed in the other) or ``"no"`` (one of them not resolved, or held vs no worse)."""
    if a == b:
        return "yes"
    supported = {HELD, NO_WORSE}
    if (a in supported and b == REVERSED) or (b in supported and a == REVERSED):
        return "OPPOSITE"
    return "no"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m xmlib.book.scorecard --compare 0 100 [--profile default]``: the stability check."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m xmlib.book.scorecard", description=main.__doc__)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--compare", nargs=2, type=int, metavar=("SEED_A", "SEED_B"), required=True,
                    help="base seeds of the two seed sets (each chapter run with -p seed N)")
    args = ap.parse_args(argv)
    rows = compare(args.profile, *args.compare)
    width = max(len(r["claim"]) for r in rows)
    keys = list(rows[0])
    for r in rows:
        print(f"{r['claim'][:width]:<{width}}  |  {r[keys[1]]:<48}  |  {r[keys[2]]:<48}  |  {r['agree']}")
    agree = sum(r["agree"] == "yes" for r in rows)
    opposite = sum(r["agree"] == "OPPOSITE" for r in rows)
    print(f"\n{agree} of {len(rows)} verdicts agree; {opposite} opposite (supported in one, reversed in the other)")
    return 1 if opposite else 0


if __name__ == "__main__":
    raise SystemExit(main())
