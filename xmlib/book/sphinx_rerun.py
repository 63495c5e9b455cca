"""The "Rerunning this chapter" box: a Sphinx directive that writes, at build time, the commands that
rerun a chapter in each profile with the time each took when it last ran on the machine that built
the book, and links to download the chapter's executed notebook and its text source.

In a chapter (a notebook ``notebooks/NAME``), a markdown cell holds

    ```{xmlib-rerun}
    ```

The times come from the build's timing record (:mod:`xmlib.book.timings`, ``_build/timings/<profile>.json``,
written by the notebook runner); nothing is typed in. A profile that never ran on that machine is said
to have no record. Registered in ``_config.yml`` (``sphinx.extra_extensions``).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from xmlib.book import timings
from xmlib.book.run import PROFILES

COMPARE = "python -m xmlib.book.compare"


def measured(profile: str, stem: str, root: Path) -> str:
    """The last recorded time of notebook ``stem`` in ``profile``, in words, or that there is none."""
    entry = timings.load(profile, root)["steps"].get(f"notebooks/{stem}")
    if not entry:
        return "no run of this profile is recorded on the machine that built this page"
    seconds = entry["seconds"] if entry.get("status") == "ran" else entry.get("kept_seconds", entry["seconds"])
    when = str(entry.get("when", ""))[:16].replace("T", " ")
    beside = int(entry.get("beside", 0))
    shared = (f", sharing the cores with up to {beside} other chapter{'s' if beside > 1 else ''} run at the same "
              "time (alone it takes less)") if beside else ""
    return f"took {timings.minutes(seconds)} when it last ran on the machine that built this page ({when} UTC){shared}"


def rerun_markdown(docname: str, root: Path) -> str:
    """The MyST text of the box for the notebook page ``docname`` (e.g. ``notebooks/02_dcmm``)."""
    doc = PurePosixPath(docname)
    stem, source = doc.name, f"{doc.as_posix()}.py"
    out = ["From the repository root, with the book's environment active (`make env`, then "
           "`source .venv/bin/activate`; the data of a profile is built on first use, or beforehand with "
           "`make data`), each command reruns this chapter alone and writes its outputs under `runs/` (set "
           "`XMLIB_RUNS` to write elsewhere); a chapter whose source, library code and inputs did not change "
           "is not run again (add `--force`), and the training runs it finds in `runs/cache/` are not repeated, "
           "so a time measured with a warm cache leaves their training out.", ""]
    for profile in PROFILES:
        out += [f"- **{profile}**: {measured(profile, stem, root)}.", "",
                "  ```bash", "  python -m xmlib.book.run \\", f"    {source} \\", f"    --profile {profile}", "  ```", ""]
    out += ["A single value changes with `-p NAME VALUE` (e.g. `-p seed 3`); the run record at the top of the "
            "page lists every value. To set a rerun's tables beside this build's, give both runs folders to "
            f"`{COMPARE}` (e.g. `{COMPARE} /tmp/my-runs runs`): it lists each table's verdicts and numbers "
            "that differ.", "",
            f"Download this chapter: the executed notebook {{download}}`{stem}.ipynb </{doc.as_posix()}.ipynb>` "
            f"(with its outputs, as rendered here) or its text source {{download}}`{stem}.py </{source}>` "
            "(Jupytext percent format, the only form kept in git; `jupytext --to ipynb` makes a notebook of it)."]
    return "\n".join(out)


class RerunDirective(SphinxDirective):
    """``{xmlib-rerun}``: the rerun commands, measured times and downloads of the current notebook page."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        root = Path(self.env.srcdir)
        for profile in PROFILES:  # the page is rebuilt when a timing record changes
            path = timings.record_path(profile, root)
            if path.exists():
                self.env.note_dependency(str(path))
        docname = self.env.docname
        if not docname.startswith("notebooks/"):
            raise self.error(f"{{xmlib-rerun}} belongs in a chapter notebook under notebooks/, not in {docname}")
        for suffix in (".py", ".ipynb"):
            if not (root / f"{docname}{suffix}").exists():
                raise self.error(f"{docname}{suffix} does not exist: the box offers it for download")
        container = nodes.container(classes=["xmlib-rerun"])
        self.state.nested_parse(StringList(rerun_markdown(docname, root).splitlines(), source=docname),
                                self.content_offset, container)
        return [container]


def setup(app: Sphinx) -> dict:
    app.add_directive("xmlib-rerun", RerunDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
