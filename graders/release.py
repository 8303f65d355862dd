"""The student version of a unit: nbgrader's own `generate_assignment` output."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from graders.course import init_course
from graders.units import Unit


class ReleaseError(RuntimeError):
    pass


def release_unit(unit: Unit, dest: Path) -> Path:
    """Write the released notebook (solutions stripped, hidden tests removed) and the
    unit's files into `dest`; return the notebook's path."""
    with tempfile.TemporaryDirectory(prefix="llmlabs-release-") as tmp:
        course = init_course(Path(tmp) / "course", [unit], course_id="llmlabs-release")
        proc = subprocess.run(
            [sys.executable, "-m", "graders.nbgrader_job", str(course), unit.name],
            capture_output=True,
            text=True,
            cwd=course,
        )
        released = course / "release" / unit.name
        if proc.returncode != 0 or not (released / unit.notebook_path.name).exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise ReleaseError(f"nbgrader generate_assignment failed for {unit.name}: {tail[0]}")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for item in released.iterdir():
            target = dest / item.name
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(item, target)
    return dest / unit.notebook_path.name
