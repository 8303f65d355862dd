"""Every unit, graded through real nbgrader in one batch: the reference earns full
marks, the released notebook earns nothing and leaks nothing, and every mutant loses
the points of the exercise it breaks (graders.authoring.mutation)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from graders import cells
from graders.authoring.mutants import load_mutants
from graders.authoring.mutation import UnitGrades, grade_unit, stub_only_problems
from graders.grading.grade import unhelpful
from graders.grading.units import all_units, get_unit

UNITS = [u.name for u in all_units()]
MUTANTS = [(u.name, m.name) for u in all_units() for m in load_mutants(u)]


@cache
def graded(unit_name: str, tmp_root: str) -> UnitGrades:
    return grade_unit(get_unit(unit_name), Path(tmp_root))


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("units"))


def _group(unit):
    return pytest.mark.xdist_group(f"unit-{unit}")


@pytest.mark.parametrize("unit_name", [pytest.param(u, marks=_group(u)) for u in UNITS])
def test_reference_earns_full_marks(unit_name, tmp_root):
    ref = graded(unit_name, tmp_root).reference
    assert ref.error is None, ref.error
    lost = [f"{c.grade_id}: {c.score}/{c.max_score} {c.message}" for c in ref.cells if not c.passed]
    assert not lost, "reference lost points:\n" + "\n".join(lost)
    assert ref.max_score == get_unit(unit_name).points


@pytest.mark.parametrize("unit_name", [pytest.param(u, marks=_group(u)) for u in UNITS])
def test_release_scores_zero_everywhere(unit_name, tmp_root):
    rel = graded(unit_name, tmp_root).release
    assert rel.error is None, rel.error
    earned = [f"{c.grade_id}: {c.score}/{c.max_score}" for c in rel.cells if c.score > 0]
    assert not earned, "the unfilled release earned points:\n" + "\n".join(earned)
    assert len(rel.cells) == len(get_unit(unit_name).test_points())


@pytest.mark.parametrize("unit_name", [pytest.param(u, marks=_group(u)) for u in UNITS])
def test_release_fails_only_with_the_stub(unit_name, tmp_root):
    """The release graded above ran top to bottom: every error it raised is the course's
    NotImplementedError stub (or follows from it), never a SyntaxError, a NameError of a
    name a locked or answer cell defines, or a setup cell that crashes. (Every cell compiles:
    graders.authoring.lint checks that without a kernel.)"""
    grades = graded(unit_name, tmp_root)
    assert grades.release.error is None, grades.release.error
    assert grades.release_errors, "the autograded release recorded no error: did its stubs run at all?"
    problems = stub_only_problems(get_unit(unit_name).notebook(), grades.release_errors)
    assert not problems, "the student version fails otherwise than with the stub:\n" + "\n".join(problems)


def _marked_blocks(text: str, begin: str, end: str) -> list[str]:
    lines = []
    for block in re.findall(rf"{begin}\n(.*?){end}", text, re.S):
        lines += [ln.strip() for ln in block.splitlines() if len(ln.strip()) > 12]
    return lines


@pytest.mark.parametrize("unit_name", [pytest.param(u, marks=_group(u)) for u in UNITS])
def test_release_leaks_no_solution_or_hidden_test(unit_name, tmp_root):
    released = graded(unit_name, tmp_root).release_path.read_text()
    source = get_unit(unit_name).notebook_path.read_text().replace("\\n", "\n").replace('\\"', '"')
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in released
    secret = _marked_blocks(source, r"### BEGIN SOLUTION", r"### END SOLUTION")
    secret += _marked_blocks(source, r"### BEGIN HIDDEN TESTS", r"### END HIDDEN TESTS")
    plain = released.replace("\\n", "\n").replace('\\"', '"')
    public = {ln.strip() for ln in plain.splitlines()}
    leaked = [ln for ln in secret if ln in public and ln.strip('",') not in ("return out", "return result")]
    assert not leaked, f"released notebook contains {len(leaked)} secret lines, e.g. {leaked[:3]}"


@pytest.mark.parametrize(
    "unit_name,mutant_name", [pytest.param(u, m, marks=_group(u), id=f"{u}-{m}") for u, m in MUTANTS]
)
def test_mutant_loses_points(unit_name, mutant_name, tmp_root):
    grades = graded(unit_name, tmp_root)
    mutant = {m.name: m for m in load_mutants(grades.unit)}[mutant_name]
    assert mutant_name not in grades.mutant_errors, grades.mutant_errors.get(mutant_name)
    kept = grades.kept_full_marks(mutant)
    assert not kept, f"mutant {mutant_name} ({mutant.why}) kept full marks on {kept}"


@pytest.mark.parametrize("unit_name", [pytest.param(u, marks=_group(u)) for u in UNITS])
def test_release_failure_lines_name_the_cause(unit_name, tmp_root):
    """The line `llmlabs check` prints for each test the release lost (the same
    grade_submissions, graded above) names the cause: never empty, ending in a colon, or
    naming only an exception (a wrapper's, as every multi-process test's did: issue 33).
    A test that runs its exercise on gloo processes shows the rank and the stub it raised."""
    unit = get_unit(unit_name)
    lines = {c.grade_id: c.message for c in graded(unit_name, tmp_root).release.cells if not c.passed}
    assert lines, "the unfilled release lost no points"
    bad = [f"{gid}: {line!r} ({why})" for gid, line in lines.items() if (why := unhelpful(line))]
    assert not bad, "failure lines that do not name the cause:\n" + "\n".join(bad)
    source = unit.notebook()
    parallel = [gid for gid in lines if "run_distributed(" in cells.source(cells.find(source, gid))]
    wrong = [
        f"{gid}: {lines[gid]!r}"
        for gid in parallel
        if not re.match(r"rank \d+: NotImplementedError: \S", lines[gid])
    ]
    assert not wrong, "multi-process tests whose line is not the rank's own stub:\n" + "\n".join(wrong)
