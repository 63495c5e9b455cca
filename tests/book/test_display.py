"""The book's table display: whole cells, integer counts, a dash for missing values."""

import numpy as np
import pandas as pd
import pytest

from xmlib.book.display import MISSING, table_html, tidy


def test_whole_number_float_columns_become_integers():
    df = pd.DataFrame({"queries": [20.0, 56.0], "MAP": [0.71, 0.80], "seeds": [3.0, np.nan]})
    out = tidy(df)
    assert str(out["queries"].dtype) == "Int64" and out["queries"].tolist() == [20, 56]
    assert str(out["seeds"].dtype) == "Int64" and pd.isna(out["seeds"].iloc[1])
    assert out["MAP"].dtype == np.float64  # a real fraction stays a float
    assert df["queries"].dtype == np.float64  # the input is not changed


def test_html_shows_counts_dashes_and_whole_cells():
    long = "(a1) learned ranking beats the golden features [modified method: concept bonus w_concept = 20] " * 3
    df = pd.DataFrame({"claim": [long, "short"], "count": [20.0, 21.0], "effect": [0.5, np.nan]})
    with pd.option_context("display.max_colwidth", 20):  # pandas' own display would cut the claim
        assert "..." in df._repr_html_()
        html = table_html(df)
    assert long.strip() in html.replace("&quot;", '"')
    assert "<td>20</td>" in html and "20.0" not in html
    assert f"<td>{MISSING}</td>" in html and "NaN" not in html
    counts = table_html(pd.DataFrame({"seeds": [3.0, np.nan]}))  # an integer column with a gap
    assert "<td>3</td>" in counts and f"<td>{MISSING}</td>" in counts and "NA" not in counts


def test_many_rows_and_columns_are_all_shown():
    df = pd.DataFrame(np.arange(100 * 30).reshape(100, 30) + 0.5)
    html = table_html(df)
    assert html.count("<tr") == 101 and html.count("<th>") == 1 + 30 + 100 and "..." not in html


def test_non_finite_and_huge_values_stay_floats():
    assert tidy(pd.DataFrame({"x": [np.inf, 1.0]}))["x"].dtype == np.float64
    assert tidy(pd.DataFrame({"x": [2.0**60, 1.0]}))["x"].dtype == np.float64


def test_tidy_rejects_other_types():
    with pytest.raises(TypeError, match="DataFrame"):
        tidy(pd.Series([1.0]))
