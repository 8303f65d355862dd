"""`llmlabs report UNIT`: what a class did on one unit, read after grading.

Everything comes from what stock nbgrader leaves in the course, so the report works after
`llmlabs grade` and after a plain `nbgrader autograde` alike:

- the gradebook (`c.CourseDirectory.db_url`: sqlite or PostgreSQL, opened loudly by
  `graders.grading.gradebook`): each submission's score per graded cell and the grades
  that need a manual grade;
- the autograded notebooks (`autograded/<student>/<unit>/`): the first line of each
  failing cell's error (`graders.grading.grade.notebook_messages`, the line `llmlabs
  check` prints), cells that ran past their time limit or out of memory, the time the
  cells took (the kernel's own timestamps in each cell's metadata), the audit's
  findings (`graders.grading.audit`) and copy detection (`graders.grading.similarity`)
  over the answer cells.

Where `llmlabs grade` ran, its ledger (`.llmlabs/grade/<unit>.json`; an entry counts while
the submission's folder is the one it graded) adds what only it knows: the status and
reason of a submission that could not be graded (a damaged notebook, a dead kernel),
nbgrader's whole autograde time on the worker, and the in-kernel guard's findings;
without it those are "not recorded".

The page itself is drawn by `graders.grading.report_html`; this module gathers the data
and writes the CSV files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from graders import cells
from graders.errors import GradingError
from graders.grading.grade import notebook_messages
from graders.grading.gradebook import CourseGradebook, safe_url

NOT_RECORDED = "not recorded"
TIME_LIMIT = "ran past its time limit"


class ReportError(GradingError):
    """The class report cannot be made (the unit is not graded in this course)."""


@dataclass
class FailureGroup:
    line: str  # the most common line of the group, as a learner saw it
    count: int
    students: list[str] = field(default_factory=list)
    variants: int = 1  # distinct lines in the group (they differ only in numbers)


@dataclass
class CellStat:
    grade_id: str
    notebook: str
    max_score: float
    passed: int = 0
    failed: int = 0
    groups: list[FailureGroup] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


@dataclass
class StudentRow:
    student: str
    score: float
    max_score: float
    timestamp: str = ""
    status: str = ""  # llmlabs grade's status, or "autograded" / "no autograded notebook"
    reason: str = ""
    seconds: float | None = None
    time_source: str = ""  # "llmlabs grade" (whole autograde) or "cells" (kernel timestamps)
    cells: dict[str, float] = field(default_factory=dict)  # test grade_id -> score
    failed: dict[str, str] = field(default_factory=dict)  # test grade_id -> failure line
    limits: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    flags_source: str = ""  # "llmlabs grade" (audit + kernel guard) or "audit"
    similar: list[str] = field(default_factory=list)  # "other: 3 cell(s), up to 97%", per other
    manual: list[str] = field(default_factory=list)  # grade ids that need a manual grade

    @property
    def percent(self) -> float:
        return 100.0 * self.score / self.max_score if self.max_score else 0.0


@dataclass
class ClassReport:
    unit: str
    course: str
    gradebook: str  # the db_url, password hidden
    generated: str
    students: list[StudentRow] = field(default_factory=list)
    tests: list[CellStat] = field(default_factory=list)  # hardest first
    manual_cells: list[str] = field(default_factory=list)  # cells graded by hand (markdown, tasks)
    not_run: list[str] = field(default_factory=list)  # no autograded notebook: out of the pass rates
    ledger: bool = False  # llmlabs grade's records were found
    similarity_threshold: float = 0.0
    similarity_page: str = ""  # reports/<unit>/similarity.html when llmlabs grade wrote it
    similarity_error: str = ""

    @property
    def scores(self) -> list[float]:
        return [s.percent for s in self.students]

    def summary(self) -> dict[str, Any]:
        pct = self.scores
        return {
            "submissions": len(self.students),
            "mean_percent": round(statistics.fmean(pct), 1) if pct else 0.0,
            "median_percent": round(statistics.median(pct), 1) if pct else 0.0,
            "full_marks": sum(1 for s in self.students if s.max_score and s.score >= s.max_score),
            "hit_a_limit": sum(1 for s in self.students if s.limits),
            "flagged": sum(1 for s in self.students if s.flags),
            "similar": sum(1 for s in self.students if s.similar),
            "need_manual_grade": sum(1 for s in self.students if s.manual),
            "not_run": len(self.not_run),
        }


# --- pure parts -----------------------------------------------------------------------------

_NUMBER = re.compile(r"0x[0-9a-fA-F]+|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|\bnan\b|\binf\b")


def failure_key(line: str) -> str:
    """What failure lines have in common when they say the same thing about different
    numbers: every number (and nan, inf, hex address) becomes `#`."""
    return _NUMBER.sub("#", line.strip())


def group_failures(lines: dict[str, str], top: int | None = None) -> list[FailureGroup]:
    """student -> failure line, grouped by `failure_key`, most common first (ties: by line).
    Each group is shown by its most common line and lists its students."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for student, line in sorted(lines.items()):
        groups.setdefault(failure_key(line), []).append((student, line))
    out = []
    for members in groups.values():
        said = Counter(line for _, line in members)
        line = min(said, key=lambda text: (-said[text], text))
        out.append(FailureGroup(line, len(members), [s for s, _ in members], len(said)))
    out.sort(key=lambda g: (-g.count, g.line))
    return out[:top] if top else out


def histogram(percents: list[float], bins: int = 10) -> list[int]:
    """Counts of scores (0-100) in `bins` equal ranges below full marks, then one more
    count: the submissions with full marks (100)."""
    counts = [0] * (bins + 1)
    for p in percents:
        counts[bins if p >= 100 else min(bins - 1, max(0, int(p * bins // 100)))] += 1
    return counts


def limits_hit(messages: dict[str, str], reason: str = "") -> list[str]:
    """The limits a submission ran into, from its cells' failure lines and (where
    `llmlabs grade` recorded one) the reason it got zero."""
    out = []
    for gid, line in messages.items():
        if TIME_LIMIT in line:
            out.append(f"time limit: {gid}")
        elif line.startswith("MemoryError") or "memory limit" in line:
            out.append(f"memory: {gid}")
    low = reason.lower()
    if "kernel died" in low:
        out.append("kernel died (memory limit, a crash or os._exit)")
    elif "time limit" in low or "timed out" in low or "timeout" in low:
        out.append(f"time limit: {reason}")
    elif "memory" in low:
        out.append(f"memory: {reason}")
    return out


def cells_seconds(nb: dict[str, Any]) -> float | None:
    """Wall time from the first cell's start to the last cell's end, from the execution
    timestamps nbclient writes into each cell's metadata (None when there are none)."""
    stamps = []
    for cell in nb.get("cells", []):
        for value in ((cell.get("metadata") or {}).get("execution") or {}).values():
            try:
                stamps.append(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
            except ValueError:
                continue
    if len(stamps) < 2:
        return None
    return round((max(stamps) - min(stamps)).total_seconds(), 2)


STUDENT_COLUMNS = [
    "student",
    "score",
    "max_score",
    "percent",
    "status",
    "reason",
    "seconds",
    "time_source",
    "failed_tests",
    "limits",
    "flags",
    "similar",
    "needs_manual_grade",
    "timestamp",
]
TEST_COLUMNS = ["grade_id", "notebook", "max_score", "passed", "failed", "pass_rate", "failure", "count"]


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def students_csv(report: ClassReport) -> str:
    """One row per submission: STUDENT_COLUMNS, then each test cell's score."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    tests = [t.grade_id for t in sorted(report.tests, key=lambda t: t.grade_id)]
    writer.writerow(STUDENT_COLUMNS + tests)
    for s in report.students:
        flags = "; ".join(s.flags) if s.flags_source else NOT_RECORDED
        writer.writerow(
            [
                s.student,
                _num(s.score),
                _num(s.max_score),
                f"{s.percent:.1f}",
                s.status,
                s.reason,
                _num(s.seconds),
                s.time_source,
                " ".join(s.failed),
                "; ".join(s.limits),
                flags,
                "; ".join(s.similar),
                " ".join(s.manual),
                s.timestamp,
            ]
            + [_num(s.cells.get(t)) for t in tests]
        )
    return buf.getvalue()


def failures_csv(report: ClassReport) -> str:
    """One row per (test cell, failure group), hardest test first; a test that no one
    failed has one row with an empty failure."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TEST_COLUMNS)
    for t in report.tests:
        head = [t.grade_id, t.notebook, _num(t.max_score), t.passed, t.failed, f"{t.pass_rate:.3f}"]
        for g in t.groups or [FailureGroup("", 0)]:
            writer.writerow(head + [g.line, g.count or ""])
    return buf.getvalue()


# --- gathering ------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _folder_hash(folder: Path) -> str:
    from graders.grading.ledger import submission_hash

    try:
        return submission_hash(folder) if folder.is_dir() else ""
    except OSError:
        return ""


def _similar(root: Path, unit: str, notebooks: dict[str, dict[str, Any]], report: ClassReport) -> None:
    """Copy detection over the autograded notebooks' answer cells, as `llmlabs grade` runs it."""
    from graders.grading import similarity

    report.similarity_threshold = similarity.THRESHOLD
    page = root / "reports" / unit / "similarity.html"
    report.similarity_page = str(page.relative_to(root)) if page.is_file() else ""
    try:
        given: dict[str, str] = {}
        for path in sorted((root / "source" / unit).glob("*.ipynb")):
            given.update(similarity.answer_sources(_read_json(path) or {}))
        reference = {gid: similarity.reference_source(src) for gid, src in given.items()}
        stubs = {gid: similarity.stub_source(src) for gid, src in given.items()}
        subs = {s: similarity.answer_sources(nb) for s, nb in notebooks.items()}
        pairs = similarity.find_pairs(subs, reference, stubs, threshold=report.similarity_threshold)
    except Exception as e:  # noqa: BLE001 (the rest of the report stands without it)
        report.similarity_error = f"copy detection failed: {type(e).__name__}: {e}"[:300]
        return
    found: dict[str, dict[str, list[float]]] = {}  # student -> other -> similarities
    for p in pairs:
        found.setdefault(p.student, {}).setdefault(p.other, []).append(p.similarity)
        if p.other != similarity.REFERENCE:
            found.setdefault(p.other, {}).setdefault(p.student, []).append(p.similarity)
    for row in report.students:
        others = found.get(row.student, {})
        row.similar = [
            f"{other}: {len(sims)} cell(s), up to {max(sims):.0%}"
            for other, sims in sorted(others.items(), key=lambda kv: (kv[0] != similarity.REFERENCE, kv[0]))
        ]


def build_report(course_dir: Path, unit: str) -> ClassReport:
    """Gather the class report of `unit` in the course at `course_dir` (see the module doc).
    Raises GradebookError (no course, no gradebook, no such assignment) or ReportError
    (nothing graded yet)."""
    from graders.grading.audit import audit_notebook

    book = CourseGradebook.open(Path(course_dir), unit)
    root = book.root
    graded_cells, submissions = book.class_grades(unit)
    if not submissions:
        raise ReportError(
            f"no submission of {unit!r} is graded in the gradebook at {safe_url(book.db_url)}: "
            f"run `llmlabs grade {unit}` (or `nbgrader autograde {unit}`) in {root} first"
        )
    timeout = book.config.get("Execute", {}).get("timeout")
    cell_timeout = float(timeout) if isinstance(timeout, (int, float)) else None
    ledger_data = _read_json(root / ".llmlabs" / "grade" / f"{unit}.json")
    ledger: dict[str, dict[str, Any]] = ledger_data if isinstance(ledger_data, dict) else {}
    sources = {p.stem: _read_json(p) or {} for p in sorted((root / "source" / unit).glob("*.ipynb"))}
    order: dict[str, int] = {}
    for nb in sources.values():
        for cell in nb.get("cells", []):
            gid = cells.grade_id(cell)
            if gid and gid not in order:
                order[gid] = len(order)

    report = ClassReport(
        unit=unit,
        course=str(root),
        gradebook=safe_url(book.db_url),
        generated=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        ledger=bool(ledger),
    )
    tests = {
        c["name"]: CellStat(c["name"], c["notebook"], c["max_score"])
        for c in sorted(graded_cells, key=lambda c: order.get(c["name"], len(order)))
        if c["cell_type"] == "code"
    }
    report.manual_cells = [c["name"] for c in graded_cells if c["cell_type"] != "code"]
    failures: dict[str, dict[str, str]] = {gid: {} for gid in tests}
    autograded: dict[str, dict[str, Any]] = {}  # student -> the autograded notebooks' cells, merged

    for sub in sorted(submissions, key=lambda s: s["student"]):
        student = sub["student"]
        grades = sub["grades"]
        row = StudentRow(
            student,
            score=sum(g["score"] for g in grades),
            max_score=sum(g["max_score"] for g in grades),
            timestamp=sub["timestamp"],
        )
        folder = root / "autograded" / student / unit
        notebooks = {n: _read_json(folder / f"{n}.ipynb") for n in sources} if folder.is_dir() else {}
        notebooks = {n: nb for n, nb in notebooks.items() if isinstance(nb, dict)}
        messages: dict[str, str] = {}
        for nb in notebooks.values():
            messages.update(notebook_messages(nb, cell_timeout))
        entry = ledger.get(student) or {}
        if entry and entry.get("hash") != _folder_hash(root / "submitted" / student / unit):
            entry = {}  # the submission changed since llmlabs grade graded it: its record is stale
        row.status = entry.get("status") or ("autograded" if notebooks else "no autograded notebook")
        row.reason = str(entry.get("reason") or "")
        if entry.get("seconds"):
            row.seconds, row.time_source = float(entry["seconds"]), "llmlabs grade"
        elif notebooks:
            times = [t for nb in notebooks.values() if (t := cells_seconds(nb)) is not None]
            if times:
                row.seconds, row.time_source = round(sum(times), 2), "cells"
        if not notebooks:
            report.not_run.append(student)
        for g in grades:
            if g["needs_manual_grade"]:
                row.manual.append(g["name"])
            if g["name"] not in tests:
                continue
            row.cells[g["name"]] = g["score"]
            if g["score"] >= g["max_score"]:
                if notebooks:
                    tests[g["name"]].passed += 1
                continue
            fallback = "(no error output: a partial score)" if notebooks else "not run"
            row.failed[g["name"]] = messages.get(g["name"], fallback)
            if notebooks:  # a submission that never ran says nothing about an exercise
                tests[g["name"]].failed += 1
                failures[g["name"]][student] = row.failed[g["name"]]
        row.limits = limits_hit(messages, row.reason)
        if "flags" in entry:
            row.flags, row.flags_source = list(entry["flags"]), "llmlabs grade"
        elif notebooks:
            row.flags_source = "audit"
            for name, nb in notebooks.items():
                row.flags += audit_notebook(nb, sources.get(name) or {"cells": []})
        if notebooks:
            merged = [c for nb in notebooks.values() for c in nb.get("cells", [])]
            autograded[student] = {"cells": merged}
        report.students.append(row)

    for gid, stat in tests.items():
        stat.groups = group_failures(failures[gid])
    report.tests = sorted(tests.values(), key=lambda t: (t.pass_rate, order.get(t.grade_id, len(order))))
    _similar(root, unit, autograded, report)
    return report


@dataclass
class Written:
    html: Path
    students_csv: Path
    failures_csv: Path


def write_report(report: ClassReport, out_dir: Path) -> Written:
    """The HTML page and the two CSV files, in `out_dir` (created)."""
    from graders.grading.report_html import render

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = Written(out_dir / "class.html", out_dir / "class.csv", out_dir / "tests.csv")
    href = ""
    if report.similarity_page:
        href = os.path.relpath(Path(report.course) / report.similarity_page, out_dir.resolve())
    written.html.write_text(render(report, href), encoding="utf-8")
    written.students_csv.write_text(students_csv(report), encoding="utf-8")
    written.failures_csv.write_text(failures_csv(report), encoding="utf-8")
    return written
