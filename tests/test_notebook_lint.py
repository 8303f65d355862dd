"""Static checks of every unit's source notebook (fast: no kernel runs)."""

from __future__ import annotations

import ast
import re

import pytest

from graders import notebook_build
from graders.units import all_units

UNITS = list(all_units())
IDS = [u.name for u in UNITS]


def test_committed_notebooks_are_built_from_their_text_form():
    assert notebook_build.main(["--check"]) == 0, "run: python -m graders.notebook_build"


def _code(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_no_outputs_and_python3_kernel(unit):
    nb = unit.notebook()
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["metadata"]["llmlabs"]["unit"] == unit.name
    for cell in _code(nb):
        assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_grade_ids_unique_and_tests_have_points(unit):
    ids = [_meta(c)["grade_id"] for c in unit.notebook()["cells"] if _meta(c)]
    assert len(ids) == len(set(ids))
    for cell in unit.notebook()["cells"]:
        m = _meta(cell)
        if m.get("grade"):
            assert m.get("points", 0) > 0, f"{m['grade_id']} has no points"
            assert m.get("locked"), f"{m['grade_id']} must be locked"


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_first_code_cell_sets_up_the_kernel(unit):
    first = _code(unit.notebook())[0]
    assert _meta(first).get("locked") and not _meta(first).get("grade")
    assert "setup(" in first["source"], "the first code cell must call graders.kernel.setup()"


def _last_statement_raises_on_failure(source: str) -> bool:
    body = ast.parse(source).body
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Assert):
        return True
    if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
        func = last.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name.startswith("assert") or name.startswith("check")
    return False


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_test_cells_end_in_an_assert(unit):
    # nbgrader gives full marks to a cell whose last value is not a number (even False).
    for cell in unit.notebook()["cells"]:
        if _meta(cell).get("grade"):
            src = cell["source"]
            assert _last_statement_raises_on_failure(src), f"{_meta(cell)['grade_id']} must end in an assert"
            visible = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", src, flags=re.S)
            if visible.strip():
                assert _last_statement_raises_on_failure(visible) or "### BEGIN HIDDEN TESTS" in src


def _defined_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_every_answer_cell_is_covered_by_a_graded_test(unit):
    cells = unit.notebook()["cells"]
    tests = " ".join(c["source"] for c in cells if _meta(c).get("grade") and _meta(c).get("points", 0) > 0)
    for cell in cells:
        if _meta(cell).get("solution"):
            names = _defined_names(cell["source"])
            assert names, f"answer cell {_meta(cell)['grade_id']} defines nothing"
            assert any(re.search(rf"\b{re.escape(n)}\b", tests) for n in names), (
                f"no graded test uses anything defined in answer cell {_meta(cell)['grade_id']} ({sorted(names)})"
            )


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_unit_metadata_is_complete(unit):
    assert unit.title and unit.minutes > 0 and unit.device and unit.skills
    text = " ".join(c["source"] for c in unit.notebook()["cells"] if c["cell_type"] == "markdown").lower()
    for needed in ("objective", "prerequisite"):
        assert needed in text, f"{unit.name}: the notebook should state its {needed}s"


def test_builder_rejects_bad_text():
    with pytest.raises(notebook_build.BuildError, match="points"):
        notebook_build.parse_cells("# %% test id=t\nassert True\n")
    with pytest.raises(notebook_build.BuildError, match="duplicated"):
        notebook_build.parse_cells("# %% answer id=a\nx=1\n# %% answer id=a\nx=2\n")
    with pytest.raises(notebook_build.BuildError, match="unknown cell kind"):
        notebook_build.parse_cells("# %% anwser id=a\nx=1\n")
    with pytest.raises(notebook_build.BuildError, match="markdown"):
        notebook_build.parse_cells("# %% [markdown]\nnot a comment\n")


def test_ruff_is_clean():
    import subprocess
    import sys
    from pathlib import Path

    ruff = Path(sys.executable).parent / "ruff"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([str(ruff), "check", "graders", "tests", "datasets"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
