"""A unit's reference solutions, read from its text form (`curriculum/<NN_unit>/<unit>.py`).

Mutants are edits of these cells and benchmarks execute them, so neither keeps a copy of
the reference that could drift from the notebook.
"""

from __future__ import annotations

from pathlib import Path

from graders import cells
from graders.authoring.build import parse_cells

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def _kind(meta: dict) -> str:
    if meta.get("solution"):
        return "answer"
    return "test" if meta.get("grade") else "setup"


def reference_cells(text_path: Path, kinds: tuple[str, ...] = ("answer",)) -> dict[str, str]:
    """grade_id -> source of the cells of `kinds` ("setup", "answer", "test"), in notebook
    order, solution markers dropped."""
    text_path = Path(text_path)
    out = {}
    for cell in parse_cells(text_path.read_text(), str(text_path)):
        meta = cells.meta(cell)
        if meta and _kind(meta) in kinds:
            lines = [ln for ln in cell["source"].splitlines() if ln.strip() not in SOLUTION_MARKERS]
            out[meta["grade_id"]] = "\n".join(lines).strip("\n") + "\n"
    if not out:
        raise LookupError(f"no {'/'.join(kinds)} cells in {text_path}")
    return out


def exec_reference(
    text_path: Path,
    namespace: dict,
    kinds: tuple[str, ...] = ("answer",),
    only: tuple[str, ...] | None = None,
) -> dict:
    """Execute the reference cells of `kinds` in `namespace` (only those whose grade_ids
    `only` names, in that order, if given); return it."""
    found = reference_cells(text_path, kinds)
    missing = [c for c in only or () if c not in found]
    if missing:
        raise LookupError(f"no {'/'.join(kinds)} cells {missing} in {text_path}")
    code = "\n\n".join(found[c] for c in only) if only is not None else "\n\n".join(found.values())
    exec(compile(code, str(text_path), "exec"), namespace)
    return namespace
