"""Build nbgrader source notebooks from their text form.

Each unit's notebook is written as a plain `.py` file (the only hand-edited copy) and
built into `<unit>.ipynb`; `tests/test_notebook_lint.py` proves the committed notebook
is up to date. The text form, one cell per `# %%` header:

    # %% [markdown]          a markdown cell; each line starts with "# " (or is "#")
    # %%                     a plain code cell (editable, not graded)
    # %% setup id=ID         a locked, read-only code cell (imports, helpers)
    # %% answer id=ID        an autograded answer cell (nbgrader "solution")
    # %% test id=ID points=N an autograded test cell (locked, worth N points)

Solutions sit between `### BEGIN SOLUTION` / `### END SOLUTION`; hidden tests between
`### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`, exactly as nbgrader expects.

Run `python -m graders.authoring.build` to rebuild every unit (`--check`: only report).
A rebuilt notebook whose cells, or whose student version's cells, do not compile makes the
build fail (the same check as `graders.authoring.lint.every_version_compiles`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from graders.cells import grade_id
from graders.errors import BuildError
from graders.grading.units import load_unit
from graders.paths import curriculum_dir

__all__ = ["BuildError", "build_notebook", "main", "parse_cells", "render", "unit_dirs"]

HEADER = re.compile(r"^# %%(?P<rest>.*)$")
KINDS = {"markdown", "code", "setup", "answer", "test"}


def _parse_header(rest: str, where: str) -> tuple[str, dict[str, str]]:
    words = rest.split()
    if not words:
        return "code", {}
    if words[0] == "[markdown]":
        return "markdown", {}
    kind, attrs = words[0], {}
    if kind not in KINDS:
        raise BuildError(f"{where}: unknown cell kind {kind!r} (expected one of {sorted(KINDS)})")
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep:
            raise BuildError(f"{where}: expected key=value, got {word!r}")
        attrs[key] = value
    return kind, attrs


def _markdown_source(lines: list[str], where: str) -> str:
    out = []
    for line in lines:
        if line == "#":
            out.append("")
        elif line.startswith("# "):
            out.append(line[2:])
        elif line.strip() == "":
            out.append("")
        else:
            raise BuildError(f"{where}: markdown line must start with '# ': {line!r}")
    return "\n".join(out).strip("\n")


def _nbgrader_meta(kind: str, attrs: dict[str, str], where: str) -> dict | None:
    if kind in ("markdown", "code"):
        return None
    if "id" not in attrs:
        raise BuildError(f"{where}: a {kind} cell needs id=...")
    meta = {
        "grade": kind == "test",
        "grade_id": attrs["id"],
        "locked": kind in ("setup", "test"),
        "schema_version": 3,
        "solution": kind == "answer",
        "task": False,
    }
    if kind == "test":
        try:
            meta["points"] = int(attrs["points"])
        except (KeyError, ValueError):
            raise BuildError(f"{where}: a test cell needs an integer points=N") from None
    return meta


def parse_cells(text: str, name: str = "<text>") -> list[dict]:
    """Split the text form into nbformat-4 cell dicts (no outputs)."""
    cells: list[dict] = []
    current: tuple[str, dict, int] | None = None
    body: list[str] = []

    def flush() -> None:
        if current is None:
            return
        kind, attrs, lineno = current
        where = f"{name}:{lineno}"
        if kind == "markdown":
            cells.append({"cell_type": "markdown", "metadata": {}, "source": _markdown_source(body, where)})
            return
        meta = _nbgrader_meta(kind, attrs, where)
        cells.append(
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {"nbgrader": meta} if meta else {},
                "outputs": [],
                "source": "\n".join(body).strip("\n"),
            }
        )

    for lineno, line in enumerate(text.splitlines(), 1):
        match = HEADER.match(line)
        if match:
            flush()
            kind, attrs = _parse_header(match["rest"], f"{name}:{lineno}")
            current, body = (kind, attrs, lineno), []
        elif current is None:
            if line.strip():
                raise BuildError(f"{name}:{lineno}: text before the first '# %%' header")
        else:
            body.append(line)
    flush()
    ids = [gid for c in cells if (gid := grade_id(c))]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise BuildError(f"{name}: duplicated cell ids {dupes}")
    return cells


def build_notebook(unit_dir: Path) -> dict:
    unit = load_unit(unit_dir)
    text_path = unit_dir / f"{unit.name}.py"
    cells = parse_cells(text_path.read_text(), str(text_path))
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "llmlabs": {"unit": unit.name, "title": unit.title},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def render(nb: dict) -> str:
    # Cell ids are required by nbformat 4.5; derive them from position so builds are stable.
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"cell-{i:03d}"
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def unit_dirs() -> list[Path]:
    return sorted(p for p in curriculum_dir().iterdir() if (p / "unit.toml").is_file())


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for unit_dir in unit_dirs():
        nb_path = load_unit(unit_dir).notebook_path
        text = render(build_notebook(unit_dir))
        if nb_path.exists() and nb_path.read_text() == text:
            continue
        stale.append(nb_path)
        if not check:
            nb_path.write_text(text)
            print(f"built {nb_path}")
    if check and stale:
        print("out of date (run python -m graders.authoring.build):", *map(str, stale), sep="\n  ")
        return 1
    broken = [] if check else [p for nb_path in stale for p in _compile_problems(nb_path)]
    if broken:
        print("the built notebooks do not compile:", *broken, sep="\n  ")
        return 1
    return 0


def _compile_problems(nb_path: Path) -> list[str]:
    """What `lint.every_version_compiles` finds in a notebook just built: a stub that nbgrader
    would put inside a literal shows at once, not only in the lint test."""
    from graders.authoring.lint import every_version_compiles

    return [f"{nb_path.name}: {p}" for p in every_version_compiles(json.loads(nb_path.read_text()))]


if __name__ == "__main__":
    sys.exit(main())
