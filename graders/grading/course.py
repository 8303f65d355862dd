"""Write a stock nbgrader course directory from the curriculum.

The same function makes an instructor's course (`llmlabs course init`) and the
throw-away course in which `llmlabs check` and the test suite grade: one grading path.
The course's `nbgrader_config.py` points nbgrader's Execute step at the `llmlabs-grader`
kernel, whose environment silences stderr noise; if that kernel cannot be found
nbgrader fails loudly instead of grading with an unconfigured kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from graders import settings
from graders.grading.units import Unit
from graders.notebook.kernel import KERNEL_ENV

KERNEL_NAME = "llmlabs-grader"

CONFIG_TEMPLATE = """\
# nbgrader configuration written by `llmlabs course init`. Edit freely.
import os

c = get_config()  # noqa: F821 (provided by nbgrader)
_here = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = _here
c.Exchange.root = {exchange!r}

# Per-cell time limit in seconds, sized to the slowest unit in this course.
c.Execute.timeout = {timeout}
# Grade with the llmlabs kernel (silenced stderr, offline Hugging Face, fixed threads).
c.Execute.kernel_name = {kernel!r}
# nbgrader runs its `alembic` helper by name: find it beside this Python even when the
# virtual environment is not activated (`.venv/bin/nbgrader autograde ...`).
os.environ["PATH"] = os.pathsep.join([{bindir!r}, os.environ.get("PATH", "")])
# The grading kernel hides these from the notebooks it runs (see graders/sandbox.py).
os.environ[{hide_env!r}] = os.pathsep.join([_here, c.Exchange.root])
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    [os.path.join(_here, ".llmlabs", "jupyter")]
    + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
)

# Never show hidden tests in feedback: not in the source, nor in the tracebacks they leave.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "graders.grading.feedback.StripHiddenTracebacks",
    "nbgrader.preprocessors.ClearHiddenTests",
]
"""


def throwaway_root() -> str | None:
    """Where throw-away courses go: memory (/dev/shm) when it has room, since their
    gradebook is discarded and nbgrader commits (so fsyncs) once per test cell; else the
    system's temporary folder (None). Kernels never see either (see graders.sandbox)."""
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    if stat.f_bavail * stat.f_frsize < 1 << 30 or not os.access("/dev/shm", os.W_OK):
        return None
    return "/dev/shm"


def write_kernelspec(course_dir: Path) -> Path:
    spec_dir = course_dir / ".llmlabs" / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "graders.sandbox.launcher", "-f", "{connection_file}"],
        "display_name": "LLM Labs grader (Python 3)",
        "language": "python",
        "env": dict(KERNEL_ENV),
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
    return spec_dir


def copy_unit_source(unit: Unit, assignment_dir: Path) -> None:
    assignment_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(unit.notebook_path, assignment_dir / unit.notebook_path.name)
    for path in unit.file_paths():
        target = assignment_dir / path.relative_to(unit.directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(path, target)


def init_course(
    course_dir: Path,
    units: list[Unit],
    *,
    course_id: str = "llmlabs",
    exchange: Path | None = None,
    cell_timeout: int | None = None,
) -> Path:
    """Create (or refresh) a course directory holding `units` as nbgrader sources."""
    course_dir = Path(course_dir).resolve()
    course_dir.mkdir(parents=True, exist_ok=True)
    exchange = Path(exchange).resolve() if exchange else course_dir / "exchange"
    timeout = cell_timeout or max((u.cell_timeout for u in units), default=60)
    (course_dir / "nbgrader_config.py").write_text(
        CONFIG_TEMPLATE.format(
            course_id=course_id,
            exchange=str(exchange),
            timeout=timeout,
            kernel=KERNEL_NAME,
            bindir=str(Path(sys.executable).parent),
            hide_env=settings.HIDE_PATHS.env,
        )
    )
    write_kernelspec(course_dir)
    for unit in units:
        copy_unit_source(unit, course_dir / "source" / unit.name)
    return course_dir
