"""`llmlabs` in the student installation (`llm-labs-student`), which has no units to start or grade.

The student wheel (`llmlabs student-wheel`, `graders/grading/student_wheel.py`) carries the
notebook API and the bundled data only: no curriculum, no grading. Its `llmlabs` says so in
one line, with exit code 2, instead of a traceback about a missing module. Standard library
only: the student wheel has no typer or rich.
"""

from __future__ import annotations

import sys

from graders import __version__

DISTRIBUTION = "llm-labs-student"

ABOUT = f"""LLM Labs, the student installation ({DISTRIBUTION} {__version__}).

It runs the notebooks your instructor releases and their visible tests: open a notebook in
JupyterLab, run its cells, and press Validate (or run `nbgrader validate NOTEBOOK.ipynb`).
It holds no units, reference solutions or hidden tests, so there is nothing here to start
or grade: your instructor gives you the notebooks (for example with `nbgrader
fetch_assignment UNIT --course COURSE`) and grades what you submit.

Usage: llmlabs [--help | --version]
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(ABOUT, end="")
        return 0
    if args[0] in ("-V", "--version", "version"):
        print(f"{DISTRIBUTION} {__version__}")
        return 0
    print(
        f"error: `llmlabs {args[0]}` is not in the student installation ({DISTRIBUTION}), which holds no "
        "units, solutions or hidden tests: released notebooks come from your instructor; open them in "
        "JupyterLab and press Validate (see `llmlabs --help`). To work through units on your own, "
        "install the full llm-labs instead.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
