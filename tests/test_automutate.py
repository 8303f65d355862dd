"""The automatic mutant generator (graders.authoring.automutate) and the committed
mutation reports: every operator fires where it should, ids are stable, every mutant
parses, and each unit's report and triage name exactly the mutants its reference has."""

from __future__ import annotations

import ast
import json

import pytest

from graders.authoring.automutate import mutate_cell, mutate_unit
from graders.authoring.mutation_score import REPORT_JSON, exercise_ranges, load_triage
from graders.authoring.reference import reference_cells
from graders.grading.units import all_units

SOURCE = '''\
def f(x, y, axis=-1, eps=1e-6):
    """Docstring: not mutated."""
    z = abs(x - y) * 2  # a comment that stays
    if z.max() >= eps and not flag:
        z = np.maximum(z, 0.0)
    z += 1
    return z.sum(axis=axis, keepdims=True).float()
'''


def _afters(op):
    return {m.after for m in mutate_cell("f", SOURCE) if m.operator == op}


def test_each_operator_fires_where_it_should():
    assert "z = abs(x + y) * 2  # a comment that stays" in _afters("binop")
    assert "z = abs(x - y) / 2  # a comment that stays" in _afters("binop")
    assert "z -= 1" in _afters("binop")
    assert "if z.max() > eps and not flag:" in _afters("compare")
    assert "if z.max() >= eps or not flag:" in _afters("boolop")
    assert "if z.max() >= eps and flag:" in _afters("boolop")
    assert "def f(x, y, axis=1, eps=1e-6):" in _afters("boolop")  # -1 -> 1
    assert {
        "z = abs(x - y) * 3  # a comment that stays",
        "def f(x, y, axis=-1, eps=2e-06):",
        "return z.sum(axis=axis, keepdims=False).float()",
    } <= _afters("const")
    # The argument keeps its brackets: (x - y) * 2, not x - y * 2.
    assert {"z = (x - y) * 2  # a comment that stays", "z = z", "return z.sum(axis=axis, keepdims=True)"} <= (
        _afters("unwrap")
    )
    assert {"return z.sum(keepdims=True).float()", "return z.sum(axis=axis).float()"} <= _afters("keyword")
    assert "z = np.maximum(0.0, z)" in _afters("swap")
    assert {"pass  # a comment that stays", "pass"} <= _afters("drop")


def test_docstrings_returns_and_single_statements_are_left_alone():
    mutants = mutate_cell("f", SOURCE)
    assert not any("Docstring" in m.before for m in mutants)
    dropped = {m.before for m in mutants if m.operator == "drop"}
    assert not any(b.startswith("return") for b in dropped)
    assert "z = np.maximum(z, 0.0)" not in dropped  # the only statement of its block


def test_every_mutant_parses_differs_and_has_a_unique_stable_id():
    mutants = mutate_cell("f", SOURCE)
    assert len({m.id for m in mutants}) == len(mutants)
    assert len({m.source for m in mutants}) == len(mutants)
    for m in mutants:
        ast.parse(m.source)
        assert m.source != SOURCE and m.id.startswith(f"f/{m.operator}/")
    # An edit elsewhere in the cell keeps the ids of the untouched lines.
    edited = {m.id for m in mutate_cell("f", SOURCE.replace("z += 1", "z += 1\n    z = z"))}
    unchanged = {m.id for m in mutants if "z += 1" not in m.before}
    assert unchanged <= edited


@pytest.mark.parametrize("unit", list(all_units()), ids=[u.name for u in all_units()])
def test_unit_mutants_parse_and_ranges_cover_every_answer(unit):
    answers = reference_cells(unit.text_path)
    mutants = mutate_unit(answers)
    assert mutants and len({m.id for m in mutants}) == len(mutants)
    for m in mutants:
        ast.parse(m.source)
    assert set(exercise_ranges(unit)) == set(answers)


@pytest.mark.parametrize("unit", list(all_units()), ids=[u.name for u in all_units()])
def test_committed_report_and_triage_match_the_reference(unit):
    path = unit.directory / REPORT_JSON
    if not path.is_file():
        pytest.skip(f"{unit.name} has no mutation report yet")
    report = json.loads(path.read_text())
    ids = {m.id for m in mutate_unit(reference_cells(unit.text_path))}
    reported = {v["id"] for v in report["verdicts"]}
    assert reported == ids, (
        f"{unit.name}: the mutation report is stale ({len(ids - reported)} new, {len(reported - ids)} gone): "
        f"run python -m graders.authoring.mutation_score {unit.name}"
    )
    stale = set(load_triage(unit)) - ids
    assert not stale, f"{unit.name}: triage entries for mutants that no longer exist: {sorted(stale)}"
