"""Static checks of a unit's source notebook: the rules of curriculum/README.md that a
machine can check without running a kernel. Each check returns problems, one line each,
so a test can show both that every unit passes and that each check can fail."""

from __future__ import annotations

import ast
import copy
import re
from typing import Any

from graders import cells
from graders.pysource import defined_names

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", re.S)
Notebook = dict[str, Any]


def _code_cells(nb: Notebook) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if c.get("cell_type") == "code"]


def no_outputs(nb: Notebook) -> list[str]:
    return [
        f"cell {cells.grade_id(c) or i} has stored outputs or an execution count"
        for i, c in enumerate(nb["cells"])
        if c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]


def kernel_and_unit(nb: Notebook, unit_name: str) -> list[str]:
    problems = []
    if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "python3":
        problems.append("the notebook's kernelspec must be python3")
    if nb.get("metadata", {}).get("llmlabs", {}).get("unit") != unit_name:
        problems.append(f"the notebook's metadata.llmlabs.unit must be {unit_name!r}")
    return problems


def grade_ids_and_points(nb: Notebook) -> list[str]:
    ids = [gid for c in cells.graded_cells(nb) if (gid := cells.grade_id(c))]
    problems = [
        f"grade id {i!r} appears {ids.count(i)} times" for i in sorted({i for i in ids if ids.count(i) > 1})
    ]
    for cell in nb["cells"]:
        if cells.is_test(cell):
            if cells.points(cell) <= 0:
                problems.append(f"{cells.grade_id(cell)} has no points")
            if not cells.is_locked(cell):
                problems.append(f"{cells.grade_id(cell)} must be locked")
    return problems


def first_cell_is_setup(nb: Notebook) -> list[str]:
    code = _code_cells(nb)
    if not code:
        return ["the notebook has no code cell"]
    first = code[0]
    if not cells.is_locked(first) or cells.is_test(first) or cells.is_answer(first):
        return ["the first code cell must be a locked setup cell"]
    if "setup(" not in cells.source(first):
        return ["the first code cell must call graders.notebook.setup()"]
    return []


def raises_on_failure(source: str) -> bool:
    """Whether the last statement raises when the check fails: an `assert`, or a call of
    an `assert*`/`check*` helper. nbgrader gives full marks to a cell whose last value is
    not a number, even False."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Assert):
        return True
    if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
        func = last.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name.startswith("assert") or name.startswith("check")
    return False


def tests_end_in_assert(nb: Notebook) -> list[str]:
    """Both the graded cell (hidden tests in) and the released one (hidden tests out)
    must end in something that raises."""
    problems = []
    for cell in nb["cells"]:
        if not cells.is_test(cell):
            continue
        src = cells.source(cell)
        if not raises_on_failure(src):
            problems.append(f"{cells.grade_id(cell)} must end in an assert")
        elif not raises_on_failure(HIDDEN.sub("", src)):
            problems.append(f"{cells.grade_id(cell)}: its released (visible) part must end in an assert too")
    return problems


def answers_are_tested(nb: Notebook) -> list[str]:
    tests = " ".join(cells.source(c) for c in nb["cells"] if cells.is_test(c) and cells.points(c) > 0)
    problems = []
    for cell in nb["cells"]:
        if not cells.is_answer(cell):
            continue
        names = defined_names(cells.source(cell))
        if not names:
            problems.append(f"answer cell {cells.grade_id(cell)} defines nothing")
        elif not any(re.search(rf"\b{re.escape(n)}\b", tests) for n in names):
            problems.append(
                f"no graded test uses anything defined in answer cell {cells.grade_id(cell)} "
                f"({sorted(names)})"
            )
        if "### BEGIN SOLUTION" not in cells.source(cell):
            problems.append(f"answer cell {cells.grade_id(cell)} has no ### BEGIN SOLUTION block")
    return problems


def student_version(nb: Notebook) -> Notebook:
    """The notebook as `generate_assignment` releases it: nbgrader's own ClearSolutions (with
    the course's stub) and ClearHiddenTests applied to a copy."""
    import nbformat  # nbgrader's import takes seconds: only when a check needs it
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    from graders.grading.course import CODE_STUB

    student = nbformat.from_dict(copy.deepcopy(nb))
    resources: dict[str, Any] = {}
    student, resources = ClearSolutions(code_stub={"python": CODE_STUB}).preprocess(student, resources)
    student, _ = ClearHiddenTests().preprocess(student, resources)
    return dict(student)


def _syntax_errors(nb: Notebook, version: str) -> list[str]:
    problems = []
    for i, cell in enumerate(_code_cells(nb)):
        try:
            compile(cells.source(cell), f"<{version} cell {cells.grade_id(cell) or i}>", "exec")
        except SyntaxError as e:
            problems.append(
                f"{version} cell {cells.grade_id(cell) or f'#{i}'} does not compile: {e.msg} "
                f"(line {e.lineno}: {(e.text or '').strip()!r})"
            )
    return problems


def every_version_compiles(nb: Notebook) -> list[str]:
    """Every code cell compiles, in the source notebook and in the student version, where
    nbgrader puts the stub in place of each solution region at that region's indentation
    (a region inside a dict literal or a call leaves a SyntaxError the learner cannot fix
    without first writing the answer: put the region in a function body or around whole
    statements)."""
    problems = _syntax_errors(nb, "source")
    if problems:
        return problems
    try:
        student = student_version(nb)
    except RuntimeError as e:  # nbgrader's own complaint: unbalanced or nested regions
        return [f"nbgrader cannot make the student version: {e}"]
    return _syntax_errors(student, "student version")


def states_objectives(nb: Notebook) -> list[str]:
    text = " ".join(cells.source(c) for c in nb["cells"] if c.get("cell_type") == "markdown").lower()
    return [f"the notebook should state its {w}s" for w in ("objective", "prerequisite") if w not in text]


# Control characters have no place in a cell: a "\b" in a Python string once turned the
# text's "$\beta$" into a backspace and a broken formula. Tab and newline are fine.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def no_control_characters(nb: Notebook) -> list[str]:
    problems = []
    for i, cell in enumerate(nb["cells"]):
        found = CONTROL.search(cells.source(cell))
        if found:
            where = cells.grade_id(cell) or f"cell {i}"
            problems.append(f"{where}: control character {found.group(0)!r} (an escape like \\b gone wrong?)")
    return problems


CHECKS = (
    no_outputs,
    no_control_characters,
    grade_ids_and_points,
    first_cell_is_setup,
    tests_end_in_assert,
    answers_are_tested,
    states_objectives,
    every_version_compiles,
)


def lint_notebook(nb: Notebook, unit_name: str) -> list[str]:
    problems = kernel_and_unit(nb, unit_name)
    for check in CHECKS:
        problems += check(nb)
    return problems
