"""Grade many mutants of a heavy unit in one kernel, without re-running its setup.

    python -m graders.mutant_kernel UNIT   (prints "RESULT {json}": mutant -> {test cell: score})

Whole-notebook runs of a unit that loads a model or trains multiply by the number of
mutants. Here one kernel (the grading kernel's environment, the sandbox launcher) runs
the reference notebook once; then for each mutant it executes, in notebook order, every
cell from the mutant's answer cell through the last test cell it must fail — with the
mutant's source in the answer cell — scores the test cells with nbgrader's own
`determine_grade`, and re-runs the same range with the reference to restore the state.
The reference and the release are still graded through nbgrader autograde.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from graders.course import write_kernelspec
from graders.kernel import KERNEL_ENV
from graders.mutants import Mutant, load_mutants
from graders.units import Unit, get_unit


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def run_mutants(unit: Unit, mutants: list[Mutant]) -> dict[str, dict[str, float]]:
    import nbformat
    from nbclient import NotebookClient
    from nbgrader.utils import determine_grade

    nb = nbformat.from_dict(unit.notebook())
    index = {_grade_id(c): i for i, c in enumerate(nb.cells) if _grade_id(c)}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="llmlabs-mutants-") as tmp:
        spec_root = Path(tmp) / "course"
        write_kernelspec(spec_root)
        os.environ["JUPYTER_PATH"] = str(spec_root / ".llmlabs" / "jupyter")
        for key, value in KERNEL_ENV.items():
            os.environ.setdefault(key, value)
        work = Path(tmp) / "work"
        work.mkdir()
        client = NotebookClient(
            nb, timeout=unit.cell_timeout, kernel_name="llmlabs-grader", allow_errors=True,
            resources={"metadata": {"path": str(work)}},
        )
        with client.setup_kernel():
            for i, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    client.execute_cell(cell, i)
            for mutant in mutants:
                start = index[mutant.cell]
                stop = max(index[t] for t in mutant.must_fail)
                reference = nb.cells[start].source
                scores = {}
                for source in (mutant.source, reference):
                    nb.cells[start].source = source
                    for i in range(start, stop + 1):
                        cell = nb.cells[i]
                        if cell.cell_type != "code":
                            continue
                        cell.outputs = []
                        client.execute_cell(cell, i)
                        if source is mutant.source and cell.metadata.get("nbgrader", {}).get("grade"):
                            score, _ = determine_grade(cell)
                            scores[_grade_id(cell)] = float(score or 0.0)
                results[mutant.name] = scores
    return results


def main(argv: list[str]) -> int:
    unit = get_unit(argv[0])
    # The kernel shares this process's stdout; the prefix marks our line among its chatter.
    print("RESULT " + json.dumps(run_mutants(unit, load_mutants(unit))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
