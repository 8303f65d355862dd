import os
import tempfile
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
# Generated assignments are cached per content hash; the suite keeps its own cache, shared
# by the xdist workers of one run, instead of writing to the user's ~/.cache/llmlabs.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
_CACHE = Path(tempfile.gettempdir()) / f"llmlabs-tests-{_RUN}" / "cache"
os.environ.setdefault("LLMLABS_CACHE_DIR", str(_CACHE))

HERE = Path(__file__).resolve().parent
# tests/grading/ runs notebooks through nbgrader and tests/browser/ drives JupyterLab in
# Chromium: slow by definition, so `pytest -m "not slow"` is the fast subset.
SLOW_DIRS = (HERE / "grading", HERE / "browser")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parents = Path(str(item.fspath)).resolve().parents
        if any(d in parents for d in SLOW_DIRS):
            item.add_marker(pytest.mark.slow)
