"""One source, two languages (issue 28): a translated notebook is the English one with
only its prose changed, so it grades identically; a changed English passage is reported
as untranslated, with the unit, cell and passage."""

from __future__ import annotations

import ast

import polib
import pytest

from graders import cells
from graders.authoring.translate import check_unit, unit_passages, update_unit
from graders.grading.translation import (
    catalog_path,
    markdown_blocks,
    passages,
    translate_notebook,
    translated,
)
from graders.grading.units import all_units, get_unit

UNITS = all_units()


def _fake(text: str) -> str:
    # A stand-in translation with the characters a real one has (CJK, quotes, backslashes),
    # that leaves display formulas and code fences as they are, as a translator does.
    if text.lstrip().startswith(("$$", "```")):
        return text
    return '译文 "引号" \\ ' + text.upper()


def _without_docstrings(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    first.value.value = ""
    return ast.dump(tree)


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_a_translated_notebook_has_the_same_code_and_tests(unit):
    nb = unit.notebook()
    lookup = {p.text: _fake(p.text) for p in passages(nb)}
    zh, missing = translate_notebook(nb, lookup)
    assert not missing
    assert len(zh["cells"]) == len(nb["cells"])
    for en_cell, zh_cell in zip(nb["cells"], zh["cells"], strict=True):
        assert en_cell["metadata"] == zh_cell["metadata"], "grade ids, points and locks are the English ones"
        if en_cell["cell_type"] != "code":
            continue
        if cells.is_test(en_cell):
            assert cells.source(zh_cell) == cells.source(en_cell), "test cells are never touched"
        else:
            where = cells.grade_id(en_cell) or "a code cell"
            same = _without_docstrings(cells.source(zh_cell)) == _without_docstrings(cells.source(en_cell))
            assert same, f"{unit.name}: the code of {where} changed"
    # Nothing English is left behind, and every docstring reads back as its translation.
    left = [p for p in passages(zh) if p.text not in set(lookup.values())]
    assert not left, f"{unit.name}: passages left in English: {[p.text[:50] for p in left[:3]]}"


def test_markdown_blocks_keep_formulas_and_fences_whole():
    text = "Intro line\nsecond line\n\n$$ a = b\n\n c $$\n\nText\n\n```python\nx = 1\n\ny = 2\n```\n\n- item"
    assert markdown_blocks(text) == [
        "Intro line\nsecond line",
        "$$ a = b\n\n c $$",
        "Text",
        "```python\nx = 1\n\ny = 2\n```",
        "- item",
    ]


def test_a_changed_english_passage_is_reported_with_unit_cell_and_passage(tmp_path, monkeypatch):
    unit = get_unit("linear_algebra")
    path = catalog_path(tmp_path, "zh")
    update_unit(unit, "zh", path)
    po = polib.pofile(str(path))
    for entry in po:
        entry.msgstr = _fake(entry.msgid)
    po.save()
    assert check_unit(unit, "zh", path) == []
    assert translated(unit.notebook(), tmp_path, "zh")["metadata"]["llmlabs_language"] == "zh"
    # The English changes: that passage (and only it) has no current translation.
    first = next(p for p in unit_passages(unit) if p.kind == "markdown")
    nb = unit.notebook()
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown" and first.text in cells.source(cell):
            cell["source"] = cells.source(cell).replace(first.text, first.text + " Changed.")
            break
    monkeypatch.setattr(type(unit), "notebook", lambda self: nb)
    problems = check_unit(unit, "zh", path)
    assert [(p.why, p.passage.cell, p.passage.text) for p in problems] == [
        ("missing", first.cell, first.text + " Changed.")
    ]
    with pytest.raises(LookupError, match="1 passage"):
        translated(nb, tmp_path, "zh")
    # Updating offers the old translation, marked fuzzy: still reported until reviewed.
    assert update_unit(unit, "zh", path)["fuzzy"] == 1
    assert [p.why for p in check_unit(unit, "zh", path)] == ["fuzzy (the English changed)"]


@pytest.mark.parametrize(
    "unit",
    [u for u in UNITS if catalog_path(u.directory, "zh").is_file()],
    ids=lambda u: u.name,
)
def test_every_chinese_catalog_is_complete_and_current(unit):
    problems = check_unit(unit, "zh")
    assert not problems, f"{len(problems)} passage(s) without a current translation:\n" + "\n".join(
        str(p) for p in problems[:20]
    )


def test_a_unit_without_a_catalog_is_refused_in_one_line(tmp_path):
    unit = get_unit("linear_algebra")
    with pytest.raises(LookupError, match="no 简体中文"):
        translated(unit.notebook(), tmp_path, "zh")
    with pytest.raises(LookupError, match="unknown language"):
        translated(unit.notebook(), tmp_path, "fr")


@pytest.mark.parametrize(
    "unit",
    [u for u in UNITS if catalog_path(u.directory, "zh").is_file()],
    ids=lambda u: u.name,
)
def test_the_real_chinese_notebook_has_the_english_code(unit):
    # What is released and graded: the committed catalog applied, not a stand-in.
    nb = unit.notebook()
    zh = translated(nb, unit.directory, "zh")
    for en_cell, zh_cell in zip(nb["cells"], zh["cells"], strict=True):
        assert en_cell["metadata"] == zh_cell["metadata"]
        if en_cell["cell_type"] == "code":
            where = cells.grade_id(en_cell) or "a code cell"
            same = _without_docstrings(cells.source(zh_cell)) == _without_docstrings(cells.source(en_cell))
            assert same, f"{unit.name}: the Chinese {where} is not the English code"
    assert zh["metadata"]["llmlabs_language"] == "zh"


def test_every_unit_ships_in_chinese():
    # The catalog is a standing part of a unit: a new unit without one fails here.
    missing = [u.name for u in UNITS if not catalog_path(u.directory, "zh").is_file()]
    assert not missing, f"units without a Chinese catalog (locale/zh.po): {missing}"
