"""The distribution: pins agree between pip and conda, and an installed wheel finds the
curriculum and datasets without the clone."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pins_pyproject() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["dev"]
    return dict(r.split("==") for r in reqs)


def _pins_conda() -> dict[str, str]:
    text = (ROOT / "environment.yml").read_text()
    return dict(re.findall(r"^\s+- ([A-Za-z0-9_.-]+)==(\S+)\s*$", text, re.M))


def test_every_dependency_is_pinned():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in meta["dependencies"] + meta["optional-dependencies"]["dev"]:
        assert "==" in req, f"unpinned requirement {req}"


def test_conda_environment_has_the_same_pins():
    assert _pins_conda() == _pins_pyproject()


def test_readme_installs_the_pinned_torch_first_and_ci_runs_the_readme_command():
    readme = (ROOT / "README.md").read_text()
    torch = _pins_pyproject()["torch"]
    commands = [ln for ln in readme.splitlines() if ln.startswith("python3.11 -m venv")]
    assert len(commands) == 2
    for cmd in commands:
        assert cmd.index(f"pip install torch=={torch}") < cmd.index("pip install -e")
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_wheel_carries_curriculum_and_datasets(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path,
            ROOT,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("llm_labs-*.whl"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("graders/_bundled/curriculum/") and n.endswith(".ipynb") for n in names)
    assert any(n.startswith("graders/_bundled/datasets/") for n in names)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from graders.paths import curriculum_dir, datasets_dir;"
        "from graders.grading.units import all_units;"
        "print(curriculum_dir()); print(datasets_dir()); print(len(all_units()))"
    )
    out = subprocess.run([sys.executable, "-c", code, site], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cur, data, count = out.stdout.split()
    assert Path(cur) == site / "graders" / "_bundled" / "curriculum"
    assert Path(data) == site / "graders" / "_bundled" / "datasets"
    assert int(count) >= 1
