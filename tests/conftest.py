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

HERE = Path(__file__).resolve().parent
# tests/grading/ runs notebooks through nbgrader and tests/browser/ drives JupyterLab in
# Chromium: slow by definition, so `pytest -m "not slow"` is the fast subset.
SLOW_DIRS = (HERE / "grading", HERE / "browser")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parents = Path(str(item.fspath)).resolve().parents
        if any(d in parents for d in SLOW_DIRS):
            item.add_marker(pytest.mark.slow)
