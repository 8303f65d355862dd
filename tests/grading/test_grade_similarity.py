"""`llmlabs grade` flags copied answer cells (graders.grading.similarity) in its table, its
JSON and reports/<unit>/similarity.html, and scores nothing down; `llmlabs check` says
nothing about similarity. A small linear_algebra class: a disguised copy of the
reference, two students sharing an answer that is not the reference's, an honest one.
"""

from __future__ import annotations

import json
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from graders import cells
from graders.grading import similarity as sim
from graders.grading.units import get_unit
from tests.helpers import make_course, run_cli

DATA = Path(__file__).parents[1] / "data" / "similarity"
sys.path.insert(0, str(DATA))

from disguise import disguise  # noqa: E402
from independent_linear_algebra import ANSWERS  # noqa: E402

UNIT = get_unit("linear_algebra")
REF, STUBS = sim.unit_reference_and_stubs(UNIT)
pytestmark = pytest.mark.xdist_group("grade-batch")


def _notebook(answers: dict[str, str]) -> dict:
    """A submission: the released stubs, with `answers` (grade_id -> source) filled in."""
    nb = UNIT.notebook()
    for gid, stub in STUBS.items():
        cells.set_source(nb, gid, answers.get(gid, stub))
    return nb


CLASS = {
    "copier": {"softmax": disguise(REF["softmax"], 3), "svd": disguise(REF["svd"], 1)},
    "pal1": {"dists": ANSWERS["dists"][0], "gd": ANSWERS["gd"][0]},
    "pal2": {"dists": disguise(ANSWERS["dists"][0], 0), "gd": disguise(ANSWERS["gd"][0], 5)},
    "honest": {k: ANSWERS[k][0] for k in ("softmax", "logsumexp", "power")},
}


def test_grade_lists_copies_in_the_table_json_and_report_and_scores_nothing_down(tmp_path):
    course = make_course(tmp_path / "course", UNIT, {s: _notebook(a) for s, a in CLASS.items()})
    proc = run_cli("grade", UNIT.name, "--course", course, "--workers", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["counts"]["graded"] == len(CLASS), report["counts"]
    found = {(p["grade_id"], p["student"], p["other"]): p["similarity"] for p in report["similar"]}
    expected = {
        ("softmax", "copier", "reference"),
        ("svd", "copier", "reference"),
        ("dists", "pal1", "pal2"),
        ("gd", "pal1", "pal2"),
    }
    assert set(found) == expected, report["similar"]
    assert all(v >= report["similarity_threshold"] == sim.THRESHOLD for v in found.values())
    assert not report["similarity_error"]

    # Nothing scored down: the copier keeps the points of the cells it copied, no flag.
    rows = {r["student"]: r for r in report["rows"]}
    copier = {c["grade_id"]: c for c in rows["copier"]["cells"]}
    for test in ("test_softmax_visible", "test_softmax_hidden", "test_svd_visible", "test_svd_hidden"):
        assert copier[test]["score"] == copier[test]["max_score"], copier[test]
    assert rows["copier"]["flags"] == []

    # The report an instructor opens: every pair, both cells, names escaped, well formed.
    page = course / report["similarity_report"]
    assert page == course / "reports" / UNIT.name / "similarity.html"
    text = page.read_text()

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.cells: list[str] = []

        def handle_data(self, data):
            self.cells.append(data.strip())

    parsed = Rows()
    parsed.feed(text)
    for gid, student, other in expected:
        assert f"{gid}: {student} and {other}" in " ".join(parsed.cells)
    assert "honest" not in text

    # The table: a re-run (everything up to date) still compares the whole class.
    table = run_cli("grade", UNIT.name, "--course", course)
    assert table.returncode == 0, table.stderr
    assert "Similar answer cells" in table.stdout and "copier" in table.stdout
    assert "reports/linear_algebra/similarity.html" in table.stdout
    lines = [ln for ln in table.stdout.splitlines() if "honest" in ln]
    assert lines and all("%" not in ln for ln in lines), lines  # only its grade row

    # A threshold from the command line: at 100%, only cells whose fingerprints all match.
    strict = json.loads(run_cli("grade", UNIT.name, "--course", course, "--json", "--similarity", "1").stdout)
    assert all(p["similarity"] == 1.0 for p in strict["similar"])

    # `llmlabs check` (a self-learner has the reference) says nothing about similarity.
    nb = tmp_path / "copier.ipynb"
    nb.write_text(json.dumps(_notebook(CLASS["copier"])))
    check = run_cli("check", nb, "--json")
    assert check.returncode in (0, 1), check.stderr
    assert "similar" not in check.stdout.lower() and "similar" not in check.stderr.lower()
