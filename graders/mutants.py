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


class EditedMutants:
    """Mutants written as edits of the reference answer cells of a unit's text form, so a
    mutant cannot drift from the reference: an edit that no longer applies fails loudly.

        _m = EditedMutants(Path(__file__).with_name("attention.py"))
        _m("sdpa_scale_by_d", "sdpa", [("/ math.sqrt(d)", "/ d")], ("test_sdpa_hidden",), "why")
    """

    def __init__(self, text_path: Path):
        from graders.reference import reference_cells

        self.text_path = Path(text_path)
        self.answers = reference_cells(self.text_path)

    def answer(self, cell_id: str) -> str:
        if cell_id not in self.answers:
            raise LookupError(f"no answer cell {cell_id!r} in {self.text_path.name}")
        return self.answers[cell_id]

    def edit(self, cell_id: str, *edits: tuple[str, str]) -> str:
        source = self.answer(cell_id)
        for old, new in edits:
            if old not in source:
                raise ValueError(f"mutant edit does not apply to cell {cell_id!r}: {old!r}")
            source = source.replace(old, new)
        return source

    def __call__(self, name: str, cell: str, edits, must_fail, why: str) -> Mutant:
        return Mutant(name=name, cell=cell, source=self.edit(cell, *edits), must_fail=tuple(must_fail), why=why)


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
