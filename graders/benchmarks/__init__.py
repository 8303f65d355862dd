"""Benchmarks of llmlabs itself, for maintainers: not tests, and not imported by the rest.

They sit above the parts they measure (`graders.grading`, `graders.sandbox`,
`graders.authoring`), so the parts never import upwards:

    python -m graders.benchmarks.grading UNIT [--copies 16]   # llmlabs grade vs nbgrader autograde
    python -m graders.benchmarks.grading UNIT --check         # llmlabs check vs nbconvert
    python -m graders.benchmarks.sandbox [UNIT]               # sandboxed vs plain kernel

A unit's own benchmark (`curriculum/NN_unit/benchmark.py`) measures the unit's code, not
llmlabs: it uses `graders.authoring.benchmarking`.
"""
