"""Authoring: turning a unit's text form into a notebook and proving its tests.

`build` (text form -> nbgrader source notebook), `reference` (the reference cells, read
from the text form), `mutants` (hand-written wrong answers), `mutant_kernel` (grade many
mutants in one kernel), `mutation` (grade a unit's reference, release and mutants).
"""
