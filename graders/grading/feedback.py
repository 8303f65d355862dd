"""Feedback that never shows hidden tests.

nbgrader's `ClearHiddenTests` removes hidden tests from a cell's *source*, but the
traceback a failing hidden test leaves in the cell's *output* quotes the hidden lines.
This preprocessor, run before `ClearHiddenTests` in `GenerateFeedback`, cuts each error
output of a cell with hidden tests down to its last line (`AssertionError: message`),
which is what the learner needs. A message that carries tracebacks of its own (a
multi-process failure: `graders.notebook.parallel.WorkerError` holds every rank's) keeps
its unindented lines, the ranks' headings and exceptions, and loses the quoted code.
"""

from __future__ import annotations

from typing import Any

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

BEGIN = "### BEGIN HIDDEN TESTS"


class StripHiddenTracebacks(Preprocessor):
    # nbconvert preprocessors are off unless enabled; this one must always run.
    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell: Any, resources: Any, index: int) -> tuple[Any, Any]:
        if cell.cell_type == "code" and BEGIN in cell.source:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    evalue = without_code(str(output.get("evalue", "")))
                    output["evalue"] = evalue
                    summary = f"{output.get('ename', 'Error')}: {evalue}".rstrip(": ")
                    output["traceback"] = [summary + "  (traceback hidden: it quotes hidden tests)"]
        return cell, resources


def without_code(message: str) -> str:
    """`message` without the tracebacks it quotes: their frames and code lines are indented
    (and stack dumps' too), their headings say so; exception lines and headings stay."""
    kept = [
        line
        for line in message.splitlines()
        if line.strip()
        and not line[:1].isspace()
        and not line.startswith(("Traceback (most recent call last)", "Current thread ", "Thread 0x"))
    ]
    return "\n".join(kept)
