"""What a grading kernel can read under bubblewrap: the answer key nowhere, what a
released notebook needs everywhere (issue 25). Runs a real `bwrap` with the kernel's own
mount options around a short Python program instead of a kernel: milliseconds, not a
grading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from graders import paths
from graders.sandbox import visibility
from graders.sandbox.bwrap import bwrap_command
from graders.sandbox.limits import bwrap_available

PROBE = r"""
import json, os, sys
out = {"graders": None, "datasets": None, "visible": {}, "libs": False, "key_reader": None}
import graders.notebook, graders.notebook.data as data
out["graders"] = graders.notebook.__file__
out["datasets"] = len(os.listdir(str(data.datasets_dir()))) if hasattr(data, "datasets_dir") else None
import numpy, torch
out["libs"] = True
for p in json.loads(sys.argv[1]):
    if os.path.isdir(p):
        out["visible"][p] = bool(os.listdir(p))
    else:
        out["visible"][p] = os.path.exists(p) and bool(open(p, "rb").read(1))
try:
    from graders.authoring.reference import reference_cells
    from graders.grading.units import get_unit
    out["key_reader"] = len(reference_cells(get_unit("linear_algebra").text_path))
except Exception as e:
    out["key_reader"] = type(e).__name__
print(json.dumps(out))
"""


def _run_in_view(probe_paths: list[str], env: dict[str, str] | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="llmlabs-vis-")) / "work"  # as the launcher's scratch/work
    work.mkdir()
    conn = work / "conn.json"
    conn.write_text("{}")
    argv = [sys.executable, "-c", PROBE, json.dumps(probe_paths), "-f", str(conn)]
    cmd = bwrap_command(argv, work, None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")
def test_the_kernel_sees_no_answer_key_but_everything_a_notebook_needs():
    key = [str(p) for p in paths.curriculum_dirs()]
    checkout = paths.checkout_root()
    extra = [str(checkout / ".git"), str(checkout / "tests")] if checkout else []
    extra += visibility.data_build_scripts()  # build_training_logs.py holds the diagnosis labels
    home = str(Path.home())
    out = _run_in_view(key + extra + [str(paths.assignment_cache_dir()), str(paths.datasets_dir())])
    assert out["libs"], out
    assert out["graders"].startswith(str(Path(visibility.__file__).resolve().parents[1])), out
    leaked = [p for p, seen in out["visible"].items() if seen and p != str(paths.datasets_dir())]
    assert not leaked, f"the kernel can read the answer key at {leaked}"
    assert out["visible"][str(paths.datasets_dir())], "the bundled datasets must stay readable"
    assert isinstance(out["key_reader"], str) and out["key_reader"].endswith("Error"), (
        f"the project's own reference reader still works in the kernel: {out['key_reader']}"
    )
    assert os.path.realpath(home) in visibility.covered_folders(), "the grader's home must be covered"


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")
def test_a_cache_and_curriculum_outside_the_covered_folders_are_hidden(monkeypatch):
    # An override root and a cache dir elsewhere on disk (not under /tmp, home or the clone).
    base = Path(tempfile.mkdtemp(prefix="llmlabs-vis-", dir="/var/tmp"))
    try:
        (base / "root" / "curriculum").mkdir(parents=True)
        (base / "root" / "curriculum" / "answer.py").write_text("secret")
        (base / "cache" / "assignments").mkdir(parents=True)
        (base / "cache" / "assignments" / "x.gradebook.db").write_text("secret")
        monkeypatch.setenv("LLMLABS_ROOT", str(base / "root"))
        monkeypatch.setenv("LLMLABS_CACHE_DIR", str(base / "cache"))
        view = visibility.kernel_view()
        assert str(base / "root" / "curriculum") in view.hide and str(base / "cache") in view.hide, view
        out = _run_in_view([str(base / "root" / "curriculum"), str(base / "cache")], env=dict(os.environ))
        assert not any(out["visible"].values()), out["visible"]
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_a_wheels_bundled_curriculum_is_hidden_inside_the_bound_package(monkeypatch, tmp_path):
    # Course folders another test's nbgrader config put in this process's environment are
    # not this test's business.
    monkeypatch.delenv("LLMLABS_HIDE_PATHS", raising=False)
    # A wheel keeps the curriculum inside the package the kernel imports: bound back with the
    # package, then covered again.
    site = tmp_path / "site"
    package = site / "graders"
    (package / "_bundled" / "curriculum").mkdir(parents=True)
    monkeypatch.setattr(visibility, "covered_folders", lambda: [str(tmp_path)])
    monkeypatch.setattr(visibility, "kernel_needs", lambda: [str(package), str(package / "_bundled")])
    monkeypatch.setattr(visibility, "answer_key_paths", lambda: [str(package / "_bundled" / "curriculum")])
    monkeypatch.setattr(visibility, "data_build_scripts", lambda: [])
    view = visibility.kernel_view()
    assert view.bind_back == [str(package)], view
    assert view.hide == [str(package / "_bundled" / "curriculum")], view
    args = view.bwrap_args()
    assert args.index("--ro-bind") < len(args) - 2 and args[-2:] == ["--tmpfs", view.hide[0]], args
