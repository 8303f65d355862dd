"""The shared mutant kernel gives each mutant the same starting state, whatever ran
before it: grading in reverse order gives the same scores (graders.authoring.mutant_kernel)."""

from __future__ import annotations

import os

from graders.authoring.build import parse_cells, render
from graders.authoring.mutant_kernel import run_mutants
from graders.authoring.mutants import Mutant
from graders.grading.units import Unit

# A class made in one exercise and an object made from it before the next: the trap that
# re-running reference cells to "restore" state falls into (a new class object, so the
# old instance fails isinstance in every later mutant's tests).
TEXT = """\
# %% setup id=setup
from graders.notebook import setup
setup()

# %% answer id=box
class Box:
    ### BEGIN SOLUTION
    def __init__(self, v):
        self.v = v
    ### END SOLUTION

# %% test id=test_box points=1
assert Box(2).v == 2

# %%
early = Box(5)

# %% answer id=make
def make(v):
    ### BEGIN SOLUTION
    return Box(v)
    ### END SOLUTION

# %% test id=test_early_is_a_box points=1
assert isinstance(early, Box)

# %% test id=test_make points=1
assert make(3).v == 3
"""

MUTANTS = [
    Mutant(
        "box_doubles",
        "box",
        "class Box:\n    def __init__(self, v):\n        self.v = 2 * v\n",
        ("test_box",),
    ),
    Mutant("make_off_by_one", "make", "def make(v):\n    return Box(v + 1)\n", ("test_make",)),
]


def tiny_unit(directory, name: str, text: str, cell_timeout: int) -> Unit:
    """A unit made of `text` alone, built into `directory`."""
    nb = {
        "cells": parse_cells(text),
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (directory / f"{name}.ipynb").write_text(render(nb))
    return Unit(
        name=name,
        number=0,
        title=name,
        minutes=1,
        device="CPU",
        directory=directory,
        cell_timeout=cell_timeout,
    )


def test_mutant_scores_do_not_depend_on_the_order(tmp_path):
    unit = tiny_unit(tmp_path, "tiny", TEXT, cell_timeout=60)
    forward = run_mutants(unit, MUTANTS)
    backward = run_mutants(unit, MUTANTS[::-1])
    expected = {
        "box_doubles": {"test_box": 0.0},
        "make_off_by_one": {"test_early_is_a_box": 1.0, "test_make": 0.0},
    }
    assert forward == expected, forward
    assert backward == expected, backward


def test_a_mutant_that_does_not_compile_or_drops_a_definition_finds_no_reference_left(tmp_path):
    # In a notebook run, `make` exists only if the answer cell defined it; the shared kernel
    # ran the reference first and must not let the mutant fall back on its `make`.
    unit = tiny_unit(tmp_path, "tiny", TEXT, cell_timeout=60)
    broken = [
        Mutant("make_syntax_error", "make", "def make(v):\n    return Box(v\n", ("test_make",)),
        Mutant("make_renamed", "make", "def build(v):\n    return Box(v)\n", ("test_make",)),
    ]
    scores = run_mutants(unit, broken)
    assert scores == {
        "make_syntax_error": {"test_early_is_a_box": 1.0, "test_make": 0.0},
        "make_renamed": {"test_early_is_a_box": 1.0, "test_make": 0.0},
    }, scores


SLOW_TEXT = """\
# %% setup id=setup
import time
from graders.notebook import setup
setup()

# %% answer id=pause
def pause():
    ### BEGIN SOLUTION
    time.sleep(0.1)
    ### END SOLUTION

# %% test id=test_pause points=1
pause()
assert True
"""


def test_a_kill_by_the_tight_time_limit_is_graded_again_with_cell_timeout(tmp_path, monkeypatch):
    # A mutant 20x slower than the reference but well inside the grader's cell_timeout is
    # not a mistake the grader would punish: loaded machines make equivalent mutants slow.
    from graders.authoring import mutation_score
    from graders.authoring.automutate import AutoMutant

    unit = tiny_unit(tmp_path, "slow", SLOW_TEXT, cell_timeout=8)
    monkeypatch.setattr(mutation_score, "TIMEOUT_FLOOR", 1.0)
    slower = AutoMutant("slower", "pause", "test", 0, "", "", "def pause():\n    time.sleep(2)\n")
    stuck = AutoMutant("stuck", "pause", "test", 0, "", "", "def pause():\n    time.sleep(60)\n")
    said: list[str] = []
    verdicts = mutation_score.grade_automutants(unit, [slower, stuck], use_cache=False, progress=said.append)
    assert [v.killed for v in verdicts] == [False, True], (verdicts, said)
    assert sum("graded again" in line for line in said) == 2, said


def test_the_shared_kernel_outlives_the_whole_notebook_limits(tmp_path, monkeypatch):
    # Hundreds of mutants in one kernel add up to more than one notebook's wall and CPU
    # time; the per-cell timeouts bound each mutant instead. The caller's env is restored.
    from graders import settings
    from graders.authoring.mutant_kernel import LONG_KERNEL_SECONDS, shared_kernel

    wall = settings.LIMITS["notebook_seconds"].env
    monkeypatch.delenv(wall, raising=False)
    monkeypatch.setenv(settings.LIMITS["cpu_seconds"].env, "5000")  # an explicit choice is kept
    unit = tiny_unit(tmp_path, "slow", SLOW_TEXT, cell_timeout=8)
    with shared_kernel(unit) as kernel:
        assert kernel.reference_scores == {"test_pause": 1.0}
        assert os.environ[wall] == str(LONG_KERNEL_SECONDS)
        assert os.environ[settings.LIMITS["cpu_seconds"].env] == "5000"
    assert wall not in os.environ
