"""Every unit, graded through real nbgrader in one batch: the reference earns full
marks, the released notebook earns nothing and leaks nothing, and every mutant loses
the points of the exercise it breaks."""

from __future__ import annotations

import re
from functools import cache

import pytest

from graders.grading import grade_submissions
from graders.mutants import load_mutants, write_mutant
from graders.release import release_unit
from graders.units import all_units, get_unit

UNITS = [u.name for u in all_units()]
MUTANTS = [(u.name, m.name) for u in all_units() for m in load_mutants(u)]
_TMP = {}


@cache
def graded(unit_name: str, tmp_root: str):
    """Release the unit, then grade reference + release + all mutants in one nbgrader run."""
    from pathlib import Path

    unit = get_unit(unit_name)
    root = Path(tmp_root) / unit_name
    release = release_unit(unit, root / "release")
    subs = {"reference": unit.notebook_path, "release": release}
    mutants = {m.name: m for m in load_mutants(unit)}
    if unit.extra.get("mutants") == "kernel":
        # Heavy unit: mutants share one kernel (graders.mutant_kernel); see its docstring.
        results = grade_submissions(unit, subs)
        results["kernel_mutants"] = _kernel_mutants(unit)
        return release, results
    for m in mutants.values():
        subs[f"mutant_{m.name}"] = write_mutant(unit, m, root / "mutants")
    return release, grade_submissions(unit, subs)


def _kernel_mutants(unit):
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "graders.mutant_kernel", unit.name], capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("units"))


def _group(unit):
    return pytest.mark.xdist_group(f"unit-{unit}")


@pytest.mark.slow
@pytest.mark.parametrize("unit_name", [pytest.param(u, marks=_group(u)) for u in UNITS])
def test_reference_earns_full_marks(unit_name, tmp_root):
    _, results = graded(unit_name, tmp_root)
    ref = results["reference"]
    assert ref.error is None, ref.error
    lost = [f"{c.grade_id}: {c.score}/{c.max_score} {c.message}" for c in ref.cells if not c.passed]
    assert not lost, "reference lost points:\n" + "\n".join(lost)
    assert ref.max_score == get_unit(unit_name).points


@pytest.mark.slow
@pytest.mark.parametrize("unit_name", [pytest.param(u, marks=_group(u)) for u in UNITS])
def test_release_scores_zero_everywhere(unit_name, tmp_root):
    _, results = graded(unit_name, tmp_root)
    rel = results["release"]
    assert rel.error is None, rel.error
    earned = [f"{c.grade_id}: {c.score}/{c.max_score}" for c in rel.cells if c.score > 0]
    assert not earned, "the unfilled release earned points:\n" + "\n".join(earned)
    assert len(rel.cells) == len([m for m in get_unit(unit_name).graded_cells().values() if m["grade"]])


def _marked_blocks(text: str, begin: str, end: str) -> list[str]:
    lines = []
    for block in re.findall(rf"{begin}\n(.*?){end}", text, re.S):
        lines += [ln.strip() for ln in block.splitlines() if len(ln.strip()) > 12]
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("unit_name", [pytest.param(u, marks=_group(u)) for u in UNITS])
def test_release_leaks_no_solution_or_hidden_test(unit_name, tmp_root):
    release, _ = graded(unit_name, tmp_root)
    released = release.read_text()
    source = get_unit(unit_name).notebook_path.read_text().replace("\\n", "\n").replace('\\"', '"')
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in released
    secret = _marked_blocks(source, r"### BEGIN SOLUTION", r"### END SOLUTION")
    secret += _marked_blocks(source, r"### BEGIN HIDDEN TESTS", r"### END HIDDEN TESTS")
    plain = released.replace("\\n", "\n").replace('\\"', '"')
    public = {ln.strip() for ln in plain.splitlines()}
    leaked = [ln for ln in secret if ln in public and ln.strip('",') not in ("return out", "return result")]
    assert not leaked, f"released notebook contains {len(leaked)} secret lines, e.g. {leaked[:3]}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "unit_name,mutant_name", [pytest.param(u, m, marks=_group(u), id=f"{u}-{m}") for u, m in MUTANTS]
)
def test_mutant_loses_points(unit_name, mutant_name, tmp_root):
    _, results = graded(unit_name, tmp_root)
    unit = get_unit(unit_name)
    mutant = {m.name: m for m in load_mutants(unit)}[mutant_name]
    if "kernel_mutants" in results:
        scores = results["kernel_mutants"][mutant_name]
        points = {g: m.get("points", 0) for g, m in unit.graded_cells().items()}
        kept = [t for t in mutant.must_fail if scores.get(t, points[t]) >= points[t]]
        assert not kept, f"mutant {mutant_name} ({mutant.why}) kept full marks on {kept}"
        return
    res = results[f"mutant_{mutant_name}"]
    assert res.error is None, res.error
    cells = res.by_id()
    kept = [t for t in mutant.must_fail if cells[t].passed]
    assert not kept, f"mutant {mutant_name} ({mutant.why}) kept full marks on {kept}"


def test_every_unit_has_mutants_for_every_answer_cell():
    for unit in all_units():
        answers = [gid for gid, m in unit.graded_cells().items() if m.get("solution")]
        mutated = {m.cell for m in load_mutants(unit)}
        missing = [a for a in answers if sum(m.cell == a for m in load_mutants(unit)) < 3]
        assert not missing, f"{unit.name}: answer cells with fewer than 3 mutants: {missing} (have {sorted(mutated)})"


def test_every_mutant_parses():
    # A mutant with a syntax error proves nothing: in a whole-notebook run its tests fail
    # for the wrong reason, and in the shared mutant kernel the reference stays defined.
    import ast

    broken = []
    for unit in all_units():
        for m in load_mutants(unit):
            try:
                ast.parse(m.source)
            except SyntaxError as exc:
                broken.append(f"{unit.name}/{m.name}: {exc}")
    assert not broken, "mutants that do not parse:\n" + "\n".join(broken)
