"""Authoring: turning a unit's text form into a notebook and proving its tests.

`build` (text form -> nbgrader source notebook), `lint` (the notebook conventions),
`reference` (the reference cells, read from the text form), `benchmarking` (what each
unit's benchmark.py needs: a quiet environment and the reference), `mutants`
(hand-written wrong answers), `mutant_kernel` (grade many mutants in one kernel),
`mutation` (grade a unit's reference, release and mutants), `automutate` and
`mutation_score` (automatic mutation testing).
"""
