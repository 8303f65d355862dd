"""`llmlabs report`: the class report of a known class, graded once by `llmlabs grade`
(sqlite), then read again from a PostgreSQL gradebook without `llmlabs grade`'s records
(as after a plain `nbgrader autograde`), and the page opened in Chromium.

The class (linear_algebra, the fastest unit): the reference, four hand mutants (the test
cells each must fail are their `must_fail`, and they fail exactly those), one of which also
monkeypatches NumPy's testing (flagged; the kernel guard undoes it), a notebook whose
softmax cell loops past the cell time limit, one that allocates past the memory limit, and
a damaged one (refused). So every count on the page is known in advance.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from graders import cells
from graders.authoring.mutants import apply_mutant, load_mutants
from graders.grading.gradebook import CourseGradebook
from graders.grading.report import STUDENT_COLUMNS, ReportError, build_report, write_report
from graders.grading.units import get_unit
from tests.grading.test_grade_postgres import postgres  # noqa: F401 (a fixture)
from tests.helpers import make_course, nbgrader, run_cli

UNIT = get_unit("linear_algebra")
MUTANTS = ["dists_missing_factor_two", "softmax_no_max_shift", "svd_rank_off_by_one"]
PATCHED = "lse_forgets_to_add_shift"  # and it monkeypatches NumPy's testing
LOOPER_FAILS = ("test_softmax_visible", "test_softmax_hidden")
CELL_TIMEOUT = 10
pytestmark = pytest.mark.xdist_group("class-report")


def _answer(gid: str) -> str:
    return cells.source(cells.find(UNIT.notebook(), gid))


def _with(gid: str, source: str) -> dict:
    nb = UNIT.notebook()
    cells.set_source(nb, gid, source)
    return nb


def _class() -> tuple[dict, dict[str, tuple[str, ...]]]:
    """Submissions, and the test cells each one that runs must fail."""
    by_name = {m.name: m for m in load_mutants(UNIT)}
    subs: dict = {"ada": UNIT.notebook_path}
    fails: dict[str, tuple[str, ...]] = {"ada": ()}
    for name in MUTANTS:
        subs[name] = apply_mutant(UNIT.notebook(), by_name[name])
        fails[name] = by_name[name].must_fail
    subs["looper"] = _with("softmax", "while True:\n    pass\n")
    fails["looper"] = LOOPER_FAILS
    subs["hog"] = _with(
        "dists", "hog = bytearray(5 * 2**30)  # five times the 1 GiB cap\n" + _answer("dists")
    )
    patcher = apply_mutant(UNIT.notebook(), by_name[PATCHED])
    patch = "\nnp.testing.assert_allclose = lambda *args, **kwargs: None\n"
    cells.set_source(patcher, "dists", _answer("dists") + patch)
    subs["patcher"], fails["patcher"] = patcher, by_name[PATCHED].must_fail
    return subs, fails


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class, graded once by `llmlabs grade` into an sqlite gradebook."""
    root = tmp_path_factory.mktemp("class-report")
    subs, fails = _class()
    course = make_course(root / "course", UNIT, subs, cell_timeout=CELL_TIMEOUT)
    broken = course / "submitted" / "broken" / UNIT.name
    broken.mkdir(parents=True)
    (broken / UNIT.notebook_path.name).write_text('{"cells": [')
    (broken / "timestamp.txt").write_text("2026-11-02 09:30:00.000000 UTC")
    env = {"LLMLABS_LIMIT_MEMORY_MB": "1024", "LLMLABS_THREADS": "1"}
    proc = run_cli("grade", UNIT.name, "--course", course, "--workers", "2", "--json", env=env)
    assert proc.returncode == 1, proc.stderr  # broken and (usually) hog got zero
    return course, fails, json.loads(proc.stdout)


def _check_counts(report, fails: dict[str, tuple[str, ...]]) -> None:
    """Every test cell's pass and fail counts, and its failure lines' students, are the
    known class's (hog counts with what it failed when it ran: with rlimits instead of a
    memory cgroup its allocation raises MemoryError rather than killing the kernel)."""
    rows = {s.student: s for s in report.students}
    ran = {name: f for name, f in fails.items()}
    if "hog" not in report.not_run:
        ran["hog"] = tuple(rows["hog"].failed)
    assert set(report.not_run) == {"broken", "hog"} - set(ran), report.not_run
    for test in report.tests:
        expected = sorted(s for s, f in ran.items() if test.grade_id in f)
        assert test.failed == len(expected), (test.grade_id, test.failed, expected)
        assert test.passed == len(ran) - len(expected), test.grade_id
        assert sorted(s for g in test.groups for s in g.students) == expected, test.grade_id
    rates = [t.pass_rate for t in report.tests]
    assert rates == sorted(rates), "hardest tests first"
    assert report.tests[0].grade_id == "test_softmax_hidden"  # softmax_no_max_shift and looper
    # The failure lines are those `llmlabs check` prints.
    softmax = {g.line: g.students for g in report.tests[0].groups}
    assert softmax["NameError: name 'softmax' is not defined"] == ["looper"]
    assert any(line.startswith("AssertionError: softmax(x + 1000)") for line in softmax)
    for name, f in ran.items():
        assert set(rows[name].failed) == set(f), name
    assert rows["ada"].score == UNIT.points
    assert rows["broken"].score == 0 and rows["broken"].manual, "a refused notebook waits for a manual grade"
    assert "time limit: softmax" in rows["looper"].limits
    # A MemoryError, or a dead kernel (its reason is in llmlabs grade's records only; under
    # heavy load nbgrader's log does not always say that the kernel died).
    assert rows["hog"].limits or rows["hog"].status in ("failed", "no autograded notebook")
    assert not rows["ada"].limits and not rows["ada"].flags
    assert any("assert_allclose" in flag for flag in rows["patcher"].flags), rows["patcher"].flags
    assert any(text.startswith("reference: ") for text in rows["ada"].similar)
    for name in ran:
        assert rows[name].seconds and rows[name].seconds > 0, name


def test_report_of_a_known_class_from_sqlite_opens_in_chromium(graded):
    course, fails, grading = graded
    proc = run_cli("report", UNIT.name, "--course", course)
    assert proc.returncode == 0, proc.stderr
    out_dir = course / "reports" / UNIT.name
    for name in ("class.html", "class.csv", "tests.csv"):
        assert f"Wrote {out_dir / name}" in proc.stdout, proc.stdout

    report = build_report(course, UNIT.name)
    _check_counts(report, fails)
    rows = {s.student: s for s in report.students}
    # What only `llmlabs grade` records: statuses, reasons, its timing.
    assert report.ledger
    assert rows["broken"].status == "refused" and "invalid JSON" in rows["broken"].reason
    assert rows["ada"].time_source == "llmlabs grade"
    by_student = {r["student"]: r for r in grading["rows"]}
    assert {s: r.score for s, r in rows.items()} == {s: r["score"] for s, r in by_student.items()}

    table = list(csv.DictReader(io.StringIO((out_dir / "class.csv").read_text())))
    assert list(table[0])[: len(STUDENT_COLUMNS)] == STUDENT_COLUMNS
    assert {r["student"] for r in table} == set(rows)
    assert {r["student"]: float(r["score"]) for r in table} == {s: r.score for s, r in rows.items()}
    failures = list(csv.DictReader(io.StringIO((out_dir / "tests.csv").read_text())))
    counted = Counter()
    for r in failures:
        counted[r["grade_id"]] += int(r["count"] or 0)
    assert counted == Counter({t.grade_id: t.failed for t in report.tests})

    _open_in_chromium(out_dir / "class.html", tests=len(UNIT.test_points()))


def test_report_from_postgresql_without_llmlabs_grade_records(graded, tmp_path, postgres):  # noqa: F811
    """The same class in a PostgreSQL gradebook, written by nbgrader's own SaveAutoGrades
    from the autograded notebooks (what `llmlabs grade`'s coordinator runs), and without
    the ledger: what a course graded by plain `nbgrader autograde` holds."""
    source, fails, _ = graded
    course = tmp_path / "course"
    shutil.copytree(
        source, course, ignore=shutil.ignore_patterns("gradebook.db", ".llmlabs", "release", "reports")
    )
    with open(course / "nbgrader_config.py", "a") as f:
        f.write(f"\nc.CourseDirectory.db_url = {postgres!r}\n")
    nbgrader("generate_assignment", UNIT.name, cwd=course)
    # Generated, nothing graded yet: the error says what to run (the CLI prints it as one
    # line, as every LLMLabsError; tests/test_report_parts.py).
    with pytest.raises(ReportError, match=f"no submission of '{UNIT.name}' is graded .*postgres@"):
        build_report(course, UNIT.name)

    book = CourseGradebook.open(course, UNIT.name)
    for folder in sorted((course / "submitted").iterdir()):
        stamp = book.timestamp(folder / UNIT.name)
        done = course / "autograded" / folder.name / UNIT.name / UNIT.notebook_path.name
        if done.is_file():
            book.record(UNIT.name, folder.name, stamp, {UNIT.name: done})
        else:
            book.record_zero(UNIT.name, folder.name, stamp)
    report = build_report(course, UNIT.name)
    html = write_report(report, course / "reports" / UNIT.name).html.read_text()
    assert not (course / "gradebook.db").exists()
    assert report.gradebook.startswith("postgresql+psycopg://postgres@")
    _check_counts(report, fails)
    rows = {s.student: s for s in report.students}
    assert not report.ledger
    assert rows["broken"].status == "no autograded notebook" and rows["broken"].seconds is None
    assert rows["ada"].time_source == "cells" and rows["ada"].flags_source == "audit"
    sqlite = build_report(source, UNIT.name)
    assert {s.student: s.score for s in sqlite.students} == {s: r.score for s, r in rows.items()}
    assert [(t.grade_id, t.passed, t.failed) for t in sqlite.tests] == [
        (t.grade_id, t.passed, t.failed) for t in report.tests
    ]
    assert "not recorded" in html


def _open_in_chromium(page_path: Path, tests: int) -> None:
    from tests.browser.lab import CHROMIUM, CHROMIUM_ARGS

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    # Playwright's sync API refuses a thread whose asyncio loop runs, and a browser test's
    # session-wide Playwright may hold this xdist worker's main thread: use a thread of our own.
    failures: list[BaseException] = []

    def check() -> None:
        try:
            _check_page(sync_playwright, CHROMIUM, CHROMIUM_ARGS, page_path, tests)
        except BaseException as e:  # re-raised in the test's thread
            failures.append(e)

    worker = threading.Thread(target=check)
    worker.start()
    worker.join()
    if failures:
        raise failures[0]


def _check_page(sync_playwright, chromium, chromium_args, page_path: Path, tests: int) -> None:
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=chromium_args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: None if r.url.startswith("file://") else problems.append(r.url))
            page.goto(page_path.as_uri())
            for plot in ("#histogram", "#pass-rates"):
                box = page.locator(plot).bounding_box()
                assert box and box["width"] > 100 and box["height"] > 100, (plot, box)
            bars = page.locator("#pass-rates rect.bar")
            assert bars.count() == tests
            assert all((bars.nth(i).bounding_box() or {}).get("width", 0) > 0 for i in range(tests))
            assert page.locator("#histogram rect.bar").count() >= 3  # zeros, the 80-90% band, full marks
            assert page.get_by_text("Why tests failed").is_visible()
            page.screenshot(path=str(page_path.with_suffix(".png")), full_page=True)
        finally:
            browser.close()
    assert not problems, problems
