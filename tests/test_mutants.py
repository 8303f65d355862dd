"""Every unit's hand-written mutants are well formed (fast: nothing is graded here; the
grading of each mutant is in tests/grading/test_units.py)."""

from __future__ import annotations

import pytest

from graders import cells
from graders.authoring.mutants import Mutant, load_mutants, mutant_problems
from graders.authoring.reference import reference_cells
from graders.grading.units import all_units, get_unit

UNITS = list(all_units())


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_mutants_parse_name_real_cells_and_cover_every_answer(unit):
    problems = mutant_problems(unit, load_mutants(unit))
    assert not problems, "\n".join(problems)


def test_broken_mutants_are_reported():
    unit = get_unit("linear_algebra")
    good = load_mutants(unit)
    broken = [
        Mutant(name="broken", cell="softmax", source="def softmax(x:\n", must_fail=("test_softmax_hidden",)),
        Mutant(
            name="not_an_answer",
            cell="test_softmax_hidden",
            source="x = 1\n",
            must_fail=("test_softmax_hidden",),
        ),
        Mutant(name="no_tests", cell="softmax", source="x = 1\n", must_fail=("test_nothing",)),
        Mutant(name="bad-name!", cell="softmax", source="x = 2\n", must_fail=("test_softmax_hidden",)),
        Mutant(name="same", cell="softmax", source=good[0].source, must_fail=("test_softmax_hidden",)),
        Mutant(name="same", cell="softmax", source="x = 3\n", must_fail=("test_softmax_hidden",)),
    ]
    problems = "\n".join(mutant_problems(unit, [m for m in good if m.cell != "scores"] + broken))
    for needle in (
        "linear_algebra/broken: does not parse",
        "not_an_answer: 'test_softmax_hidden' is not an answer cell",
        "no_tests: must_fail names no test cells",
        "bad-name!: the name must be",
        "mutant name 'same' is used 2 times",
        "answer cell 'scores' has 0 mutants",
    ):
        assert needle in problems, f"{needle!r} not reported:\n{problems}"


def test_a_mutant_identical_to_the_reference_is_reported():
    unit = get_unit("linear_algebra")
    with_markers = cells.source(cells.find(unit.notebook(), "softmax"))
    without = reference_cells(unit.text_path)["softmax"]
    for source in (with_markers, without):
        same = Mutant(name="noop", cell="softmax", source=source, must_fail=("test_softmax_hidden",))
        assert any("is the reference answer itself" in p for p in mutant_problems(unit, [same], per_answer=0))
