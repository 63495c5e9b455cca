"""Refuse to render a notebook that stored an error.

Jupyter Book (with ``execute_notebooks: off``) renders a notebook whose cells raised and still exits
0, so a traceback could be published as if all were fine. ``python -m xmlib.book.check_notebooks DIR``
fails when any ``.ipynb`` under DIR has an ``error`` output or a stream that shows a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def notebook_problems(path: Path) -> list[str]:
    """Problems of one executed notebook: error outputs, tracebacks in streams, unexecuted code cells."""
    nb = json.loads(path.read_text())
    problems = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", []))
        if source.strip() and cell.get("execution_count") is None:
            problems.append(f"{path}: cell {index} was never executed")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"{path}: cell {index} raised {out.get('ename')}: {out.get('evalue')}")
            elif out.get("output_type") == "stream" and "Traceback (most recent call last)" in "".join(out.get("text", [])):
                problems.append(f"{path}: cell {index} printed a traceback")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m xmlib.book.check_notebooks DIR_OR_FILE [...]", file=sys.stderr)
        return 2
    paths: list[Path] = []
    for arg in argv:
        p = Path(arg)
        paths += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts) if p.is_dir() else [p]
    problems = [msg for path in paths for msg in notebook_problems(path)]
    for msg in problems:
        print(msg, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in executed notebooks: not rendering them", file=sys.stderr)
        return 1
    print(f"[check_notebooks] {len(paths)} executed notebook(s) clean")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
