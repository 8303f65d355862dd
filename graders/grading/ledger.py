"""What `llmlabs grade` has already recorded, and the lock that keeps it to one run.

The ledger (`<course>/.llmlabs/grade/<unit>.json`) maps each student to the content hash
of the submission folder it graded (files and `timestamp.txt`), the assignment template
it was graded against, and the result. It is rewritten atomically after each
submission's grades are committed to the gradebook, so a killed run loses at most the
submissions it had not recorded yet, and a re-run grades exactly the new, changed or
unrecorded ones. A submission whose row vanished from the gradebook is graded again
even if the ledger lists it.

The lock (`<course>/.llmlabs/grade.lock`, `flock`) lets one `llmlabs grade` at a time
write a course's gradebook; the kernel releases it when the process ends, however it
ends, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from graders.errors import GradingError
from graders.grading.assignment_cache import files_digest


class CourseBusy(GradingError):
    """Another `llmlabs grade` holds the course."""


def submission_hash(directory: Path) -> str:
    return files_digest(Path(directory), hashlib.sha256()).hexdigest()


class CourseLock:
    def __init__(self, course_dir: Path):
        self.path = Path(course_dir) / ".llmlabs" / "grade.lock"
        self.fd: int | None = None

    def __enter__(self) -> CourseLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise CourseBusy(
                f"another `llmlabs grade` is grading this course ({holder}); wait for it to finish "
                "(its results are kept) and run again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


class Ledger:
    def __init__(self, course_dir: Path, unit: str):
        self.path = Path(course_dir) / ".llmlabs" / "grade" / f"{unit}.json"
        try:
            self.entries: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def is_current(self, student: str, digest: str, template_key: str) -> bool:
        entry = self.entries.get(student) or {}
        return entry.get("hash") == digest and entry.get("template") == template_key

    def record(self, student: str, entry: dict[str, Any]) -> None:
        self.entries[student] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(partial, self.path)
