"""nbgrader's cell metadata, read in one place.

A cell's `metadata.nbgrader` says what it is: an answer (`solution`), a graded test
(`grade` with `points`), locked, with a `grade_id`. Submissions are untrusted, so every
reader here tolerates metadata that is missing, `None` or not a dict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Cell = dict[str, Any]
Notebook = dict[str, Any]


def meta(cell: Cell) -> dict[str, Any]:
    """The cell's nbgrader metadata, `{}` when absent or malformed."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    nbg = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return nbg if isinstance(nbg, dict) else {}


def grade_id(cell: Cell) -> str | None:
    gid = meta(cell).get("grade_id")
    return str(gid) if gid else None


def is_answer(cell: Cell) -> bool:
    return bool(meta(cell).get("solution"))


def is_test(cell: Cell) -> bool:
    """A graded test cell (nbgrader `grade`), as opposed to an answer or setup cell."""
    return bool(meta(cell).get("grade"))


def is_locked(cell: Cell) -> bool:
    return bool(meta(cell).get("locked"))


def points(cell: Cell) -> float:
    return float(meta(cell).get("points") or 0)


def source(cell: Cell) -> str:
    """The cell's source as one string (nbformat allows a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def graded_cells(nb: Notebook) -> Iterator[Cell]:
    """Cells with a grade id, in notebook order."""
    for cell in nb.get("cells", []):
        if grade_id(cell):
            yield cell


def find(nb: Notebook, gid: str) -> Cell:
    for cell in nb.get("cells", []):
        if isinstance(cell, dict) and grade_id(cell) == gid:
            return cell
    raise KeyError(f"no cell with grade id {gid!r}")


def set_source(nb: Notebook, gid: str, new_source: str) -> Notebook:
    """Replace the source of the cell `gid` in place; return the notebook."""
    find(nb, gid)["source"] = new_source
    return nb
