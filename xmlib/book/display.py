"""How the book's pages show tables: every cell whole, counts as integers, a missing value as a dash.

Each notebook calls :func:`setup` once in its first code cell. From then on every pandas DataFrame a
cell displays (``display(df)`` or a last expression) is rendered to HTML by :func:`table_html`:

- no truncation: all rows, all columns and the whole text of every cell (pandas' notebook display cuts
  long cells with "..." and hides rows and columns past its limits);
- a float column whose values are all whole numbers (counts, seeds, rounded scores) is shown as
  integers, not as ``20.0``;
- a missing value is shown as ``–``, not as ``NaN``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MISSING = "–"


def _whole_numbers(col: pd.Series) -> bool:
    if not pd.api.types.is_float_dtype(col.dtype):
        return False
    values = col.dropna().to_numpy(dtype=np.float64)
    return len(values) > 0 and bool(np.isfinite(values).all()) and bool((values == np.round(values)).all()) \
        and bool((np.abs(values) < 2**53).all())


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` in which every float column holding only whole numbers has an integer dtype
    (nullable ``Int64``, so missing values stay missing)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"tidy expects a pandas DataFrame, got {type(df).__name__}")
    out = df.copy()
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        if _whole_numbers(col):
            out.isetitem(i, col.round().astype("Int64"))
    return out


def table_html(df: pd.DataFrame) -> str:
    """The book's HTML for a DataFrame: whole cells, integer counts, ``–`` for missing values."""
    shown = tidy(df)
    for i in range(shown.shape[1]):  # to_html's na_rep does not reach pandas' <NA> of integer columns
        col = shown.iloc[:, i]
        if isinstance(col.dtype, pd.Int64Dtype) and col.isna().any():
            shown.isetitem(i, col.astype(object).where(col.notna(), MISSING))
    return shown.to_html(na_rep=MISSING, max_rows=None, max_cols=None, border=0)


def setup() -> None:
    """Make every DataFrame the running notebook displays use :func:`table_html` (and pandas' text
    form show whole cells too). Outside IPython only the pandas options are set."""
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_rows", None)
    pd.set_option("display.width", 250)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the book
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, table_html)
