"""The audit's false-alarm rate on honest work is zero.

Every cell a learner may edit in every unit's reference notebook, every hand mutant (wrong
but honest: they include the blind wrong answers) and every alternative correct answer is
audited as `llmlabs check` and `llmlabs grade` audit a submission. A finding on any of them
would put a "suspected tampering" line in front of an honest learner's grade.
"""

from __future__ import annotations

import pytest

from graders import cells
from graders.authoring.mutants import load_mutants
from graders.grading.audit import audit_notebook, audit_source, locked_names
from graders.grading.units import all_units

UNITS = all_units()


def _alternatives(unit):
    try:
        from graders.authoring.alternatives import load_alternatives
    except ImportError:  # pragma: no cover - the module is optional in older checkouts
        return []
    return load_alternatives(unit) if (unit.directory / "alternatives.py").is_file() else []


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_no_audit_finding_on_honest_work(unit):
    source = unit.notebook()
    protected = locked_names(source)
    findings = [f"reference notebook: {f}" for f in audit_notebook(source, source)]
    for mutant in load_mutants(unit):
        findings += [f"hand mutant {mutant.name}: {f}" for f in audit_source(mutant.source, protected)]
    for alt in _alternatives(unit):
        findings += [f"alternative {alt.name}: {f}" for f in audit_source(alt.source, protected)]
    assert not findings, f"{unit.name}: the audit accuses honest work:\n" + "\n".join(findings)


def test_the_corpus_is_not_empty():
    # A corpus that silently shrank to nothing would make the test above pass vacuously.
    answers = sum(len(u.answer_ids()) for u in UNITS)
    mutants = sum(len(load_mutants(u)) for u in UNITS)
    assert len(UNITS) >= 10 and answers >= 50 and mutants >= 300, (len(UNITS), answers, mutants)
    assert all(cells.find(u.notebook(), a) for u in UNITS for a in u.answer_ids()[:1])
