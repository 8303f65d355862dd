"""Wrong-but-plausible solutions, kept as data that the test suite grades.

Each unit's `mutants.py` defines `MUTANTS`, a list of `Mutant`s. A mutant replaces the
source of one answer cell of the reference notebook; grading it through nbgrader must
cost points in every test cell named in `must_fail`. That is how we prove the hidden
tests catch the mistakes learners really make.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from graders.units import Unit


@dataclass(frozen=True)
class Mutant:
    name: str  # short, unique, a valid identifier: used as the nbgrader student id
    cell: str  # grade_id of the answer cell whose source is replaced
    source: str  # the wrong answer, a whole cell
    must_fail: tuple[str, ...]  # test cells (grade_ids) that must lose points
    why: str = ""  # the mistake, in a learner's words


def load_mutants(unit: Unit) -> list[Mutant]:
    path = unit.directory / "mutants.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location(f"llmlabs_mutants_{unit.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.MUTANTS)


def apply_mutant(notebook: dict, mutant: Mutant) -> dict:
    nb = copy.deepcopy(notebook)
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") == mutant.cell:
            if not meta.get("solution"):
                raise ValueError(f"mutant {mutant.name}: cell {mutant.cell!r} is not an answer cell")
            cell["source"] = mutant.source
            return nb
    raise ValueError(f"mutant {mutant.name}: no cell {mutant.cell!r} in the notebook")


def write_mutant(unit: Unit, mutant: Mutant, directory: Path) -> Path:
    import json

    Path(directory).mkdir(parents=True, exist_ok=True)
    path = Path(directory) / f"{mutant.name}.ipynb"
    path.write_text(json.dumps(apply_mutant(unit.notebook(), mutant)))
    return path
