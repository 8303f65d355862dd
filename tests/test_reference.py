"""The reference reader (graders.reference) and mutants written as edits of it."""

from __future__ import annotations

import pytest

from graders.mutants import EditedMutants, Mutant
from graders.reference import exec_reference, reference_cells
from graders.units import all_units, get_unit

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
        answers = [g for g, m in unit.graded_cells().items() if m.get("solution")]
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


def test_a_mutant_that_does_not_parse_is_reported(monkeypatch):
    # The suite's parse check must catch a broken mutant, not pass over it.
    import test_units as tu  # pytest imports tests/ modules by their base name

    unit = get_unit("linear_algebra")
    broken = Mutant(name="broken", cell="softmax", source="def softmax(x:\n", must_fail=("test_softmax_hidden",))
    monkeypatch.setattr(tu, "all_units", lambda: (unit,))
    monkeypatch.setattr(tu, "load_mutants", lambda u: [broken])
    with pytest.raises(AssertionError, match="linear_algebra/broken"):
        tu.test_every_mutant_parses()
