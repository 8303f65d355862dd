"""A unit in another language, from one English source and a gettext catalog.

The English text form stays the only hand-edited copy of a unit's code and tests. What a
learner reads is cut into passages, and each passage is looked up in the unit's catalog
`curriculum/NN_unit/locale/<lang>.po` (English as `msgid`, as Sphinx and Jupyter Book
projects translate; editable in Poedit or Weblate):

- every markdown cell, one passage per block (paragraph, list, table, formula, fence);
- in code cells other than tests, every docstring and every run of full-line comments
  outside the solution markers.

Test cells and all code are left exactly as they are, so a translated notebook has the
English one's grade ids, locked cells and hidden tests, and grades identically
(`tests/test_translation.py` compares every code cell's syntax tree, docstrings aside).
A passage changed in English has no translation until the catalog is updated: the build
check (`python -m graders.authoring.translate --check`) names the unit, cell and passage.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graders import cells
from graders.grading.units import Unit

ENGLISH = "en"
LANGUAGES = {"en": "English", "zh": "简体中文 (Simplified Chinese)"}
MARKERS = re.compile(r"^\s*###\s*(BEGIN|END)\s+(SOLUTION|HIDDEN TESTS)")
COMMENT = re.compile(r"^(?P<indent>\s*)#(?: (?P<text>.*)|(?P<empty>))$")


@dataclass(frozen=True)
class Passage:
    cell: str  # grade id, or "cell N" for a cell without one
    kind: str  # markdown, docstring or comment
    text: str  # the English, as it is looked up in the catalog


def catalog_path(unit_dir: Path, lang: str) -> Path:
    return unit_dir / "locale" / f"{lang}.po"


def _cell_ref(cell: dict[str, Any], index: int) -> str:
    return cells.grade_id(cell) or f"cell {index}"


def markdown_blocks(source: str) -> list[str]:
    """Blocks separated by blank lines; a fenced block or a $$ formula stays whole."""
    blocks: list[str] = []
    current: list[str] = []
    fence = False
    formula = False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = not fence
        elif formula:
            formula = not stripped.endswith("$$")  # the line that closes a display formula
        elif stripped.startswith("$$") and not (len(stripped) > 2 and stripped.endswith("$$")):
            formula = True  # a display formula that goes on for more lines
        if not stripped and not fence and not formula:
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def _docstrings(source: str) -> Iterator[tuple[ast.Constant, str]]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                text = ast.get_docstring(node, clean=True)
                if text:
                    yield body[0].value, text


def _comment_runs(source: str) -> Iterator[tuple[int, int, str, str]]:
    """(first line, last line + 1, indent, text) of each run of full-line comments outside
    the solution and hidden-test markers."""
    lines = source.split("\n")
    inside = False
    i = 0
    while i < len(lines):
        marker = MARKERS.match(lines[i])
        if marker:
            inside = marker.group(1) == "BEGIN"
            i += 1
            continue
        m = COMMENT.match(lines[i])
        if inside or not m or (m.group("text") or "").startswith(("%%", "!")):
            i += 1
            continue
        start, indent, texts = i, m.group("indent"), []
        while i < len(lines) and not MARKERS.match(lines[i]):
            m = COMMENT.match(lines[i])
            if not m or m.group("indent") != indent:
                break
            texts.append(m.group("text") or "")
            i += 1
        text = "\n".join(texts).strip()
        if re.search(r"[A-Za-z]", text):
            yield start, i, indent, text


def passages(nb: dict[str, Any]) -> list[Passage]:
    """Every passage a learner reads in `nb`, in order."""
    out: list[Passage] = []
    for index, cell in enumerate(nb.get("cells", [])):
        ref = _cell_ref(cell, index)
        source = cells.source(cell)
        if cell.get("cell_type") == "markdown":
            out += [Passage(ref, "markdown", block) for block in markdown_blocks(source)]
        elif cell.get("cell_type") == "code" and not cells.is_test(cell):
            out += [Passage(ref, "docstring", text) for _, text in _docstrings(source)]
            out += [Passage(ref, "comment", text) for *_, text in _comment_runs(source)]
    return out


def _line_offsets(source: str) -> list[int]:
    offsets = [0]
    for line in source.split("\n"):
        offsets.append(offsets[-1] + len(line) + 1)
    return offsets


def _docstring_literal(original: str, text: str, indent: str) -> str:
    prefix = re.match(r"[rRuU]*", original)
    raw = bool(prefix and "r" in prefix.group(0).lower())
    body = text if raw else text.replace("\\", "\\\\")
    body = body.replace('"""', '\\"\\"\\"')
    lines = body.split("\n")
    if len(lines) == 1:
        return f'{"r" if raw else ""}"""{body}"""'
    rest = "\n".join((indent + line) if line else "" for line in lines[1:])
    return f'{"r" if raw else ""}"""{lines[0]}\n{rest}\n{indent}"""'


def _translate_code(source: str, lookup: dict[str, str], missing: list[str]) -> str:
    # Comments first (line-based), then docstrings from the end backwards (offset-based).
    lines = source.split("\n")
    for start, end, indent, text in reversed(list(_comment_runs(source))):
        if text not in lookup:
            missing.append(text)
            continue
        lines[start:end] = [f"{indent}# {t}".rstrip() for t in lookup[text].split("\n")]
    source = "\n".join(lines)
    offsets = _line_offsets(source)
    found = sorted(_docstrings(source), key=lambda d: (d[0].lineno, d[0].col_offset), reverse=True)
    for node, text in found:
        if text not in lookup:
            missing.append(text)
            continue
        assert node.end_lineno is not None and node.end_col_offset is not None
        a = offsets[node.lineno - 1] + node.col_offset
        b = offsets[node.end_lineno - 1] + node.end_col_offset
        indent = " " * node.col_offset
        source = source[:a] + _docstring_literal(source[a:b], lookup[text], indent) + source[b:]
    return source


def translate_notebook(nb: dict[str, Any], lookup: dict[str, str]) -> tuple[dict[str, Any], list[Passage]]:
    """A copy of `nb` with every passage found in `lookup` translated, and the passages
    that were not (which stay in English)."""
    out = copy.deepcopy(nb)
    missing: list[Passage] = []
    for index, cell in enumerate(out.get("cells", [])):
        ref = _cell_ref(cell, index)
        source = cells.source(cell)
        if cell.get("cell_type") == "markdown":
            blocks = markdown_blocks(source)
            missing += [Passage(ref, "markdown", b) for b in blocks if b not in lookup]
            if blocks:
                cell["source"] = "\n\n".join(lookup.get(b, b) for b in blocks)
        elif cell.get("cell_type") == "code" and not cells.is_test(cell):
            lost: list[str] = []
            cell["source"] = _translate_code(source, lookup, lost)
            missing += [Passage(ref, "code", text) for text in lost]
    return out, missing


def load_catalog(path: Path) -> dict[str, str]:
    """msgid -> msgstr of the catalog's translated, current (not fuzzy, not obsolete) entries."""
    import polib

    po = polib.pofile(str(path))
    return {e.msgid: e.msgstr for e in po if e.msgstr and not e.obsolete and "fuzzy" not in e.flags}


def localised(unit: Unit, lang: str) -> Unit:
    """`unit` with its title and summary in `lang` where its catalog has them."""
    path = catalog_path(unit.directory, lang)
    if lang == ENGLISH or not path.is_file():
        return unit
    lookup = load_catalog(path)
    return dataclasses.replace(
        unit, title=lookup.get(unit.title, unit.title), summary=lookup.get(unit.summary, unit.summary)
    )


def translated(nb: dict[str, Any], unit_dir: Path, lang: str) -> dict[str, Any]:
    """`nb` in `lang` (English: unchanged). Raises LookupError when the unit has no catalog
    for `lang` or the catalog misses passages: a half-translated notebook is not released."""
    if lang == ENGLISH:
        return nb
    if lang not in LANGUAGES:
        raise LookupError(f"unknown language {lang!r}: one of {', '.join(LANGUAGES)}")
    path = catalog_path(unit_dir, lang)
    if not path.is_file():
        raise LookupError(f"{unit_dir.name} has no {LANGUAGES[lang]} edition yet ({path.name} missing)")
    out, missing = translate_notebook(nb, load_catalog(path))
    if missing:
        first = missing[0]
        raise LookupError(
            f"{unit_dir.name}: {len(missing)} passage(s) not translated in {path.name}, "
            f"the first in {first.cell}: {first.text[:60]!r}"
        )
    out.setdefault("metadata", {})["llmlabs_language"] = lang
    return out
