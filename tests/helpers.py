"""Small helpers shared by the tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_cli(*args, cwd=None, timeout=600, env=None) -> subprocess.CompletedProcess:
    """`python -m graders ARGS` (the same entry point as the `llmlabs` script, which
    tests/test_cli.py checks separately)."""
    cmd = [sys.executable, "-m", "graders"]
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


def nbgrader(*args, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    exe = shutil.which("nbgrader", path=str(BIN)) or "nbgrader"
    proc = subprocess.run(
        [exe, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
    )
    assert proc.returncode == 0, f"nbgrader {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def write_nb(path: Path, nb: dict) -> Path:
    path.write_text(json.dumps(nb))
    return path


def one_error_line(proc) -> str:
    """The single line an error leaves on stderr, with exit code 2 and no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]
