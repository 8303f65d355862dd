"""One submission, autograded by stock nbgrader in a private throw-away course: the task a
`llmlabs grade` worker runs (`graders.grading.batch` sends it through Dask).

nbgrader 0.9.6 has no parallel autograde and its sqlite gradebook is not safe for
concurrent writers, so a worker never touches the course's gradebook. It writes the
course's own `nbgrader_config.py` and `source/<unit>/` (shipped once per worker as a
`Template`) into a fresh directory, restores the generated assignment's gradebook from
the per-content-hash cache (`graders.grading.assignment_cache`; the first job on a machine
generates it), puts the submission under `submitted/<student>/<unit>/`, runs nbgrader's
`autograde` through its API in this process, and returns the scores nbgrader recorded
in that private gradebook plus the autograded folder's files. The coordinator then
records them in the real gradebook (`graders.grading.gradebook`), alone.

The process is warm: nbgrader is imported once per worker (`warm_up`), and the generated
assignment is reused, so a submission costs its kernel's start and its cells. Every
submission still gets its own sandboxed kernel (`llmlabs-grader`); kernels are never
shared between students. Jobs in one process run one at a time (a lock), since nbgrader
reads its kernel settings from the process environment.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graders import settings
from graders.paths import regular_files
from graders.sandbox.launcher import reports_by_student

_LOCK = threading.Lock()
_SKIP = (".ipynb_checkpoints", "__pycache__")


@dataclass(frozen=True)
class Template:
    """What every submission of one batch shares: shipped to each worker once."""

    unit: str
    course_root: str  # the real course directory: hidden from kernels like the private one
    config_text: str  # the course's nbgrader_config.py
    source_files: dict[str, bytes]  # source/<unit>/, relative paths
    key: str  # content hash of the above (the ledger's record of what graded a submission)


@dataclass(frozen=True)
class Job:
    student: str
    files: dict[str, bytes]  # submitted/<student>/<unit>/, relative paths
    env: dict[str, str] = field(default_factory=dict)  # LLMLABS_* settings of the coordinator


def read_tree(directory: Path, max_extra_bytes: int | None = None) -> dict[str, bytes]:
    """Relative path -> bytes of the files under `directory` (notebooks always; other
    files until `max_extra_bytes`, the scratch limit the kernel would apply anyway)."""
    out: dict[str, bytes] = {}
    extra = 0
    for path in regular_files(Path(directory), skip=_SKIP):
        rel = path.relative_to(directory)
        if path.suffix != ".ipynb" and max_extra_bytes is not None:
            size = path.stat().st_size
            if extra + size > max_extra_bytes:
                continue
            extra += size
        out[str(rel)] = path.read_bytes()
    return out


def write_tree(directory: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        target = Path(directory) / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ValueError(f"refusing to write outside {directory}: {rel}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def warm_up() -> str:
    """Import nbgrader now (about 2 s), so the first submission does not pay for it."""
    from graders.grading import autograde

    autograde.fast_imports()
    import nbgrader.apps  # noqa: F401

    return f"{socket.gethostname()}:{os.getpid()}"


def _remove_orphans(root: Path) -> None:
    """Private courses of workers that were killed mid-job (their pid is gone)."""
    if not Path("/proc/self").exists():  # no cheap way to tell a live pid: leave them
        return
    for path in root.glob("llmlabs-worker-*-*"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _quiet() -> Iterator[None]:
    """Send this process's (and so its kernels') stdout and stderr to a throw-away file
    during a job: ipykernel's banners would otherwise land in the coordinator's output."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def grade_job(template: Template, job: Job) -> dict[str, Any]:
    """Autograde `job` in a private course; never raises for a bad submission (the
    result says what went wrong)."""
    with _LOCK, _quiet():
        saved = dict(os.environ)
        started = time.perf_counter()
        try:
            return _grade(template, job, started)
        except Exception as e:  # a broken job must not take the worker down
            return {
                "student": job.student,
                "success": False,
                "error": f"the worker could not grade it: {type(e).__name__}: {e}"[:500],
                "cells": [],
                "files": {},
                "sandbox": {},
                "seconds": 0.0,
                "wall": round(time.perf_counter() - started, 2),
                "worker": f"{socket.gethostname()}:{os.getpid()}",
            }
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _grade(template: Template, job: Job, started: float) -> dict[str, Any]:
    from graders.grading import autograde
    from graders.grading.course import throwaway_root, write_kernelspec

    warm_up()
    unit = template.unit
    root = throwaway_root()
    _remove_orphans(Path(root or tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix=f"llmlabs-worker-{os.getpid()}-", dir=root) as tmp:
        course = Path(tmp) / "course"
        course.mkdir()
        (course / "nbgrader_config.py").write_text(template.config_text)
        write_tree(course / "source" / unit, template.source_files)
        write_tree(course / "submitted" / job.student / unit, job.files)
        report_dir = Path(tmp) / "sandbox-reports"
        os.environ.update(job.env)
        # The kernel's launcher must not read settings meant for llmlabs' processes from
        # the coordinator; these two are this job's own.
        os.environ[settings.SANDBOX_REPORT.env] = str(report_dir)
        api = autograde.open_api(course, db_url=f"sqlite:///{course / 'gradebook.db'}")
        # Loading the config set the folders the kernel hides (this private course and
        # the exchange); the real course holds every other submission and the gradebook.
        hidden = [*settings.HIDE_PATHS.read(), template.course_root]
        os.environ[settings.HIDE_PATHS.env] = os.pathsep.join(hidden)
        # The course's kernelspec names the coordinator's Python; write this machine's.
        write_kernelspec(course)
        generated = autograde.prepare_assignment(api, course, unit)
        if generated["event"] != "generated":
            raise RuntimeError(f"nbgrader generate_assignment failed: {generated.get('error')}")
        event = autograde.autograde_student(api, unit, job.student)
        out_dir = course / "autograded" / job.student / unit
        files = read_tree(out_dir) if event["success"] and out_dir.is_dir() else {}
        return {
            "student": job.student,
            "success": event["success"],
            "error": event["error"],
            "cells": event["cells"],
            "files": files,
            "sandbox": reports_by_student(report_dir, course / "autograded").get(job.student, {}),
            "seconds": event["seconds"],
            "cached": generated.get("cached", False),
            "wall": round(time.perf_counter() - started, 2),
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }
