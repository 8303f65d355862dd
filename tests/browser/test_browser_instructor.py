"""An instructor in JupyterLab's Formgrader, step for step as the README's instructor
quick-start says: `llmlabs course init`, `jupyter lab` in the course, Nbgrader → Formgrader
lists the units; Generate, Release; a student fetches and submits with nbgrader's own
commands; Collect, Autograde, Generate and Release Feedback; the feedback the student
fetches shows no hidden test."""

from __future__ import annotations

import json
import re

import pytest

from graders import cells
from graders.grading.units import get_unit
from tests.browser import pages
from tests.helpers import nbgrader, run_cli

pytestmark = pytest.mark.xdist_group("browser")

UNIT = get_unit("linear_algebra")
OTHER = get_unit("attention")
COURSE_ID = "ml101"
AUTOGRADE_TIMEOUT = 240_000  # ms; the autograde of linear_algebra takes ~15 s on 2 busy cores
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def formgrader_action(fg, row, column: str, message: str, timeout: float = 60_000) -> None:
    """Click the icon in `column` of an assignment's (or submission's) row and wait for
    nbgrader's "Success" dialog that says `message`; close it."""
    row.locator(f"td.{column} a").click()
    modal = fg.locator("#success-modal, #error-modal")
    modal.wait_for(timeout=timeout)
    text = modal.inner_text()
    assert modal.get_attribute("id") == "success-modal" and message in text, (
        f"Formgrader {column}: {text[:3000]}"
    )
    modal.locator(".modal-footer button").click()
    modal.wait_for(state="detached")


def student_submits_reference(home, exchange, env) -> None:
    common = ["--course", COURSE_ID, f"--Exchange.root={exchange}", "--student=alice"]
    nbgrader("fetch_assignment", UNIT.name, *common, cwd=home, env=env)
    fetched = home / UNIT.name / UNIT.notebook_path.name
    nb = json.loads(fetched.read_text())
    reference = {cells.grade_id(c): c["source"] for c in UNIT.notebook()["cells"] if cells.is_answer(c)}
    for cell in nb["cells"]:
        if cells.is_answer(cell):
            cell["source"] = reference[cells.grade_id(cell)]
    fetched.write_text(json.dumps(nb))
    nbgrader("submit", UNIT.name, *common, cwd=home, env=env)


def test_instructor_releases_collects_autogrades_and_returns_feedback(labs, page, tmp_path):
    course, home = tmp_path / "mycourse", tmp_path / "alice"
    home.mkdir()
    proc = run_cli(
        "course", "init", course, "--course-id", COURSE_ID, "--units", UNIT.name, "--units", OTHER.name
    )
    assert proc.returncode == 0, proc.stderr
    assert "Created the exchange directory" in proc.stdout
    exchange = course / "exchange"
    # The student's nbgrader must not read the instructor's (or the user's) configuration.
    student_env = {"JUPYTER_CONFIG_DIR": str(tmp_path / "alice-jupyter")}

    lab = labs(course, cwd=course)
    pages.open_lab(page, lab)
    pages.menu(page, "Nbgrader", "Formgrader")
    fg = page.frame_locator("iframe")
    row = fg.locator("#main-table tr", has=fg.locator(f"td.name[data-order='{UNIT.name}']"))
    row.wait_for(timeout=60_000)
    assert fg.locator(f"#main-table td.name[data-order='{OTHER.name}']").count() == 1
    page.shots.take("formgrader-lists-units")
    body = fg.locator("body").inner_text()
    assert "exchange directory" not in body.lower(), body  # nbgrader's missing-exchange banner

    formgrader_action(fg, row, "assign", f"Successfully created the student version of '{UNIT.name}'")
    row.locator("td.release a").wait_for()  # Release appears once the exchange is writable
    page.shots.take("generated")
    formgrader_action(fg, row, "release", f"Successfully released '{UNIT.name}'")

    student_submits_reference(home, exchange, student_env)

    formgrader_action(fg, row, "collect", f"Successfully collected submissions of '{UNIT.name}'")
    row.locator("td.num-submissions a", has_text="1").click()
    sub = fg.locator("#main-table tr", has=fg.locator("td.student-id", has_text="alice"))
    sub.wait_for()
    formgrader_action(
        fg, sub, "autograde", f"Successfully autograded '{UNIT.name}' for student 'alice'", AUTOGRADE_TIMEOUT
    )
    score = sub.locator("td.score")
    score.filter(has_text="/").wait_for()
    assert score.inner_text().split() == [f"{UNIT.points:g}", "/", f"{UNIT.points:g}"], score.inner_text()
    page.shots.take("autograded")
    formgrader_action(fg, sub, "generate-feedback", "Successfully generated feedback")
    formgrader_action(fg, sub, "release-feedback", "Successfully released feedback")

    nbgrader(
        "fetch_feedback",
        UNIT.name,
        "--course",
        COURSE_ID,
        f"--Exchange.root={exchange}",
        "--student=alice",
        cwd=home,
        env=student_env,
    )
    feedback = list((home / UNIT.name / "feedback").glob(f"*/{UNIT.name}.html"))
    assert len(feedback) == 1, list((home / UNIT.name).rglob("*"))
    html = feedback[0].read_text()
    assert "BEGIN HIDDEN TESTS" not in html
    for block in HIDDEN.findall(cells_text(UNIT)):
        for line in block.splitlines():
            if len(line.strip()) > 15:
                assert line.strip() not in html, f"hidden test text in the feedback: {line.strip()}"
                break


def cells_text(unit) -> str:
    return "\n".join(cells.source(c) for c in unit.notebook()["cells"])
