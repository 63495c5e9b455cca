"""python -m xmlib.book.compare on constructed runs folders: which verdicts and numbers differ."""

import csv
import json

import pytest

from xmlib.book.compare import compare_runs, compare_table, find_runs, main, same_cell

HEADER = ["claim", "kind", "paper", "compared", "ours", "effect [95% CI]", "verdict", "MDE (80% power)"]


def write_run(root, chapter, profile, tables, config=None, name=None):
    folder = root / chapter / (name or f"{profile}-abc")
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"chapter": chapter, "profile": profile, "config": config or {"seed": 0}}))
    for file, rows in tables.items():
        with (folder / file).open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rows)
    return folder


def replication(verdict_a="held", effect_a="+0.037 [+0.010, +0.080] MAP"):
    return [HEADER, ["(a) CM > LTR", "A > B", "MAP .784 vs .707", "CM − LTR", "CM 0.612", effect_a, verdict_a, "0.062"],
            ["(b) LTR+CM ≥ CM", "A ≥ B", "MAP .789 vs .784", "LTR+CM − CM", "x", "−0.008 [−0.045, +0.029] MAP", "not resolved", ""]]


TABLE1 = [["method", "map", "map_sd"], ["ltr", "0.5751622534149043", "0.0119"], ["cm", "0.6117538858501161", "0.0"]]


def test_identical_runs_have_no_difference(tmp_path):
    for side in ("a", "b"):
        write_run(tmp_path / side, "dcmm", "smoke", {"replication.csv": replication(), "table1.csv": TABLE1})
    report = compare_runs(tmp_path / "a", tmp_path / "b")
    assert report.differences == 0 and report.lines[-1] == "no differences"
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0


def test_a_changed_verdict_and_number_are_reported(tmp_path, capsys):
    write_run(tmp_path / "a", "dcmm", "smoke", {"replication.csv": replication(), "table1.csv": TABLE1})
    changed = [row[:] for row in TABLE1]
    changed[1][1] = "0.5800000000000000"
    write_run(tmp_path / "b", "dcmm", "smoke",
              {"replication.csv": replication("not resolved", "+0.020 [−0.010, +0.050] MAP"), "table1.csv": changed},
              config={"seed": 3})
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "1 verdict(s) differ" in out
    assert "≠ (a) CM > LTR" in out and "= (b) LTR+CM ≥ CM" in out
    assert "ltr | map: 0.5751622534149043 → 0.5800000000000000" in out
    assert "config: differs: seed: 0 → 3" in out
    assert "cm | map" not in out  # the unchanged row is not listed


def test_numbers_within_tolerance_are_equal():
    assert same_cell("0.6117538858501161", "0.6117538858501163", 1e-9, 0)
    assert not same_cell("0.61", "0.62", 1e-9, 0)
    assert same_cell("+0.037 [−0.007, +0.080] MAP", "+0.0370 [−0.0070, +0.0800] MAP", 1e-9, 0)
    assert not same_cell("+0.037 [−0.007, +0.080] MAP", "+0.037 [−0.007, +0.080] nDCG", 1, 1)
    assert same_cell("0.61", "0.62", 0, 0.02)


def test_rows_and_tables_present_on_one_side_only(tmp_path):
    assert compare_table(TABLE1, TABLE1[:2], 0, 0) == ["row 'cm' only in A"]
    assert compare_table(TABLE1, [["method", "MAP"]], 0, 0)[0].startswith("columns differ")
    write_run(tmp_path / "a", "dcmm", "smoke", {"table1.csv": TABLE1, "fig2.csv": TABLE1})
    write_run(tmp_path / "a", "sgraf", "smoke", {"table1.csv": TABLE1})
    write_run(tmp_path / "b", "dcmm", "smoke", {"table1.csv": TABLE1})
    lines = "\n".join(compare_runs(tmp_path / "a", tmp_path / "b").lines)
    assert "fig2.csv: only in A" in lines and "sgraf / smoke: only in A" in lines


def test_pairs_by_chapter_and_profile_and_takes_the_newest(tmp_path):
    import os

    old = write_run(tmp_path / "a", "dcmm", "smoke", {"table1.csv": TABLE1}, name="smoke-old")
    new = write_run(tmp_path / "a", "dcmm", "smoke", {"table1.csv": TABLE1}, name="smoke-new")
    os.utime(old / "run.json", (1, 1))
    write_run(tmp_path / "a", "dcmm", "default", {"table1.csv": TABLE1})
    (tmp_path / "a" / "cache" / "x").mkdir(parents=True)
    (tmp_path / "a" / "cache" / "x" / "run.json").write_text("{}")
    runs = find_runs(tmp_path / "a")
    assert set(runs) == {("dcmm", "smoke"), ("dcmm", "default")} and runs[("dcmm", "smoke")] == [new, old]
    assert find_runs(new) == {("dcmm", "smoke"): [new]}  # a run folder alone


def test_bad_input_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    write_run(tmp_path / "b", "dcmm", "smoke", {"table1.csv": TABLE1})
    assert main([str(tmp_path / "empty"), str(tmp_path / "b")]) == 2
    assert "holds no run" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), str(tmp_path / "b")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "b"), str(tmp_path / "b"), "--rtol", "-1"])
