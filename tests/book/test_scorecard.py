"""The scorecard: chapters' verdicts saved and loaded, the book-wide table and its links, and the
stability comparison of two seed sets (which verdict pairs count as opposite)."""

import numpy as np
import pytest

from xmlib import replication as R
from xmlib.book import scorecard as S

MAP = R.Metric("MAP", "mean", 1.0, 0.01)


def _judgement(key: str, kind: str, effect: float, seed: int) -> R.Judgement:
    rng = np.random.default_rng(seed)
    base = rng.normal(0.5, 0.1, size=(3, 200))
    a = R.Outcomes({"q": base + effect + rng.normal(0, 0.01, size=(3, 200))}, (0, 1, 2))
    b = R.Outcomes({"q": base}, (0, 1, 2))
    claim = R.Claim(key, "DCMM", f"claim {key}", kind, MAP, 0.02, ".80 vs .78", "dcmm-replication")
    return R.judge(claim, [a, b], [1, -1], comparison="A − B", n_boot=400)


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XMLIB_RUNS", str(tmp_path))
    return tmp_path


def _save_all(base_seed: int, effects: dict[str, tuple[str, float]]) -> None:
    for chapter in S.CHAPTERS:
        js = [_judgement(f"{chapter}-{k}", kind, e, i) for i, (k, (kind, e)) in enumerate(effects.items())]
        S.save(chapter, "default", js, base_seed=base_seed, seeds=3)


def test_saved_verdicts_load_back_and_a_missing_chapter_names_the_command(runs):
    _save_all(0, {"a": ("greater", 0.05)})
    loaded = S.load("default")
    assert set(loaded) == set(S.CHAPTERS)
    meta, (j,) = loaded["dcmm"]
    assert meta == {"seeds": 3} and j.verdict == R.HELD
    with pytest.raises(FileNotFoundError, match=r"notebooks/02_dcmm.py --profile default -p seed 100"):
        S.load("default", ["dcmm"], base_seed=100)


def test_the_table_links_each_claim_to_its_section_and_colours_the_verdict(runs):
    _save_all(0, {"a": ("greater", 0.05), "b": ("greater", -0.05)})
    page = S.scorecard_html(S.load("default"))
    assert page.count("<tr><td>") == 6
    assert "href='02_dcmm.html#dcmm-replication'" in page and "href='04_sgraf.html#dcmm-replication'" in page
    assert f"color:{S.VERDICT_COLOURS[R.REVERSED]}'><b>reversed" in page
    table = S.chapter_table(S.load("default")["dcmm"][1])
    assert list(table["verdict"]) == [R.HELD, R.REVERSED]


@pytest.mark.parametrize("a, b, expected", [
    (R.HELD, R.HELD, "yes"), (R.HELD, R.REVERSED, "OPPOSITE"), (R.NO_WORSE, R.REVERSED, "OPPOSITE"),
    (R.REVERSED, R.NO_WORSE, "OPPOSITE"), (R.HELD, R.NOT_RESOLVED, "no"), (R.HELD, R.NO_WORSE, "no"),
    (R.NOT_RESOLVED, R.REVERSED, "no"),
])
def test_agreement_of_two_verdicts(a, b, expected):
    assert S.agreement(a, b) == expected


def test_compare_two_seed_sets_counts_opposites(runs, capsys):
    _save_all(0, {"a": ("greater", 0.05), "b": ("greater", 0.0)})
    _save_all(100, {"a": ("greater", 0.05), "b": ("greater", 0.0)})
    assert S.main(["--compare", "0", "100"]) == 0
    assert "6 of 6 verdicts agree; 0 opposite" in capsys.readouterr().out
    _save_all(100, {"a": ("greater", -0.05), "b": ("greater", 0.0)})
    assert S.main(["--compare", "0", "100"]) == 1  # held in one, reversed in the other: the check fails
    assert "3 opposite" in capsys.readouterr().out
