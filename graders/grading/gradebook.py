"""The course's gradebook, opened loudly and written by one process: the coordinator of
`llmlabs grade`.

Opening (`CourseGradebook.open`): nbgrader reads `c.CourseDirectory.db_url` from the
course's nbgrader_config.py (default: `sqlite:///<course>/gradebook.db`; PostgreSQL
works through `postgresql+psycopg://...`). nbgrader itself creates a fresh, empty
sqlite file when the URL is misspelled or points nowhere (jupyter/nbgrader#1661); here
each of these is refused in one line instead: an unknown `c.CourseDirectory.*` option
(a misspelling), a config that mentions `db_url` that nbgrader did not read, an sqlite
file that does not exist, a server that cannot be reached, and a gradebook without the
assignment (`nbgrader generate_assignment UNIT` was not run).

Writing (`record`): what `nbgrader autograde` itself writes, by nbgrader's own code.
The worker's autograded notebook (executed, outputs limited) is replayed through the
same preprocessors that end nbgrader's autograde pipeline, `SaveAutoGrades` (the
score of each test cell, "No response." comments, needs-manual-grade flags) and
`AssignLatePenalties` (with the course's late-submission plugin), against this
gradebook, after the student and submission rows are made as `Autograde.init_assignment`
makes them (with the timestamp from the submission's `timestamp.txt`). A submission that
could not be graded gets what nbgrader gives a missing notebook: every grade zero, here
flagged for manual review.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graders.errors import GradingError


class GradebookError(GradingError):
    """The course's gradebook cannot be used; the message says what to fix."""


def safe_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def require_course(course_dir: Path) -> Path:
    root = Path(course_dir).resolve()
    if not (root / "nbgrader_config.py").is_file():
        raise GradebookError(
            f"{root} is not a course directory (no nbgrader_config.py); see `llmlabs course init`"
        )
    return root


@dataclass
class CourseGradebook:
    root: Path
    config: Any  # traitlets Config of the course
    coursedir: Any  # nbgrader CourseDirectory
    db_url: str
    course_id: str

    @classmethod
    def open(cls, course_dir: Path, unit: str) -> CourseGradebook:
        root = require_course(course_dir)
        config_path = root / "nbgrader_config.py"
        from graders.grading import autograde

        autograde.fast_imports()
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config.loader import PyFileConfigLoader

        try:
            config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
        except Exception as e:
            raise GradebookError(f"{config_path} cannot be read: {_first_line(e)}") from None
        known = set(CourseDirectory.class_trait_names())
        unknown = sorted(k for k in config.get("CourseDirectory", {}) if k not in known)
        if unknown:
            raise GradebookError(
                f"{config_path}: c.CourseDirectory.{unknown[0]} is not an nbgrader option (misspelled?)"
            )
        config.CourseDirectory.root = str(root)
        coursedir = CourseDirectory(config=config)
        db_url = coursedir.db_url
        text = "\n".join(ln.split("#", 1)[0] for ln in config_path.read_text().splitlines())
        if "db_url" in text and "db_url" not in config.get("CourseDirectory", {}):
            raise GradebookError(
                f"{config_path} mentions db_url but nbgrader did not read it: write "
                "c.CourseDirectory.db_url = '...' (refusing to fall back to a new sqlite gradebook)"
            )
        book = cls(root, config, coursedir, db_url, coursedir.course_id)
        book._check(unit)
        return book

    def _check(self, unit: str) -> None:
        from sqlalchemy import create_engine, inspect

        url = self.db_url
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            if not path.is_file():
                raise GradebookError(
                    f"no gradebook at {path}: run `nbgrader generate_assignment {unit}` in {self.root} first "
                    "(or check c.CourseDirectory.db_url)"
                )
        try:
            engine = create_engine(url, connect_args=self._connect_args())
        except Exception as e:
            raise GradebookError(
                f"c.CourseDirectory.db_url {safe_url(url)!r} is not usable: {_first_line(e)}"
            ) from None
        try:
            with engine.connect() as conn:
                tables = inspect(conn).get_table_names()
        except Exception as e:
            raise GradebookError(f"cannot reach the gradebook at {safe_url(url)}: {_first_line(e)}") from None
        finally:
            engine.dispose()
        if "assignment" not in tables or not self._has_assignment(unit):
            raise GradebookError(
                f"the gradebook at {safe_url(url)} has no assignment {unit!r}: run "
                f"`nbgrader generate_assignment {unit}` in {self.root} first"
            )

    def _connect_args(self) -> dict[str, Any]:
        return {"connect_timeout": 10} if self.db_url.startswith("postgresql") else {}

    def _gradebook(self) -> Any:
        import warnings

        from nbgrader.api import Gradebook
        from sqlalchemy.exc import SAWarning

        # nbgrader's own session use makes SQLAlchemy warn when a student's first
        # submission is created; the rows are written all the same.
        warnings.filterwarnings("ignore", category=SAWarning)

        return Gradebook(self.db_url, self.course_id)

    def _has_assignment(self, unit: str) -> bool:
        from nbgrader.api import MissingEntry

        with self._gradebook() as gb:
            try:
                gb.find_assignment(unit)
            except MissingEntry:
                return False
        return True

    def notebook_names(self, unit: str) -> list[str]:
        with self._gradebook() as gb:
            return [nb.name for nb in gb.find_assignment(unit).notebooks]

    def timestamp(self, submission_dir: Path) -> Any:
        """The submission time nbgrader would record (from `timestamp.txt`), or None."""
        return self.coursedir.get_existing_timestamp(str(submission_dir))

    def graded_students(self, unit: str) -> set[str]:
        with self._gradebook() as gb:
            return {s.student.id for s in gb.find_assignment(unit).submissions}

    def _submission(self, gb: Any, unit: str, student: str, timestamp: Any) -> None:
        gb.update_or_create_student(student)
        if timestamp:
            gb.update_or_create_submission(unit, student, timestamp=timestamp)
        else:
            gb.update_or_create_submission(unit, student)

    def record(self, unit: str, student: str, timestamp: Any, notebooks: dict[str, Path]) -> list[list[Any]]:
        """Save the autograded notebooks' scores with nbgrader's own preprocessors;
        return [grade_id, score, max_score] as the gradebook now holds them."""
        import nbformat
        from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

        with self._gradebook() as gb:
            self._submission(gb, unit, student, timestamp)
        for name, path in notebooks.items():
            nb = nbformat.read(str(path), as_version=nbformat.NO_CONVERT)
            resources = {
                "nbgrader": {"db_url": self.db_url, "assignment": unit, "notebook": name, "student": student}
            }
            SaveAutoGrades(config=self.config).preprocess(nb, resources)
            AssignLatePenalties(config=self.config).preprocess(nb, resources)
        return self.scores(unit, student)

    def record_zero(self, unit: str, student: str, timestamp: Any) -> list[list[Any]]:
        """A submission that could not be graded: zero on every grade, for manual review."""
        with self._gradebook() as gb:
            self._submission(gb, unit, student, timestamp)
            for nb in gb.find_submission(unit, student).notebooks:
                for grade in nb.grades:
                    grade.auto_score = 0
                    grade.needs_manual_grade = True
                nb.late_submission_penalty = None
            gb.db.commit()
        return self.scores(unit, student)

    def scores(self, unit: str, student: str) -> list[list[Any]]:
        with self._gradebook() as gb:
            out = []
            for nb in gb.find_submission(unit, student).notebooks:
                code = [g for g in nb.grades if g.cell_type == "code"]
                out += [[g.name, float(g.score or 0.0), float(g.max_score or 0.0)] for g in code]
            return out

    def class_grades(self, unit: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """What the gradebook holds for `unit`, as plain data (for `llmlabs report`): the
        assignment's graded cells (notebook, name, cell_type, max_score) and, per
        submission, the student, timestamp and every grade (notebook, name, cell_type,
        auto_score, manual_score, score, max_score, needs_manual_grade)."""
        with self._gradebook() as gb:
            assignment = gb.find_assignment(unit)
            cells = [
                {
                    "notebook": nb.name,
                    "name": c.name,
                    "cell_type": c.cell_type,
                    "max_score": float(c.max_score),
                }
                for nb in assignment.notebooks
                for c in [*nb.grade_cells, *nb.task_cells]
            ]
            submissions = []
            for sub in assignment.submissions:
                grades = [
                    {
                        "notebook": nb.name,
                        "name": g.name,
                        "cell_type": g.cell_type,
                        "auto_score": g.auto_score,
                        "manual_score": g.manual_score,
                        "score": float(g.score or 0.0),
                        "max_score": float(g.max_score or 0.0),
                        "needs_manual_grade": bool(g.needs_manual_grade),
                    }
                    for nb in sub.notebooks
                    for g in nb.grades
                ]
                stamp = str(sub.timestamp) if sub.timestamp else ""
                submissions.append({"student": sub.student.id, "timestamp": stamp, "grades": grades})
            return cells, submissions
