"""The computed parts of a chapter's opening: the 'paper vs ours' config table, reading and run time."""

from dataclasses import dataclass

import pytest

from xmlib.book import timings
from xmlib.book.chapter import config_table, format_value, header_values, markdown_words, reading_minutes, run_time_text
from xmlib.core.config import BaseConfig


@dataclass(frozen=True)
class Toy(BaseConfig):
    data: str = "open"
    epochs: int = 4
    lr: float = 5e-3
    hardest: bool = False
    grid: tuple[int, ...] = (1, 3)
    path: str = ""


PAPER, OURS = Toy(data="flickr30k", epochs=40, lr=2e-4, hardest=True, grid=(1, 2, 3, 4)), Toy()


def test_config_table_sets_the_two_configs_side_by_side():
    table = config_table(PAPER, OURS, [("data", "data"), ("epochs", "epochs"), ("learning rate", "lr"),
                                       ("loss", lambda c: "hardest negative" if c.hardest else "all negatives"),
                                       ("steps tried", "grid"), ("data folder", "path")],
                         columns=("paper", "ours"))
    assert list(table.columns) == ["paper", "ours", "same"]
    assert table.loc["data"].tolist() == ["flickr30k", "open", "no"]
    assert table.loc["epochs"].tolist() == ["40", "4", "no"]
    assert table.loc["learning rate"].tolist() == ["0.0002", "0.005", "no"]
    assert table.loc["loss"].tolist() == ["hardest negative", "all negatives", "no"]
    assert table.loc["steps tried"].tolist() == ["1, 2, 3, 4", "1, 3", "no"]
    assert table.loc["data folder"].tolist() == ["–", "–", "yes"]


def test_config_table_rejects_unknown_fields_and_empty_rows():
    with pytest.raises(ValueError, match="row 'epochs'.*no field 'epoch'"):
        config_table(PAPER, OURS, [("epochs", "epoch")])
    with pytest.raises(ValueError, match="at least one"):
        config_table(PAPER, OURS, [])


def test_format_value():
    assert [format_value(v) for v in (True, False, 0.2, 1e-3, (), (0.0, 1.0), 3, None)] == \
        ["yes", "no", "0.2", "0.001", "–", "0, 1", "3", "–"]


def write_notebook(root, stem, words):
    (root / "notebooks").mkdir(exist_ok=True)
    text = ("# %% [markdown]\n# # Title words\n#\n# " + " ".join(["word"] * words) + "\n\n"
            "# %%\nx = 'code is not read as prose prose prose'\n")
    path = root / "notebooks" / f"{stem}.py"
    path.write_text(text, encoding="utf-8")
    return path


def test_reading_time_counts_the_words_of_markdown_cells(tmp_path):
    path = write_notebook(tmp_path, "99_toy", 598)
    assert markdown_words(path) == 600  # two title words, none of the code cell's
    assert reading_minutes(path, words_per_minute=200) == 3
    assert reading_minutes(path, words_per_minute=10_000) == 1  # never "0 min"
    with pytest.raises(ValueError, match="words_per_minute"):
        reading_minutes(path, words_per_minute=0)


def test_run_time_comes_from_the_timing_record(tmp_path):
    write_notebook(tmp_path, "99_toy", 10)
    assert run_time_text("99_toy", "smoke", tmp_path).startswith("no run of the smoke profile recorded")
    timings.record("smoke", "notebooks", "99_toy", 314.0, root=tmp_path)
    assert run_time_text("99_toy", "smoke", tmp_path).startswith("about 5 min with the smoke profile")
    timings.record("smoke", "notebooks", "99_toy", 0.0, status="unchanged", kept=42.0, root=tmp_path)
    values = header_values("99_toy", "smoke", tmp_path)
    assert values["page_run"].startswith("42 s with the smoke profile")  # the run whose output was kept
    assert values["page_reading"] == "about 1 min"
    assert run_time_text("99_toy", "default", tmp_path).startswith("no run of the default profile")


def test_header_values_name_a_missing_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"notebooks/2_dcmm\.py does not exist"):
        header_values("2_dcmm", "smoke", tmp_path)
