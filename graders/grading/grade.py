"""The one grading path: real nbgrader `generate_assignment` + `autograde`, scores read
from its gradebook.

`grade_submissions` builds a throw-away course directory with `graders.grading.course`,
puts each submission under `submitted/<student>/<unit>/`, runs nbgrader in a child
process (`graders.grading.job`). Every score is nbgrader's, read from the course's
gradebook by the child and sent back in its events (so this process never pays
nbgrader's import time); the assignment is generated once per content hash
(`graders.grading.assignment_cache`). The failure message shown for a test cell is one line
that names the cause (`failure_line`): the error it raised in the autograded notebook,
a failing worker's own error, or the time limit. What the sandbox could not
apply, and what the notebook monkeypatched, come from the kernel launcher's reports
(`graders.sandbox.launcher`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from graders import cells, settings
from graders.errors import GradingError, SubmissionError
from graders.grading.course import init_course, throwaway_root
from graders.grading.job import Event, run_job
from graders.grading.submission import guard_flags, screen_submission
from graders.grading.units import Unit
from graders.sandbox.launcher import reports_by_student

__all__ = ["CellResult", "GradingError", "Result", "SandboxReport", "grade_submissions"]


@dataclass
class CellResult:
    grade_id: str
    score: float
    max_score: float
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.score >= self.max_score


@dataclass
class SandboxReport:
    mode: str = "unknown"  # bwrap, rlimits or none; unknown when no kernel started
    not_applied: list[str] = field(default_factory=list)  # protections this grading went without


@dataclass
class Result:
    unit: str
    student: str
    cells: list[CellResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)  # suspected tampering (audit and kernel guard)
    sandbox: SandboxReport = field(default_factory=SandboxReport)

    @property
    def score(self) -> float:
        return sum(c.score for c in self.cells)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.cells)

    @property
    def full_marks(self) -> bool:
        return self.error is None and bool(self.cells) and self.score >= self.max_score

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(score=self.score, max_score=self.max_score, full_marks=self.full_marks)
        return data


# Exceptions that only carry another one (graders.notebook.parallel: a worker's error,
# whose message starts with "rank N: <its own exception>"): their name is left out.
WRAPPERS = ("WorkerError", "WorkerTimeout")
MAX_LINE = 300


def _first_line(text: str) -> str:
    """The first non-empty line; a line ending in a colon (a heading) is joined with the next."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[0]
    if line.endswith(":") and len(lines) > 1 and not lines[1].startswith(("Traceback", "---")):
        line = f"{line} {lines[1]}"
    return line[:MAX_LINE]


def failure_line(outputs: list[dict[str, Any]], cell_timeout: float | None = None) -> str | None:
    """The one line that names why a cell failed, from its outputs (nbformat dicts): the
    first error's name and message, a worker's own error for a multi-process failure, the
    time limit for a cell nbgrader interrupted; else the first line written to stderr."""
    errors = [out for out in outputs if out.get("output_type") == "error"]
    if any(out.get("ename") == "CellTimeoutError" for out in errors):
        # nbgrader interrupted the kernel at the cell's time limit: what the interrupt said
        # (run_distributed says where its ranks were) follows.
        said = [
            _first_line(str(out.get("evalue", "")))
            for out in errors
            if out.get("ename") != "CellTimeoutError"
        ]
        detail = next((text for text in said if text), "")
        limit = f" ({cell_timeout:g} s)" if cell_timeout else ""
        line = f"the cell ran past its time limit{limit} and was interrupted"
        return f"{line}: {detail}"[:MAX_LINE] if detail else line
    for out in errors:
        name = str(out.get("ename") or "Error")
        evalue = _first_line(str(out.get("evalue", "")))
        if name in WRAPPERS and evalue:
            return evalue
        return f"{name}: {evalue}"[:MAX_LINE] if evalue else name
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            return f"wrote to stderr: {_first_line(text)}"[:MAX_LINE]
    return None


def unhelpful(line: str) -> str | None:
    """Why a failure line would not tell a learner what to do (None when it does): empty,
    ending in a colon (the cause was on the next line), or naming only an exception (a
    wrapper's, or one raised without a message)."""
    text = line.strip()
    if not text or text.rstrip(":").strip() in ("", "wrote to stderr"):
        return "empty"
    if text.endswith(":"):
        return "ends with a colon"
    if re.fullmatch(r"[A-Za-z_][\w.]*", text) or text.split(":", 1)[0].strip() in WRAPPERS:
        return "names only an exception"
    return None


def notebook_messages(nb: dict[str, Any], cell_timeout: float | None = None) -> dict[str, str]:
    """grade_id -> `failure_line` of each graded cell that has one."""
    messages: dict[str, str] = {}
    for cell in nb.get("cells", []):
        gid = cells.grade_id(cell)
        line = failure_line(cell.get("outputs", []), cell_timeout) if gid else None
        if gid and line is not None:
            messages[gid] = line
    return messages


def cell_messages(notebook_path: Path, cell_timeout: float | None = None) -> dict[str, str]:
    """grade_id -> the line that says why the cell failed (`failure_line`), from an
    autograded notebook; `cell_timeout`, when given, is named in a timed-out cell's line."""
    try:
        nb = json.loads(notebook_path.read_text())
    except (OSError, ValueError):
        return {}
    return notebook_messages(nb, cell_timeout)


def _ungraded(unit: Unit, message: str = "") -> list[CellResult]:
    return [CellResult(gid, 0.0, pts, message) for gid, pts in unit.test_points().items()]


def cell_results(unit: Unit, scores: list[list[Any]]) -> list[CellResult]:
    """[grade_id, score, max_score] rows (as nbgrader's gradebook holds them) in the unit's order."""
    order = {gid: i for i, gid in enumerate(unit.graded_cells())}
    found = [CellResult(str(gid), float(score), float(top)) for gid, score, top in scores]
    return sorted(found, key=lambda c: order.get(c.grade_id, len(order)))


def grade_submissions(
    unit: Unit,
    submissions: dict[str, Path],
    *,
    on_event: Callable[[Event], None] | None = None,
    keep_dir: Path | None = None,
    timeout: float | None = None,
    cell_timeout: int | None = None,
    lang: str = "en",
) -> dict[str, Result]:
    """Grade each submission (student id -> notebook path) of `unit` in one nbgrader run, in
    a course whose source is in `lang` (the same code and tests in every language)."""
    for student in submissions:
        if not student.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"student ids must be letters, digits, - and _: {student!r}")
    settings.check_all()
    tmp = tempfile.mkdtemp(prefix="llmlabs-grade-", dir=throwaway_root())
    course_dir = Path(keep_dir) if keep_dir is not None else Path(tmp) / "course"
    report_dir = Path(tmp) / "sandbox-reports"
    results = {s: Result(unit.name, s) for s in submissions}
    gradable = []
    for student, path in submissions.items():
        # A damaged notebook (corrupt, another unit's, duplicated or missing graded cells)
        # would abort or silently skew nbgrader's batch: it gets zero and the reason instead.
        try:
            results[student].flags = screen_submission(Path(path), unit)
        except SubmissionError as e:
            results[student].error = str(e)
            results[student].cells = _ungraded(unit, "not graded")
            continue
        gradable.append(student)
    try:
        init_course(course_dir, [unit], course_id="llmlabs-check", cell_timeout=cell_timeout, lang=lang)
        for student in gradable:
            target = course_dir / "submitted" / student / unit.name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(submissions[student], target / unit.notebook_path.name)
        if timeout is None:
            # Generous: a unit's cells rarely all hit the limit; per-cell limits do the real work.
            timeout = 120 + len(submissions) * unit.cell_timeout * 10
        graded: dict[str, Event] = {}
        if gradable:
            env = dict(os.environ, **{settings.SANDBOX_REPORT.env: str(report_dir)})
            outcome = run_job(course_dir, unit.name, gradable, timeout=timeout, on_event=on_event, env=env)
            graded = outcome.graded()
            for student in gradable:
                event = graded.get(student)
                if event is None:
                    results[
                        student
                    ].error = f"grading stopped: {outcome.stderr_tail or 'nbgrader ended early'}"
                    continue
                results[student].seconds = float(event.get("seconds", 0.0))
                if not event.get("success"):
                    results[student].error = f"nbgrader autograde failed: {event.get('error')}"
        reports = reports_by_student(report_dir, course_dir / "autograded")
        for student in gradable:
            result = results[student]
            scores = graded.get(student, {}).get("cells") or []
            result.cells = cell_results(unit, scores) or _ungraded(unit)
            messages = cell_messages(
                course_dir / "autograded" / student / unit.name / unit.notebook_path.name,
                cell_timeout or unit.cell_timeout,
            )
            for cell in result.cells:
                if not cell.passed:
                    fallback = (
                        "not run: " + result.error if result.error else "the cell returned a partial score"
                    )
                    cell.message = messages.get(cell.grade_id, fallback)
            if result.error is None and not result.cells:
                result.error = "nbgrader recorded no grades for this submission"
            report = reports.get(student)
            if report is not None:
                result.sandbox = SandboxReport(str(report.get("mode")), list(report.get("not_applied", [])))
                result.flags += guard_flags(report)
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
