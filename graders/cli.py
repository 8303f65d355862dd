"""`llmlabs`: list units, start one, check a notebook, set up an nbgrader course.

Every score printed here comes from real nbgrader (generate_assignment + autograde, the
gradebook) via `graders.grading.grade`. Bad input gets one line on stderr and exit code 2
(every `graders.errors.LLMLabsError` is caught in `main`). Exit codes: 0 full marks /
success, 1 graded but not full marks, 2 bad input or a grading failure.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from graders import settings
from graders.errors import LLMLabsError
from graders.grading.grade import Result
from graders.grading.translation import ENGLISH, LANGUAGES, localised, translated
from graders.grading.units import Unit, all_units, get_unit

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


LangOption = Annotated[
    str | None,
    typer.Option("--lang", help="en or zh (Simplified Chinese); default: LLMLABS_LANG, else en."),
]


# What llmlabs says to a learner, in the languages units are published in (English: the key).
SAID = {
    "zh": {
        "Wrote {path}": "已写出 {path}",
        "Open it in JupyterLab (`jupyter lab {path}`); when done, grade it with `llmlabs check {path}`.": (
            "用 JupyterLab 打开它（`jupyter lab {path}`）；完成后用 `llmlabs check {path}` 评分。"
        ),
        "test": "测试",
        "points": "得分",
        "first line of the failure": "失败原因",
        "grading error: {error}": "评分出错：{error}",
        "suspected tampering: {flag}": "疑似作弊：{flag}",
        "Total: {score}/{max_score} points ({seconds} s)": "总分：{score}/{max_score}（{seconds} 秒）",
    }
}


def say(lang: str, text: str, **values: object) -> str:
    """`text` in `lang` where SAID has it, with `values` filled in."""
    return SAID.get(lang, {}).get(text, text).format(**values)


def _notebook_lang(notebook: Path) -> str:
    """The language a notebook was released in (its metadata), else LLMLABS_LANG."""
    try:
        found = json.loads(notebook.read_text()).get("metadata", {}).get("llmlabs_language")
    except (OSError, ValueError, AttributeError):
        found = None
    return found if found in LANGUAGES else settings.LANG.read()


def _lang(lang: str | None) -> str:
    chosen = lang or settings.LANG.read()
    if chosen not in LANGUAGES:
        raise fail(f"--lang must be one of {', '.join(LANGUAGES)}, not {chosen!r}")
    return chosen


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


@app.command()
def units(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    long: Annotated[
        bool, typer.Option("--long", help="Also print each unit's device notes and summary.")
    ] = False,
    lang: LangOption = None,
):
    """List the units in learning order: name, title, time, points, where they run."""
    language = _lang(lang)
    chosen = [localised(u, language) for u in all_units()]
    if as_json:
        rows = [
            {
                "number": u.number,
                "name": u.name,
                "title": u.title,
                "minutes": u.minutes,
                "points": u.points,
                "runs_on": u.runs_on,
                "device": u.device,
                "summary": u.summary,
                "skills": list(u.skills),
            }
            for u in chosen
        ]
        out.print_json(json.dumps(rows))
        return
    table = Table(title="LLM Labs units")
    for col in ("#", "unit", "title", "time", "pts", "runs on"):
        table.add_column(col, overflow="fold")
    for u in chosen:
        title = re.sub(r"\s*\([^()]*\)$", "", u.title)  # "(PyTorch)" is in --long
        table.add_row(f"{u.number:02d}", u.name, title, f"{u.minutes}m", str(u.points), u.runs_on)
    out.print(table)
    if not long:
        out.print("Device notes and summaries: llmlabs units --long")
        return
    for u in chosen:
        out.print(f"\n{u.number:02d} {u.name}: {u.title}", markup=False)
        out.print(f"  device: {u.device}", markup=False)
        out.print(f"  skills: {', '.join(u.skills)}", markup=False)
        out.print(f"  {u.summary}", markup=False)


@app.command()
def start(
    unit: Annotated[str, typer.Argument(help="Unit name (see `llmlabs units`).")],
    directory: Annotated[Path | None, typer.Argument(help="Where to write it (default: ./UNIT).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing notebook there.")] = False,
    lang: LangOption = None,
):
    """Write the student version of UNIT (solutions and hidden tests removed) into DIRECTORY."""
    from graders.grading.release import release_unit

    u = get_unit(unit)
    dest = directory or Path(u.name)
    target = dest / u.notebook_path.name
    if target.exists() and not force:
        raise fail(f"{target} already exists; your work there is kept (use --force to overwrite it)")
    if dest.exists() and not dest.is_dir():
        raise fail(f"{dest} exists and is not a directory")
    language = _lang(lang)
    with err.status(f"Releasing {u.name} with nbgrader generate_assignment…"):
        try:
            path = release_unit(u, dest, language)
        except LookupError as e:
            raise fail(str(e).strip("'\"")) from None
    out.print(say(language, "Wrote {path}", path=path), markup=False)
    out.print(
        say(
            language,
            "Open it in JupyterLab (`jupyter lab {path}`); when done, grade it with `llmlabs check {path}`.",
            path=path,
        ),
        markup=False,
    )


def _sandbox_line(result: Result) -> str | None:
    if not result.sandbox.not_applied:
        return None
    return f"sandbox: {result.sandbox.mode}, without: {'; '.join(result.sandbox.not_applied)}"


def _print_result(result: Result, unit: Unit, seconds: float, lang: str = ENGLISH) -> None:
    unit = localised(unit, lang)
    table = Table(title=f"{unit.name}: {unit.title}")
    table.add_column(say(lang, "test"))
    table.add_column(say(lang, "points"), justify="right")
    table.add_column(say(lang, "first line of the failure"), overflow="fold")
    for c in result.cells:
        mark = "✓" if c.passed else "✗"
        table.add_row(f"{mark} {c.grade_id}", f"{c.score:g}/{c.max_score:g}", c.message)
    out.print(table)
    if result.error:
        out.print(say(lang, "grading error: {error}", error=result.error), markup=False)
    for flag in result.flags:
        out.print(say(lang, "suspected tampering: {flag}", flag=flag), markup=False)
    line = _sandbox_line(result)
    if line:
        out.print(line, markup=False)
    total = "Total: {score}/{max_score} points ({seconds} s)"
    score, top = f"{result.score:g}", f"{result.max_score:g}"
    out.print(say(lang, total, score=score, max_score=top, seconds=f"{seconds:.1f}"), markup=False)


@app.command()
def check(
    notebook: Annotated[Path, typer.Argument(help="The notebook to grade.")],
    unit: Annotated[
        str | None, typer.Option("--unit", help="Refuse the notebook unless it is of this unit.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Grade NOTEBOOK exactly as an instructor's nbgrader autograde would, hidden tests included.

    Exit code 0 only on full marks (1: points lost, 2: could not grade).
    """
    from graders.grading.grade import grade_submissions
    from graders.grading.submission import check_submission

    if unit is not None:
        get_unit(unit)
    u = check_submission(notebook, unit)
    started = time.perf_counter()
    stages = {"generated": "Running your notebook and the hidden tests (nbgrader autograde)…"}
    with err.status("Preparing the assignment (nbgrader generate_assignment)…") as status:

        def on_event(event):
            if event.get("event") in stages:
                status.update(stages[event["event"]])

        language = _notebook_lang(notebook)
        result = grade_submissions(u, {"learner": notebook}, on_event=on_event, lang=language)["learner"]
    seconds = time.perf_counter() - started
    if as_json:
        data = result.to_json()
        data["wall_seconds"] = round(seconds, 2)  # `seconds` is nbgrader's autograde alone
        sys.stdout.write(json.dumps(data, indent=1) + "\n")
    else:
        _print_result(result, u, seconds, language)
    if result.error:
        raise typer.Exit(2)
    raise typer.Exit(0 if result.full_marks else 1)


@app.command()
def selfcheck(
    units_: Annotated[
        list[str] | None, typer.Argument(metavar="[UNIT]...", help="Units (default: all).")
    ] = None,
    lang: LangOption = None,
):
    """Grade every unit's reference solution through nbgrader and print the score table.

    Exit code 0 only if every reference earns full marks. With --lang zh the Chinese
    reference is graded by the English course, as a Chinese submission would be.
    """
    from graders.grading.grade import grade_submissions

    language = _lang(lang)
    chosen = [get_unit(n) for n in units_] if units_ else list(all_units())
    table = Table(title="Reference solutions, graded by nbgrader")
    for col in ("unit", "points", "time", "lost"):
        table.add_column(col)
    all_full = True
    sandbox_lines = set()
    for u in chosen:
        started = time.perf_counter()
        with err.status(f"Grading the {u.name} reference (nbgrader generate_assignment + autograde)…"):
            try:
                with _reference_in(u, language) as reference:
                    result = grade_submissions(u, {"reference": reference})["reference"]
            except LookupError as e:
                raise fail(str(e).strip("'\"")) from None
            except LLMLabsError as e:
                raise fail(f"{u.name}: {e}") from None
        seconds = time.perf_counter() - started
        lost = [f"{c.grade_id}: {c.message}" for c in result.cells if not c.passed]
        if result.error:
            lost.insert(0, result.error)
        all_full &= result.full_marks
        table.add_row(
            u.name, f"{result.score:g}/{result.max_score:g}", f"{seconds:.1f} s", "\n".join(lost) or "-"
        )
        err.print(f"{u.name}: {result.score:g}/{result.max_score:g} in {seconds:.1f} s")
        if line := _sandbox_line(result):
            sandbox_lines.add(line)
    out.print(table)
    for line in sorted(sandbox_lines):
        out.print(line, markup=False)
    raise typer.Exit(0 if all_full else 1)


@contextlib.contextmanager
def _reference_in(unit: Unit, lang: str) -> Iterator[Path]:
    """The unit's source notebook in `lang`, as a file."""
    if lang == ENGLISH:
        yield unit.notebook_path
        return
    nb = translated(unit.notebook(), unit.directory, lang)
    with tempfile.TemporaryDirectory(prefix="llmlabs-selfcheck-") as tmp:
        path = Path(tmp) / unit.notebook_path.name
        path.write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
        yield path


def _progress(total: int):
    """A bar (done / total, failures, time left) on a terminal; plain lines otherwise."""
    from graders.grading.batch import Row

    state = {"done": 0, "failed": 0}
    if err.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("grading"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeRemainingColumn(),
            console=err,
        )
        task = bar.add_task("grading", total=total, failed=0)

        def on_row_bar(row: Row) -> None:
            state["failed"] += row.status != "graded"
            bar.update(task, advance=1, failed=state["failed"])

        return bar, on_row_bar

    def on_row_lines(row: Row) -> None:
        state["done"] += 1
        score = f"{row.score:g}/{row.max_score:g}" if row.score is not None else "-"
        why = f" ({row.reason})" if row.reason else ""
        err.print(
            f"[{state['done']}/{total}] {row.student}: {row.status} {score} {row.seconds:.1f} s{why}",
            markup=False,
        )

    return None, on_row_lines


@app.command()
def grade(
    unit: Annotated[str, typer.Argument(help="The unit (assignment) to grade.")],
    course: Annotated[Path, typer.Option("--course", help="The course directory.")] = Path("."),
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes (default: one per core).")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Use a running Dask cluster: tcp://HOST:PORT.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Regrade submissions already graded.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    similarity: Annotated[
        float | None,
        typer.Option(
            "--similarity",
            min=0.0,
            max=1.0,
            help="List answer cells at least this similar to the reference or another submission "
            "(default: the calibrated threshold, README 'Grading a class').",
        ),
    ] = None,
):
    """Grade every collected submission (submitted/<student>/UNIT/) in parallel with nbgrader.

    Scores go to the course's nbgrader gradebook, as `nbgrader autograde` would write them.
    Re-runs grade only new or changed submissions. Exit code 0 when every submission was
    graded, 1 when some got zero because they could not be graded (damaged, the kernel
    died) or were left for the next run, 2 when nothing could run.
    """
    from graders.grading.batch import grade_course

    get_unit(unit)
    bar = None
    on_row = None

    def on_plan(todo: int, current: int) -> None:
        nonlocal bar, on_row
        if current:
            err.print(f"{current} submission(s) already graded and unchanged (--force regrades them)")
        bar, on_row = _progress(todo)
        if bar is not None:
            bar.start()

    try:
        report = grade_course(
            course,
            unit,
            workers=workers,
            scheduler=scheduler,
            force=force,
            similarity_threshold=similarity,
            on_plan=on_plan,
            on_row=lambda row: on_row(row) if on_row else None,
        )
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=1) + "\n")
    else:
        table = Table(title=f"{unit}: {len(report.rows)} submission(s) in {report.seconds:.0f} s")
        for col in ("student", "score", "time", "status", "reason / flags"):
            table.add_column(col, overflow="fold")
        for row in report.rows:
            score = f"{row.score:g}/{row.max_score:g}" if row.score is not None else "-"
            why = "; ".join(filter(None, [row.reason, *row.flags]))
            table.add_row(row.student, score, f"{row.seconds:.1f} s", row.status, why or "-")
        out.print(table)
        _print_similar(report)
    if report.interrupted:
        err.print("interrupted: what was graded is kept; run the same command again to finish")
        raise typer.Exit(130)
    raise typer.Exit(0 if report.complete and report.count("failed") + report.count("refused") == 0 else 1)


@app.command()
def report(
    unit: Annotated[str, typer.Argument(help="The unit (assignment) to report on.")],
    course: Annotated[Path, typer.Option("--course", help="The course directory.")] = Path("."),
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder for the files (default: COURSE/reports/UNIT).")
    ] = None,
):
    """Write the class report of a graded UNIT: an HTML page and CSV files.

    It reads the gradebook (sqlite or PostgreSQL) and the autograded
    notebooks, so it works after `llmlabs grade` or `nbgrader autograde`.
    The page (one file, no network) shows the score distribution, the pass
    rate of each test cell (hardest first) with its failures' first lines
    grouped and counted, and per submission the grading time, limits hit,
    tampering and copy flags, and grades waiting for a manual grade.
    class.csv: one row per submission; tests.csv: one per failure group.
    """
    from graders.grading.report import build_report, write_report

    built = build_report(course, unit)
    written = write_report(built, out_dir or Path(built.course) / "reports" / unit)
    s = built.summary()
    out.print(
        f"{unit}: {s['submissions']} submission(s), mean {s['mean_percent']:g}%, "
        f"{s['full_marks']} with full marks",
        markup=False,
    )
    for path in (written.html, written.students_csv, written.failures_csv):
        out.print(f"Wrote {path}", markup=False)


@app.command("student-wheel")
def student_wheel(
    outdir: Annotated[Path, typer.Argument(help="Folder to write the wheel into (created if missing).")],
):
    """Build the students' installation: a wheel with the notebook API and the bundled data,
    without the curriculum (no solutions, no hidden tests)."""
    from graders.grading.student_wheel import DISTRIBUTION, build_student_wheel

    built = build_student_wheel(outdir)
    out.print(f"Wrote {built.path}", markup=False)
    out.print(
        f"  {DISTRIBUTION}: {len(built.files)} files, {built.size / 1e6:.1f} MB, sha256 {built.sha256}",
        markup=False,
    )
    out.print(
        f"Students: pip install {built.path.name} (in an environment without llm-labs), then open the "
        "released notebooks (nbgrader generate_assignment's release/ folder) in JupyterLab.",
        markup=False,
    )


def _print_similar(report) -> None:
    """Copy detection's pairs under the grade table (nothing was scored down for them)."""
    if report.similar:
        table = Table(
            title=f"Similar answer cells (similarity >= {report.similarity_threshold:.0%}; "
            "not scored down: read them in the report)"
        )
        for col in ("cell", "student", "similar to", "similarity"):
            table.add_column(col, overflow="fold")
        for pair in report.similar:
            table.add_row(pair["grade_id"], pair["student"], pair["other"], f"{pair['similarity']:.0%}")
        out.print(table)
    elif report.similarity_report:
        out.print(f"No answer cells at least {report.similarity_threshold:.0%} similar.")
    if report.similarity_report:
        out.print(f"Copy detection report: {report.similarity_report}", markup=False)
    if report.similarity_error:
        err.print(report.similarity_error, markup=False)


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
    lang: LangOption = None,
):
    """Create a stock nbgrader course directory (config + source/<unit>/) for instructors."""
    from graders.grading.course import init_course, prepare_exchange

    chosen = [get_unit(n) for n in units_] if units_ else list(all_units())
    if (directory / "nbgrader_config.py").exists():
        raise fail(f"{directory} already holds an nbgrader course; choose a new directory")
    if directory.exists() and not directory.is_dir():
        raise fail(f"{directory} exists and is not a directory")
    language = _lang(lang)
    try:  # every unit's translation first: a course is made whole or not at all
        for u in chosen:
            translated(u.notebook(), u.directory, language)
    except LookupError as e:
        raise fail(str(e).strip("'\"")) from None
    path = init_course(directory, chosen, course_id=course_id, exchange=exchange, lang=language)
    out.print(f"Created the nbgrader course {course_id!r} in {path}")
    for u in chosen:
        out.print(f"  source/{u.name}/{u.notebook_path.name}")
    out.print(prepare_exchange(exchange.resolve() if exchange else path / "exchange"), markup=False)
    out.print(
        "Next, from that directory: nbgrader generate_assignment UNIT, then release_assignment, "
        "collect, autograde, generate_feedback, export (see README.md)."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error a user can act on ends as one line and exit code 2.
    (click handles usage errors, --help and exit codes itself, through SystemExit.)"""
    try:
        settings.check_all()
        app(args=argv)
    except LLMLabsError as e:
        err.print(f"error: {e}", markup=False)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
