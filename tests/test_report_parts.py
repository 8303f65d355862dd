"""The pure parts of `llmlabs report` (graders.grading.report, report_html): grouping
failure lines, the histogram, limits, cell timing, the CSV columns and the page. The
report of a class graded by nbgrader is tested in tests/grading/test_class_report.py."""

from __future__ import annotations

import csv
import io
import re

from graders.grading.report import (
    STUDENT_COLUMNS,
    TEST_COLUMNS,
    CellStat,
    ClassReport,
    StudentRow,
    cells_seconds,
    failure_key,
    failures_csv,
    group_failures,
    histogram,
    limits_hit,
    students_csv,
)
from graders.grading.report_html import render
from tests.helpers import one_error_line, run_cli


def test_failure_lines_that_differ_only_in_numbers_are_one_group():
    lines = {
        "a": "AssertionError: logsumexp([1, 2, 3]): expected 3.4076, got 0.4076",
        "b": "AssertionError: logsumexp([1, 2, 3]): expected 3.4076, got 0.4076",
        "c": "AssertionError: logsumexp([1, 2, 3]): expected 3.4076, got -1e+20",
        "d": "NameError: name 'logsumexp' is not defined",
        "e": "AssertionError: got nan at index (0, 0)",
    }
    groups = group_failures(lines)
    assert [(g.count, g.students, g.variants) for g in groups] == [
        (3, ["a", "b", "c"], 2),
        (1, ["e"], 1),
        (1, ["d"], 1),
    ]
    assert groups[0].line == lines["a"], "a group is shown by its most common line"
    assert failure_key("x=1.5e-3, y=-2, nan, 0x7f3a") == "x=#, y=#, #, #"
    assert group_failures(lines, top=1) == groups[:1]
    assert group_failures({}) == []


def test_histogram_keeps_full_marks_apart():
    assert histogram([0, 5, 10, 89.9, 90, 99.9, 100, 100]) == [2, 1, 0, 0, 0, 0, 0, 0, 1, 2, 2]
    assert sum(histogram([])) == 0


def test_limits_from_failure_lines_and_reasons():
    messages = {
        "softmax": "the cell ran past its time limit (10 s) and was interrupted",
        "test_softmax_visible": "NameError: name 'softmax' is not defined",
        "dists": "MemoryError: ",
    }
    assert limits_hit(messages) == ["time limit: softmax", "memory: dists"]
    died = "the kernel died while running the notebook (os._exit, a crash, or the memory limit)"
    assert limits_hit({}, died) == ["kernel died (memory limit, a crash or os._exit)"]
    assert limits_hit({"t": "AssertionError: 1 != 2"}, "") == []


def test_cells_seconds_from_execution_metadata():
    def cell(start, end):
        return {"metadata": {"execution": {"iopub.execute_input": start, "shell.execute_reply": end}}}

    nb = {
        "cells": [
            cell("2026-12-07T23:06:49.5Z", "2026-12-07T23:06:50.0Z"),
            {"cell_type": "markdown", "metadata": {}},
            cell("2026-12-07T23:06:50.1Z", "2026-12-07T23:06:52.0Z"),
        ]
    }
    assert cells_seconds(nb) == 2.5
    assert cells_seconds({"cells": [{"metadata": {}}]}) is None


def _report() -> ClassReport:
    report = ClassReport("linear_algebra", "/c", "sqlite:////c/gradebook.db", "now", ledger=True)
    bad = "AssertionError: <b>x</b> 1 != 2"
    graded = {"status": "graded", "time_source": "llmlabs grade", "flags_source": "llmlabs grade"}
    report.students = [
        StudentRow("ada", 30, 30, seconds=9.4, cells={"t1": 1, "t2": 2}, **graded),
        StudentRow("ben", 27, 30, seconds=9.1, cells={"t1": 0, "t2": 2}, failed={"t1": bad}, **graded),
        StudentRow("cy", 0, 30, status="no autograded notebook", manual=["t1", "t2"]),
    ]
    report.students[0].similar = ["reference: 8 cell(s), up to 100%"]
    report.students[1].limits = ["time limit: softmax"]
    report.students[1].flags = ["dists: monkeypatches np.testing"]
    report.tests = [
        CellStat("t1", "linear_algebra", 1, passed=1, failed=1, groups=group_failures({"ben": bad})),
        CellStat("t2", "linear_algebra", 2, passed=2, failed=0),
    ]
    report.not_run = ["cy"]
    return report


def test_csv_columns():
    report = _report()
    rows = list(csv.reader(io.StringIO(students_csv(report))))
    assert rows[0] == STUDENT_COLUMNS + ["t1", "t2"]
    table = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert [r["student"] for r in table] == ["ada", "ben", "cy"]
    assert table[1]["failed_tests"] == "t1" and table[1]["t1"] == "0" and table[1]["percent"] == "90.0"
    assert table[2]["flags"] == "not recorded" and table[2]["seconds"] == ""
    assert table[2]["needs_manual_grade"] == "t1 t2"
    tests = list(csv.DictReader(io.StringIO(failures_csv(report))))
    assert list(tests[0]) == TEST_COLUMNS
    assert [(r["grade_id"], r["failed"], r["count"]) for r in tests] == [("t1", "1", "1"), ("t2", "0", "")]


def test_page_is_self_contained_and_escapes_what_students_wrote():
    page = render(_report())
    assert page.count("<svg") == 2 and 'id="histogram"' in page and 'id="pass-rates"' in page
    assert len(re.findall(r'<rect class="bar"', page)) == 3 + 2  # three score bands, two tests
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert not re.search(r"(src|href)=\"https?://", page) and "<script" not in page
    assert "not recorded" in page and "time limit: softmax" in page
    assert "not run (no autograded notebook): cy" in page


def test_report_outside_a_course_is_one_line(tmp_path):
    line = one_error_line(run_cli("report", "linear_algebra", "--course", tmp_path))
    assert "is not a course directory" in line, line
