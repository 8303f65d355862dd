"""Small helpers shared by the tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_cli(*args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    exe = BIN / "llmlabs"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "graders.cli"]
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


def nbgrader(*args, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    exe = shutil.which("nbgrader", path=str(BIN)) or "nbgrader"
    proc = subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env=dict(os.environ, **(env or {})),
    )
    assert proc.returncode == 0, f"nbgrader {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def write_nb(path: Path, nb: dict) -> Path:
    path.write_text(json.dumps(nb))
    return path


def set_answer(nb: dict, grade_id: str, source: str) -> dict:
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell["source"] = source
            return nb
    raise KeyError(grade_id)
