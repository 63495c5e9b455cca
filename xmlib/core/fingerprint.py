"""Fingerprints of the code that computes a result, so that cached results and checkpoints are never stale.

A trained model depends on its configuration *and* on the code that defines and trains it. A cache
keyed by the configuration alone would hand back an old model after the training loop changed.
:func:`code_hash` hashes the source of an ``xmlib`` module and of every ``xmlib`` module it imports,
directly or not (found by reading the ``import`` statements, without importing anything), so that any
edit to a model, a loss, a sampler or the training loop changes the key.

Analysis-only configuration fields (bootstrap replicates, test subsets, plotting settings) are marked
with :func:`analysis_field` and left out of :meth:`xmlib.core.config.BaseConfig.model_fingerprint`, so
that changing them retrains nothing.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Iterable

PACKAGE = "xmlib"

NEUTRAL = ("xmlib.core.jobs", "xmlib.core.progress", "xmlib.replication", "xmlib.book")
"""Modules that cannot change a trained model or its test scores (how runs are scheduled and cached,
progress bars, the verdicts, the book's pages): left out of :func:`code_hash`, so that editing them
retrains nothing."""


def _package_root() -> Path:
    return Path(__file__).resolve().parents[1]  # .../xmlib


def _module_file(name: str) -> Path | None:
    """The source file of xmlib module ``name``, found on disk without importing it (None: not a module)."""
    rel = Path(*name.split(".")[1:])
    root = _package_root()
    for cand in (root / rel / "__init__.py", (root / rel).with_suffix(".py") if rel.parts else root / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imported_xmlib_modules(path: Path, module: str) -> set[str]:
    """Names of the xmlib modules that ``path`` (the source of ``module``) imports (parsed once per
    version of the file: keyed by its modification time and size)."""
    st = path.stat()
    return set(_parsed_imports(str(path), module, st.st_mtime_ns, st.st_size))


@lru_cache(maxsize=1024)
def _parsed_imports(path_str: str, module: str, mtime_ns: int, size: int) -> frozenset[str]:
    path = Path(path_str)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - node.level + 1]
                target = ".".join(parent + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            out.add(target)
            for a in node.names:  # "from xmlib.sgraf import model" imports a module
                out.add(f"{target}.{a.name}")
    return frozenset(out)


def module_closure(*modules: str) -> dict[str, Path]:
    """Every xmlib module that ``modules`` import, directly or not, with its source file (packages'
    ``__init__`` included), except the :data:`NEUTRAL` ones."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] != PACKAGE or any(name == n or name.startswith(n + ".") for n in NEUTRAL):
            continue
        path = _module_file(name)
        if path is None or path.suffix != ".py":
            continue  # "from pkg import function": not a module
        seen[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run too
        todo.extend(_imported_xmlib_modules(path, name))
    return dict(sorted(seen.items()))


@lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_hash(*modules: str) -> str:
    """A short hash of the source of ``modules`` and every xmlib module they import."""
    if not modules:
        raise ValueError("code_hash() needs at least one module name, e.g. 'xmlib.sgraf.train'")
    h = hashlib.sha256()
    for name, path in module_closure(*modules).items():
        st = path.stat()
        h.update(f"{name}\0{_file_digest(str(path), st.st_mtime_ns, st.st_size)}\0".encode())
    return h.hexdigest()[:16]


def describe(*modules: str) -> list[str]:
    """The module names :func:`code_hash` covers (for run records and error messages)."""
    return list(module_closure(*modules))


def combine(*parts: Iterable[str] | str) -> str:
    """One short hash of several strings."""
    h = hashlib.sha256()
    for p in parts:
        h.update((p if isinstance(p, str) else "\0".join(p)).encode())
        h.update(b"\1")
    return h.hexdigest()[:16]


def checkpoint_key(cfg, module: str) -> str:
    """The key a training run's checkpoints must match: the config's training fields (analysis and
    evaluation fields left out) and the code of ``module`` and everything it imports. A checkpoint
    written by other code or for another model is then refused instead of resumed."""
    return combine(type(cfg).__name__, cfg.model_fingerprint(evaluation=False), code_hash(module))
