"""Lint and types: ruff over the package, tests, data scripts and the curriculum's
mutants and benchmarks (line length included); ruff's formatting of the package and the
tests; pyflakes over the built notebooks;
mypy over the package, strict on the notebook API, the sandbox and grading (config in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean():
    scripts = sorted(
        str(p.relative_to(ROOT)) for p in ROOT.glob("curriculum/*/*.py") if p.stem in ("mutants", "benchmark")
    )
    assert scripts, "no curriculum scripts found"
    proc = _run(str(BIN / "ruff"), "check", "--no-cache", "graders", "tests", "datasets", *scripts)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_applied():
    # One layout for the package and the tests: `ruff format graders tests` fixes a failure.
    proc = _run(str(BIN / "ruff"), "format", "--check", "--no-cache", "graders", "tests")
    assert proc.returncode == 0, "run `ruff format graders tests`:\n" + proc.stdout + proc.stderr


def test_built_notebooks_have_no_pyflakes_errors():
    # Undefined names, unused imports, redefinitions: real mistakes in a notebook's code.
    notebooks = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("curriculum/*/*.ipynb"))
    proc = _run(str(BIN / "ruff"), "check", "--no-cache", "--select", "F", *notebooks)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow  # ~35 s from a cold cache
def test_mypy_is_clean():
    proc = _run(str(BIN / "mypy"), "--no-incremental")
    assert proc.returncode == 0, proc.stdout + proc.stderr
