"""The grading path itself: the kernel environment, stderr semantics, messages."""

from __future__ import annotations

import ast
import json

import pytest

from graders import cells
from graders.grading.grade import grade_submissions
from graders.grading.units import get_unit

UNIT = get_unit("linear_algebra")
ANSWER = UNIT.answer_ids()[0]
REFERENCE = cells.source(cells.find(UNIT.notebook(), ANSWER))
FUNCS = [n.name for n in ast.parse(REFERENCE).body if isinstance(n, ast.FunctionDef)]


def _wrapped(extra: str) -> str:
    """The reference answer, with every function also running `extra` when called."""
    lines = [REFERENCE, "import sys, warnings"]
    for name in FUNCS:
        lines += [
            f"_orig_{name} = {name}",
            f"def {name}(*args, **kwargs):",
            f"    {extra}",
            f"    return _orig_{name}(*args, **kwargs)",
        ]
    return "\n".join(lines) + "\n"


def _nb(source: str, tmp_path, name: str):
    nb = UNIT.notebook()
    cells.set_source(nb, ANSWER, source)
    path = tmp_path / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.slow
@pytest.mark.xdist_group("unit-linear_algebra")
def test_kernel_env_silences_warnings_but_stderr_still_costs_points(tmp_path):
    subs = {
        "warns": _nb(_wrapped("warnings.warn('deprecated thing', DeprecationWarning)"), tmp_path, "warns"),
        "stderr": _nb(_wrapped("sys.stderr.write('debug noise\\n')"), tmp_path, "stderr"),
    }
    results = grade_submissions(UNIT, subs)
    assert results["warns"].full_marks, results["warns"]
    lost = [c for c in results["stderr"].cells if not c.passed]
    assert lost, "nbgrader scores a test cell that writes to stderr as failed"
    assert any("stderr" in c.message for c in lost), [c.message for c in lost]
