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
import stat
import sys
from pathlib import Path

from graders import settings
from graders.errors import ExchangeSetupError
from graders.grading.translation import ENGLISH, translated
from graders.grading.units import Unit
from graders.notebook.kernel import KERNEL_ENV

KERNEL_NAME = "llmlabs-grader"
# nbgrader's exchange set-up: one directory every student can write their submission into
# (nbgrader's own `release_assignment` gives it these permissions too).
EXCHANGE_MODE = 0o777
# What a learner sees when a test calls an exercise they have not written yet; nbgrader
# puts it in place of each `### BEGIN SOLUTION` block of a code cell (default: an empty
# `raise NotImplementedError()`).
CODE_STUB = (
    "# YOUR CODE HERE\n"
    'raise NotImplementedError("not written yet: replace this line with your code, run the cell, '
    'then run its tests again")'
)
# A course in another language: the checks' failure messages in it too (graders.notebook.language).
LANG_LINES = "# The checks' failure messages in the course's language.\nos.environ[{env!r}] = {lang!r}\n"
CODE_STUBS = {
    "zh": (
        "# 在这里写你的代码 (YOUR CODE HERE)\n"
        'raise NotImplementedError("还没写：把这一行换成你的代码，运行本单元格，再重新运行它的测试")'
    ),
}

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
os.environ["PATH"] = os.pathsep.join(
    [{bindir!r}] + [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != {bindir!r}]
)
# The grading kernel hides these from the notebooks it runs (graders/sandbox/visibility.py).
os.environ[{hide_env!r}] = os.pathsep.join([_here, c.Exchange.root])
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    # Loaded again and again by a long-running formgrader: put ours first once, no duplicates.
    [os.path.join(_here, ".llmlabs", "jupyter")]
    + [
        p
        for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep)
        if p and p != os.path.join(_here, ".llmlabs", "jupyter")
    ]
)
{lang_line}
# The stub that replaces each solution in the student version: its message says what to do.
c.ClearSolutions.code_stub = {{"python": {code_stub!r}}}

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


def copy_unit_source(unit: Unit, assignment_dir: Path, lang: str = ENGLISH) -> None:
    """The unit's source notebook (in `lang`: same code, translated text) and its files."""
    assignment_dir.mkdir(parents=True, exist_ok=True)
    if lang == ENGLISH:
        shutil.copyfile(unit.notebook_path, assignment_dir / unit.notebook_path.name)
    else:
        nb = translated(unit.notebook(), unit.directory, lang)
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        (assignment_dir / unit.notebook_path.name).write_text(text, encoding="utf-8")
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
    lang: str = ENGLISH,
) -> Path:
    """Create (or refresh) a course directory holding `units` as nbgrader sources, in
    `lang` (`graders.grading.translation`: the code and tests are the English ones)."""
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
            lang_line="" if lang == ENGLISH else LANG_LINES.format(env=settings.LANG.env, lang=lang),
            code_stub=CODE_STUBS.get(lang, CODE_STUB),
        )
    )
    write_kernelspec(course_dir)
    for unit in units:
        copy_unit_source(unit, course_dir / "source" / unit.name, lang)
    return course_dir


def prepare_exchange(exchange: Path) -> str:
    """Create nbgrader's exchange directory, writable by everyone; return one line that says
    what was done. The Formgrader hides Release and Collect while it is missing, and
    students cannot submit into it unless everyone may write there. An existing directory
    is left as it is, with a warning when students could not write into it."""
    exchange = Path(exchange)
    if exchange.is_dir():
        if stat.S_IMODE(exchange.stat().st_mode) & EXCHANGE_MODE != EXCHANGE_MODE:
            return (
                f"Warning: the exchange directory {exchange} is not writable by everyone; students "
                f"cannot submit until you run: chmod 777 {exchange}"
            )
        return f"Using the exchange directory {exchange} (it exists and everyone may write there)"
    try:
        exchange.mkdir(parents=True)
        os.chmod(exchange, EXCHANGE_MODE)  # mkdir's mode is reduced by the umask
    except OSError as e:
        raise ExchangeSetupError(
            f"cannot create the exchange directory {exchange} ({e.strerror}); create it with "
            f"`mkdir -p {exchange} && chmod 777 {exchange}`, or choose another with --exchange"
        ) from None
    return f"Created the exchange directory {exchange} (writable by everyone, as nbgrader's exchange needs)"
