"""Measure what the sandbox costs per graded notebook.

    python -m graders.benchmarks.sandbox [UNIT] [--repeats N]

Grades the unit's reference N times in each mode (bubblewrap or rlimits, as available,
vs no sandbox), interleaved, each in one nbgrader batch, and prints seconds per notebook
and the ratio. nbgrader's own start-up is paid once per batch in both modes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from graders import settings
from graders.grading.grade import grade_submissions
from graders.grading.units import get_unit
from graders.sandbox.limits import sandbox_mode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("unit", nargs="?", default="linear_algebra")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4, help="notebooks per nbgrader batch")
    args = parser.parse_args()
    unit = get_unit(args.unit)
    sandboxed = sandbox_mode()
    per_nb: dict[str, list[float]] = {sandboxed: [], "none": []}
    for _ in range(args.repeats):
        for mode in (sandboxed, "none"):
            os.environ[settings.SANDBOX.env] = mode
            subs = {f"s{i}": unit.notebook_path for i in range(args.batch)}
            results = grade_submissions(unit, subs)
            assert all(r.full_marks for r in results.values()), results
            per_nb[mode].append(statistics.mean(r.seconds for r in results.values()))
    a, b = statistics.median(per_nb[sandboxed]), statistics.median(per_nb["none"])
    print(f"unit {unit.name}: {args.batch} notebooks x {args.repeats} batches per mode")
    print(f"  sandbox {sandboxed:8s} {a:6.2f} s per notebook (autograde)")
    print(f"  no sandbox       {b:6.2f} s per notebook")
    print(f"  ratio            {a / b:6.2f}x")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"  ({time.perf_counter() - t:.0f} s in all)")
