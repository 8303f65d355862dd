"""The one grading path: real nbgrader `generate_assignment` + `autograde`, scores read
from its gradebook.

`grade_submissions` builds a throw-away course directory with `graders.course`, puts
each submission under `submitted/<student>/<unit>/`, runs `graders.nbgrader_job` in a
child process, and reads every score from `gradebook.db`. The failure message shown
for a test cell is the first line of the error it raised in the autograded notebook.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from graders.audit import audit_notebook
from graders.course import init_course
from graders.submission import SubmissionError, check_submission
from graders.units import Unit


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
class Result:
    unit: str
    student: str
    cells: list[CellResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)  # suspected tampering (graders.audit)

    @property
    def score(self) -> float:
        return sum(c.score for c in self.cells)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.cells)

    @property
    def full_marks(self) -> bool:
        return self.error is None and bool(self.cells) and self.score >= self.max_score

    def by_id(self) -> dict[str, CellResult]:
        return {c.grade_id: c for c in self.cells}

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(score=self.score, max_score=self.max_score, full_marks=self.full_marks)
        return data


class GradingError(RuntimeError):
    pass


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def _cell_messages(notebook_path: Path) -> dict[str, str]:
    """grade_id -> first line of the error (or stderr) the cell produced."""
    try:
        nb = json.loads(notebook_path.read_text())
    except (OSError, ValueError):
        return {}
    messages = {}
    for cell in nb.get("cells", []):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if not grade_id:
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                evalue = _first_line(str(out.get("evalue", "")))
                messages[grade_id] = f"{out.get('ename', 'Error')}: {evalue}" if evalue else out.get("ename", "Error")
                break
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = out.get("text", "")
                text = "".join(text) if isinstance(text, list) else text
                messages.setdefault(grade_id, f"wrote to stderr: {_first_line(text)}")
    return messages


def _read_gradebook(course_dir: Path, unit: Unit, student: str) -> list[CellResult]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        try:
            nb = gb.find_submission_notebook(unit.name, unit.name, student)
        except MissingEntry:
            return []
        order = {gid: i for i, gid in enumerate(unit.graded_cells())}
        cells = [
            CellResult(g.name, float(g.score or 0.0), float(g.max_score or 0.0))
            for g in nb.grades
            if g.cell_type == "code"
        ]
    return sorted(cells, key=lambda c: order.get(c.grade_id, len(order)))


def grade_submissions(
    unit: Unit,
    submissions: dict[str, Path],
    *,
    on_event: Callable[[dict], None] | None = None,
    keep_dir: Path | None = None,
    timeout: float | None = None,
    cell_timeout: int | None = None,
) -> dict[str, Result]:
    """Grade each submission (student id -> notebook path) of `unit` in one nbgrader run."""
    for student in submissions:
        if not student.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"student ids must be letters, digits, - and _: {student!r}")
    tmp = None
    if keep_dir is None:
        tmp = tempfile.mkdtemp(prefix="llmlabs-grade-")
        course_dir = Path(tmp) / "course"
    else:
        course_dir = Path(keep_dir)
    results = {s: Result(unit.name, s) for s in submissions}
    gradable = []
    for student, path in submissions.items():
        # A damaged notebook (corrupt, another unit's, duplicated or missing graded cells)
        # would abort or silently skew nbgrader's batch: it gets zero and the reason instead.
        try:
            check_submission(Path(path), unit.name)
        except SubmissionError as e:
            results[student].error = str(e)
            results[student].cells = [
                CellResult(gid, 0.0, float(m.get("points", 0)), "not graded")
                for gid, m in unit.graded_cells().items()
                if m.get("grade")
            ]
            continue
        gradable.append(student)
        try:
            results[student].flags = audit_notebook(json.loads(Path(path).read_text()), unit.notebook())
        except ValueError:
            pass
    try:
        init_course(course_dir, [unit], course_id="llmlabs-check", cell_timeout=cell_timeout)
        for student in gradable:
            target = course_dir / "submitted" / student / unit.name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(submissions[student], target / unit.notebook_path.name)
        if timeout is None:
            # Generous: a unit's cells rarely all hit the limit; per-cell limits do the real work.
            timeout = 120 + len(submissions) * unit.cell_timeout * 10
        if gradable:
            _run_job(course_dir, unit, gradable, results, on_event, timeout)
        for student in gradable:
            result = results[student]
            result.cells = _read_gradebook(course_dir, unit, student) or [
                CellResult(gid, 0.0, float(m.get("points", 0)))
                for gid, m in unit.graded_cells().items()
                if m.get("grade")
            ]
            messages = _cell_messages(course_dir / "autograded" / student / unit.name / unit.notebook_path.name)
            for cell in result.cells:
                if not cell.passed:
                    fallback = "not run: " + result.error if result.error else "the cell returned a partial score"
                    cell.message = messages.get(cell.grade_id, fallback)
            if result.error is None and not result.cells:
                result.error = "nbgrader recorded no grades for this submission"
        return results
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _run_job(course_dir, unit, students, results, on_event, timeout) -> None:
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    cmd = [sys.executable, "-m", "graders.nbgrader_job", str(course_dir), unit.name, *students]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=course_dir)
    try:
        import threading

        stderr_chunks: list[str] = []
        reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
        reader.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "generate_failed":
                    raise GradingError(f"nbgrader generate_assignment failed: {event.get('error')}")
                if event.get("event") == "graded":
                    res = results[event["student"]]
                    res.seconds = event.get("seconds", 0.0)
                    if not event.get("success"):
                        res.error = f"nbgrader autograde failed: {event.get('error')}"
                if on_event:
                    on_event(event)
            proc.wait()
        finally:
            timer.cancel()
        reader.join(timeout=5)
        if proc.returncode != 0:
            stderr = "".join(stderr_chunks)
            tail = stderr.strip().splitlines()[-1:] or ["(no output)"]
            if proc.returncode < 0:
                tail = [f"killed after {timeout:.0f} s (time limit for the whole grading run)"]
            for res in results.values():
                if res.error is None and res.seconds == 0.0:
                    res.error = f"grading stopped: {tail[0]}"
    finally:
        if proc.poll() is None:
            proc.kill()
