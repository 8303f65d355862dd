"""`llmlabs grade UNIT`: every collected submission of a course, graded in parallel.

The design, around two facts of nbgrader 0.9.6 (no parallel autograde; an sqlite
gradebook that is not safe for concurrent writers):

1. The coordinator (this module, in the instructor's process) takes the course lock
   (`graders.grading.ledger.CourseLock`: one run at a time), opens the gradebook loudly
   (`graders.grading.gradebook`), and lists `submitted/<student>/<unit>/`. A submission
   whose content hash, assignment and gradebook row match the ledger is up to date and
   skipped (`--force` regrades). A damaged one (`graders.grading.submission`) gets zero
   and its reason without running.
2. Each other submission becomes a Dask task (`graders.grading.worker.grade_job`) on an
   embedded LocalCluster or a given scheduler (`graders.grading.cluster`). A worker
   autogrades it with stock nbgrader in a private throw-away course with its own sqlite
   gradebook, in its own sandboxed kernel, and returns the scores and the autograded
   folder.
3. As results arrive, the coordinator alone writes them: the autograded folder into
   `autograded/<student>/<unit>/`, the grades into the course's gradebook through
   nbgrader's own `SaveAutoGrades` and `AssignLatePenalties`, then the ledger. A worker
   killed mid-task is replaced by Dask and its task rerun; a task that still fails, or a
   run stopped by Ctrl-C, leaves those submissions unrecorded, and the next run grades
   exactly them.

So stock `nbgrader export`, formgrader and `generate_feedback` read the result as if
`nbgrader autograde` had written it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from graders import settings
from graders.errors import SubmissionError
from graders.grading.grade import cell_messages, cell_results
from graders.grading.gradebook import CourseGradebook, require_course
from graders.grading.ledger import CourseLock, Ledger, submission_hash
from graders.grading.submission import guard_flags, screen_submission
from graders.grading.units import Unit, get_unit
from graders.grading.worker import Job, Template, read_tree, write_tree


@dataclass
class Row:
    student: str
    status: str  # graded, failed (zero recorded, with the reason), refused (damaged), up-to-date, not-graded
    score: float | None = None
    max_score: float | None = None
    seconds: float = 0.0  # nbgrader autograde of this submission on its worker
    reason: str = ""
    flags: list[str] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    worker: str = ""


@dataclass
class BatchReport:
    unit: str
    course: str
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0
    interrupted: bool = False
    # Copy detection (graders.grading.similarity): answer cells at or above the threshold,
    # against the reference or another submission. Listed only; nothing is scored down.
    similar: list[dict[str, Any]] = field(default_factory=list)
    similarity_threshold: float = 0.0
    similarity_report: str = ""  # the HTML page, relative to the course
    similarity_error: str = ""

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def complete(self) -> bool:
        """Every submission has a score in the gradebook."""
        return not self.interrupted and self.count("not-graded") == 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = {
            s: self.count(s) for s in ("graded", "failed", "refused", "up-to-date", "not-graded")
        }
        return data


def find_submissions(course_dir: Path, unit: str) -> dict[str, Path]:
    submitted = Path(course_dir) / "submitted"
    if not submitted.is_dir():
        return {}
    return {d.name: d / unit for d in sorted(submitted.iterdir()) if (d / unit).is_dir()}


def _job_env(workers: int, local: bool) -> dict[str, str]:
    """The coordinator's LLMLABS_* settings, which every worker applies to its job."""
    env = {
        s.env: os.environ[s.env]
        for s in settings.ALL
        if s.public and s is not settings.ROOT and s.env in os.environ
    }
    if local and settings.THREADS.env not in env:
        # Kernels of all workers share this machine's cores.
        from graders.grading.cluster import cores

        env[settings.THREADS.env] = str(max(1, cores() // max(1, workers)))
    return env


class _Writer:
    """The one writer: autograded folders, gradebook rows and the ledger, in that order."""

    def __init__(self, book: CourseGradebook, ledger: Ledger, unit: Unit, template_key: str):
        self.book, self.ledger, self.unit, self.template_key = book, ledger, unit, template_key
        self.names = book.notebook_names(unit.name)

    def _autograded_dir(self, student: str) -> Path:
        return self.book.root / "autograded" / student / self.unit.name

    def _ledger(self, student: str, digest: str, row: Row) -> None:
        entry = {"hash": digest, "template": self.template_key, "graded_at": time.time(), **asdict(row)}
        self.ledger.record(student, entry)

    def _row(
        self, student: str, status: str, scores: list[list[Any]], messages: dict[str, str], **kw: Any
    ) -> Row:
        cells = cell_results(self.unit, scores)
        return Row(
            student,
            status,
            score=sum(c.score for c in cells),
            max_score=sum(c.max_score for c in cells),
            cells=[
                {
                    "grade_id": c.grade_id,
                    "score": c.score,
                    "max_score": c.max_score,
                    "message": messages.get(c.grade_id, ""),
                }
                for c in cells
            ],
            **kw,
        )

    def zero(self, student: str, digest: str, timestamp: Any, status: str, reason: str, **kw: Any) -> Row:
        shutil.rmtree(self._autograded_dir(student), ignore_errors=True)
        scores = self.book.record_zero(self.unit.name, student, timestamp)
        row = self._row(student, status, scores, {}, reason=reason, **kw)
        self._ledger(student, digest, row)
        return row

    def result(self, result: dict[str, Any], digest: str, timestamp: Any, flags: list[str]) -> Row:
        student = result["student"]
        report = result.get("sandbox") or {}
        flags = flags + guard_flags(report)
        common = {
            "seconds": float(result.get("seconds", 0.0)),
            "flags": flags,
            "worker": result.get("worker", ""),
        }
        if not result.get("success") or not result.get("files"):
            reason = result.get("error") or "nbgrader autograde failed"
            return self.zero(student, digest, timestamp, "failed", reason, **common)
        out = self._autograded_dir(student)
        shutil.rmtree(out, ignore_errors=True)
        write_tree(out, result["files"])
        notebooks = {n: out / f"{n}.ipynb" for n in self.names if (out / f"{n}.ipynb").is_file()}
        scores = self.book.record(self.unit.name, student, timestamp, notebooks)
        messages: dict[str, str] = {}
        for path in notebooks.values():
            messages.update(cell_messages(path))
        row = self._row(student, "graded", scores, messages, **common)
        if sorted(map(tuple, scores)) != sorted(map(tuple, result.get("cells", []))):
            row.reason = "the course gradebook and the worker's nbgrader disagree on the scores"
        self._ledger(student, digest, row)
        return row


def grade_course(
    course_dir: Path,
    unit_name: str,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    similarity_threshold: float | None = None,
    on_plan: Callable[[int, int], None] | None = None,
    on_row: Callable[[Row], None] | None = None,
) -> BatchReport:
    """Grade every collected submission of `unit_name` in `course_dir`; see the module doc."""
    from graders.grading import assignment_cache
    from graders.grading.cluster import cores

    started = time.perf_counter()
    unit = get_unit(unit_name)
    root = require_course(course_dir)
    workers = workers or cores()
    report = BatchReport(unit.name, str(root), workers=0 if scheduler else workers)
    with CourseLock(root):
        book = CourseGradebook.open(root, unit.name)
        source = root / "source" / unit.name
        template = Template(
            unit=unit.name,
            course_root=str(root),
            config_text=(root / "nbgrader_config.py").read_text(),
            source_files=read_tree(source),
            key=assignment_cache.key(root, unit.name),
        )
        ledger = Ledger(root, unit.name)
        writer = _Writer(book, ledger, unit, template.key)
        in_book = book.graded_students(unit.name)
        scratch_bytes = settings.LIMITS["scratch_mb"].read() * 2**20
        pending: dict[str, tuple[Job, str, Any, list[str]]] = {}

        def done(row: Row) -> None:
            report.rows.append(row)
            if on_row:
                on_row(row)

        todo: list[tuple[str, Path, str]] = []
        for student, folder in find_submissions(root, unit.name).items():
            digest = submission_hash(folder)
            if not force and student in in_book and ledger.is_current(student, digest, template.key):
                kept = dict(ledger.entries[student])
                report.rows.append(Row(**{k: v for k, v in kept.items() if k in Row.__dataclass_fields__}))
                report.rows[-1].status = "up-to-date"
                continue
            todo.append((student, folder, digest))
        if on_plan:
            on_plan(len(todo), len(report.rows))
        for student, folder, digest in todo:
            timestamp = book.timestamp(folder)
            notebook = folder / unit.notebook_path.name
            try:
                flags = screen_submission(notebook, unit)
            except SubmissionError as e:
                reason = str(e).replace(f"{root}{os.sep}", "")  # paths relative to the course
                done(writer.zero(student, digest, timestamp, "refused", reason))
                continue
            job = Job(student, read_tree(folder, scratch_bytes), _job_env(workers, scheduler is None))
            pending[student] = (job, digest, timestamp, flags)
        if pending:
            _dispatch(pending, template, writer, workers, scheduler, done, report)
        _compare(root, unit, report, similarity_threshold)
    report.seconds = round(time.perf_counter() - started, 2)
    order = {s: i for i, s in enumerate(find_submissions(root, unit.name))}
    report.rows.sort(key=lambda r: order.get(r.student, len(order)))
    return report


def _compare(root: Path, unit: Unit, report: BatchReport, threshold: float | None) -> None:
    """Copy detection over every submission of the unit (graded now or before) and the
    course's own reference: pairs into the report and `reports/<unit>/similarity.html`.
    A failure here is reported, never a reason to lose the grades."""
    from graders.grading import similarity

    report.similarity_threshold = similarity.THRESHOLD if threshold is None else threshold
    try:
        source = json.loads((root / "source" / unit.name / unit.notebook_path.name).read_text())
        given = similarity.answer_sources(source)
        reference = {gid: similarity.reference_source(src) for gid, src in given.items()}
        stubs = {gid: similarity.stub_source(src) for gid, src in given.items()}
        submissions: dict[str, dict[str, str]] = {}
        for student, folder in find_submissions(root, unit.name).items():
            try:
                submissions[student] = similarity.answer_sources(
                    json.loads((folder / unit.notebook_path.name).read_text())
                )
            except (OSError, ValueError):
                continue  # damaged: refused above, nothing to compare
        pairs = similarity.find_pairs(submissions, reference, stubs, threshold=report.similarity_threshold)
        report.similar = [p.to_json() for p in pairs]
        path = root / "reports" / unit.name / "similarity.html"
        similarity.write_report(
            path, unit.name, pairs, submissions, reference, threshold=report.similarity_threshold
        )
        report.similarity_report = str(path.relative_to(root))
    except Exception as e:  # noqa: BLE001 (the grades are recorded: say what went wrong and go on)
        report.similarity_error = f"copy detection failed: {type(e).__name__}: {e}"[:300]


def _dispatch(
    pending: dict[str, tuple[Job, str, Any, list[str]]],
    template: Template,
    writer: _Writer,
    workers: int,
    scheduler: str | None,
    done: Callable[[Row], None],
    report: BatchReport,
) -> None:
    from distributed import as_completed

    from graders.grading.cluster import dask_client
    from graders.grading.worker import grade_job, warm_up

    left = set(pending)
    try:
        with dask_client(workers, scheduler) as client:
            if scheduler:
                report.workers = len(client.scheduler_info().get("workers", {}))
            client.run(warm_up)  # nbgrader imported on every worker, in parallel
            shipped = client.scatter(template, broadcast=True, hash=False)
            futures = {
                client.submit(
                    grade_job,
                    shipped,
                    job,
                    key=f"llmlabs-{template.unit}-{student}-{digest[:12]}",
                    pure=False,
                ): student
                for student, (job, digest, _, _) in pending.items()
            }
            for future in as_completed(futures):
                student = futures[future]
                _, digest, timestamp, flags = pending[student]
                try:
                    result = future.result()
                except Exception as e:  # the task itself failed (e.g. its workers kept dying)
                    reason = f"not graded ({type(e).__name__}: {str(e)[:200]}); run again to grade it"
                    done(Row(student, "not-graded", reason=reason, flags=flags))
                    left.discard(student)
                    continue
                done(writer.result(result, digest, timestamp, flags))
                left.discard(student)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        for student in sorted(left):
            report.rows.append(
                Row(
                    student,
                    "not-graded",
                    reason="interrupted; run again to grade it",
                    flags=pending[student][3],
                )
            )
