"""The student version of a unit: nbgrader's own `generate_assignment` output."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from graders.errors import GradingError, ReleaseError
from graders.grading.course import init_course
from graders.grading.job import run_job
from graders.grading.translation import ENGLISH
from graders.grading.units import Unit

__all__ = ["ReleaseError", "release_unit"]

RELEASE_TIMEOUT = 300  # generate_assignment of the largest unit takes ~6 s


def release_unit(unit: Unit, dest: Path, lang: str = ENGLISH) -> Path:
    """Write the released notebook (solutions stripped, hidden tests removed) and the
    unit's files into `dest`, in `lang`; return the notebook's path."""
    with tempfile.TemporaryDirectory(prefix="llmlabs-release-") as tmp:
        course = init_course(Path(tmp) / "course", [unit], course_id="llmlabs-release", lang=lang)
        try:
            outcome = run_job(course, unit.name, timeout=RELEASE_TIMEOUT)
        except GradingError as e:
            raise ReleaseError(str(e)) from None
        released = course / "release" / unit.name
        if outcome.returncode != 0 or not (released / unit.notebook_path.name).exists():
            raise ReleaseError(
                f"nbgrader generate_assignment failed for {unit.name}: {outcome.stderr_tail or 'no output'}"
            )
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for item in released.iterdir():
            target = dest / item.name
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(item, target)
    return dest / unit.notebook_path.name
