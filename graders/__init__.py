"""LLM Labs grading engine: assertions, measurements, data, the notebook builder and the
nbgrader grading path used by the `llmlabs` CLI and the test suite."""

__version__ = "0.1.0"
