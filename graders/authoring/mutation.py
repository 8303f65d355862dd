"""Grade a unit the way the test suite proves it: reference, release and every mutant.

`grade_unit` releases the unit through nbgrader, grades the reference and the release
through nbgrader autograde in one batch, and grades the mutants the way the unit's
`mutants` strategy says: "notebook" puts each mutant notebook in the same batch,
"kernel" grades them in one shared kernel (`graders.authoring.mutant_kernel`, in a child
process). Either way the result maps each mutant to its test-cell scores, so the tests
(and the automatic mutation report) read one shape. The errors that every code cell of the
autograded release raised are kept too (`release_errors`), so that a test can prove the
student version fails only with the course's stub (`stub_only_problems`).
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from graders import cells
from graders.authoring.mutants import Mutant, load_mutants, write_mutant
from graders.grading.course import CODE_STUB
from graders.grading.grade import Result, grade_submissions
from graders.grading.release import release_unit
from graders.grading.units import Unit

KERNEL_MUTANTS_TIMEOUT = 2400
# The message of the course's stub, as a test cell quotes it when it wraps the exception.
STUB_MESSAGE = ast.literal_eval(CODE_STUB.split("NotImplementedError(", 1)[1].rsplit(")", 1)[0])


@dataclass
class CellError:
    """An error a code cell of an executed notebook raised."""

    index: int  # position among the notebook's code cells
    label: str  # grade id, or "#index" for a plain cell
    kind: str  # setup, answer, test or plain
    ename: str
    evalue: str


def _kind(cell: dict) -> str:
    if cells.is_test(cell):
        return "test"
    if cells.is_answer(cell):
        return "answer"
    return "setup" if cells.grade_id(cell) else "plain"


def notebook_errors(path: Path) -> list[CellError]:
    """The errors in the outputs of an executed notebook, one per failing code cell."""
    nb = json.loads(Path(path).read_text())
    found = []
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for i, cell in enumerate(code):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                label = cells.grade_id(cell) or f"#{i}"
                found.append(CellError(i, label, _kind(cell), str(out.get("ename")), str(out.get("evalue"))))
                break
    return found


def _assigned_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def stub_only_problems(source_nb: dict, errors: list[CellError]) -> list[str]:
    """What a run of the student version top to bottom raised other than the course's stub.

    Allowed: an error whose message carries the stub's (the NotImplementedError itself, or a
    test's assertion that quotes it), and a NameError of a name that only a plain (demo)
    cell assigns, when that cell failed too (it called an unwritten exercise). Anything else
    (a SyntaxError, a NameError of a name a setup, answer or test cell defines, a setup cell
    that crashes) is a problem, one line each."""
    code = [c for c in source_nb.get("cells", []) if c.get("cell_type") == "code"]
    failed_plain = {e.index for e in errors if e.kind == "plain"}
    problems = []
    for e in errors:
        if e.kind != "setup" and STUB_MESSAGE in e.evalue:
            continue
        if e.ename == "NameError" and e.kind in ("plain", "test"):
            name = e.evalue.split("'")[1] if e.evalue.count("'") >= 2 else ""
            assigned_by = [i for i, c in enumerate(code) if name in _assigned_names(cells.source(c))]
            if assigned_by and all(_kind(code[i]) == "plain" and i in failed_plain for i in assigned_by):
                continue
        problems.append(f"{e.kind} cell {e.label}: {e.ename}: {e.evalue[:200]}")
    return problems


@dataclass
class UnitGrades:
    unit: Unit
    release_path: Path
    reference: Result
    release: Result
    mutant_scores: dict[str, dict[str, float]] = field(default_factory=dict)  # mutant -> test cell -> score
    mutant_errors: dict[str, str] = field(default_factory=dict)  # mutant -> grading error (notebook strategy)
    release_errors: list[CellError] = field(default_factory=list)  # what the autograded release raised

    def kept_full_marks(self, mutant: Mutant) -> list[str]:
        """The test cells of `mutant.must_fail` that still gave full marks."""
        scores = self.mutant_scores.get(mutant.name, {})
        points = self.unit.test_points()
        return [t for t in mutant.must_fail if scores.get(t, points[t]) >= points[t]]


def kernel_mutant_scores(
    unit: Unit, names: Sequence[str] | None = None, *, reverse: bool = False
) -> dict[str, dict[str, float]]:
    """Run `graders.authoring.mutant_kernel` in a child process; mutant -> test cell -> score."""
    cmd = [sys.executable, "-m", "graders.authoring.mutant_kernel", unit.name]
    if reverse:
        cmd.append("--reverse")
    if names is not None:
        cmd += ["--only", *names]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=KERNEL_MUTANTS_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"mutant kernel for {unit.name} failed:\n{proc.stderr[-3000:]}")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"mutant kernel for {unit.name} printed no result:\n{proc.stdout[-3000:]}")
    return dict(json.loads(line[len("RESULT ") :]))


def grade_unit(unit: Unit, workdir: Path) -> UnitGrades:
    """Release `unit` into `workdir`, then grade its reference, release and mutants."""
    root = Path(workdir) / unit.name
    release = release_unit(unit, root / "release")
    subs = {"reference": unit.notebook_path, "release": release}
    mutants = load_mutants(unit)
    if unit.mutant_strategy == "notebook":
        subs.update({f"mutant_{m.name}": write_mutant(unit, m, root / "mutants") for m in mutants})
    course = root / "course"
    results = grade_submissions(unit, subs, keep_dir=course)
    grades = UnitGrades(unit, release, results["reference"], results["release"])
    autograded = course / "autograded" / "release" / unit.name / unit.notebook_path.name
    if autograded.is_file():
        grades.release_errors = notebook_errors(autograded)
    shutil.rmtree(course, ignore_errors=True)
    if unit.mutant_strategy == "kernel":
        grades.mutant_scores = kernel_mutant_scores(unit)
    else:
        for m in mutants:
            res = results[f"mutant_{m.name}"]
            grades.mutant_scores[m.name] = {c.grade_id: c.score for c in res.cells}
            if res.error:
                grades.mutant_errors[m.name] = res.error
    return grades
