"""The environment of every graded (and student) kernel.

nbgrader scores a test cell 0 if it writes anything to stderr, so library warnings,
progress bars and log lines must be silenced before the libraries are imported. The
grading kernelspec sets `KERNEL_ENV` before the interpreter starts; `setup()` is the
first cell of every notebook and does the same in a student's own Jupyter kernel, then
fixes seeds and the thread count so runs repeat.

`setup()` also makes a test cell that passes say so: in JupyterLab (and Notebook 7),
which send each cell's metadata with its execute request, a locked nbgrader test cell
that ran without error prints one line, `✓ <grade id> passed`, on stdout. The notebooks
stay as they are (every test cell still ends in its assert), and nbgrader's own runs
(autograde, Validate) send no cell metadata, so graded outputs do not change.
"""

from __future__ import annotations

import ast
import logging
import os
import random
import sys
import warnings
from typing import Any

from graders import settings

KERNEL_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
    "KINETO_LOG_LEVEL": "6",
    "TORCH_CPP_LOG_LEVEL": "ERROR",
    "PYTHONWARNINGS": "ignore",
    "PYTHONHASHSEED": "0",
    # One BLAS thread for NumPy: on a loaded machine OpenBLAS's spinning threads can make
    # a small SVD 500x slower. torch's thread count is set by setup() below.
    "OPENBLAS_NUM_THREADS": "1",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}


def setup(seed: int = 0, threads: int | None = None) -> None:
    """Silence stderr noise, fix seeds and the thread count. Safe to call twice."""
    for key, value in KERNEL_ENV.items():
        if key not in ("PYTHONHASHSEED", "MPLBACKEND"):
            os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore")
    for name in ("transformers", "torch", "torchao", "torch.utils._pytree", "peft", "matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.ERROR)
    n = threads or settings.THREADS.read()
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    # Seed torch only when the notebook already imported it: a NumPy-only unit should not
    # pay torch's import time.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
        try:
            torch.set_num_threads(n)
        except RuntimeError:
            pass
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.set_verbosity_error()
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    _confirm_passed_tests()


def _checks_something(source: str) -> bool:
    """False for a released test cell whose checks are all hidden: nothing but comments and
    `assert True` is left of it, and saying it passed would mislead."""
    try:
        body = ast.parse(source).body
    except SyntaxError:  # IPython syntax (magics): it ran, so it checked something
        return True
    return any(
        not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Constant) and node.test.value is True)
        for node in body
    )


def confirm_passed_test(result: Any) -> None:
    """IPython `post_run_cell` hook: one line on stdout after a test cell passed.

    Never raises and never writes to stderr: IPython would print the traceback of a failing
    hook to stderr, and nbgrader scores a cell that writes to stderr 0.
    """
    try:
        info = getattr(result, "info", None)
        meta = getattr(info, "cell_meta", None)
        cell = meta.get("nbgrader") if isinstance(meta, dict) else None
        if not (isinstance(cell, dict) and cell.get("grade") and not cell.get("solution")):
            return
        if not getattr(result, "success", False) or not _checks_something(str(getattr(info, "raw_cell", ""))):
            return
        print(f"✓ {cell.get('grade_id') or 'test'} passed")
    except Exception:  # a confirmation is not worth a broken cell
        pass


def _confirm_passed_tests() -> None:
    ipython = sys.modules.get("IPython")  # only inside an IPython kernel; never import it
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    if confirm_passed_test not in shell.events.callbacks.get("post_run_cell", []):
        shell.events.register("post_run_cell", confirm_passed_test)
