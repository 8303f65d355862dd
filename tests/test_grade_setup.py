"""`llmlabs grade` refuses, in one line, what it cannot use: not a course, a gradebook that
is missing, misspelled or unreachable (never a fresh sqlite file instead, as in
jupyter/nbgrader#1661), a course another run holds. And the ledger's bookkeeping."""

from __future__ import annotations

import pytest

from graders.grading.course import init_course
from graders.grading.gradebook import CourseGradebook, GradebookError
from graders.grading.ledger import CourseBusy, CourseLock, Ledger, submission_hash
from graders.grading.units import get_unit
from tests.helpers import one_error_line, run_cli

UNIT = get_unit("linear_algebra")


@pytest.fixture
def course(tmp_path):
    return init_course(tmp_path / "course", [UNIT], course_id="ml101")


def _refusal(course, config_line: str = "") -> str:
    if config_line:
        with open(course / "nbgrader_config.py", "a") as f:
            f.write(config_line + "\n")
    with pytest.raises(GradebookError) as info:
        CourseGradebook.open(course, UNIT.name)
    assert not (course / "gradebook.db").exists(), "a fresh sqlite gradebook was created"
    return str(info.value)


def test_no_gradebook_yet(course):
    assert "no gradebook at" in _refusal(
        course
    ) and "nbgrader generate_assignment linear_algebra" in _refusal(course)


def test_misspelled_option(course):
    message = _refusal(course, "c.CourseDirectory.db_ur = 'postgresql+psycopg://x@127.0.0.1:1/x'")
    assert "c.CourseDirectory.db_ur is not an nbgrader option (misspelled?)" in message


def test_misspelled_class(course):
    message = _refusal(course, "c.Coursedirectory.db_url = 'postgresql+psycopg://x@127.0.0.1:1/x'")
    assert "mentions db_url but nbgrader did not read it" in message


def test_unreachable_server(course):
    message = _refusal(
        course, "c.CourseDirectory.db_url = 'postgresql+psycopg://me:secret@127.0.0.1:1/grades'"
    )
    assert message.startswith("cannot reach the gradebook at postgresql+psycopg://me:***@127.0.0.1:1/grades")
    assert "secret" not in message


def test_the_cli_says_it_in_one_line(tmp_path):
    line = one_error_line(run_cli("grade", UNIT.name, "--course", tmp_path))
    assert (
        line
        == f"error: {tmp_path} is not a course directory (no nbgrader_config.py); see `llmlabs course init`"
    )


def test_one_run_per_course(course):
    with CourseLock(course):
        with pytest.raises(CourseBusy, match="another `llmlabs grade` is grading this course"):
            with CourseLock(course):
                pass
    with CourseLock(course):  # released when the first run ends
        pass


def test_ledger_notices_changed_submissions(course):
    folder = course / "submitted" / "ada" / UNIT.name
    folder.mkdir(parents=True)
    (folder / "x.ipynb").write_text("{}")
    digest = submission_hash(folder)
    Ledger(course, UNIT.name).record("ada", {"hash": digest, "template": "t1"})
    ledger = Ledger(course, UNIT.name)  # as a later run reads it
    assert ledger.is_current("ada", digest, "t1")
    assert not ledger.is_current("ada", digest, "t2"), "a changed assignment must regrade"
    (folder / "timestamp.txt").write_text("2026-11-02 09:30:00 UTC")
    assert not ledger.is_current("ada", submission_hash(folder), "t1"), "a resubmission must regrade"
    assert not ledger.is_current("ben", digest, "t1")


def test_the_course_config_loaded_again_adds_no_duplicate_paths(course, monkeypatch):
    # A long-running formgrader loads nbgrader_config.py again and again (seen on JupyterHub).
    from traitlets.config import Config

    monkeypatch.setenv("JUPYTER_PATH", "/elsewhere")
    monkeypatch.setenv("PATH", "/usr/bin")
    code = compile((course / "nbgrader_config.py").read_text(), str(course / "nbgrader_config.py"), "exec")
    for _ in range(3):
        exec(code, {"c": Config(), "get_config": Config, "__file__": str(course / "nbgrader_config.py")})
    import os

    jupyter_path = os.environ["JUPYTER_PATH"].split(os.pathsep)
    assert jupyter_path == [str(course / ".llmlabs" / "jupyter"), "/elsewhere"], jupyter_path
    path = os.environ["PATH"].split(os.pathsep)
    assert len(path) == len(set(path)) == 2, path
