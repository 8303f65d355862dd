"""Alternative correct answers, kept as data that must keep full marks.

Mutants (`graders.authoring.mutants`) prove the hidden tests catch wrong answers; the
alternatives prove the opposite: a correct answer written unlike the reference (loops
instead of vectorised code, another library call, another valid order) is not refused.
Each unit may have `curriculum/NN_unit/alternatives.py` defining

    ALTERNATIVES = [Alternative(name, cell, source, why), ...]
    DEFECTS = [Defect(name, cell, source, test, failure, why), ...]  # optional

`cell` is the grade_id of an answer cell of the released notebook, `source` a whole
answer cell. A `Defect` is a correct answer (by the notebook's text) that a test refuses:
a fairness defect of the curriculum, kept out of ALTERNATIVES until the test is fixed;
`--defects` grades them (each in its own notebook) and says which are still refused.

Every answer cell of a unit needs at least one alternative: a notebook is graded with
*every* answer cell filled in. The alternatives are grouped into sets, at
most one per cell (set k holds the k-th alternative of each cell; a cell with fewer
alternatives gets its first one), so a unit with at most n alternatives per cell is
graded in n notebooks, all in one nbgrader run:

    python -m graders.authoring.alternatives UNIT [--only NAME ...] [--separately] [--defects]
        [--write DIR] [--no-grade] [--json]

prints, per alternative, whether every test cell kept full marks; a lost test is blamed
on the set's own alternative (not a filler) of the nearest answer cell above it. A test can
depend on an earlier answer cell than that (a FLOP count of the learner's model, say):
`--separately` grades each named alternative in a notebook of its own to settle it. Exit
code 1 if any test cell lost points (with `--defects`: if any defect kept full marks), 2 on
bad input.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graders import cells
from graders.authoring.mutants import load_module_file
from graders.grading.grade import Result, grade_submissions
from graders.grading.release import release_unit
from graders.grading.units import Unit, all_units, get_unit

FILE_NAME = "alternatives.py"


@dataclass(frozen=True)
class Alternative:
    name: str  # short, unique, letters, digits and _
    cell: str  # grade_id of the answer cell whose source is replaced
    source: str  # a correct answer, a whole cell
    why: str = ""  # the style: what makes it unlike a typical reference


@dataclass(frozen=True)
class Defect:
    name: str
    cell: str
    source: str  # the correct answer the tests refuse
    test: str  # the test cell that refuses it
    failure: str  # its failure line when found
    why: str  # why the notebook's text allows the answer

    def as_alternative(self) -> Alternative:
        return Alternative(self.name, self.cell, self.source, f"defect probe: {self.why}")


@dataclass
class AlternativeSet:
    """One notebook: each answer cell filled by one alternative."""

    name: str  # the nbgrader student id
    chosen: dict[str, Alternative]  # answer cell -> alternative
    own: list[Alternative]  # the alternatives this set is graded for (the rest are fillers)


@dataclass
class Verdict:
    alternative: Alternative
    set_name: str
    lost: list[str] = field(default_factory=list)  # "test_id: first failure line"

    @property
    def ok(self) -> bool:
        return not self.lost


def alternatives_path(unit: Unit) -> Path:
    return unit.directory / FILE_NAME


def _load_module(path: Path) -> Any:
    return load_module_file(path, "llmlabs_alternatives")


def load_alternatives(unit: Unit) -> list[Alternative]:
    path = alternatives_path(unit)
    return list(_load_module(path).ALTERNATIVES) if path.exists() else []


def load_defects(unit: Unit) -> list[Defect]:
    path = alternatives_path(unit)
    return list(getattr(_load_module(path), "DEFECTS", [])) if path.exists() else []


def units_with_alternatives() -> list[Unit]:
    return [u for u in all_units() if alternatives_path(u).exists()]


def answer_cells(notebook: dict[str, Any]) -> list[str]:
    """grade_ids of the answer cells, in notebook order."""
    return [gid for c in cells.graded_cells(notebook) if cells.is_answer(c) and (gid := cells.grade_id(c))]


def graded_tests(notebook: dict[str, Any]) -> list[str]:
    return [gid for c in cells.graded_cells(notebook) if cells.is_test(c) and (gid := cells.grade_id(c))]


def problems(alternatives: Sequence[Alternative], notebook: dict[str, Any]) -> list[str]:
    """Everything that makes the alternatives unusable, one line each."""
    import ast

    answers = answer_cells(notebook)
    out = []
    names = [a.name for a in alternatives]
    for name in sorted({n for n in names if names.count(n) > 1}):
        out.append(f"alternative name {name!r} is used {names.count(name)} times")
    for a in alternatives:
        if not a.name.replace("_", "").isalnum():
            out.append(f"{a.name}: the name must be letters, digits and _")
        if a.cell not in answers:
            out.append(f"{a.name}: {a.cell!r} is not an answer cell of the released notebook")
        try:
            ast.parse(a.source)
        except SyntaxError as exc:
            out.append(f"{a.name}: does not parse: {exc}")
    covered = {a.cell for a in alternatives}
    out += [f"answer cell {gid!r} has no alternative" for gid in answers if gid not in covered]
    return out


def make_sets(
    alternatives: Sequence[Alternative], only: Sequence[str] | None = None, *, separate: bool = False
) -> list[AlternativeSet]:
    """Set k: the k-th alternative of every cell, the first one where a cell has fewer.

    With `only`, only the named alternatives are graded (as few sets as that needs). With
    `separate`, each graded alternative gets a set of its own (the other cells filled by
    their first alternatives), which pins a lost test on one alternative."""
    by_cell: dict[str, list[Alternative]] = {}
    for a in alternatives:
        by_cell.setdefault(a.cell, []).append(a)
    wanted = set(only) if only is not None else {a.name for a in alternatives}
    queues = {cell: [a for a in alts if a.name in wanted] for cell, alts in by_cell.items()}
    sets = []
    k = 0
    while any(queues.values()):
        if separate:
            own = [next(q for q in queues.values() if q).pop(0)]
        else:
            own = [q.pop(0) for q in queues.values() if q]
        chosen = {cell: alts[0] for cell, alts in by_cell.items()}
        chosen.update({a.cell: a for a in own})
        sets.append(AlternativeSet(f"altset{k}", chosen, own))
        k += 1
    return sets


def fill(notebook: dict[str, Any], chosen: dict[str, Alternative]) -> dict[str, Any]:
    nb = copy.deepcopy(notebook)
    for gid, alt in chosen.items():
        cell = cells.find(nb, gid)
        if not cells.is_answer(cell):
            raise ValueError(f"alternative {alt.name}: cell {gid!r} is not an answer cell")
        cell["source"] = alt.source
        cell["outputs"] = []
        cell["execution_count"] = None
    return nb


def blame(notebook: dict[str, Any], alt_set: AlternativeSet, test_id: str) -> Alternative | None:
    """The set's own alternative of the nearest answer cell above `test_id`.

    Falls back to the nearest answer cell's alternative, filler or not."""
    order = [cells.grade_id(c) for c in cells.graded_cells(notebook)]
    above = order[: order.index(test_id)] if test_id in order else order
    own = {a.cell: a for a in alt_set.own}
    for gid in reversed(above):
        if gid in own:
            return own[gid]
    for gid in reversed(above):
        if gid in alt_set.chosen:
            return alt_set.chosen[gid]
    return None


def verdicts(
    notebook: dict[str, Any], sets: Sequence[AlternativeSet], results: dict[str, Result]
) -> list[Verdict]:
    out: dict[str, Verdict] = {}
    for s in sets:
        for a in s.own:
            out[a.name] = Verdict(a, s.name)
        result = results[s.name]
        if result.error:
            for a in s.own:
                out[a.name].lost.append(f"(notebook) {result.error}")
        for c in result.cells:
            if c.passed:
                continue
            culprit = blame(notebook, s, c.grade_id)
            line = f"{c.grade_id} {c.score:g}/{c.max_score:g}: {c.message or 'lost points'}"
            if culprit is None or culprit.name not in out:
                for a in s.own:
                    out[a.name].lost.append(line)
            else:
                out[culprit.name].lost.append(line)
    return list(out.values())


def release(unit: Unit, directory: Path) -> dict[str, Any]:
    """The released (student) notebook, as `llmlabs start` writes it."""
    path = release_unit(unit, directory)
    return dict(json.loads(path.read_text()))


def check_unit(
    unit: Unit,
    *,
    only: Sequence[str] | None = None,
    write_dir: Path | None = None,
    grade: bool = True,
    separate: bool = False,
    defects: bool = False,
) -> tuple[list[Verdict], list[str]]:
    """Grade the unit's alternatives; (verdicts, problems). No grading when problems.

    With `defects`, grade the unit's DEFECTS instead, each in a notebook of its own (the
    other cells filled by the first alternatives): a verdict that kept full marks means the
    test was fixed and the answer can move to ALTERNATIVES."""
    alternatives = load_alternatives(unit)
    if defects:
        recorded = load_defects(unit)
        # DEFECTS may also be a plain list of notes (a comment's worth): only Defect records run.
        probes = [d.as_alternative() for d in recorded if isinstance(d, Defect)]
        if not probes:
            return [], [f"{unit.name} has no Defect records in DEFECTS"]
        alternatives = alternatives + probes
        only, separate = [p.name for p in probes], True
    with tempfile.TemporaryDirectory(prefix="llmlabs-alternatives-") as tmp:
        work = Path(write_dir) if write_dir is not None else Path(tmp)
        notebook = release(unit, work / "release")
        found = problems(alternatives, notebook)
        if only is not None:
            known = {a.name for a in alternatives}
            found += [f"--only {n}: no such alternative" for n in only if n not in known]
        if not alternatives:
            found.append(f"{unit.name} has no {FILE_NAME}")
        if found:
            return [], found
        sets = make_sets(alternatives, only, separate=separate)
        subs = {}
        for s in sets:
            path = work / "sets" / s.name / unit.notebook_path.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(fill(notebook, s.chosen)))
            subs[s.name] = path
        if not grade:
            return [], []
        results = grade_submissions(unit, subs)
        return verdicts(notebook, sets, results), []


def report(unit: Unit, found: list[Verdict]) -> str:
    lines = []
    for v in found:
        mark = "ok  " if v.ok else "LOST"
        lines.append(f"{mark} {unit.name}/{v.alternative.name} ({v.alternative.cell}, {v.set_name})")
        lines += [f"       {line}" for line in v.lost]
    kept = sum(v.ok for v in found)
    lines.append(f"{unit.name}: {kept}/{len(found)} alternatives kept full marks")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graders.authoring.alternatives", description=__doc__)
    parser.add_argument("unit")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="grade only these alternatives")
    parser.add_argument("--write", type=Path, metavar="DIR", help="keep the filled notebooks in DIR")
    parser.add_argument("--no-grade", action="store_true", help="only check and write the notebooks")
    parser.add_argument(
        "--separately", action="store_true", help="one notebook per alternative (to pin a lost test on it)"
    )
    parser.add_argument(
        "--defects", action="store_true", help="grade the DEFECTS (correct answers the tests refuse) instead"
    )
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    args = parser.parse_args(argv)
    try:
        unit = get_unit(args.unit)
    except Exception as exc:  # UnknownUnit
        print(f"error: {exc}", file=sys.stderr)
        return 2
    found, bad = check_unit(
        unit,
        only=args.only,
        write_dir=args.write,
        grade=not args.no_grade,
        separate=args.separately,
        defects=args.defects,
    )
    if bad:
        for line in bad:
            print(f"error: {unit.name}: {line}", file=sys.stderr)
        return 2
    if args.json:
        rows = [
            {"name": v.alternative.name, "cell": v.alternative.cell, "set": v.set_name, "lost": v.lost}
            for v in found
        ]
        print(json.dumps({"unit": unit.name, "verdicts": rows}, indent=1))
    elif found:
        print(report(unit, found))
    if args.defects:  # a defect still refused is the expected outcome
        return 0 if not any(v.ok for v in found) else 1
    return 0 if all(v.ok for v in found) else 1


if __name__ == "__main__":
    # Run as the imported module, not as __main__: a unit's alternatives.py imports Defect from
    # graders.authoring.alternatives, and __main__.Defect would be another class.
    from graders.authoring import alternatives

    sys.exit(alternatives.main())
