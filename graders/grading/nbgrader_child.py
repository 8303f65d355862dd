"""Run real nbgrader steps on a course directory, in a child process.

    python -m graders.grading.nbgrader_child COURSE_DIR UNIT STUDENT [STUDENT ...]

`generate_assignment` once (it fills the gradebook from the source notebook), then
`autograde` once per student through nbgrader's own API, all in one process so the
~4 s of nbgrader imports are paid once. Each student is graded in its own call, so one
broken submission cannot abort the others. Prints one JSON line per step, which the
parent turns into progress and results.
"""

from __future__ import annotations

import json
import os
import sys
import time

# nbgrader runs `alembic` by name; a virtual environment's bin/ is on PATH only when it
# was activated, so put this interpreter's bin/ first.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def _emit(**event) -> None:
    print(json.dumps(event), flush=True)


KNOWN_FAILURES = (
    ("Kernel died", "the kernel died while running the notebook (os._exit, a crash, or the memory limit)"),
    (
        "DeadKernelError",
        "the kernel died while running the notebook (os._exit, a crash, or the memory limit)",
    ),
    ("notebook time limit", "the notebook ran past its total time limit"),
    ("UnresponsiveKernelError", "the kernel stopped responding"),
)


def _last_error_line(result: dict) -> str:
    text = (result.get("error") or "") + "\n" + (result.get("log") or "")
    for needle, reason in KNOWN_FAILURES:
        if needle in text:
            return reason
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "[AutogradeApp | ERROR]" in line or "Error" in line or "error" in line:
            return line.split("|", 1)[-1].split("]", 1)[-1].strip()[:500]
    return (lines[-1] if lines else "nbgrader failed without a message")[:500]


def main(argv: list[str]) -> int:
    course_dir, unit, *students = argv
    os.chdir(course_dir)
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=course_dir).load_config()
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    start = time.perf_counter()
    result = api.generate_assignment(unit, force=True, create=True)
    if not result["success"]:
        _emit(event="generate_failed", error=_last_error_line(result), log=result.get("log", ""))
        return 2
    _emit(event="generated", seconds=round(time.perf_counter() - start, 2))
    for student in students:
        start = time.perf_counter()
        result = api.autograde(unit, student, force=True, create=True)
        _emit(
            event="graded",
            student=student,
            success=bool(result["success"]),
            error=None if result["success"] else _last_error_line(result),
            seconds=round(time.perf_counter() - start, 2),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
