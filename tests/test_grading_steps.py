"""Fast tests of single grading steps on in-memory data (no nbgrader run): a bug in a
step fails here in seconds, before the slow suite grades whole notebooks."""

from __future__ import annotations

import json

import nbformat
import pytest

from graders.grading.feedback import StripHiddenTracebacks, without_code
from graders.grading.worker import write_tree

HIDDEN_CELL = "assert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(2) == secret_value\n### END HIDDEN TESTS\n"


def _cell_with_error(source: str, evalue: str, traceback: list[str]) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [
        nbformat.v4.new_output("error", ename="AssertionError", evalue=evalue, traceback=traceback)
    ]
    return cell


def test_feedback_hides_the_traceback_of_a_hidden_test_and_keeps_its_message():
    leaked = ["---", "Cell In[3], line 3", "----> 3 assert f(2) == secret_value", "AssertionError: f(2) is 3"]
    nb = nbformat.v4.new_notebook(cells=[_cell_with_error(HIDDEN_CELL, "f(2) is 3, expected 2", leaked)])
    out, _ = StripHiddenTracebacks().preprocess(nb, {})
    error = out.cells[0].outputs[0]
    assert error["evalue"] == "f(2) is 3, expected 2"
    assert error["traceback"] == [
        "AssertionError: f(2) is 3, expected 2  (traceback hidden: it quotes hidden tests)"
    ]
    assert "secret_value" not in str(out.cells[0].outputs)  # the source: ClearHiddenTests, next


def test_feedback_leaves_visible_tests_alone():
    tb = ["---", "----> 1 assert f(1) == 1", "AssertionError: "]
    nb = nbformat.v4.new_notebook(cells=[_cell_with_error("assert f(1) == 1\n", "", tb)])
    out, _ = StripHiddenTracebacks().preprocess(nb, {})
    assert out.cells[0].outputs[0]["traceback"] == tb


def test_a_multi_process_message_keeps_the_ranks_and_loses_the_quoted_code():
    message = (
        "rank 1: AssertionError: all_reduce sent 36 elements, at most 18 allowed\n"
        "--- rank 1 ---\n"
        "Traceback (most recent call last):\n"
        '  File "<cell>", line 4, in hidden\n'
        "    assert sent <= secret_budget\n"
        "AssertionError: all_reduce sent 36 elements, at most 18 allowed\n"
    )
    kept = without_code(message)
    assert "secret_budget" not in kept and "Traceback" not in kept
    assert kept.splitlines()[0].startswith("rank 1: AssertionError: all_reduce sent 36")
    assert "--- rank 1 ---" in kept


@pytest.mark.parametrize("rel", ["../escape.txt", "a/../../escape.txt", "/etc/passwd"])
def test_write_tree_refuses_paths_outside_its_folder(tmp_path, rel):
    with pytest.raises(ValueError, match="refusing to write outside"):
        write_tree(tmp_path / "course", {rel: b"x"})
    assert not (tmp_path / "escape.txt").exists()


def test_write_tree_writes_nested_files(tmp_path):
    write_tree(tmp_path, {"a/b/c.txt": b"data", "d.bin": b"\x00"})
    assert (tmp_path / "a" / "b" / "c.txt").read_bytes() == b"data"
    assert (tmp_path / "d.bin").read_bytes() == b"\x00"


def test_sandbox_reports_are_matched_to_students_by_the_kernels_folder(tmp_path):
    from graders.sandbox.launcher import reports_by_student

    autograded, reports = tmp_path / "course" / "autograded", tmp_path / "reports"
    reports.mkdir()
    for name, cwd in (
        ("1", autograded / "ada" / "unit"),
        ("2", autograded / "bo" / "unit" / "sub"),
        ("3", tmp_path / "elsewhere"),  # a kernel outside the course: nobody's
    ):
        (reports / f"{name}.json").write_text(json.dumps({"cwd": str(cwd), "restored": [name]}))
    (reports / "4.json").write_text("{half written")
    (reports / "5.json").write_text(json.dumps({"no cwd": True}))

    found = reports_by_student(reports, autograded)

    assert {s: r["restored"] for s, r in found.items()} == {"ada": ["1"], "bo": ["2"]}
    assert reports_by_student(tmp_path / "missing", autograded) == {}
