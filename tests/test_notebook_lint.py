"""Static checks of every unit's source notebook (fast: no kernel runs), and proof that
each check fails on a notebook that breaks its rule."""

from __future__ import annotations

import copy

import pytest

from graders import cells
from graders.authoring import build as notebook_build
from graders.authoring import lint
from graders.grading.units import all_units, get_unit

UNITS = list(all_units())
IDS = [u.name for u in UNITS]


def test_committed_notebooks_are_built_from_their_text_form():
    assert notebook_build.main(["--check"]) == 0, "run: python -m graders.authoring.build"


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_unit_notebook_passes_every_lint_check(unit):
    problems = lint.lint_notebook(unit.notebook(), unit.name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_unit_metadata_is_complete(unit):
    assert (
        unit.title and unit.minutes > 0 and unit.device and unit.skills and unit.runs_on in ("CPU", "CPU/GPU")
    )


def _broken(edit) -> list[str]:
    nb = copy.deepcopy(get_unit("linear_algebra").notebook())
    edit(nb)
    return lint.lint_notebook(nb, "linear_algebra")


def _test_cell(nb, gid="test_softmax_hidden"):
    return cells.find(nb, gid)


def _set(cell, src):
    cell["source"] = src


BREAKAGES = {
    "outputs": (
        lambda nb: (
            nb["cells"][1].update(execution_count=3)
            if nb["cells"][1]["cell_type"] == "code"
            else lint._code_cells(nb)[0].update(execution_count=3)
        ),
        "execution count",
    ),
    "kernel": (lambda nb: nb["metadata"]["kernelspec"].update(name="julia"), "kernelspec must be python3"),
    "duplicate_id": (lambda nb: nb["cells"].append(copy.deepcopy(_test_cell(nb))), "appears 2 times"),
    "no_points": (lambda nb: cells.meta(_test_cell(nb)).update(points=0), "has no points"),
    "unlocked_test": (lambda nb: cells.meta(_test_cell(nb)).update(locked=False), "must be locked"),
    "no_setup_call": (
        lambda nb: _set(lint._code_cells(nb)[0], "import numpy as np"),
        "must call graders.notebook.setup()",
    ),
    "ends_in_expression": (
        lambda nb: _set(_test_cell(nb), cells.source(_test_cell(nb)) + "\nTrue"),
        "must end in an assert",
    ),
    # The hidden block is removed from the release: what remains must still raise.
    "visible_part_does_not_assert": (
        lambda nb: _set(_test_cell(nb), "x = 1\n### BEGIN HIDDEN TESTS\nassert x == 1\n### END HIDDEN TESTS"),
        "released (visible) part must end in an assert",
    ),
    "answer_untested": (
        lambda nb: [
            _set(c, "x = 1")
            for c in nb["cells"]
            if cells.grade_id(c) in ("test_scores_visible", "test_scores_hidden")
        ],
        "answer cell scores",
    ),
    "no_solution_block": (
        lambda nb: _set(cells.find(nb, "softmax"), "def softmax(x):\n    return x\n"),
        "has no ### BEGIN SOLUTION block",
    ),
    # nbgrader puts the stub at the region's indentation: inside a dict literal it is a
    # SyntaxError in the released notebook though the source compiles.
    "stub_inside_a_literal": (
        lambda nb: _set(
            cells.find(nb, "softmax"),
            "TABLE = {\n    ### BEGIN SOLUTION\n    1: 2,\n    ### END SOLUTION\n}\n"
            "def softmax(x):\n    return x\n",
        ),
        "student version cell softmax does not compile",
    ),
    "source_does_not_compile": (
        lambda nb: _set(
            cells.find(nb, "softmax"), "def softmax(x:\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n"
        ),
        "source cell softmax does not compile",
    ),
    "no_objectives": (
        lambda nb: [_set(c, "text") for c in nb["cells"] if c["cell_type"] == "markdown"],
        "should state its objectives",
    ),
    # "\beta" written in a normal Python string: a backspace, and a broken formula.
    "control_character": (
        lambda nb: [_set(c, "The temperature $\beta$.") for c in nb["cells"][1:2]],
        "control character '\\x08'",
    ),
}


@pytest.mark.parametrize("name", BREAKAGES)
def test_each_lint_check_can_fail(name):
    edit, expected = BREAKAGES[name]
    problems = _broken(edit)
    assert any(expected in p for p in problems), (
        f"{name}: expected a problem containing {expected!r}, got {problems}"
    )


def test_builder_rejects_bad_text():
    with pytest.raises(notebook_build.BuildError, match="points"):
        notebook_build.parse_cells("# %% test id=t\nassert True\n")
    with pytest.raises(notebook_build.BuildError, match="duplicated"):
        notebook_build.parse_cells("# %% answer id=a\nx=1\n# %% answer id=a\nx=2\n")
    with pytest.raises(notebook_build.BuildError, match="unknown cell kind"):
        notebook_build.parse_cells("# %% anwser id=a\nx=1\n")
    with pytest.raises(notebook_build.BuildError, match="markdown"):
        notebook_build.parse_cells("# %% [markdown]\nnot a comment\n")


def test_build_fails_when_the_student_version_does_not_compile(tmp_path, monkeypatch, capsys):
    unit_dir = tmp_path / "99_broken"
    unit_dir.mkdir()
    (unit_dir / "unit.toml").write_text('name = "broken"\ntitle = "Broken"\nminutes = 1\n')
    (unit_dir / "broken.py").write_text(
        "# %% answer id=table\nTABLE = {\n    ### BEGIN SOLUTION\n    1: 2,\n    ### END SOLUTION\n}\n"
    )
    monkeypatch.setattr(notebook_build, "unit_dirs", lambda: [unit_dir])
    assert notebook_build.main([]) == 1
    assert "student version cell table does not compile" in capsys.readouterr().out
    assert (unit_dir / "broken.ipynb").is_file()  # written, so the author can inspect it


def test_stub_only_problems_tells_the_stub_from_other_errors():
    """The rule tests/grading/test_units.py applies to each unit's autograded release."""
    from graders.authoring.mutation import STUB_MESSAGE, CellError, stub_only_problems

    def cell(src, **meta):
        return {"cell_type": "code", "source": src, "metadata": {"nbgrader": meta} if meta else {}}

    nb = {
        "cells": [
            cell("import numpy as np\nLIMIT = 3", grade_id="setup", locked=True),
            cell("def f(x):\n    raise NotImplementedError", grade_id="f", solution=True),
            cell("table = [f(i) for i in range(3)]"),
            cell("assert table and LIMIT", grade_id="t", grade=True, points=1, locked=True),
        ]
    }
    stub = f"NotImplementedError: {STUB_MESSAGE}"
    ok = [
        CellError(2, "#2", "plain", "NotImplementedError", STUB_MESSAGE),
        CellError(3, "t", "test", "NameError", "name 'table' is not defined"),
    ]
    assert stub_only_problems(nb, ok) == []
    quoted = CellError(3, "t", "test", "AssertionError", f"f(1) raised {stub}")
    assert stub_only_problems(nb, [quoted]) == []
    bad = [
        CellError(0, "setup", "setup", "ModuleNotFoundError", "No module named 'numpy'"),
        CellError(1, "f", "answer", "SyntaxError", "invalid syntax"),
        CellError(3, "t", "test", "NameError", "name 'LIMIT' is not defined"),
        # table's cell did not fail: its name is missing for another reason
        CellError(3, "t", "test", "NameError", "name 'table' is not defined"),
    ]
    assert [p.split(":")[0] for p in stub_only_problems(nb, bad)] == [
        "setup cell setup",
        "answer cell f",
        "test cell t",
        "test cell t",
    ]
