"""Wrong-but-plausible solutions, kept as data that the test suite grades.

Each unit's `mutants.py` defines `MUTANTS`, a list of `Mutant`s. A mutant replaces the
source of one answer cell of the reference notebook; grading it through nbgrader must
cost points in every test cell named in `must_fail`. That is how we prove the hidden
tests catch the mistakes learners really make.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graders import cells
from graders.grading.units import Unit


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
        from graders.authoring.reference import reference_cells

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
        return Mutant(
            name=name, cell=cell, source=self.edit(cell, *edits), must_fail=tuple(must_fail), why=why
        )


def load_mutants(unit: Unit) -> list[Mutant]:
    path = unit.directory / "mutants.py"
    return load_mutants_file(path) if path.exists() else []


def load_module_file(path: Path, prefix: str) -> Any:
    """Execute a curriculum data file (mutants.py, alternatives.py) as a fresh module."""
    name = f"{prefix}_{Path(path).parent.name}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    # No __pycache__ inside curriculum/: it would travel into course directories.
    bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = bytecode
    return module


def load_mutants_file(path: Path) -> list[Mutant]:
    """The `MUTANTS` list of a Python file (a unit's mutants.py, or any file like it)."""
    module = load_module_file(path, "llmlabs_mutants")
    return list(module.MUTANTS)


def apply_mutant(notebook: dict, mutant: Mutant) -> dict:
    nb = copy.deepcopy(notebook)
    try:
        cell = cells.find(nb, mutant.cell)
    except KeyError:
        raise ValueError(f"mutant {mutant.name}: no cell {mutant.cell!r} in the notebook") from None
    if not cells.is_answer(cell):
        raise ValueError(f"mutant {mutant.name}: cell {mutant.cell!r} is not an answer cell")
    cell["source"] = mutant.source
    return nb


def write_mutant(unit: Unit, mutant: Mutant, directory: Path) -> Path:
    Path(directory).mkdir(parents=True, exist_ok=True)
    path = Path(directory) / f"{mutant.name}.ipynb"
    path.write_text(json.dumps(apply_mutant(unit.notebook(), mutant)))
    return path


def mutant_problems(unit: Unit, mutants: list[Mutant], per_answer: int = 3) -> list[str]:
    """Everything wrong with a unit's mutants, one line each: a mutant that does not parse
    proves nothing (in a whole-notebook run its tests fail for the wrong reason, in the
    shared mutant kernel the reference stays defined), nor does one naming cells that do
    not exist; and every answer cell needs `per_answer` mutants."""
    import ast

    answers, tests = unit.answer_ids(), unit.test_points()
    problems = []
    names = [m.name for m in mutants]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{unit.name}: mutant name {name!r} is used {names.count(name)} times")
    for m in mutants:
        where = f"{unit.name}/{m.name}"
        if not m.name.replace("_", "").isalnum():
            problems.append(f"{where}: the name must be letters, digits and _ (it is a student id)")
        try:
            ast.parse(m.source)
        except SyntaxError as exc:
            problems.append(f"{where}: does not parse: {exc}")
        if m.cell not in answers:
            problems.append(f"{where}: {m.cell!r} is not an answer cell of the unit")
        unknown = [t for t in m.must_fail if t not in tests]
        if unknown or not m.must_fail:
            problems.append(f"{where}: must_fail names no test cells of the unit ({unknown or 'empty'})")
        if _code(m.source) == _code(unit_answer_source(unit, m.cell)):
            problems.append(f"{where}: the source is the reference answer itself")
    for answer in answers:
        count = sum(m.cell == answer for m in mutants)
        if count < per_answer:
            problems.append(
                f"{unit.name}: answer cell {answer!r} has {count} mutants, fewer than {per_answer}"
            )
    return problems


def _code(source: str) -> str:
    from graders.authoring.reference import SOLUTION_MARKERS

    return "\n".join(ln for ln in source.strip().splitlines() if ln.strip() not in SOLUTION_MARKERS)


def unit_answer_source(unit: Unit, cell_id: str) -> str:
    try:
        return cells.source(cells.find(unit.notebook(), cell_id))
    except KeyError:
        return ""
