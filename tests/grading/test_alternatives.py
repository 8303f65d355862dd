"""Alternative correct answers keep full marks: each unit's `alternatives.py` (correct
answers written unlike the reference) is graded through nbgrader, all of a unit's
alternatives in as few notebooks as the most alternatives of one cell, in one run."""

from __future__ import annotations

import pytest

from graders.authoring.alternatives import check_unit, units_with_alternatives

pytestmark = pytest.mark.slow

UNITS = units_with_alternatives()


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_alternatives_keep_full_marks(unit):
    verdicts, problems = check_unit(unit)
    assert not problems, "\n".join(problems)
    assert verdicts, f"{unit.name}: no alternative was graded"
    lost = [
        f"{unit.name}/{v.alternative.name} ({v.alternative.why}): {line}" for v in verdicts for line in v.lost
    ]
    assert not lost, "alternatives that lost points:\n" + "\n".join(lost)
