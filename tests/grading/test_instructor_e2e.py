"""An instructor's whole term in a temporary directory, with stock nbgrader commands:
course init -> generate -> release -> two students fetch/submit -> collect ->
autograde -> feedback (no hidden tests) -> export CSV with the expected scores."""

from __future__ import annotations

import csv
import json
import re

import pytest

from graders import cells
from graders.grading.units import get_unit
from tests.helpers import nbgrader, run_cli

UNIT = get_unit("linear_algebra")


@pytest.mark.slow
@pytest.mark.xdist_group("unit-linear_algebra")
def test_instructor_term(tmp_path):
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    exchange.mkdir()
    proc = run_cli(
        "course", "init", course, "--course-id", "ml101", "--units", UNIT.name, "--exchange", exchange
    )
    assert proc.returncode == 0, proc.stderr
    nbgrader("generate_assignment", UNIT.name, cwd=course)
    nbgrader("release_assignment", UNIT.name, cwd=course)

    # alice hands in the reference answers; bob the same but one exercise left unanswered.
    first_answer = UNIT.answer_ids()[0]
    bob = UNIT.notebook()
    cells.set_source(bob, first_answer, "# unanswered")
    answers = {"alice": UNIT.notebook(), "bob": bob}
    common = [f"--Exchange.root={exchange}", "--CourseDirectory.course_id=ml101"]
    for student, nb in answers.items():
        home = tmp_path / student
        home.mkdir()
        nbgrader("fetch_assignment", UNIT.name, *common, cwd=home)
        fetched = home / UNIT.name / UNIT.notebook_path.name
        released = json.loads(fetched.read_text())
        assert "BEGIN SOLUTION" not in fetched.read_text()
        # The student fills the answer cells of the released notebook with their answers.
        mine = {cells.grade_id(c): c["source"] for c in nb["cells"] if cells.is_answer(c)}
        for cell in released["cells"]:
            gid = cells.grade_id(cell)
            if gid in mine:
                cell["source"] = mine[gid]
        fetched.write_text(json.dumps(released))
        nbgrader("submit", UNIT.name, *common, f"--student={student}", cwd=home)

    nbgrader("collect", UNIT.name, cwd=course)
    nbgrader("autograde", UNIT.name, cwd=course)
    nbgrader("generate_feedback", UNIT.name, cwd=course)
    nbgrader("export", "--to", str(tmp_path / "grades.csv"), cwd=course)

    hidden = re.findall(r"### BEGIN HIDDEN TESTS\\n(.*?)### END HIDDEN TESTS", UNIT.notebook_path.read_text())
    for student in answers:
        html = (course / "feedback" / student / UNIT.name / f"{UNIT.name}.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in html
        for block in hidden:
            first = block.split("\\n")[0].strip()
            if len(first) > 15:
                assert first not in html, f"hidden test text in {student}'s feedback: {first}"

    rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert rows["alice"] == UNIT.points, rows
    assert rows["bob"] < UNIT.points, f"bob left {first_answer} unanswered: {rows}"
