"""Installed in every grading kernel at start-up: caps the bytes a notebook may print.

A notebook printing megabytes would bloat the graded notebook and the gradebook's
feedback; past the budget, output is dropped and one note says so.
"""

from __future__ import annotations

import sys

NOTE = "\n[output truncated by the grader: this notebook printed more than {mb} MB]\n"


class _Budget:
    def __init__(self, nbytes: int):
        self.remaining = nbytes
        self.noted = False


class LimitedStream:
    def __init__(self, stream, budget: _Budget, mb: int):
        self._stream, self._budget, self._mb = stream, budget, mb

    def write(self, text):
        n = len(text)
        budget = self._budget
        if budget.remaining > 0:
            chunk = text[: budget.remaining]
            budget.remaining -= len(chunk)
            self._stream.write(chunk)
            if len(chunk) == n:
                return n
        if not budget.noted:
            budget.noted = True
            sys.__dict__.get("stdout", self._stream).write(NOTE.format(mb=self._mb))
        return n

    def __getattr__(self, name):
        return getattr(self._stream, name)


def install(output_mb: int) -> None:
    budget = _Budget(output_mb * 2**20)
    sys.stdout = LimitedStream(sys.stdout, budget, output_mb)
    sys.stderr = LimitedStream(sys.stderr, budget, output_mb)
