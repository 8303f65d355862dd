"""The unit registry: one folder per unit under `curriculum/`, described by `unit.toml`.

    curriculum/01_linear_algebra/
        unit.toml              name, title, minutes, device notes, skills, cell timeout
        linear_algebra.py      the notebook's text form (the only hand-edited copy)
        linear_algebra.ipynb   the nbgrader source notebook built from it
        mutants.py             wrong-but-plausible answers the test suite grades
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from graders.paths import curriculum_dir


@dataclass(frozen=True)
class Unit:
    name: str
    number: int
    title: str
    minutes: int
    device: str
    directory: Path
    skills: tuple[str, ...] = ()
    cell_timeout: int = 60
    files: tuple[str, ...] = ()
    summary: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def notebook_path(self) -> Path:
        return self.directory / f"{self.name}.ipynb"

    def notebook(self) -> dict:
        return json.loads(self.notebook_path.read_text())

    def graded_cells(self) -> dict[str, dict]:
        """grade_id -> nbgrader metadata, in notebook order."""
        out = {}
        for cell in self.notebook()["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader")
            if meta and "grade_id" in meta:
                out[meta["grade_id"]] = meta
        return out

    @property
    def points(self) -> int:
        return sum(m.get("points", 0) for m in self.graded_cells().values() if m.get("grade"))

    def file_paths(self) -> list[Path]:
        return [self.directory / f for f in self.files]


def _load(unit_dir: Path) -> Unit:
    meta = tomllib.loads((unit_dir / "unit.toml").read_text())
    prefix = unit_dir.name.split("_", 1)[0]
    return Unit(
        name=meta["name"],
        number=int(prefix) if prefix.isdigit() else 0,
        title=meta["title"],
        minutes=int(meta["minutes"]),
        device=meta.get("device", "CPU"),
        directory=unit_dir,
        skills=tuple(meta.get("skills", ())),
        cell_timeout=int(meta.get("cell_timeout", 60)),
        files=tuple(meta.get("files", ())),
        summary=meta.get("summary", ""),
        extra={k: v for k, v in meta.items() if k not in Unit.__dataclass_fields__},
    )


@cache
def all_units() -> tuple[Unit, ...]:
    root = curriculum_dir()
    dirs = sorted(p for p in root.iterdir() if (p / "unit.toml").is_file())
    # A unit whose notebook is not built yet is not offered (the lint test reports it).
    return tuple(u for u in map(_load, dirs) if u.notebook_path.is_file())


class UnknownUnit(LookupError):
    pass


def get_unit(name: str) -> Unit:
    """Find a unit by name (`linear_algebra`), folder (`01_linear_algebra`) or number (`1`)."""
    for unit in all_units():
        if name in (unit.name, unit.directory.name) or (name.isdigit() and int(name) == unit.number):
            return unit
    known = ", ".join(u.name for u in all_units())
    raise UnknownUnit(f"unknown unit {name!r}; the units are: {known}")
