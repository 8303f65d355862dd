"""`llmlabs grade`: a class graded in parallel gives the gradebook stock `nbgrader autograde`
gives; a killed worker loses nothing and a second run is refused; hostile submissions in
one parallel batch. Small on purpose: linear_algebra, a few submissions, two workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from graders import cells
from graders.grading.batch import grade_course
from graders.grading.units import get_unit
from tests.helpers import gradebook_rows, make_course, nbgrader, one_error_line, run_cli

UNIT = get_unit("linear_algebra")
pytestmark = pytest.mark.xdist_group("grade-batch")


def _blank(answer: str) -> dict:
    nb = UNIT.notebook()
    cells.set_source(nb, answer, "# YOUR CODE HERE\nraise NotImplementedError()")
    return nb


def _class() -> dict:
    answers = UNIT.answer_ids()
    return {"ada": UNIT.notebook_path, "ben": _blank(answers[0]), "cy": _blank(answers[-1])}


def test_parallel_grading_gives_the_gradebook_of_stock_autograde(tmp_path):
    serial = make_course(tmp_path / "serial", UNIT, _class())
    parallel = make_course(tmp_path / "parallel", UNIT, _class())
    nbgrader("autograde", UNIT.name, cwd=serial)
    proc = run_cli("grade", UNIT.name, "--course", parallel, "--workers", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["counts"]["graded"] == 3, report["counts"]

    expected = gradebook_rows(serial, UNIT.name)
    got = gradebook_rows(parallel, UNIT.name)
    assert set(got) == set(expected) == set(_class())
    for student in expected:
        assert got[student] == expected[student], f"{student}: per-cell rows differ from nbgrader autograde"
    scores = {r["student"]: r["score"] for r in report["rows"]}
    assert scores["ada"] == UNIT.points
    assert scores["ben"] < UNIT.points and scores["cy"] < UNIT.points

    # Stock nbgrader reads the result: export and feedback.
    nbgrader("export", "--to", str(tmp_path / "grades.csv"), cwd=parallel)
    assert "ada" in (tmp_path / "grades.csv").read_text()
    nbgrader("generate_feedback", UNIT.name, cwd=parallel)
    assert (parallel / "feedback" / "ben" / UNIT.name / f"{UNIT.name}.html").is_file()

    # Idempotent: nothing changed, nothing is graded again; a changed submission is.
    again = json.loads(run_cli("grade", UNIT.name, "--course", parallel, "--json").stdout)
    assert again["counts"]["up-to-date"] == 3, again["counts"]
    (parallel / "submitted" / "ben" / UNIT.name / UNIT.notebook_path.name).write_text(
        json.dumps(UNIT.notebook())
    )
    third = json.loads(run_cli("grade", UNIT.name, "--course", parallel, "--json", "--workers", "1").stdout)
    assert third["counts"] == {"graded": 1, "failed": 0, "refused": 0, "up-to-date": 2, "not-graded": 0}
    assert {r["student"]: r["score"] for r in third["rows"]}["ben"] == UNIT.points


def _worker_processes(pid: int) -> list:
    import psutil

    return [
        p
        for p in psutil.Process(pid).children(recursive=True)
        if "spawn_main" in " ".join(p.cmdline()) and p.children(recursive=True)
    ]


def test_a_killed_worker_or_ctrl_c_loses_nothing_and_a_second_run_is_refused(tmp_path):
    # Six submissions on two workers: when the first two are running, four are still to come,
    # so the Ctrl-C below always lands mid-run.
    students = {f"s{i}": UNIT.notebook_path for i in range(6)}
    course = make_course(tmp_path / "course", UNIT, students)
    kernel_tmp = tmp_path / "tmp"
    kernel_tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(kernel_tmp))
    cmd = [sys.executable, "-m", "graders", "grade", UNIT.name, "--course", str(course), "--workers", "2"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # Once a worker is busy with a kernel: a second run is refused, that worker is
        # killed mid-submission, and the run gets Ctrl-C.
        deadline = time.time() + 240
        busy: list = []
        while not busy and time.time() < deadline and first.poll() is None:
            time.sleep(0.5)
            busy = _worker_processes(first.pid)
        assert busy, "no worker started a kernel"
        line = one_error_line(run_cli("grade", UNIT.name, "--course", course))
        assert "another `llmlabs grade` is grading this course" in line, line
        os.kill(busy[0].pid, signal.SIGKILL)
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, f"Ctrl-C must end the run with 130, got {first.returncode}: {err}"
    assert "interrupted: what was graded is kept" in err, err
    assert "Traceback" not in err, err
    rerun = run_cli("grade", UNIT.name, "--course", course, "--json", env={"TMPDIR": str(kernel_tmp)})
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert {r["student"] for r in report["rows"]} == set(students)
    assert all(r["status"] in ("graded", "up-to-date") for r in report["rows"]), report["rows"]
    rows = gradebook_rows(course, UNIT.name)
    assert set(rows) == set(students)
    for student, row in rows.items():
        total = sum(v[0] for k, v in row.items() if isinstance(v, tuple) and v[0] is not None)
        assert total == UNIT.points, f"{student}: {total}"
    # The killed worker's kernel did not outlive it (its launcher saw its parent die).
    deadline = time.time() + 15
    while list(kernel_tmp.glob("llmlabs-kernel-*")) and time.time() < deadline:
        time.sleep(0.5)
    assert not list(kernel_tmp.glob("llmlabs-kernel-*")), "a kernel outlived its worker"


def test_hostile_corpus_in_one_parallel_batch(tmp_path, monkeypatch):
    from tests.grading import test_hostile as hostile

    for key, value in hostile.LIMITS.items():
        monkeypatch.setenv(key, value)
    kernel_tmp = tmp_path / "tmp"
    kernel_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(kernel_tmp))
    subs = tmp_path / "subs"
    subs.mkdir()
    submissions: dict = {"correct": UNIT.notebook_path}
    for name, (source, _) in hostile.CODE.items():
        submissions[name] = hostile._with_answer(source)
    for name, source in hostile.KEY_CHEATS.items():
        submissions[name] = hostile._with_answer(source)
    structural = hostile._structural(subs)
    submissions.update({name: path for name, (path, _) in structural.items()})
    submissions["correct_last"] = UNIT.notebook_path
    course = make_course(tmp_path / "course", UNIT, submissions, cell_timeout=hostile.CELL_TIMEOUT)
    canary = course / "canary.txt"
    canary.write_text("canary")
    before = (course / "gradebook.db").stat().st_size

    report = grade_course(course, UNIT.name, workers=2)

    rows = {r.student: r for r in report.rows}
    assert set(rows) == set(submissions) and report.complete
    full = UNIT.points
    problems = []
    for name in ("correct", "correct_last"):
        if rows[name].score != full or rows[name].flags:
            problems.append(f"{name}: {rows[name]}")
    for name, (_, expect) in hostile.CODE.items():
        r = rows[name]
        died = r.status == "failed" and "kernel died" in r.reason
        ok = {
            "full": r.status == "graded" and r.score == full,
            "partial": r.status == "graded" and 0 < (r.score or 0) < full,
            "error": died and r.score == 0,
            "error_or_partial": died or (r.status == "graded" and (r.score or 0) < full),
            "flagged": bool(r.flags),
            "flagged_or_lost": bool(r.flags) or (r.score or 0) < full,
        }[expect]
        if not ok:
            problems.append(f"{name}: expected {expect}, got {r.status} {r.score} {r.reason!r} {r.flags}")
    for name in hostile.KEY_CHEATS:  # reaching for the answer key: flagged, and no key to read
        r = rows[name]
        if not r.flags or (hostile.sandbox_mode() == "bwrap" and (r.score or 0) >= full):
            problems.append(f"{name}: expected flagged and not full marks, got {r.score} {r.flags}")
    for name, (_, words) in structural.items():
        r = rows[name]
        if not (r.status == "refused" and words in r.reason and r.score == 0):
            problems.append(f"{name}: expected refused with {words!r}, got {r.status} {r.reason!r}")
    assert not problems, "\n".join(problems)
    assert canary.read_text() == "canary"
    assert (course / "gradebook.db").stat().st_size >= before
    # Every submission has its row in the gradebook (zeros for those that could not run).
    assert set(gradebook_rows(course, UNIT.name)) == set(submissions)
    assert hostile._sleepers() == 0, "processes a submission started outlived its grading"
    assert not list(kernel_tmp.glob("llmlabs-kernel-*")), "a kernel's scratch directory outlived its grading"
