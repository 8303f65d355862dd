"""Feedback that never shows hidden tests.

nbgrader's `ClearHiddenTests` removes hidden tests from a cell's *source*, but the
traceback a failing hidden test leaves in the cell's *output* quotes the hidden lines.
This preprocessor, run before `ClearHiddenTests` in `GenerateFeedback`, cuts each error
output of a cell with hidden tests down to its last line (`AssertionError: message`),
which is what the learner needs.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

BEGIN = "### BEGIN HIDDEN TESTS"


class StripHiddenTracebacks(Preprocessor):
    # nbconvert preprocessors are off unless enabled; this one must always run.
    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and BEGIN in cell.source:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    summary = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".rstrip(": ")
                    output["traceback"] = [summary + "  (traceback hidden: it quotes hidden tests)"]
        return cell, resources
