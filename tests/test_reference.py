"""The reference reader (graders.authoring.reference) and mutants written as edits of it."""

from __future__ import annotations

import pytest

from graders.authoring.mutants import EditedMutants
from graders.authoring.reference import exec_reference, reference_cells
from graders.grading.units import all_units

TEXT = """\
# %% [markdown]
# # A unit

# %% setup id=setup
import math

# %% answer id=area
def area(r):
    ### BEGIN SOLUTION
    return math.pi * r * r
    ### END SOLUTION

# %% test id=test_area points=1
assert area(1) == math.pi
"""


@pytest.fixture
def text_form(tmp_path):
    path = tmp_path / "unit.py"
    path.write_text(TEXT)
    return path


def test_reference_cells_drop_solution_markers_and_keep_order(text_form, tmp_path):
    assert reference_cells(text_form) == {"area": "def area(r):\n    return math.pi * r * r\n"}
    assert list(reference_cells(text_form, kinds=("setup", "answer"))) == ["setup", "area"]
    prose = tmp_path / "prose.py"
    prose.write_text("# %% [markdown]\n# nothing to run\n")
    with pytest.raises(LookupError, match="no answer cells"):
        reference_cells(prose)


def test_exec_reference_runs_setup_then_answers(text_form):
    ns = exec_reference(text_form, {}, kinds=("setup", "answer"))
    assert ns["area"](2) == pytest.approx(4 * 3.141592653589793)


def test_every_unit_text_form_has_the_notebooks_answer_cells():
    for unit in all_units():
        answers = unit.answer_ids()
        assert list(reference_cells(unit.directory / f"{unit.name}.py")) == answers, unit.name


def test_edited_mutant_applies_edits_and_fails_loudly_when_one_does_not(text_form):
    m = EditedMutants(text_form)
    mutant = m("area_diameter", "area", [("r * r", "2 * r")], ("test_area",), "uses the diameter")
    assert mutant.source == "def area(r):\n    return math.pi * 2 * r\n"
    assert mutant.must_fail == ("test_area",)
    with pytest.raises(ValueError, match="does not apply"):
        m("stale", "area", [("r ** 2", "r")], ("test_area",), "edit of text that is not there")
    with pytest.raises(LookupError, match="no answer cell 'volume'"):
        m.answer("volume")


def test_exec_reference_runs_only_the_named_cells():
    unit = next(u for u in all_units() if u.name == "linear_algebra")
    answers = list(reference_cells(unit.text_path))
    first = answers[0]
    ns = exec_reference(unit.text_path, {}, only=(first,))
    ns_all = exec_reference(unit.text_path, {})
    assert set(ns) < set(ns_all)
    with pytest.raises(LookupError, match="no_such_cell"):
        exec_reference(unit.text_path, {}, only=(first, "no_such_cell"))
