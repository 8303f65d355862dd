"""Grade many mutants of a unit in one kernel, without re-running its setup.

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

A mutant that loops forever is interrupted after its cell's time limit (by default the
unit's `cell_timeout`; automatic mutation testing passes limits scaled from the
reference's own cell times). A mutant that kills the kernel scores 0 on every test of
its range, and the kernel is started again with the reference notebook.

The reference and the release are still graded through nbgrader autograde.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graders import cells, settings
from graders.authoring.mutants import Mutant, load_mutants
from graders.grading.course import KERNEL_NAME, write_kernelspec
from graders.grading.units import Unit, get_unit
from graders.notebook.kernel import KERNEL_ENV
from graders.pysource import defined_names

LONG_KERNEL_SECONDS = 7 * 24 * 3600
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

Scores = dict[str, float]


class SharedKernel:
    """One grading kernel holding the reference notebook's state, in which mutants run.

    `reference_scores` and `cell_seconds` come from the first, full run of the reference.
    """

    def __init__(self, unit: Unit, work: Path, cell_timeouts: Callable[[int], float] | None = None):
        import nbformat

        self.unit = unit
        self.work = work
        self.nb = nbformat.from_dict(unit.notebook())
        self.index = {gid: i for i, c in enumerate(self.nb.cells) if (gid := cells.grade_id(c))}
        # A scratch cell at the end runs the snapshot code (nbclient writes outputs back by index).
        self.nb.cells.append(nbformat.v4.new_code_cell(""))
        self.scratch = len(self.nb.cells) - 1
        self.cell_timeouts = cell_timeouts
        self.reference_scores: Scores = {}
        self.cell_seconds: dict[int, float] = {}
        self.restarts = 0
        # Whether a cell of the last `grade` ran into its time limit: a kill by timeout
        # under a limit tighter than the grader's needs a second look (mutation_score).
        self.timed_out = False
        self.client: Any = None

    def _timeout(self, cell: Any) -> int:
        if self.cell_timeouts is None:
            return int(self.unit.cell_timeout)
        i = next((k for k, c in enumerate(self.nb.cells) if c is cell), -1)
        return max(1, int(self.cell_timeouts(i)))

    @contextmanager
    def running(self) -> Iterator[SharedKernel]:
        try:
            self._start()
            yield self
        finally:
            self._stop()

    def _start(self) -> None:
        from nbclient import NotebookClient

        self.client = NotebookClient(
            self.nb,
            timeout=self.unit.cell_timeout,
            kernel_name=KERNEL_NAME,
            allow_errors=True,
            interrupt_on_timeout=True,
            resources={"metadata": {"path": str(self.work)}},
        )
        self.client.timeout_func = self._timeout
        self.client.km = self.client.create_kernel_manager()
        self.client.start_new_kernel()
        self.client.start_new_kernel_client()
        for i, cell in enumerate(self.nb.cells[: self.scratch]):
            if cell.cell_type != "code":
                continue
            cell.outputs = []
            started = time.perf_counter()
            self.client.execute_cell(cell, i)
            self.cell_seconds.setdefault(i, time.perf_counter() - started)
            if cells.is_test(cell):
                self.reference_scores[str(cells.grade_id(cell))] = _score(cell)

    def _stop(self) -> None:
        if self.client is not None and self.client.km is not None:
            try:
                self.client._cleanup_kernel()
            except Exception:  # pragma: no cover - best effort on a dead kernel
                pass
        self.client = None

    def _run_scratch(self, code: str) -> None:
        cell = self.nb.cells[self.scratch]
        cell.source, cell.outputs = code, []
        self.client.execute_cell(cell, self.scratch)
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        if errors:
            raise RuntimeError(f"mutant kernel bookkeeping failed: {errors[0].get('evalue')}")

    def _defined_before(self, index: int) -> set[str]:
        names: set[str] = set()
        for cell in self.nb.cells[:index]:
            if cell.cell_type == "code":
                names |= defined_names(cell.source)
        return names

    def grade(self, cell_id: str, source: str, last_test: str, stop_on_loss: Scores | None = None) -> Scores:
        """Scores of the test cells from `cell_id` through `last_test`, with `source` as
        the answer; the kernel's namespace is put back afterwards. With `stop_on_loss`
        (reference scores), the run stops at the first test that scores less."""
        from nbclient.exceptions import DeadKernelError

        start, stop = self.index[cell_id], self.index[last_test]
        reference = self.nb.cells[start].source
        scores: Scores = {}
        tests = [str(cells.grade_id(c)) for c in self.nb.cells[start : stop + 1] if cells.is_test(c)]
        self.timed_out = False
        self._run_scratch(SAVE)
        # In a notebook run the answer cell is the only place its names come from: a mutant
        # that does not compile, or drops a definition, must not find the reference's.
        fresh = sorted(defined_names(reference) - self._defined_before(start))
        if fresh:
            self._run_scratch(f"for __n in {fresh!r}:\n    get_ipython().user_ns.pop(__n, None)\ndel __n")
        self.nb.cells[start].source = source
        try:
            for i in range(start, stop + 1):
                cell = self.nb.cells[i]
                if cell.cell_type != "code":
                    continue
                cell.outputs = []
                started = time.perf_counter()
                self.client.execute_cell(cell, i)
                if time.perf_counter() - started >= self._timeout(cell):
                    self.timed_out = True
                if cells.is_test(cell):
                    gid = str(cells.grade_id(cell))
                    scores[gid] = _score(cell)
                    if stop_on_loss is not None and scores[gid] < stop_on_loss.get(gid, 0.0):
                        break
        except DeadKernelError:
            self.nb.cells[start].source = reference
            self.restarts += 1
            self._stop()
            self._start()
            return {t: 0.0 for t in tests}
        finally:
            self.nb.cells[start].source = reference
        self._run_scratch(RESTORE)
        return scores


def _score(cell: Any) -> float:
    from nbgrader.utils import determine_grade

    score, _ = determine_grade(cell)
    return float(score or 0.0)


@contextmanager
def shared_kernel(unit: Unit, cell_timeouts: Callable[[int], float] | None = None) -> Iterator[SharedKernel]:
    """A started `SharedKernel` in a throw-away directory with the grading kernelspec."""
    with tempfile.TemporaryDirectory(prefix="llmlabs-mutants-") as tmp:
        spec_root = Path(tmp) / "course"
        write_kernelspec(spec_root)
        os.environ["JUPYTER_PATH"] = str(spec_root / ".llmlabs" / "jupyter")
        for key, value in KERNEL_ENV.items():
            os.environ.setdefault(key, value)
        # One kernel grades hundreds of mutants: the sandbox's whole-notebook wall and CPU
        # limits would kill it part-way (and each restart re-runs the reference), while
        # the per-cell timeouts already bound every mutant.
        names = [settings.LIMITS[limit].env for limit in ("notebook_seconds", "cpu_seconds")]
        saved = {name: os.environ.get(name) for name in names}
        for name in names:
            os.environ.setdefault(name, str(LONG_KERNEL_SECONDS))
        work = Path(tmp) / "work"
        work.mkdir()
        try:
            with SharedKernel(unit, work, cell_timeouts).running() as kernel:
                yield kernel
        finally:
            for name in [n for n, old in saved.items() if old is None]:
                os.environ.pop(name, None)


def run_mutants(
    unit: Unit,
    mutants: Sequence[Mutant],
    *,
    on_result: Callable[[str, Scores], None] | None = None,
) -> dict[str, Scores]:
    """Hand-written mutants: each graded through the last test cell it must fail."""
    results: dict[str, Scores] = {}
    with shared_kernel(unit) as kernel:
        for mutant in mutants:
            last = max(mutant.must_fail, key=lambda t: kernel.index[t])
            results[mutant.name] = kernel.grade(mutant.cell, mutant.source, last)
            if on_result:
                on_result(mutant.name, results[mutant.name])
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
    result = run_mutants(unit, mutants)
    # The kernel shares this process's stdout; the prefix marks our line among its chatter.
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
