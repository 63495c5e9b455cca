"""Project-wide invariants."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# CUDA itself, its libraries' knobs (cuBLAS workspace, cuDNN flags) and torch's determinism switch: the
# device helper owns all of them.
CUDA_PATTERN = re.compile(r"\bcuda\b|\.cuda\(|cublas|cudnn|use_deterministic_algorithms", flags=re.IGNORECASE)


def test_the_cuda_pattern_catches_every_spelling():
    for line in ('x.cuda()', 'torch.device("cuda:0")', 'os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"',
                 "torch.backends.cudnn.benchmark = False", "torch.use_deterministic_algorithms(True)"):
        assert CUDA_PATTERN.search(line), line
    for line in ("from xmlib.core.device import get_device, set_deterministic", "accumulate = 1"):
        assert not CUDA_PATTERN.search(line), line


def test_only_the_device_helper_mentions_cuda():
    """One device helper decides CPU or GPU and how deterministic it is: no other module or notebook
    names CUDA, cuBLAS, cuDNN or torch's determinism switch."""
    offenders = []
    for path in list((ROOT / "xmlib").rglob("*.py")) + list((ROOT / "notebooks").glob("*.py")):
        if path == ROOT / "xmlib" / "core" / "device.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if CUDA_PATTERN.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "CUDA named outside xmlib/core/device.py:\n" + "\n".join(offenders)


def test_only_the_device_helper_sets_torch_threads():
    """CPU threads are set in one place (xmlib.core.device.set_cpu_threads / cpu_threads)."""
    offenders = []
    paths = [p for d in ("xmlib", "notebooks", "benchmarks", "tests") for p in (ROOT / d).rglob("*.py")]
    for path in paths:
        if path == ROOT / "xmlib" / "core" / "device.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "set_num_threads(" in line and path != Path(__file__).resolve():
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "torch.set_num_threads outside xmlib/core/device.py:\n" + "\n".join(offenders)


def test_only_the_device_helper_chooses_the_cpu_matrix_library():
    """oneDNN's private linear is called in one place (xmlib.core.device.linear), which decides where it may run."""
    offenders = []
    for path in [p for d in ("xmlib", "notebooks", "benchmarks") for p in (ROOT / d).rglob("*.py")]:
        if path == ROOT / "xmlib" / "core" / "device.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.ops.mkldnn" in line or "_linear_pointwise" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "oneDNN called outside xmlib/core/device.py:\n" + "\n".join(offenders)


def test_nothing_untrusted_is_unpickled():
    """torch.load with weights_only=True, np.load without pickles, yaml.safe_load only."""
    problems = []
    for path in (ROOT / "xmlib").rglob("*.py"):
        text = path.read_text()
        for call, needed in (("torch.load(", "weights_only=True"), ("np.load(", "allow_pickle=False")):
            for m in re.finditer(re.escape(call), text):
                window = text[m.end():m.end() + 200].split("\n\n")[0]  # the call's arguments
                if needed not in window:
                    line = text[:m.start()].count("\n") + 1
                    problems.append(f"{path.relative_to(ROOT)}:{line}: {call} without {needed}")
        if re.search(r"yaml\.load\(|pickle\.loads?\(", text):
            problems.append(f"{path.name}: yaml.load or pickle")
        if re.search(r"\.extractall\(", text) and 'filter="data"' not in text and "filter='data'" not in text:
            problems.append(f"{path.name}: extractall without the data filter")
    assert not problems, problems


def test_every_notebook_has_one_parameters_cell_and_a_kernelspec():
    import jupytext

    for path in sorted((ROOT / "notebooks").glob("*.py")):
        text = path.read_text()
        tagged = [c for c in jupytext.reads(text, fmt="py:percent").cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path
        assert "kernelspec:" in text and "name: python3" in text, path
        assert 'profile = "default"' in text and "overrides = {}" in text, path


# ----------------------------------------------------------------------------- equations <-> code
LABEL = re.compile(r"\$\$ \((eq-[a-z0-9-]+)\)")
NAMED = re.compile(r"(?<![\w-])(eq-[a-z0-9]+(?:-[a-z0-9]+)*)")
PAPER = {"dcmm": "DCMM", "dr": "Deep Ranking", "sgraf": "SGRAF"}

# Labelled equations that are derivations in the prose, with no function of their own:
NO_CODE = {
    "eq-blocks-grads": "the derivatives of the two losses, shown to compare their pushes",
    "eq-dcmm-mp": "DCMM's generic message-passing layer (Eq. 2), which Eqs. (3)-(5) specialise",
}


def notebook_labels() -> dict[str, str]:
    """{label: notebook file} of every labelled display equation of the book."""
    out = {}
    for path in sorted((ROOT / "notebooks").glob("*.py")):
        for label in LABEL.findall(path.read_text()):
            assert label not in out, f"{label} is defined twice ({out[label]} and {path.name})"
            out[label] = path.name
    return out


def library_docstrings() -> list[tuple[str, str]]:
    """(where, text) of every module, class and function docstring in xmlib."""
    import ast

    out = []
    for path in sorted((ROOT / "xmlib").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    name = getattr(node, "name", "<module>")
                    out.append((f"{path.relative_to(ROOT)}:{name}", doc))
    return out


def test_equation_label_patterns_work():
    assert LABEL.findall("# $$ (eq-dcmm-conv)\n# $$ (eq-dr-hinge)") == ["eq-dcmm-conv", "eq-dr-hinge"]
    assert NAMED.findall("Eq. (5) of DCMM; chapter label `eq-dcmm-conv`, and ``eq-sgraf-sim``.") == \
        ["eq-dcmm-conv", "eq-sgraf-sim"]
    assert NAMED.findall("a freq-dependent term") == []


def test_every_label_named_in_a_docstring_exists_and_names_its_paper():
    labels = notebook_labels()
    problems = []
    for where, doc in library_docstrings():
        for label in NAMED.findall(doc):
            if label not in labels:
                problems.append(f"{where}: names {label}, which no notebook defines")
            paper = PAPER.get(label.split("-")[1])
            if paper and (paper not in doc or not re.search(r"\b(Eqs?\.|Sec\.|Fig\.)", doc)):
                problems.append(f"{where}: names {label} without the paper ({paper}) and its Eq./Sec./Fig.")
    assert not problems, "\n".join(problems)


def test_every_labelled_equation_with_code_is_named_by_a_docstring():
    labels = notebook_labels()
    chapters = {name for name in labels.values() if name[:2] in ("00", "02", "03", "04")}
    assert {"02_dcmm.py", "03_deepranking.py", "04_sgraf.py"} <= chapters  # the check looks at the paper chapters
    named = {label for _, doc in library_docstrings() for label in NAMED.findall(doc)}
    missing = [f"{label} ({nb})" for label, nb in labels.items()
               if nb in chapters and label not in named and label not in NO_CODE]
    assert not missing, "labelled equations that no library docstring names:\n" + "\n".join(missing)
    stale = [label for label in NO_CODE if label not in labels or label in named]
    assert not stale, f"NO_CODE lists labels that do not exist or that some docstring names: {stale}"


# ------------------------------------------------- docstrings on the API page link to their equation
ROLE = re.compile(r":math:numref:`(eq-[a-z0-9-]+)`")
EQ_MENTION = re.compile(r"\bEqs?\.\s*\(?\d")
# Documented functions that mention a paper's equation without computing it:
MENTION_ONLY = {
    "xmlib.dcmm.data.make_synthetic_queries": "synthetic lists shaped so that Eq. (1) has something to find",
    "xmlib.deepranking.network.DeepRankingNet.init_from_convnet": "an initialisation, our departure",
    "xmlib.sgraf.model.pair_bytes": "a memory estimate of the tensors Eq. (1) makes",
}


def api_modules() -> list[str]:
    """The modules the API page (book/api.md) documents with ``automodule``."""
    return re.findall(r"^\.\. automodule:: (\S+)$", (ROOT / "book" / "api.md").read_text(), re.M)


def documented_docstrings() -> list[tuple[str, str, bool]]:
    """(qualified name, docstring, is a function/class/method) of what autodoc shows on the API page."""
    import importlib
    import inspect

    out = []
    for name in api_modules():
        module = importlib.import_module(name)
        out.append((name, inspect.getdoc(module) or "", False))
        for attr, obj in vars(module).items():
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != name:
                continue
            out.append((f"{name}.{attr}", inspect.getdoc(obj) or "", True))
            if inspect.isclass(obj):
                for meth, fn in vars(obj).items():
                    if inspect.isfunction(fn) and (not meth.startswith("_") or meth == "forward"):
                        out.append((f"{name}.{attr}.{meth}", inspect.getdoc(fn) or "", True))
    return out


def test_api_page_modules_are_found():
    assert "xmlib.sgraf.similarity" in api_modules() and len(documented_docstrings()) > 50


def test_documented_equation_labels_are_links_that_resolve():
    """On the API page a chapter label is a cross-reference (``:math:numref:``), which Sphinx turns into a link
    to the labelled equation (and a nitpicky build fails on a label that does not exist)."""
    labels = notebook_labels()
    problems = []
    for where, doc, _ in documented_docstrings():
        linked = ROLE.findall(doc)
        problems += [f"{where}: links {label}, which no notebook defines" for label in linked if label not in labels]
        bare = NAMED.findall(ROLE.sub("", doc))
        problems += [f"{where}: names {label} as text; write :math:numref:`{label}`" for label in bare]
    assert not problems, "\n".join(problems)


def test_documented_functions_that_cite_an_equation_link_to_it():
    problems = [where for where, doc, is_code in documented_docstrings()
                if is_code and EQ_MENTION.search(doc) and not ROLE.search(doc) and where not in MENTION_ONLY]
    assert not problems, ("documented functions that cite a paper's equation but link no chapter label "
                          "(add 'in the chapter :math:numref:`eq-...`', or list them in MENTION_ONLY):\n" + "\n".join(problems))
    stale = [name for name in MENTION_ONLY if name not in {w for w, _, _ in documented_docstrings()}]
    assert not stale, f"MENTION_ONLY names functions the API page does not show: {stale}"


def test_link_checks_catch_text_labels_and_unlinked_citations():
    doc = "Eq. (5) of DCMM; chapter label `eq-dcmm-conv`."
    assert NAMED.findall(ROLE.sub("", doc)) == ["eq-dcmm-conv"] and EQ_MENTION.search(doc) and not ROLE.search(doc)
    linked = "Eq. (5) of DCMM; in the chapter :math:numref:`eq-dcmm-conv`."
    assert NAMED.findall(ROLE.sub("", linked)) == [] and ROLE.findall(linked) == ["eq-dcmm-conv"]
