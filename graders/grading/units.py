"""The unit registry: one folder per unit under `curriculum/`, described by `unit.toml`.

    curriculum/01_linear_algebra/
        unit.toml              name, title, minutes, device notes, skills, cell timeout
        linear_algebra.py      the notebook's text form (the only hand-edited copy)
        linear_algebra.ipynb   the nbgrader source notebook built from it
        mutants.py             wrong-but-plausible answers the test suite grades

Folder numbers follow the learning order; `llmlabs units` lists units in that order.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

from graders import cells
from graders.errors import UnknownUnit
from graders.paths import curriculum_dir

MutantStrategy = Literal["notebook", "kernel"]
MUTANT_STRATEGIES: tuple[MutantStrategy, ...] = ("notebook", "kernel")


@dataclass(frozen=True)
class Unit:
    name: str
    number: int
    title: str
    minutes: int
    device: str  # a sentence: what runs where, and how long it takes
    directory: Path
    runs_on: str = "CPU"  # a short device column for `llmlabs units`: "CPU" or "CPU/GPU"
    skills: tuple[str, ...] = ()
    cell_timeout: int = 60
    files: tuple[str, ...] = ()
    summary: str = ""
    # How the test suite grades this unit's mutants (unit.toml's `mutants` key): "notebook"
    # runs each through nbgrader autograde; "kernel" (heavy units) runs them in one shared
    # kernel (graders.authoring.mutant_kernel).
    mutant_strategy: MutantStrategy = "notebook"

    @property
    def notebook_path(self) -> Path:
        return self.directory / f"{self.name}.ipynb"

    @property
    def text_path(self) -> Path:
        return self.directory / f"{self.name}.py"

    def notebook(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(self.notebook_path.read_text()))

    def graded_cells(self) -> dict[str, dict[str, Any]]:
        """grade_id -> nbgrader metadata, in notebook order."""
        return {cast(str, cells.grade_id(c)): cells.meta(c) for c in cells.graded_cells(self.notebook())}

    def answer_ids(self) -> list[str]:
        return [gid for gid, m in self.graded_cells().items() if m.get("solution")]

    def test_points(self) -> dict[str, float]:
        """grade_id -> points of every graded test cell, in notebook order."""
        return {gid: float(m.get("points") or 0) for gid, m in self.graded_cells().items() if m.get("grade")}

    @property
    def points(self) -> int:
        return int(sum(self.test_points().values()))

    def file_paths(self) -> list[Path]:
        return [self.directory / f for f in self.files]


_KEYS = {
    "name",
    "title",
    "minutes",
    "device",
    "runs_on",
    "skills",
    "cell_timeout",
    "files",
    "summary",
    "mutants",
}


def load_unit(unit_dir: Path) -> Unit:
    """The unit described by `unit_dir/unit.toml` (the one place it is parsed)."""
    path = unit_dir / "unit.toml"
    meta = tomllib.loads(path.read_text())
    unknown = sorted(set(meta) - _KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown} (known: {sorted(_KEYS)})")
    mutants = meta.get("mutants", "notebook")
    if mutants not in MUTANT_STRATEGIES:
        raise ValueError(f"{path}: mutants must be one of {MUTANT_STRATEGIES}, got {mutants!r}")
    prefix = unit_dir.name.split("_", 1)[0]
    return Unit(
        name=meta["name"],
        number=int(prefix) if prefix.isdigit() else 0,
        title=meta["title"],
        minutes=int(meta["minutes"]),
        device=meta.get("device", "CPU"),
        runs_on=meta.get("runs_on", "CPU"),
        directory=unit_dir,
        skills=tuple(meta.get("skills", ())),
        cell_timeout=int(meta.get("cell_timeout", 60)),
        files=tuple(meta.get("files", ())),
        summary=meta.get("summary", ""),
        mutant_strategy=mutants,
    )


@cache
def all_units() -> tuple[Unit, ...]:
    root = curriculum_dir()
    dirs = sorted(p for p in root.iterdir() if (p / "unit.toml").is_file())
    # A unit whose notebook is not built yet is not offered (the lint test reports it).
    return tuple(u for u in map(load_unit, dirs) if u.notebook_path.is_file())


def get_unit(name: str) -> Unit:
    """Find a unit by name (`linear_algebra`), folder (`01_linear_algebra`) or number (`1`)."""
    for unit in all_units():
        if name in (unit.name, unit.directory.name) or (name.isdigit() and int(name) == unit.number):
            return unit
    known = ", ".join(u.name for u in all_units())
    raise UnknownUnit(f"unknown unit {name!r}; the units are: {known}")
