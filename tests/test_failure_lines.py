"""The one line `llmlabs check` prints per failed test (graders.grading.grade.failure_line),
computed from in-memory cell outputs as nbgrader leaves them in an autograded notebook: it
names the cause, for every kind of failure a learner meets (issue 33). No kernel, no nbgrader."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from graders.grading.grade import cell_messages, failure_line, notebook_messages, unhelpful
from graders.notebook import WorkerError, WorkerTimeout, assert_close
from graders.notebook.parallel import _first_failure

STUB = "not written yet: replace this line with your code, run the cell, then run its tests again"


def _error(exc: BaseException) -> dict:
    """The error output IPython records for `exc` (ename, evalue, traceback)."""
    name = type(exc).__name__
    return {"output_type": "error", "ename": name, "evalue": str(exc), "traceback": [f"{name}: {exc}"]}


def _stderr(text) -> dict:
    return {"output_type": "stream", "name": "stderr", "text": text}


def _caught(fn) -> BaseException:
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - whatever the helper raises is the subject
        return e
    raise AssertionError(f"{fn} raised nothing")


def _report(path, stamp: float, summary: str, where: str = "") -> None:
    # What graders.notebook.parallel._worker writes for a rank that raised.
    tb = f"Traceback (most recent call last):\n  File ...\n{summary}\n"
    path.write_text(
        json.dumps({"stamp": stamp, "summary": summary, "traceback": tb, "where": where, "seconds": 15})
    )


def test_the_before_line_of_a_multi_process_failure_is_unhelpful():
    # What `llmlabs check` printed for 12 of the 14 tests of the released distributed unit.
    line = failure_line(
        [_error(WorkerError("rank 1 of 2 failed (rank(s) [0] failed after it):\nTraceback", 1))]
    )
    assert line == "rank 1 of 2 failed (rank(s) [0] failed after it):", line
    assert unhelpful("WorkerError: rank 1 of 2 failed (rank(s) [0] failed after it):") == "ends with a colon"
    assert unhelpful(line) == "ends with a colon"


def test_a_workers_stub_is_the_line_with_its_rank(tmp_path):
    _report(tmp_path / "1.error", 1.0, f"NotImplementedError: {STUB}")
    _report(
        tmp_path / "0.error",
        2.0,
        "RuntimeError: Connection closed by peer [127.0.0.1]:1",
        "dist.barrier (line 4 of f)",
    )
    error = _first_failure([SimpleNamespace(exitcode=1), SimpleNamespace(exitcode=1)], tmp_path, seen_first=0)
    line = failure_line([_error(error)])
    assert line == f"rank 1: NotImplementedError: {STUB}"[:300], line
    assert unhelpful(line) is None
    # The tracebacks of both ranks stay in the output (and so in the feedback).
    assert "--- rank 1 ---" in str(error) and "--- rank 0 ---" in str(error), str(error)


def test_a_workers_assertion_is_the_line(tmp_path):
    _report(tmp_path / "0.error", 1.0, "AssertionError: all_reduce sent 36 elements, at most 18 allowed")
    error = _first_failure([SimpleNamespace(exitcode=1), SimpleNamespace(exitcode=0)], tmp_path, seen_first=0)
    assert (
        failure_line([_error(error)])
        == "rank 0: AssertionError: all_reduce sent 36 elements, at most 18 allowed"
    )


def test_a_hang_says_which_ranks_waited_in_which_collective(tmp_path):
    _report(
        tmp_path / "0.error",
        1.0,
        "RuntimeError: Timed out waiting 15000ms for recv",
        "dist.recv (line 9 of ring)",
    )
    _report(
        tmp_path / "1.error",
        1.1,
        "RuntimeError: Timed out waiting 15000ms for recv",
        "dist.recv (line 9 of ring)",
    )
    error = _first_failure([SimpleNamespace(exitcode=1), SimpleNamespace(exitcode=1)], tmp_path, seen_first=1)
    line = failure_line([_error(error)])
    assert line.startswith(
        "rank 0 timed out after 15 s in dist.recv (line 9 of ring); "
        "rank 1 timed out after 15 s in dist.recv (line 9 of ring)"
    ), line
    assert unhelpful(line) is None


def test_a_run_past_its_deadline_is_more_than_a_bare_timeout():
    error = WorkerTimeout(
        "rank(s) [0, 1] did not finish within 30 s and were killed: rank 0 was running f (line 3)", 0
    )
    line = failure_line([_error(error)])
    assert line.startswith("rank(s) [0, 1] did not finish within 30 s") and "running f (line 3)" in line, line
    assert "WorkerTimeout" not in line


def test_an_error_raised_inside_a_notebook_helper_is_its_own_message():
    error = _caught(lambda: assert_close(np.zeros(3), np.ones(3), rtol=1e-6, atol=1e-6, name="softmax(x)"))
    line = failure_line([_error(error)])
    assert line.startswith("AssertionError: softmax(x): 3 of 3 values differ from the expected ones"), line
    assert unhelpful(line) is None


def test_a_heading_line_ending_in_a_colon_is_joined_with_the_next():
    line = failure_line([_error(ValueError("shapes differ:\n  expected (2, 3), got (3, 2)"))])
    assert line == "ValueError: shapes differ: expected (2, 3), got (3, 2)", line


def test_a_cell_timeout_names_the_time_limit():
    # nbgrader interrupts the kernel at the cell's limit: KeyboardInterrupt, then its own
    # CellTimeoutError (empty evalue). Neither name alone tells the learner anything.
    timeout = {"output_type": "error", "ename": "CellTimeoutError", "evalue": "", "traceback": []}
    bare = failure_line([{"output_type": "error", "ename": "KeyboardInterrupt", "evalue": ""}, timeout])
    assert bare == "the cell ran past its time limit and was interrupted", bare
    assert failure_line([timeout]) == bare
    assert (
        failure_line([timeout], cell_timeout=300)
        == "the cell ran past its time limit (300 s) and was interrupted"
    )
    interrupted = KeyboardInterrupt(
        "interrupted while rank(s) [0, 1] were still running: rank 0 was in dist.recv"
    )
    line = failure_line([_error(interrupted), timeout])
    assert line == f"{bare}: interrupted while rank(s) [0, 1] were still running: rank 0 was in dist.recv", (
        line
    )
    assert unhelpful(line) is None


def test_stderr_is_the_line_when_nothing_raised():
    assert (
        failure_line([_stderr(["UserWarning: ", "x is deprecated\n"])])
        == "wrote to stderr: UserWarning: x is deprecated"
    )
    assert failure_line([{"output_type": "stream", "name": "stdout", "text": "fine"}]) is None
    assert failure_line([]) is None


def test_the_first_error_wins_over_stderr():
    line = failure_line([_stderr("a warning\n"), _error(NotImplementedError(STUB))])
    assert line == f"NotImplementedError: {STUB}", line


@pytest.mark.parametrize(
    "line, why",
    [
        ("", "empty"),
        ("wrote to stderr: ", "empty"),
        ("WorkerError", "names only an exception"),
        ("WorkerError: rank 1 of 2 failed", "names only an exception"),
        ("KeyboardInterrupt", "names only an exception"),
        ("AssertionError", "names only an exception"),
        ("values differ:", "ends with a colon"),
        ("rank 1: NotImplementedError: not written yet", None),
        ("AssertionError: expected 3, got 4", None),
        ("not run: nbgrader autograde failed: the kernel died while running the notebook", None),
    ],
)
def test_unhelpful_lines(line, why):
    assert unhelpful(line) == why


def test_messages_of_a_notebook_by_grade_id(tmp_path):
    def cell(gid, outputs):
        meta = {"nbgrader": {"grade_id": gid, "grade": True, "points": 1}} if gid else {}
        return {"cell_type": "code", "metadata": meta, "source": "", "outputs": outputs, "execution_count": 1}

    nb = {
        "cells": [
            cell("test_a", [_error(NotImplementedError(STUB))]),
            cell("test_b", []),
            cell(None, [_error(ValueError("a plot cell failed"))]),  # not graded: no line
            cell("test_c", [_stderr("careful\n")]),
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    expected = {"test_a": f"NotImplementedError: {STUB}", "test_c": "wrote to stderr: careful"}
    assert notebook_messages(nb) == expected
    path = tmp_path / "graded.ipynb"
    path.write_text(json.dumps(nb))
    assert cell_messages(path) == expected
    assert cell_messages(tmp_path / "missing.ipynb") == {}


def test_feedback_of_a_hidden_multi_process_test_keeps_each_ranks_error_not_its_code(tmp_path):
    from nbformat.v4 import new_code_cell

    from graders.grading.feedback import BEGIN, StripHiddenTracebacks

    secret = "assert sent <= 18, 'hidden check'"
    frame = '  File "/tmp/ipykernel_1/2.py", line 4, in _case'
    tb = f"Traceback (most recent call last):\n{frame}\n    {secret}\n"
    for rank, summary in (
        (0, f"NotImplementedError: {STUB}"),
        (1, "RuntimeError: Connection closed by peer"),
    ):
        report = {"stamp": float(rank), "summary": summary, "traceback": tb + summary + "\n"}
        (tmp_path / f"{rank}.error").write_text(json.dumps(report))
    error = _first_failure([SimpleNamespace(exitcode=1), SimpleNamespace(exitcode=1)], tmp_path, seen_first=0)
    assert secret in str(error)  # the graded notebook keeps it all, for the instructor
    cell = new_code_cell(f"{BEGIN}\n{secret}\n### END HIDDEN TESTS", outputs=[_error(error)])
    cell, _ = StripHiddenTracebacks().preprocess_cell(cell, {}, 0)
    shown = cell.outputs[0]["evalue"] + "\n".join(cell.outputs[0]["traceback"])
    assert secret not in shown and "ipykernel" not in shown, shown
    assert cell.outputs[0]["evalue"].splitlines() == [
        f"rank 0: NotImplementedError: {STUB}",
        "(rank 0 of 2 failed first; rank(s) [1] failed after it)",
        "--- rank 0 ---",
        f"NotImplementedError: {STUB}",
        "--- rank 1 ---",
        "RuntimeError: Connection closed by peer",
    ], cell.outputs[0]["evalue"]
    assert failure_line(cell.outputs) == f"rank 0: NotImplementedError: {STUB}"
