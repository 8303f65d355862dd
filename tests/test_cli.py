"""The `llmlabs` command, run as a real subprocess: every command, and every bad input
ending in one clear line and exit code 2."""

from __future__ import annotations

import copy
import json

import pytest

from graders.units import all_units, get_unit
from tests.helpers import run_cli, write_nb

UNIT = get_unit("linear_algebra")


def _one_error_line(proc):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def test_help_lists_every_command():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("units", "start", "check", "selfcheck", "course"):
        assert command in proc.stdout


def test_units_table_and_json():
    proc = run_cli("units")
    assert proc.returncode == 0
    for unit in all_units():
        assert unit.name in proc.stdout
    rows = json.loads(run_cli("units", "--json").stdout)
    assert [r["name"] for r in rows] == [u.name for u in all_units()]
    assert all(r["points"] > 0 and r["minutes"] > 0 for r in rows)


def test_start_writes_the_release_and_keeps_existing_work(tmp_path):
    dest = tmp_path / "work"
    proc = run_cli("start", UNIT.name, dest)
    assert proc.returncode == 0, proc.stderr
    nb_path = dest / UNIT.notebook_path.name
    text = nb_path.read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert "NotImplementedError" in text
    nb_path.write_text(text + " ")  # the learner's work
    line = _one_error_line(run_cli("start", UNIT.name, dest))
    assert "already exists" in line
    assert nb_path.read_text().endswith(" "), "start must not overwrite work without --force"
    assert run_cli("start", UNIT.name, dest, "--force").returncode == 0
    assert not nb_path.read_text().endswith(" ")


def test_start_unknown_unit():
    line = _one_error_line(run_cli("start", "no_such_unit"))
    assert "unknown unit" in line and UNIT.name in line


@pytest.mark.slow
def test_check_reference_gets_full_marks_and_json(tmp_path):
    proc = run_cli("check", UNIT.notebook_path, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["full_marks"] and data["score"] == data["max_score"] == UNIT.points
    assert {c["grade_id"] for c in data["cells"]} == {g for g, m in UNIT.graded_cells().items() if m["grade"]}


@pytest.mark.slow
def test_check_table_shows_failures_and_exit_1(tmp_path):
    nb = UNIT.notebook()
    answer = next(g for g, m in UNIT.graded_cells().items() if m.get("solution"))
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == answer:
            cell["source"] = "raise ValueError('learner bug')"
    proc = run_cli("check", write_nb(tmp_path / f"{UNIT.name}.ipynb", nb))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Total:" in proc.stdout
    assert "NameError" in proc.stdout or "Error" in proc.stdout


def _corrupt(kind: str, tmp_path):
    nb = UNIT.notebook()
    path = tmp_path / f"{UNIT.name}.ipynb"
    graded = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
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
        graded[0]["metadata"]["nbgrader"]["grade_id"] += "_renamed"
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
    "missing", "directory", "empty", "corrupt_json", "not_a_notebook", "binary",
    "deleted_cell", "duplicated_cell", "renamed_cell", "stripped_metadata", "no_metadata_at_all",
]


@pytest.mark.parametrize("kind", BAD)
def test_check_bad_input_gets_one_clear_line(kind, tmp_path):
    path, expected = _corrupt(kind, tmp_path)
    line = _one_error_line(run_cli("check", path))
    assert expected in line, line


def test_check_notebook_of_another_unit(tmp_path):
    others = [u for u in all_units() if u.name != UNIT.name]
    if others:
        other = others[0]
        path = tmp_path / f"{UNIT.name}.ipynb"  # named like this unit, content of another
        write_nb(path, other.notebook())
        line = _one_error_line(run_cli("check", path))
        assert f"unit '{other.name}', not of unit '{UNIT.name}'" in line
    path = tmp_path / "mine.ipynb"
    write_nb(path, UNIT.notebook())
    line = _one_error_line(run_cli("check", path, "--unit", "no_such_unit"))
    assert "unknown unit" in line
    if others:
        line = _one_error_line(run_cli("check", path, "--unit", others[0].name))
        assert f"not of unit '{others[0].name}'" in line


def test_course_init_writes_a_stock_course(tmp_path):
    course = tmp_path / "course"
    proc = run_cli("course", "init", course, "--course-id", "ml101", "--units", UNIT.name)
    assert proc.returncode == 0, proc.stderr
    config = (course / "nbgrader_config.py").read_text()
    assert "'ml101'" in config and "ClearHiddenTests" in config and "Execute.timeout" in config
    assert (course / "source" / UNIT.name / UNIT.notebook_path.name).read_text() == UNIT.notebook_path.read_text()
    line = _one_error_line(run_cli("course", "init", course))
    assert "already holds" in line
    line = _one_error_line(run_cli("course", "init", tmp_path / "c2", "--units", "nope"))
    assert "unknown unit" in line
