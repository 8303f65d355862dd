import os
from pathlib import Path

import pytest

# Tests run offline and quiet, like a graded kernel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# `pytest -n 2` grades two notebooks at once on a 2-core machine: with torch's default of
# 2 threads per kernel the OpenMP threads oversubscribe the cores and spin, which made
# timings 3-10x slower and noisier. Graded kernels inherit this (graders.notebook.setup).
os.environ.setdefault("LLMLABS_THREADS", "1")

GRADING = Path(__file__).resolve().parent / "grading"


def pytest_collection_modifyitems(config, items):
    # Everything under tests/grading/ runs notebooks through nbgrader: slow by definition,
    # so `pytest -m "not slow"` is the fast subset.
    for item in items:
        if GRADING in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)
