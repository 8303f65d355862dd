"""Run real nbgrader steps on a course directory, in a child process.

    python -m graders.grading.nbgrader_child COURSE_DIR UNIT [STUDENT ...]

The assignment is made ready once (`generate_assignment`, or its gradebook restored
from the per-content-hash cache when students are to be graded: see
`graders.grading.assignment_cache`), then `autograde` runs once per student through nbgrader's
own API, all in one process so nbgrader's imports are paid once and only here (the
parent never imports nbgrader: the scores come back in the events). Each student is
graded in its own call, so one broken submission cannot abort the others. Prints one
JSON line per step (`generated`, `generate_failed`, `graded`), which the parent turns
into progress and results.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def _emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def main(argv: list[str]) -> int:
    course, unit, *students = argv
    course_dir = Path(course)
    os.chdir(course_dir)
    from graders.grading import autograde

    autograde.fast_imports()
    api = autograde.open_api(course_dir)
    # Releasing (no students) needs generate_assignment's release/ folder, not the cache.
    event = autograde.prepare_assignment(api, course_dir, unit, use_cache=bool(students))
    _emit(event)
    if event["event"] != "generated":
        return 2
    for student in students:
        _emit(autograde.autograde_student(api, unit, student))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
