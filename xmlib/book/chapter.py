"""What the top of each chapter page computes rather than types: its reading time (from the words of
its text source), its run time (from the build's timing record, :mod:`xmlib.book.timings`) and the
table that sets the `paper` profile's configuration beside the one the page ran with.

    header_values("02_dcmm", "default")   # {"page_reading": "about 25 min", "page_run": "..."}
    config_table(paper_cfg, cfg, [("epochs", "epochs"), ("loss", lambda c: ...)])
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import jupytext
import pandas as pd

from xmlib.book import timings
from xmlib.core.paths import project_root

WORDS_PER_MINUTE = 200  # a common estimate for technical prose read carefully; math slows it further
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")

Field = Union[str, Callable[[Any], Any]]
"""A config field's name, or a function of the config that derives a value (e.g. a loss variant)."""


def markdown_words(source: Path) -> int:
    """Words in the markdown cells of a Jupytext notebook (code, its output and cell headers excluded)."""
    nb = jupytext.read(source)
    return sum(len(_WORD.findall(c.source)) for c in nb.cells if c.cell_type == "markdown")


def reading_minutes(source: Path, words_per_minute: int = WORDS_PER_MINUTE) -> int:
    """Minutes to read the page's text at ``words_per_minute`` (at least 1)."""
    if words_per_minute <= 0:
        raise ValueError(f"words_per_minute must be positive, got {words_per_minute}")
    return max(1, round(markdown_words(source) / words_per_minute))


def _duration(seconds: float) -> str:
    return f"about {seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run_time_text(stem: str, profile: str, root: Path | None = None) -> str:
    """The page's run time as the last recorded build measured it (``_build/timings/<profile>.json``),
    or a sentence saying no run is recorded. A notebook that was up to date counts the time of the run
    whose output the build kept."""
    entry = timings.load(profile, root)["steps"].get(f"notebooks/{stem}")
    if not entry:
        return f"no run of the {profile} profile recorded on this machine yet"
    seconds = entry.get("kept_seconds", entry["seconds"]) if entry.get("status") != "ran" else entry["seconds"]
    when = str(entry.get("when", ""))[:10]
    return f"{_duration(float(seconds))} with the {profile} profile (the run recorded on {when})"


def header_values(stem: str, profile: str, root: Path | None = None) -> dict[str, str]:
    """The glue values of a chapter's opening box: ``page_reading`` and ``page_run``."""
    root = root or project_root()
    source = root / "notebooks" / f"{stem}.py"
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist: pass the notebook's stem, e.g. '02_dcmm'")
    return {"page_reading": f"about {reading_minutes(source)} min",
            "page_run": run_time_text(stem, profile, root)}


def format_value(value: Any) -> str:
    """A config value as the table shows it: yes/no, tuples joined by commas, floats in short form,
    an empty string as "–"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ", ".join(format_value(v) for v in value) if value else "–"
    if value is None or value == "":
        return "–"
    return str(value)


def _value(cfg: Any, field: Field, label: str) -> Any:
    if callable(field):
        return field(cfg)
    names = {f.name for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else set()
    if field not in names:
        raise ValueError(f"row {label!r}: {type(cfg).__name__} has no field {field!r}; "
                         "give a field of the chapter's Config or a function of the config")
    return getattr(cfg, field)


def config_table(paper: Any, ours: Any, rows: Sequence[tuple[str, Field]], *,
                 columns: tuple[str, str] = ("paper profile", "this page")) -> pd.DataFrame:
    """One row per ``(label, field)``: the value in the ``paper`` config, in ``ours``, and whether they
    are the same. ``field`` is a config field's name or a function of the config."""
    if not rows:
        raise ValueError("config_table needs at least one (label, field) row")
    out = []
    for label, field in rows:
        a, b = _value(paper, field, label), _value(ours, field, label)
        out.append({"setting": label, columns[0]: format_value(a), columns[1]: format_value(b),
                    "same": "yes" if a == b else "no"})
    return pd.DataFrame(out).set_index("setting")
