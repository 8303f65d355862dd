"""Grade a unit the way the test suite proves it: reference, release and every mutant.

`grade_unit` releases the unit through nbgrader, grades the reference and the release
through nbgrader autograde in one batch, and grades the mutants the way the unit's
`mutants` strategy says: "notebook" puts each mutant notebook in the same batch,
"kernel" grades them in one shared kernel (`graders.authoring.mutant_kernel`, in a child
process). Either way the result maps each mutant to its test-cell scores, so the tests
(and the automatic mutation report) read one shape.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from graders.authoring.mutants import Mutant, load_mutants, write_mutant
from graders.grading.grade import Result, grade_submissions
from graders.grading.release import release_unit
from graders.grading.units import Unit

KERNEL_MUTANTS_TIMEOUT = 2400


@dataclass
class UnitGrades:
    unit: Unit
    release_path: Path
    reference: Result
    release: Result
    mutant_scores: dict[str, dict[str, float]] = field(default_factory=dict)  # mutant -> test cell -> score
    mutant_errors: dict[str, str] = field(default_factory=dict)  # mutant -> grading error (notebook strategy)

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
    if unit.mutants == "notebook":
        subs.update({f"mutant_{m.name}": write_mutant(unit, m, root / "mutants") for m in mutants})
    results = grade_submissions(unit, subs)
    grades = UnitGrades(unit, release, results["reference"], results["release"])
    if unit.mutants == "kernel":
        grades.mutant_scores = kernel_mutant_scores(unit)
    else:
        for m in mutants:
            res = results[f"mutant_{m.name}"]
            grades.mutant_scores[m.name] = {c.grade_id: c.score for c in res.cells}
            if res.error:
                grades.mutant_errors[m.name] = res.error
    return grades
