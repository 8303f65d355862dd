"""Check a learner's notebook before grading, and say in one line what is wrong.

nbgrader copes badly with damaged submissions (a duplicated graded cell aborts a whole
autograde batch; a notebook of another assignment is graded as zeros without a word),
so `llmlabs check` refuses them here with a reason the learner can act on.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from graders import cells
from graders.errors import SubmissionError, UnknownUnit
from graders.grading.audit import audit_notebook
from graders.grading.units import Unit, all_units, get_unit

__all__ = [
    "SubmissionError",
    "check_submission",
    "guard_flags",
    "identify_unit",
    "read_notebook",
    "screen_submission",
]


def read_notebook(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"no such file: {path}")
    if path.is_dir():
        raise SubmissionError(f"{path} is a directory; give the path of a .ipynb notebook")
    raw = path.read_bytes()
    if not raw.strip():
        raise SubmissionError(f"{path} is empty, not a notebook")
    try:
        nb = json.loads(raw)
    except UnicodeDecodeError:
        raise SubmissionError(f"{path} is not a notebook (not text)") from None
    except json.JSONDecodeError as err:
        raise SubmissionError(
            f"{path} is not a notebook: invalid JSON at line {err.lineno}, column {err.colno} "
            "(was it damaged or cut short?)"
        ) from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise SubmissionError(f"{path} is JSON but not a Jupyter notebook (nbformat 4 with a 'cells' list)")
    for i, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or "cell_type" not in cell or "source" not in cell:
            raise SubmissionError(f"{path}: cell {i} is malformed (no cell_type or source)")
    return nb


def _grade_ids(nb: dict[str, Any]) -> list[str]:
    return [gid for cell in nb["cells"] if (gid := cells.grade_id(cell))]


def identify_unit(nb: dict[str, Any]) -> Unit | None:
    """The unit a notebook belongs to: its llmlabs metadata, else the most shared grade ids."""
    name = (
        (nb.get("metadata") or {}).get("llmlabs", {}).get("unit")
        if isinstance(nb.get("metadata"), dict)
        else None
    )
    if isinstance(name, str):
        try:
            return get_unit(name)
        except UnknownUnit:
            pass
    ids = set(_grade_ids(nb))
    best, overlap = None, 0
    for unit in all_units():
        shared = len(ids & set(unit.graded_cells()))
        if shared > overlap:
            best, overlap = unit, shared
    return best


def check_submission(path: Path, unit_name: str | None = None) -> Unit:
    """Return the unit of a gradable notebook, or raise SubmissionError with the reason."""
    path = Path(path)
    nb = read_notebook(path)
    found = identify_unit(nb)
    expected = get_unit(unit_name) if unit_name else None
    if expected is None:
        stem_unit = next((u for u in all_units() if path.stem == u.name), None)
        expected = stem_unit
    if found is None:
        raise SubmissionError(f"{path} is not a notebook of any LLM Labs unit (no known graded cells)")
    if expected is not None and found.name != expected.name:
        raise SubmissionError(f"{path} is a notebook of unit '{found.name}', not of unit '{expected.name}'")
    unit = found
    ids = _grade_ids(nb)
    dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dupes:
        raise SubmissionError(
            f"graded cell '{dupes[0]}' appears {Counter(ids)[dupes[0]]} times; delete the copies and keep one"
        )
    wanted = unit.graded_cells()
    missing = [gid for gid in wanted if gid not in ids]
    if missing:
        raise SubmissionError(
            f"graded cell '{missing[0]}' is missing ({len(missing)} in all): it was deleted, renamed or "
            f"its metadata was stripped; run `llmlabs start {unit.name}` for a fresh copy and paste "
            "your answers in"
        )
    strangers = [gid for gid in ids if gid not in wanted]
    if strangers:
        raise SubmissionError(
            f"cell id '{strangers[0]}' is not part of unit '{unit.name}': was a graded cell renamed?"
        )
    return unit


def screen_submission(path: Path, unit: Unit) -> list[str]:
    """The step before grading, the same for `llmlabs check` and `llmlabs grade`: refuse a
    damaged notebook (SubmissionError, with the reason), then audit the cells the learner
    could edit; return the audit's findings (suspected tampering)."""
    check_submission(Path(path), unit.name)
    try:
        return audit_notebook(json.loads(Path(path).read_text()), unit.notebook())
    except ValueError:
        return []


def guard_flags(report: dict[str, Any]) -> list[str]:
    """The in-kernel guard's report (names it put back before a cell ran) as flags."""
    return [f"changed {name} (put back before each cell)" for name in report.get("restored", [])]
