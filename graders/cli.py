"""`llmlabs`: list units, start one, check a notebook, set up an nbgrader course.

Every score printed here comes from real nbgrader (generate_assignment + autograde, the
gradebook) via `graders.grading`. Bad input gets one line on stderr and exit code 2.
Exit codes: 0 full marks / success, 1 graded but not full marks, 2 bad input or a
grading failure.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from graders.submission import SubmissionError, check_submission
from graders.units import UnknownUnit, all_units, get_unit

app = typer.Typer(
    help="LLM Labs: auto-graded notebooks for large-model engineers, graded by real nbgrader.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
course_app = typer.Typer(help="Set up an nbgrader course for instructors.", no_args_is_help=True)
app.add_typer(course_app, name="course")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def _unit_or_fail(name: str):
    try:
        return get_unit(name)
    except UnknownUnit as e:
        raise fail(str(e)) from None


@app.command()
def units(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False):
    """List the units: name, title, estimated time, points, CPU/GPU notes."""
    rows = [
        {
            "number": u.number,
            "name": u.name,
            "title": u.title,
            "minutes": u.minutes,
            "points": u.points,
            "device": u.device,
        }
        for u in all_units()
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="LLM Labs units")
    for col in ("#", "unit", "title", "time", "points", "CPU/GPU"):
        table.add_column(col)
    for r in rows:
        table.add_row(f"{r['number']:02d}", r["name"], r["title"], f"{r['minutes']} min", str(r["points"]), r["device"])
    out.print(table)


@app.command()
def start(
    unit: Annotated[str, typer.Argument(help="Unit name (see `llmlabs units`).")],
    directory: Annotated[Path | None, typer.Argument(help="Where to write it (default: ./UNIT).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing notebook there.")] = False,
):
    """Write the student version of UNIT (solutions and hidden tests removed) into DIRECTORY."""
    from graders.release import ReleaseError, release_unit

    u = _unit_or_fail(unit)
    dest = directory or Path(u.name)
    target = dest / u.notebook_path.name
    if target.exists() and not force:
        raise fail(f"{target} already exists; your work there is kept (use --force to overwrite it)")
    if dest.exists() and not dest.is_dir():
        raise fail(f"{dest} exists and is not a directory")
    with err.status(f"Releasing {u.name} with nbgrader generate_assignment…"):
        try:
            path = release_unit(u, dest)
        except ReleaseError as e:
            raise fail(str(e)) from None
    out.print(f"Wrote {path}")
    out.print(f"Open it in JupyterLab (`jupyter lab {path}`); when done, grade it with `llmlabs check {path}`.")


def _print_result(result, unit, seconds: float) -> None:
    table = Table(title=f"{unit.name}: {unit.title}")
    table.add_column("test")
    table.add_column("points", justify="right")
    table.add_column("first line of the failure", overflow="fold")
    for c in result.cells:
        mark = "✓" if c.passed else "✗"
        table.add_row(f"{mark} {c.grade_id}", f"{c.score:g}/{c.max_score:g}", c.message)
    out.print(table)
    if result.error:
        out.print(f"grading error: {result.error}", markup=False)
    for flag in result.flags:
        out.print(f"suspected tampering: {flag}", markup=False)
    out.print(f"Total: {result.score:g}/{result.max_score:g} points ({seconds:.1f} s)")


@app.command()
def check(
    notebook: Annotated[Path, typer.Argument(help="The notebook to grade.")],
    unit: Annotated[str | None, typer.Option("--unit", help="Refuse the notebook unless it is of this unit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Grade NOTEBOOK exactly as an instructor's nbgrader autograde would, hidden tests included.

    Exit code 0 only on full marks (1: points lost, 2: could not grade).
    """
    if unit is not None:
        _unit_or_fail(unit)
    try:
        u = check_submission(notebook, unit)
    except SubmissionError as e:
        raise fail(str(e)) from None
    from graders.grading import GradingError, grade_submissions

    started = time.perf_counter()
    stages = {
        "generated": "Running your notebook and the hidden tests (nbgrader autograde)…",
    }
    with err.status("Preparing the assignment (nbgrader generate_assignment)…") as status:

        def on_event(event):
            if event.get("event") in stages:
                status.update(stages[event["event"]])

        try:
            result = grade_submissions(u, {"learner": notebook}, on_event=on_event)["learner"]
        except GradingError as e:
            raise fail(str(e)) from None
    seconds = time.perf_counter() - started
    if as_json:
        data = result.to_json()
        data["seconds"] = round(seconds, 2)
        sys.stdout.write(json.dumps(data, indent=1) + "\n")
    else:
        _print_result(result, u, seconds)
    if result.error:
        raise typer.Exit(2)
    raise typer.Exit(0 if result.full_marks else 1)


@app.command()
def selfcheck(
    units_: Annotated[list[str] | None, typer.Argument(metavar="[UNIT]...", help="Units (default: all).")] = None,
):
    """Grade every unit's reference solution through nbgrader and print the score table.

    Exit code 0 only if every reference earns full marks.
    """
    from graders.grading import GradingError, grade_submissions

    chosen = [_unit_or_fail(n) for n in units_] if units_ else list(all_units())
    table = Table(title="Reference solutions, graded by nbgrader")
    for col in ("unit", "points", "time", "lost"):
        table.add_column(col)
    all_full = True
    for u in chosen:
        started = time.perf_counter()
        with err.status(f"Grading the {u.name} reference (nbgrader generate_assignment + autograde)…"):
            try:
                result = grade_submissions(u, {"reference": u.notebook_path})["reference"]
            except GradingError as e:
                raise fail(f"{u.name}: {e}") from None
        seconds = time.perf_counter() - started
        lost = [f"{c.grade_id}: {c.message}" for c in result.cells if not c.passed]
        if result.error:
            lost.insert(0, result.error)
        all_full &= result.full_marks
        table.add_row(u.name, f"{result.score:g}/{result.max_score:g}", f"{seconds:.1f} s", "\n".join(lost) or "-")
        err.print(f"{u.name}: {result.score:g}/{result.max_score:g} in {seconds:.1f} s")
    out.print(table)
    raise typer.Exit(0 if all_full else 1)


@course_app.command("init")
def course_init(
    directory: Annotated[Path, typer.Argument(help="The course directory to create.")],
    units_: Annotated[
        list[str] | None, typer.Option("--units", "-u", help="Units to include (repeat; default: all).")
    ] = None,
    course_id: Annotated[str, typer.Option("--course-id", help="nbgrader course id.")] = "llmlabs",
    exchange: Annotated[
        Path | None, typer.Option("--exchange", help="nbgrader exchange root (default: DIRECTORY/exchange).")
    ] = None,
):
    """Create a stock nbgrader course directory (config + source/<unit>/) for instructors."""
    from graders.course import init_course

    chosen = [_unit_or_fail(n) for n in units_] if units_ else list(all_units())
    if (directory / "nbgrader_config.py").exists():
        raise fail(f"{directory} already holds an nbgrader course; choose a new directory")
    if directory.exists() and not directory.is_dir():
        raise fail(f"{directory} exists and is not a directory")
    path = init_course(directory, chosen, course_id=course_id, exchange=exchange)
    out.print(f"Created the nbgrader course {course_id!r} in {path}")
    for u in chosen:
        out.print(f"  source/{u.name}/{u.notebook_path.name}")
    out.print("Next, from that directory: nbgrader generate_assignment UNIT, then release_assignment, "
              "collect, autograde, generate_feedback, export (see README.md).")


def main() -> None:  # pragma: no cover
    app()
