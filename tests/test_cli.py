"""The `llmlabs` command, run as a real subprocess: every command, and every bad input
ending in one clear line and exit code 2."""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from graders import cells
from graders.grading.units import all_units, get_unit
from tests.helpers import one_error_line, run_cli, write_nb

UNIT = get_unit("linear_algebra")
ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_command():
    from graders.cli import app

    proc = run_cli("--help")
    assert proc.returncode == 0
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    names += [g.name for g in app.registered_groups]
    assert {"units", "start", "check", "selfcheck", "course", "grade"} <= set(names), names
    # Each as a row of the commands table ("│ check   Grade a notebook ..."), not a substring
    # of another command's name or help ("check" is in "selfcheck").
    rows = {line.strip("│ ").split(" ")[0] for line in proc.stdout.splitlines() if line.startswith("│ ")}
    missing = [n for n in names if n not in rows]
    assert not missing, f"--help does not list {missing}:\n{proc.stdout}"


def test_every_entry_point_runs_the_same_cli():
    # `python -m graders`, `python -m graders.cli` and the console script (pyproject's
    # [project.scripts]) must all be the real CLI, not print nothing and exit 0.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"llmlabs": "graders.cli:main"}
    env = dict(os.environ, COLUMNS="200")
    for cmd in (
        [sys.executable, "-m", "graders.cli", "units", "--json"],
        [sys.executable, "-m", "graders", "units", "--json"],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert proc.returncode == 0 and [r["name"] for r in json.loads(proc.stdout)] == [
            u.name for u in all_units()
        ], cmd
    proc = subprocess.run([sys.executable, "-m", "graders.cli"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "Usage" in proc.stdout + proc.stderr, (
        "no arguments: usage and exit code 2"
    )


def test_units_table_fits_80_columns():
    proc = run_cli("units", env={"COLUMNS": "80"})
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= 80, "\n".join(lines)
    for unit in all_units():
        rows = [ln for ln in lines if f" {unit.name} " in ln]
        assert rows, f"{unit.name} missing from the table:\n{proc.stdout}"
    # One or two lines per unit, not a title wrapped over a dozen.
    assert len(lines) <= 6 + 2 * len(all_units()) + 2, "\n".join(lines)
    long = run_cli("units", "--long", env={"COLUMNS": "80"})
    assert all(
        u.device in long.stdout.replace("\n  ", " ") or u.device[:40] in long.stdout for u in all_units()
    )


def test_units_table_and_json():
    proc = run_cli("units")
    assert proc.returncode == 0
    for unit in all_units():
        assert unit.name in proc.stdout
    rows = json.loads(run_cli("units", "--json").stdout)
    assert [r["name"] for r in rows] == [u.name for u in all_units()]
    assert all(r["points"] > 0 and r["minutes"] > 0 for r in rows)


def test_start_unknown_unit():
    line = one_error_line(run_cli("start", "no_such_unit"))
    assert "unknown unit" in line and UNIT.name in line


def _corrupt(kind: str, tmp_path):
    nb = UNIT.notebook()
    path = tmp_path / f"{UNIT.name}.ipynb"
    graded = [c for c in nb["cells"] if cells.is_test(c)]
    if kind == "missing":
        return tmp_path / "nope.ipynb", "no such file"
    if kind == "directory":
        return tmp_path, "directory"
    if kind == "empty":
        path.write_text("")
        return path, "empty"
    if kind == "corrupt_json":
        path.write_text(json.dumps(nb)[:-40])
        return path, "invalid JSON"
    if kind == "not_a_notebook":
        path.write_text(json.dumps({"hello": "world"}))
        return path, "not a Jupyter notebook"
    if kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
        return path, "not"
    if kind == "deleted_cell":
        nb["cells"].remove(graded[0])
    elif kind == "duplicated_cell":
        nb["cells"].append(copy.deepcopy(graded[0]))
    elif kind == "renamed_cell":
        cells.meta(graded[0])["grade_id"] += "_renamed"
    elif kind == "stripped_metadata":
        for cell in nb["cells"]:
            cell["metadata"] = {}
    elif kind == "no_metadata_at_all":
        nb["metadata"] = {}
        for cell in nb["cells"]:
            cell["metadata"] = {}
    write_nb(path, nb)
    expect = {
        "deleted_cell": "missing",
        "duplicated_cell": "appears 2 times",
        "renamed_cell": "missing",
        "stripped_metadata": "missing",
        "no_metadata_at_all": "not a notebook of any",
    }[kind]
    return path, expect


BAD = [
    "missing",
    "directory",
    "empty",
    "corrupt_json",
    "not_a_notebook",
    "binary",
    "deleted_cell",
    "duplicated_cell",
    "renamed_cell",
    "stripped_metadata",
    "no_metadata_at_all",
]


@pytest.mark.parametrize("kind", BAD)
def test_check_bad_input_gets_one_clear_line(kind, tmp_path):
    path, expected = _corrupt(kind, tmp_path)
    line = one_error_line(run_cli("check", path))
    assert expected in line, line


def test_check_notebook_of_another_unit(tmp_path):
    others = [u for u in all_units() if u.name != UNIT.name]
    if others:
        other = others[0]
        path = tmp_path / f"{UNIT.name}.ipynb"  # named like this unit, content of another
        write_nb(path, other.notebook())
        line = one_error_line(run_cli("check", path))
        assert f"unit '{other.name}', not of unit '{UNIT.name}'" in line
    path = tmp_path / "mine.ipynb"
    write_nb(path, UNIT.notebook())
    line = one_error_line(run_cli("check", path, "--unit", "no_such_unit"))
    assert "unknown unit" in line
    if others:
        line = one_error_line(run_cli("check", path, "--unit", others[0].name))
        assert f"not of unit '{others[0].name}'" in line


def test_course_init_writes_a_stock_course(tmp_path):
    course = tmp_path / "course"
    proc = run_cli("course", "init", course, "--course-id", "ml101", "--units", UNIT.name)
    assert proc.returncode == 0, proc.stderr
    config = (course / "nbgrader_config.py").read_text()
    assert "'ml101'" in config and "ClearHiddenTests" in config and "Execute.timeout" in config
    assert "ClearSolutions.code_stub" in config and "replace this line with your code" in config
    # The Formgrader shows Release and Collect only once the exchange exists; students write into it.
    exchange = course / "exchange"
    assert exchange.is_dir() and stat.S_IMODE(exchange.stat().st_mode) == 0o777
    assert f"Created the exchange directory {exchange}" in proc.stdout
    assert (
        course / "source" / UNIT.name / UNIT.notebook_path.name
    ).read_text() == UNIT.notebook_path.read_text()
    line = one_error_line(run_cli("course", "init", course))
    assert "already holds" in line
    line = one_error_line(run_cli("course", "init", tmp_path / "c2", "--units", "nope"))
    assert "unknown unit" in line


def test_course_init_keeps_an_existing_exchange_and_warns_when_students_cannot_write(tmp_path):
    exchange = tmp_path / "exchange"
    exchange.mkdir(mode=0o755)
    proc = run_cli("course", "init", tmp_path / "course", "--units", UNIT.name, "--exchange", exchange)
    assert proc.returncode == 0, proc.stderr
    assert f"chmod 777 {exchange}" in proc.stdout
    assert stat.S_IMODE(exchange.stat().st_mode) == 0o755


def test_course_init_cannot_create_the_exchange_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_cli("course", "init", tmp_path / "c", "--units", UNIT.name, "--exchange", blocker / "x")
    line = one_error_line(proc)
    assert "cannot create the exchange directory" in line and "--exchange" in line
