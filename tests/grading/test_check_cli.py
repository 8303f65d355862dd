"""`llmlabs start` and `llmlabs check` end to end through nbgrader: the release, full
marks and JSON for the reference; a table of the failures for a broken notebook; the
sandbox says what it went without."""

from __future__ import annotations

import json

from graders import cells
from graders.grading.units import get_unit
from tests.helpers import one_error_line, run_cli, write_nb

UNIT = get_unit("linear_algebra")


def test_check_reference_gets_full_marks_and_json():
    proc = run_cli("check", UNIT.notebook_path, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["full_marks"] and data["score"] == data["max_score"] == UNIT.points
    assert {c["grade_id"] for c in data["cells"]} == set(UNIT.test_points())
    assert data["sandbox"]["mode"] in ("bwrap", "rlimits"), data["sandbox"]
    assert data["flags"] == [], data["flags"]


def test_check_table_shows_failures_exit_1_and_a_reduced_sandbox(tmp_path):
    nb = UNIT.notebook()
    cells.set_source(nb, "dists", "raise ValueError('learner bug')")
    # rlimits only: the report must say what that mode goes without, never stay silent.
    proc = run_cli("check", write_nb(tmp_path / f"{UNIT.name}.ipynb", nb), env={"LLMLABS_SANDBOX": "rlimits"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    failed = [ln for ln in lines if "✗ test_dists_visible" in ln]
    assert failed and "NameError: name 'pairwise_sq_dists' is not defined" in failed[0], proc.stdout
    assert any("✓ test_softmax_visible" in ln for ln in lines), "other exercises keep their points"
    total = [ln for ln in lines if ln.startswith("Total:")]
    assert total and f"/{UNIT.points} points" in total[0]
    sandbox = [ln for ln in lines if ln.startswith("sandbox: rlimits, without:")]
    assert sandbox and "no bubblewrap" in sandbox[0], proc.stdout


def test_start_writes_the_release_and_keeps_existing_work(tmp_path):
    dest = tmp_path / "work"
    proc = run_cli("start", UNIT.name, dest)
    assert proc.returncode == 0, proc.stderr
    nb_path = dest / UNIT.notebook_path.name
    text = nb_path.read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert "NotImplementedError" in text and "replace this line with your code" in text
    nb_path.write_text(text + " ")  # the learner's work
    line = one_error_line(run_cli("start", UNIT.name, dest))
    assert "already exists" in line
    assert nb_path.read_text().endswith(" "), "start must not overwrite work without --force"
    assert run_cli("start", UNIT.name, dest, "--force").returncode == 0
    assert not nb_path.read_text().endswith(" ")
