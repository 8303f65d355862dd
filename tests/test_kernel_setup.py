"""`graders.notebook.setup()` in an IPython shell: a test cell that passes says so in one
line on stdout, only when the front end sent its nbgrader metadata (JupyterLab does;
nbgrader's own runs do not), and never for a released cell whose checks are all hidden."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from graders.notebook import kernel, setup

TEST_META = {"nbgrader": {"grade": True, "solution": False, "grade_id": "test_add_visible", "points": 1}}


@pytest.fixture
def shell():
    sh = InteractiveShell.instance()
    setup()
    yield sh
    InteractiveShell.clear_instance()


def run(shell, source, meta):
    return shell.run_cell(source, store_history=True, cell_meta=meta)


def test_a_passing_test_cell_prints_one_line_on_stdout(shell, capsys):
    assert run(shell, "x = 1 + 1\nassert x == 2", TEST_META).success
    out, err = capsys.readouterr()
    assert out == "✓ test_add_visible passed\n"
    assert err == ""


def test_no_line_for_a_failure_an_answer_a_hidden_only_cell_or_no_metadata(shell, capsys):
    assert not run(shell, "assert 1 == 2, 'expected 2'", TEST_META).success
    answer = {"nbgrader": {"grade": False, "solution": True, "grade_id": "add"}}
    assert run(shell, "def add(a, b):\n    return a + b", answer).success
    assert run(shell, "# Hidden tests: the checks run when graded.\nassert True", TEST_META).success
    assert run(shell, "assert 1 + 1 == 2", None).success  # nbgrader autograde and Validate
    assert run(shell, "assert 1 + 1 == 2", {"cellId": "c1"}).success  # a plain cell
    out, _ = capsys.readouterr()
    assert "passed" not in out, out


def test_setup_twice_registers_the_hook_once(shell):
    setup()
    assert shell.events.callbacks["post_run_cell"].count(kernel.confirm_passed_test) == 1


def test_a_broken_result_is_ignored_silently(capsys):
    kernel.confirm_passed_test(object())
    kernel.confirm_passed_test(None)
    assert capsys.readouterr() == ("", "")
