"""The errors a user can act on. Each message is one line that says what to do; the CLI
catches `LLMLabsError` and prints it with exit code 2, never a traceback."""

from __future__ import annotations


class LLMLabsError(Exception):
    """Base of every error whose message is meant for the person running llmlabs."""


class SettingError(LLMLabsError, ValueError):
    """An LLMLABS_* environment variable has a value it does not accept."""


class UnknownUnit(LLMLabsError, LookupError):
    """No unit by that name, folder or number."""


class SubmissionError(LLMLabsError, ValueError):
    """A notebook that cannot be graded; the message is one line for the learner."""


class GradingError(LLMLabsError, RuntimeError):
    """nbgrader could not run the grading job at all (not: a submission lost points)."""


class ReleaseError(GradingError):
    """nbgrader could not generate the student version of a unit."""


class ExchangeSetupError(LLMLabsError, OSError):
    """nbgrader's exchange directory cannot be created."""


class BuildError(LLMLabsError, ValueError):
    """A unit's text form cannot be built into a notebook."""


class DataIntegrityError(LLMLabsError, RuntimeError):
    """A bundled data file is missing or its sha256 differs from the manifest."""
