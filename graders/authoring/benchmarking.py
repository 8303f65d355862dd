"""What every unit's `benchmark.py` does before it measures: quiet the libraries as a
notebook kernel does, and execute the unit's reference solutions from its text form.

    from graders.authoring.benchmarking import load_reference, quiet_environment

    quiet_environment()  # before torch/transformers are imported: some read it at import
    import torch  # noqa: E402

    ref = load_reference(__file__)  # the unit whose folder holds this benchmark.py
    ref["tiled_attention"](q, k, v)
"""

from __future__ import annotations

import os
from pathlib import Path

from graders.authoring.reference import exec_reference
from graders.notebook.kernel import KERNEL_ENV

# A benchmark is a script: it draws figures off-screen (the kernel's inline backend needs
# a notebook) and keeps the interpreter's own hash seed.
_NOT_FOR_SCRIPTS = ("MPLBACKEND", "PYTHONHASHSEED")


def quiet_environment() -> None:
    """The notebook kernel's environment (offline hub, no progress bars or library chatter),
    without overriding what the caller set."""
    for key, value in KERNEL_ENV.items():
        if key not in _NOT_FOR_SCRIPTS:
            os.environ.setdefault(key, value)
    os.environ.setdefault("MPLBACKEND", "Agg")


def text_form(benchmark_file: str | Path) -> Path:
    """curriculum/NN_unit/benchmark.py -> curriculum/NN_unit/unit.py."""
    folder = Path(benchmark_file).resolve().parent
    path = folder / f"{folder.name.partition('_')[2]}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no text form {path.name} beside {benchmark_file}")
    return path


def load_reference(
    benchmark_file: str | Path,
    namespace: dict | None = None,
    kinds: tuple[str, ...] = ("setup", "answer"),
    only: tuple[str, ...] | None = None,
) -> dict:
    """Execute the unit's reference cells of `kinds` (solution markers dropped; only the
    grade_ids `only` names, in that order, if given) in `namespace` (a fresh one by
    default); return it. Benchmarks never keep a copy of the reference that could drift
    from the notebook."""
    path = text_form(benchmark_file)
    namespace = {"__name__": f"{path.stem}_reference"} | (namespace or {})
    return exec_reference(path, namespace, kinds=kinds, only=only)
