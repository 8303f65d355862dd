"""The environment of every graded (and student) kernel.

nbgrader scores a test cell 0 if it writes anything to stderr, so library warnings,
progress bars and log lines must be silenced before the libraries are imported. The
grading kernelspec sets `KERNEL_ENV` before the interpreter starts; `setup()` is the
first cell of every notebook and does the same in a student's own Jupyter kernel, then
fixes seeds and the thread count so runs repeat.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import warnings

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
