"""Project-wide invariants."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_only_the_device_helper_mentions_cuda():
    """One device helper decides CPU or GPU: no other module or notebook names CUDA."""
    offenders = []
    for path in list((ROOT / "xmlib").rglob("*.py")) + list((ROOT / "notebooks").glob("*.py")):
        if path == ROOT / "xmlib" / "core" / "device.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bcuda\b|\.cuda\(", line, flags=re.IGNORECASE):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "CUDA named outside xmlib/core/device.py:\n" + "\n".join(offenders)


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
    for path in sorted((ROOT / "notebooks").glob("*.py")):
        text = path.read_text()
        assert text.count('tags=["parameters"]') == 1, path
        assert "kernelspec:" in text and "name: python3" in text, path
        assert 'profile = "default"' in text and "overrides = {}" in text, path
