"""The package's parts import only downwards (README "How it is built").

notebook (what released notebooks import) < sandbox < grading < authoring < benchmarks;
settings, errors, paths, cells, pysource and processes sit under all of them. Every import counts, including
those inside functions, so a lazy import cannot hide an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "graders"
BASE = {
    "graders",
    "graders.settings",
    "graders.errors",
    "graders.paths",
    "graders.cells",
    "graders.pysource",
    "graders.processes",
}
# part -> the parts it may import (besides itself and BASE)
ALLOWED = {
    "notebook": set(),
    "sandbox": {"notebook"},
    "grading": {"notebook", "sandbox"},
    "authoring": {"notebook", "sandbox", "grading"},
    "benchmarks": {"notebook", "sandbox", "grading", "authoring"},
}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            if node.module == "graders":
                out |= {f"graders.{a.name}" for a in node.names}
    return {m for m in out if m == "graders" or m.startswith("graders.")}


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_a_part_imports_only_the_parts_below_it(part):
    wrong = []
    for path in sorted((PACKAGE / part).rglob("*.py")):
        for module in sorted(_imports(path)):
            if module in BASE:
                continue
            target = _part(module)
            if target is None:  # graders.cli and the like: the top, which no part imports
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
            elif target != part and target not in ALLOWED[part]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not wrong, f"graders.{part} imports upwards:\n" + "\n".join(wrong)


def test_the_shared_modules_import_no_part():
    wrong = []
    for name in ("settings", "errors", "paths", "cells", "pysource", "processes"):
        path = PACKAGE / f"{name}.py"
        wrong += [f"graders/{name}.py imports {m}" for m in _imports(path) if _part(m)]
    assert not wrong, "\n".join(wrong)


def test_nothing_imports_the_benchmarks():
    users = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if "benchmarks" not in p.parts and any(_part(m) == "benchmarks" for m in _imports(p))
    ]
    assert not users, f"benchmarks are run, not imported: {users}"
