"""Grade many mutants of a heavy unit in one kernel, without re-running its setup.

    python -m graders.authoring.mutant_kernel UNIT [--reverse] [--only NAME ...]
    (prints "RESULT {json}": mutant -> {test cell: score})

Whole-notebook runs of a unit that loads a model or trains multiply by the number of
mutants. Here one kernel (the grading kernel's environment, the sandbox launcher) runs
the reference notebook once; then for each mutant it executes, in notebook order, every
cell from the mutant's answer cell through the last test cell it must fail — with the
mutant's source in the answer cell — and scores the test cells with nbgrader's own
`determine_grade`.

Each mutant starts from the same state: before its cells run, the kernel's user
namespace is copied, and afterwards every name is put back as it was (new names
dropped). Re-running the reference cells instead would rebind classes to new objects,
so that objects made earlier fail `isinstance` and a mutant's result would depend on the
mutants graded before it. Objects changed in place are not undone: exercises build
what they test inside their own cells.

The reference and the release are still graded through nbgrader autograde.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from graders import cells
from graders.authoring.mutants import Mutant, load_mutants
from graders.grading.course import KERNEL_NAME, write_kernelspec
from graders.grading.units import Unit, get_unit
from graders.notebook.kernel import KERNEL_ENV

_SNAPSHOT = "__llmlabs_namespace_snapshot"
SAVE = f"{_SNAPSHOT} = dict(get_ipython().user_ns)"
RESTORE = (
    "def __llmlabs_restore(ns):\n"
    f"    snap = ns.pop({_SNAPSHOT!r})\n"
    "    for name in [k for k in ns if k not in snap]:\n"
    "        del ns[name]\n"
    "    ns.update(snap)\n"
    "__llmlabs_restore(get_ipython().user_ns)"
)


def run_mutants(
    unit: Unit,
    mutants: Sequence[Mutant],
    *,
    on_result: Callable[[str, dict[str, float]], None] | None = None,
) -> dict[str, dict[str, float]]:
    import nbformat
    from nbclient import NotebookClient
    from nbgrader.utils import determine_grade

    nb = nbformat.from_dict(unit.notebook())
    index = {gid: i for i, c in enumerate(nb.cells) if (gid := cells.grade_id(c))}
    # A scratch cell at the end runs the snapshot code (nbclient writes outputs back by index).
    nb.cells.append(nbformat.v4.new_code_cell(""))
    scratch = len(nb.cells) - 1
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
            nb,
            timeout=unit.cell_timeout,
            kernel_name=KERNEL_NAME,
            allow_errors=True,
            resources={"metadata": {"path": str(work)}},
        )

        def run_scratch(code: str) -> None:
            nb.cells[scratch].source, nb.cells[scratch].outputs = code, []
            client.execute_cell(nb.cells[scratch], scratch)
            errors = [o for o in nb.cells[scratch].outputs if o.get("output_type") == "error"]
            if errors:
                raise RuntimeError(f"mutant kernel bookkeeping failed: {errors[0].get('evalue')}")

        with client.setup_kernel():
            for i, cell in enumerate(nb.cells[:scratch]):
                if cell.cell_type == "code":
                    client.execute_cell(cell, i)
            for mutant in mutants:
                start = index[mutant.cell]
                stop = max(index[t] for t in mutant.must_fail)
                reference = nb.cells[start].source
                scores: dict[str, float] = {}
                run_scratch(SAVE)
                nb.cells[start].source = mutant.source
                try:
                    for i in range(start, stop + 1):
                        cell = nb.cells[i]
                        if cell.cell_type != "code":
                            continue
                        cell.outputs = []
                        client.execute_cell(cell, i)
                        if cells.is_test(cell):
                            score, _ = determine_grade(cell)
                            scores[str(cells.grade_id(cell))] = float(score or 0.0)
                finally:
                    nb.cells[start].source = reference
                    run_scratch(RESTORE)
                results[mutant.name] = scores
                if on_result:
                    on_result(mutant.name, scores)
    return results


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Grade a unit's mutants in one shared kernel.")
    parser.add_argument("unit")
    parser.add_argument("--reverse", action="store_true", help="grade the mutants in reverse order")
    parser.add_argument("--only", nargs="*", default=None, help="grade only these mutants")
    args = parser.parse_args(argv)
    unit = get_unit(args.unit)
    mutants = load_mutants(unit)
    if args.only is not None:
        mutants = [m for m in mutants if m.name in set(args.only)]
    if args.reverse:
        mutants = mutants[::-1]
    result: dict[str, Any] = run_mutants(unit, mutants)
    # The kernel shares this process's stdout; the prefix marks our line among its chatter.
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
