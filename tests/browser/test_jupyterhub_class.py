"""A whole class on JupyterHub, as README's "A course on JupyterHub" sets it up from
deploy/jupyterhub/: separate Unix accounts with passwords (PAM), each user's own server
(LocalProcessSpawner), nbgrader's course groups and JupyterHubAuthPlugin, the shared exchange,
and students on the student wheel's environment (tests/browser/hub.py makes and removes all of it).

Driven in Chromium, each user in their own browser context, logged in on the hub's login page:
- the instructor: Generate and Release in the formgrader (/user/NAME/formgrader); later Collect,
  then `llmlabs grade` and `llmlabs report` typed into a terminal of their JupyterLab (the test
  waits for them by watching the files they write), then Generate Feedback and Release Feedback
  in the formgrader;
- each student: Nbgrader → Assignment List in their JupyterLab: Fetch, Validate, Submit, and
  later Fetch Feedback; then their feedback page opened from their own server, and the other
  student's server refused to them.
Not through the browser: the answers are written into each student's fetched notebook on disk
(as tests/browser/test_browser_student.py does; one student gets every reference answer, the
other only the first); the scores are read from the gradebook, and from a copy of it made with
SQLite's online backup as the instructor (runuser), as the README says; the Unix permission
checks run as the other student (runuser).

Bounded in time: every wait has its own limit, and the whole test (setup and clean-up included)
has 20 minutes, for a machine loaded by other jobs (9 to 11.5 min at a load average of 25-32,
5 min at 12-18).
"""

from __future__ import annotations

import json
import re
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from graders import cells
from graders.grading.student_wheel import build_student_wheel
from graders.grading.units import get_unit
from tests.browser import hub as hubs
from tests.browser import pages, test_browser_instructor
from tests.browser.conftest import FAILED, Shots

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("jupyterhub"), pytest.mark.timeout(1200)]

UNIT = get_unit("linear_algebra")
COURSE = hubs.COURSE_ID
SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*(\n|$)", re.M)
SPAWN_TIMEOUT = 120_000  # ms: a server's first start on 2 busy cores takes ~20 s
VALIDATE_TIMEOUT = 240_000  # ms
GRADE_TIMEOUT = 420  # s: `llmlabs grade` of two linear_algebra submissions, ~1 min on 2 busy cores


@pytest.fixture
def hub(request, tmp_path):
    reason = hubs.skip_reason()
    if reason:
        pytest.skip(reason)
    wheel = build_student_wheel(tmp_path / "wheel")
    try:
        with hubs.course_hub(
            tmp_path / "hub", wheel.path, server_args=["--LabApp.expose_app_in_browser=True"]
        ) as hub:
            try:
                yield hub
            finally:
                if request.node.stash.get(FAILED, False):
                    print(f"hub log {hub.log}:\n{hub.log_tail(80)}")
    except hubs.HubUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def login(browser, tmp_path, request):
    """login(hub, account) -> a page of that user's JupyterLab, in a browser context of its own."""
    with ExitStack() as stack:
        opened = []

        def _login(hub, account):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            stack.callback(context.close)
            context.set_default_timeout(30_000)
            page = context.new_page()
            folder = tmp_path / "screenshots" / account.name
            folder.mkdir(parents=True)
            page.shots = Shots(page, folder)
            opened.append(page)
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", account.name)
            page.fill("#password_input", account.password)
            page.click("#login_submit")
            page.locator(".jp-LabShell").wait_for(timeout=SPAWN_TIMEOUT)
            assert page.url.startswith(f"{hub.url}/user/{account.name}/lab"), page.url
            return page

        yield _login
        if request.node.stash.get(FAILED, False):
            for page in opened:
                try:
                    page.shots.take("failure")
                except Exception:  # a closed page: its earlier screenshots remain
                    pass
            print(f"screenshots: {tmp_path / 'screenshots'}")


def formgrader_action(page, row, column: str, message: str) -> None:
    """As tests/browser/test_browser_instructor.py, and the end of nbgrader's log on an error."""
    try:
        test_browser_instructor.formgrader_action(page, row, column, message)
    except AssertionError:
        print(page.locator("#error-modal").inner_text()[-4000:])
        raise


def assignment_list(page):
    pages.menu(page, "Nbgrader", "Assignment List")
    page.locator("#assignments").wait_for()


def list_button(page, listing: str, text: str):
    """The button `text` in a row of `linear_algebra` in one of the Assignment List's lists."""
    return page.locator(f"#{listing}_assignments_list").get_by_role("button", name=text, exact=True).first


def fill_answers(path: Path, how_many: int | None) -> None:
    """The reference solution (without nbgrader's markers) in the first `how_many` answer cells."""
    nb = json.loads(path.read_text())
    reference = {cells.grade_id(c): cells.source(c) for c in UNIT.notebook()["cells"] if cells.is_answer(c)}
    answers = [c for c in nb["cells"] if cells.is_answer(c)]
    for cell in answers[:how_many]:
        cell["source"] = SOLUTION_MARKERS.sub("", reference[cells.grade_id(cell)])
    path.write_text(json.dumps(nb, indent=1))  # as root: the file stays the student's


def terminal_command(page, command: str) -> None:
    """Open a terminal from the Launcher and type `command` into it."""
    page.locator(".jp-LauncherCard", has_text="Terminal").first.click()
    term = page.locator(".jp-Terminal .xterm")
    term.wait_for()
    time.sleep(1)  # the shell's prompt
    term.click()
    page.keyboard.type(command)
    page.keyboard.press("Enter")


def cannot(user: str, *cmd) -> bool:
    return hubs.as_user(user, *cmd, check=False).returncode != 0


def test_a_class_on_jupyterhub(hub, login):
    started = time.monotonic()
    instructor, (full, partial) = hub.instructor, hub.students
    name = UNIT.name

    # The instructor generates and releases the unit in the formgrader.
    teacher = login(hub, instructor)
    teacher.goto(f"{hub.url}/user/{instructor.name}/formgrader")
    row = teacher.locator("#main-table tr", has=teacher.locator(f"td.name[data-order='{name}']"))
    row.wait_for(timeout=60_000)
    formgrader_action(teacher, row, "assign", f"Successfully created the student version of '{name}'")
    row.locator("td.release a").wait_for()
    formgrader_action(teacher, row, "release", f"Successfully released '{name}'")
    teacher.shots.take("released")
    assert (hub.exchange / COURSE / "outbound" / name / UNIT.notebook_path.name).is_file()

    # Each student fetches, answers, validates and submits, in their own server.
    student_pages = {}
    for student, answers in ((full, None), (partial, 1)):
        page = student_pages[student.name] = login(hub, student)
        assignment_list(page)
        list_button(page, "released", "Fetch").click()
        list_button(page, "fetched", "Submit").wait_for(timeout=60_000)
        page.shots.take("fetched")
        notebook = student.home / COURSE / name / UNIT.notebook_path.name
        assert notebook.is_file() and notebook.owner() == student.name, notebook
        fill_answers(notebook, answers)
        page.locator("#fetched_assignments_list a", has_text=name).first.click()  # shows its notebooks
        list_button(page, "fetched", "Validate").click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for(timeout=VALIDATE_TIMEOUT)
        text = dialog.inner_text()
        page.shots.take("validated")
        if answers is None:
            assert "Success! Your notebook passes all the tests." in text, text
        else:
            assert "Success!" not in text and "failed" in text.lower(), text
        pages.accept_dialog(page)
        list_button(page, "fetched", "Submit").click()
        page.locator("#submitted_assignments_list", has_text=name).wait_for(timeout=60_000)
        page.shots.take("submitted")

    # The instructor collects, grades the class from a terminal, and returns feedback.
    teacher.reload()
    row.wait_for(timeout=60_000)
    formgrader_action(teacher, row, "collect", f"Successfully collected submissions of '{name}'")
    row.locator("td.num-submissions", has_text="2").wait_for()
    teacher.goto(f"{hub.url}/user/{instructor.name}/lab")
    teacher.locator(".jp-LabShell").wait_for()
    terminal_command(
        teacher,
        f"cd ~/{COURSE} && LLMLABS_THREADS=1 llmlabs grade {name} --workers 2 > grade.out 2>&1; "
        f"echo $? > grade.rc; llmlabs report {name} > report.out 2>&1; echo $? > report.rc",
    )
    rc_file = hub.course / "report.rc"
    deadline = time.monotonic() + GRADE_TIMEOUT
    while not (rc_file.is_file() and rc_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(1)
    teacher.shots.take("graded")
    output = (hub.course / "grade.out").read_text() if (hub.course / "grade.out").is_file() else ""
    assert rc_file.is_file() and (hub.course / "grade.rc").read_text().strip() in ("0", "1"), output
    assert (hub.course / "gradebook.db").owner() == instructor.name  # graded as the instructor
    assert rc_file.read_text().strip() == "0", (hub.course / "report.out").read_text()
    assert (hub.course / "reports" / name / "class.html").is_file()
    # The gradebook backed up as README says, while the formgrader runs (SQLite's online backup).
    backup = f"/home/{instructor.name}/gradebook-backup.db"
    hubs.as_user(
        instructor.name,
        hub.instructor_env / "bin" / "python",
        "-c",
        f"import sqlite3; sqlite3.connect('{hub.course}/gradebook.db').backup(sqlite3.connect('{backup}'))",
    )
    from nbgrader.api import Gradebook

    for db in (hub.course / "gradebook.db", backup):
        with Gradebook(f"sqlite:///{db}") as gb:
            scores = {s: gb.find_submission(name, s).score for s in (full.name, partial.name)}
        assert scores[full.name] == UNIT.points, (db, scores, output)
        assert 0 < scores[partial.name] < UNIT.points, (db, scores, output)

    teacher.goto(f"{hub.url}/user/{instructor.name}/formgrader")
    row.wait_for(timeout=60_000)
    formgrader_action(teacher, row, "generate-feedback", f"Successfully generated feedback of '{name}'")
    formgrader_action(teacher, row, "release-feedback", f"Successfully released feedback of '{name}'")
    teacher.shots.take("feedback-released")

    # Each student fetches their own feedback, and sees it in their server.
    feedback = {}
    for student in (full, partial):
        page = student_pages[student.name]
        page.bring_to_front()
        page.reload()
        page.locator(".jp-LabShell").wait_for()
        assignment_list(page)
        list_button(page, "submitted", "Fetch Feedback").click()
        folder = student.home / COURSE / name / "feedback"
        deadline = time.monotonic() + 60
        while not list(folder.glob(f"*/{name}.html")) and time.monotonic() < deadline:
            time.sleep(0.5)
        found = list(folder.glob(f"*/{name}.html"))
        assert len(found) == 1, found
        feedback[student.name] = found[0]
        assert found[0].owner() == student.name
        html = found[0].read_text()
        assert "BEGIN HIDDEN TESTS" not in html
        rel = found[0].relative_to(student.home)
        response = page.goto(f"{hub.url}/user/{student.name}/files/{rel}")
        assert response.ok, response.status
        shown = re.search(rf"{name} \(Score: ([\d.]+) / ([\d.]+)\)", page.locator("body").inner_text())
        assert shown and float(shown[1]) == scores[student.name] and float(shown[2]) == UNIT.points, shown
        page.shots.take("feedback")

    # Neither student can read the other's work or feedback: not in the browser...
    for student, other in ((full, partial), (partial, full)):
        page = student_pages[student.name]
        rel = feedback[other.name].relative_to(other.home)
        response = page.goto(f"{hub.url}/user/{other.name}/files/{rel}")
        assert response.status == 403 or f"/user/{other.name}/" not in page.url, (response.status, page.url)
        assert "Score:" not in page.locator("body").inner_text()
        page.shots.take("other-refused")
        # ...nor as their Unix user: the other's home, the exchange's inbound and feedback folders.
        assert cannot(student.name, "cat", feedback[other.name])
        assert cannot(student.name, "ls", other.home)
        assert cannot(student.name, "ls", hub.exchange / COURSE / "inbound")
        assert cannot(student.name, "ls", hub.exchange / COURSE / "feedback")
        assert cannot(student.name, "ls", hub.course)  # the instructor's course directory
        assert not cannot(student.name, "cat", feedback[student.name])  # the control
    # The students' environment has the notebook API and no answer key.
    python = hub.student_env / "bin" / "python"
    assert not cannot(full.name, python, "-c", "import graders.notebook")
    for module in ("graders.grading", "graders.authoring", "graders.cli"):
        assert cannot(full.name, python, "-c", f"import {module}"), module
    print(f"class on JupyterHub: {time.monotonic() - started:.0f} s after the hub started; scores {scores}")
