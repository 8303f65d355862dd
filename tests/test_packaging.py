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
from packaging.specifiers import SpecifierSet

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
    # `python3`, whichever supported version the learner has (the README says how to pick one).
    lines = readme.splitlines()
    commands = [ln for ln in lines if ln.startswith("python3 -m venv") and "-e '.[dev]'" in ln]
    assert len(commands) == 2, f"expected the README's two commands, found {commands}"
    for cmd in commands:
        assert cmd.index(f"pip install torch=={torch}") < cmd.index("pip install -e")
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci, "CI must run the README's test command verbatim"
    after = ci.splitlines()[ci.splitlines().index(commands[1]) :]
    assert ".ci/other_pythons.sh" in after, "after the suite, CI must check the other Pythons"


def _minor_versions(spec: str) -> list[str]:
    allowed = SpecifierSet(spec)
    # A minor version is supported when its later patch releases are (3.11 from 3.11.5 on).
    return [f"3.{m}" for m in range(0, 30) if allowed.contains(f"3.{m}.99")]


def test_supported_pythons_agree_everywhere():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    supported = _minor_versions(meta["requires-python"])
    assert "3.11" in supported and "3.13" in supported, supported
    classifiers = [c.rsplit(" :: ", 1)[1] for c in meta["classifiers"] if c.startswith("Programming")]
    assert classifiers == supported
    conda = re.search(r"^\s+- python(\S+)\s*$", (ROOT / "environment.yml").read_text(), re.M)
    assert conda and _minor_versions(conda[1]) == supported, "environment.yml's python differs"
    ci = re.search(r'^SUPPORTED="([^"]*)"', (ROOT / ".ci" / "other_pythons.sh").read_text(), re.M)
    assert ci and ci[1].split() == supported, ".ci/other_pythons.sh checks other versions"
    readme = (ROOT / "README.md").read_text()
    assert all(v in readme for v in supported), "the README names every supported version"


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
