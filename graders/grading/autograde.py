"""nbgrader's own steps, called in-process: for the processes that import nbgrader (the
`nbgrader_child` of `llmlabs check`, and each warm `llmlabs grade` worker).

- `fast_imports()` keeps the import floor low: jsonschema builds a large grammar for
  its "iri" format checks at import time (about 1 s here) when `rfc3987_syntax` is
  installed; nbformat's schemas use no such format, so the check is skipped.
- `open_api()` reads a course's `nbgrader_config.py` the way nbgrader does, optionally
  pointing the gradebook elsewhere (a worker's private sqlite file).
- `prepare_assignment()` runs `generate_assignment` once per content hash of the source
  and config (`graders.grading.assignment_cache`) and afterwards restores its gradebook.
- `autograde_student()` runs stock `autograde` for one student and reads the scores
  back from the gradebook nbgrader just wrote.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from graders.grading import assignment_cache

KNOWN_FAILURES = (
    ("Kernel died", "the kernel died while running the notebook (os._exit, a crash, or the memory limit)"),
    (
        "DeadKernelError",
        "the kernel died while running the notebook (os._exit, a crash, or the memory limit)",
    ),
    ("notebook time limit", "the notebook ran past its total time limit"),
    ("UnresponsiveKernelError", "the kernel stopped responding"),
)


def fast_imports() -> None:
    """Call before importing nbgrader. An ImportError here is what jsonschema expects
    when the optional package is absent."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    # nbgrader runs `alembic` by name; a virtual environment's bin/ is on PATH only when
    # it was activated, so put this interpreter's bin/ first.
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def last_error_line(result: dict[str, Any]) -> str:
    text = str(result.get("error") or "") + "\n" + str(result.get("log") or "")
    for needle, reason in KNOWN_FAILURES:
        if needle in text:
            return reason
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "[AutogradeApp | ERROR]" in line or "Error" in line or "error" in line:
            return line.split("|", 1)[-1].split("]", 1)[-1].strip()[:500]
    return (lines[-1] if lines else "nbgrader failed without a message")[:500]


def open_api(course_dir: Path, db_url: str | None = None) -> Any:
    """An `NbGraderAPI` for `course_dir`, configured by its nbgrader_config.py."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    config.CourseDirectory.root = str(course_dir)
    if db_url is not None:
        config.CourseDirectory.db_url = db_url
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def prepare_assignment(api: Any, course_dir: Path, unit: str, *, use_cache: bool = True) -> dict[str, Any]:
    """Make the course's gradebook hold `unit` (what autograde needs): restore it from
    the cache or run generate_assignment; return the `generated` event."""
    start = time.perf_counter()
    key = assignment_cache.key(course_dir, unit)
    # The cache holds an sqlite gradebook: only for a course whose gradebook is that file.
    use_cache = use_cache and api.coursedir.db_url == f"sqlite:///{Path(course_dir) / 'gradebook.db'}"
    if use_cache and assignment_cache.restore(key, course_dir):
        return {"event": "generated", "cached": True, "seconds": round(time.perf_counter() - start, 2)}
    result = api.generate_assignment(unit, force=True, create=True)
    if not result["success"]:
        return {"event": "generate_failed", "error": last_error_line(result), "log": result.get("log", "")}
    if use_cache:
        assignment_cache.store(key, course_dir)
    return {"event": "generated", "cached": False, "seconds": round(time.perf_counter() - start, 2)}


def read_scores(db_url: str, unit: str, student: str) -> list[list[Any]]:
    """[grade_id, score, max_score] of every autograded code cell, as the gradebook holds them."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            nb = gb.find_submission_notebook(unit, unit, student)
        except MissingEntry:
            return []
        code = [g for g in nb.grades if g.cell_type == "code"]
        return [[g.name, float(g.score or 0.0), float(g.max_score or 0.0)] for g in code]


def autograde_student(api: Any, unit: str, student: str) -> dict[str, Any]:
    """nbgrader autograde of one student (its own call, so one broken submission cannot
    abort the others); the `graded` event with the scores nbgrader recorded."""
    start = time.perf_counter()
    result = api.autograde(unit, student, force=True, create=True)
    seconds = round(time.perf_counter() - start, 2)
    ok = bool(result["success"])
    return {
        "event": "graded",
        "student": student,
        "success": ok,
        "error": None if ok else last_error_line(result),
        "seconds": seconds,
        "cells": read_scores(api.coursedir.db_url, unit, student),
    }
