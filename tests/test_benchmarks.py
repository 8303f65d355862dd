"""Every unit's benchmark.py still starts: its imports resolve, its --help prints, and the
reference it measures loads from the unit's text form (no test runs a whole benchmark:
they take minutes and measure, they do not check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from graders.authoring.benchmarking import load_reference, text_form

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(ROOT.glob("curriculum/*/benchmark.py"))


def test_every_torch_unit_has_a_benchmark():
    # A unit whose notebook uses torch measures its exercises on real sizes in benchmark.py.
    torch_units = {
        p.parent
        for p in ROOT.glob("curriculum/*/*.py")
        if p.stem == p.parent.name[3:] and "import torch" in p.read_text()
    }
    missing = sorted(d.name for d in torch_units if not (d / "benchmark.py").is_file())
    assert len(torch_units) >= 9 and not missing, f"units using torch without a benchmark.py: {missing}"


@pytest.mark.slow  # each imports torch in a fresh interpreter: ~6 s
@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.parent.name)
def test_benchmark_help(path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, str(path), "--help"], capture_output=True, text=True, env=env, timeout=120, cwd="/"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:"), done.stdout[:500]
    assert not done.stderr.strip(), f"--help wrote to stderr:\n{done.stderr[-2000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.parent.name)
def test_benchmark_reference_loads(path):
    names = load_reference(path)
    module = names["__name__"]
    defined = [k for k, v in names.items() if callable(v) and getattr(v, "__module__", None) == module]
    assert len(defined) >= 3, f"{text_form(path).name}: the reference defines only {defined}"


def test_text_form_is_named_after_the_unit_folder(tmp_path):
    unit = tmp_path / "07_some_unit"
    unit.mkdir()
    with pytest.raises(FileNotFoundError, match="some_unit.py"):
        text_form(unit / "benchmark.py")
    (unit / "some_unit.py").write_text("")
    assert text_form(unit / "benchmark.py") == unit / "some_unit.py"
