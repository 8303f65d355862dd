"""Automatic mutation testing stays alive: a fixed sample of linear_algebra's automatic
mutants, graded again in the shared kernel, gets the verdicts the committed report has."""

from __future__ import annotations

import json

from graders.authoring.automutate import mutate_unit
from graders.authoring.mutation_score import REPORT_JSON, grade_automutants, sample
from graders.authoring.reference import reference_cells
from graders.grading.units import get_unit

UNIT = get_unit("linear_algebra")


def test_a_fixed_sample_gets_the_reported_verdicts():
    report = {v["id"]: v for v in json.loads((UNIT.directory / REPORT_JSON).read_text())["verdicts"]}
    # Verdicts decided by a timing test can flip on a loaded machine: not in the sample.
    steady = [m for m in mutate_unit(reference_cells(UNIT.text_path)) if "speed" not in report[m.id]["by"]]
    chosen = sample(steady, 8, seed=1)
    survivors = [m for m in steady if not report[m.id]["killed"]][:2]
    chosen += [m for m in survivors if m not in chosen]
    verdicts = grade_automutants(UNIT, chosen, use_cache=False)
    got = {v.id: v.killed for v in verdicts}
    expected = {m.id: report[m.id]["killed"] for m in chosen}
    assert got == expected
    assert any(got.values()) and not all(got.values()), "the sample should hold both kills and survivors"
