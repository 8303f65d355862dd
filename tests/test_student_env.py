"""The student installation (`llmlabs student-wheel`): it runs released notebooks and their
visible tests, nbgrader's Validate included, and holds no reference solution or hidden test."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import re
import site
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from graders import cells
from graders.authoring.reference import reference_cells
from graders.grading.student_wheel import (
    DISTRIBUTION,
    INSTRUCTOR_ONLY,
    StudentWheelError,
    build_student_wheel,
    check_imports,
    module_files,
    student_requirements,
)
from graders.grading.units import all_units, get_unit
from tests.helpers import one_error_line, run_cli

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
MIN_CHARS = 30  # shorter lines ("with torch.no_grad():") are common code, not the answer key


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_student_wheel(tmp_path_factory.mktemp("student-wheel"))


def _answer_key() -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """([(unit, kind, text)] of every reference answer cell, solution and hidden-test block;
    {line: unit} for every line of those blocks at least MIN_CHARS long, stripped}), from the
    text forms."""
    blocks, lines = [], {}
    for unit in all_units():
        text = unit.text_path.read_text()
        blocks += [
            (unit.name, "answer cell", src.strip()) for src in reference_cells(unit.text_path).values()
        ]
        for kind, pattern in (("solution", SOLUTION), ("hidden tests", HIDDEN)):
            for block in pattern.findall(text):
                blocks.append((unit.name, kind, block.strip()))
                lines |= {ln.strip(): unit.name for ln in block.splitlines() if len(ln.strip()) >= MIN_CHARS}
    return [b for b in blocks if len(b[2]) >= MIN_CHARS], lines


def _json_strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in _json_strings(k) + _json_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _json_strings(v)]
    return []


def _texts(path: Path) -> list[str]:
    """The file as text, and for JSON (a notebook, data) its strings unescaped as well."""
    data = path.read_bytes()
    texts = [data.decode("utf-8", "replace")]
    if path.suffix in (".json", ".jsonl", ".ipynb"):
        try:
            if path.suffix == ".jsonl":
                docs = [json.loads(ln) for ln in texts[0].splitlines() if ln.strip()]
            else:
                docs = [json.loads(texts[0])]
        except ValueError:
            return texts
        texts.append("\n".join(s for doc in docs for s in _json_strings(doc)))
    return texts


def find_answer_key(files: list[Path]) -> list[tuple[Path, str, str, str]]:
    """(file, unit, kind, text) wherever a reference answer or hidden test, whole or one of
    its lines, is in `files`."""
    blocks, lines = _answer_key()
    found = []
    for path in files:
        for text in _texts(path):
            found += [
                (path, lines[ln], "line", ln)
                for ln in sorted(lines.keys() & {t.strip() for t in text.splitlines()})
            ]
            if path.suffix != ".safetensors":  # weights: the line search above covers them
                found += [(path, unit, kind, b) for unit, kind, b in blocks if b in text]
    return found


def test_the_search_finds_the_answer_key_where_it_is():
    # The positive control: the same search finds every solution and hidden-test block, and
    # each of their lines, of a unit in its source notebook (JSON, strings escaped).
    blocks, lines = _answer_key()
    for name in ("linear_algebra", "pretraining"):
        found = find_answer_key([get_unit(name).notebook_path])
        wanted = {(kind, b) for unit, kind, b in blocks if unit == name and kind != "answer cell"}
        assert wanted and wanted <= {(kind, b) for _, _, kind, b in found}, name
        assert {ln for ln, unit in lines.items() if unit == name} <= {
            b for _, _, kind, b in found if kind == "line"
        }


def test_wheel_holds_the_notebook_api_and_data_and_no_answer_key(wheel):
    names = zipfile.ZipFile(wheel.path).namelist()
    assert names == list(wheel.files)
    modules = {n for n in names if n.endswith(".py")}
    notebook_api = {f"graders/notebook/{p.name}" for p in (ROOT / "graders" / "notebook").glob("*.py")}
    assert modules == notebook_api | {
        "graders/__init__.py",
        "graders/errors.py",
        "graders/settings.py",
        "graders/paths.py",
        "graders/processes.py",
        "graders/student_cli.py",
    }
    for name in names:
        assert name.startswith(("graders/", "llm_labs_student-")), name
        assert not name.startswith(("graders/grading/", "graders/authoring/", "graders/sandbox/")), name
        assert "curriculum" not in name and not name.endswith((".ipynb", "unit.toml")), name
    # Every data folder with its manifest; none of the scripts that built it (the pre-training
    # logs' build script names each run's cause, which the hidden tests check).
    for folder in (ROOT / "datasets").iterdir():
        if (folder / "SHA256SUMS").is_file():
            for path in folder.iterdir():
                assert f"graders/_bundled/datasets/{folder.name}/{path.name}" in names
    assert not [n for n in names if n.startswith("graders/_bundled/datasets/") and n.endswith(".py")]
    # RECORD is right (pip checks it), and the same tree gives the same bytes.
    zf = zipfile.ZipFile(wheel.path)
    record = zf.read(f"llm_labs_student-{wheel.path.name.split('-')[1]}.dist-info/RECORD").decode()
    for row in record.splitlines():
        name, digest, size = row.rsplit(",", 2)
        if digest:
            data = zf.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data), name


def test_the_command_writes_the_wheel_and_says_what_it_is(wheel, tmp_path):
    proc = run_cli("student-wheel", tmp_path / "dist")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dist" / wheel.path.name).is_file() and wheel.sha256 in proc.stdout, proc.stdout
    (tmp_path / "file").write_text("")
    proc = run_cli("student-wheel", tmp_path / "file")
    assert (
        proc.returncode == 2
        and one_error_line(proc) == f"error: {tmp_path / 'file'} exists and is not a directory"
    )


def test_the_student_llmlabs_points_to_the_instructor(capsys):
    from graders import student_cli

    assert student_cli.main([]) == 0 and "notebooks" in capsys.readouterr().out
    for command in ("start", "check", "units", "course", "grade", "student-wheel"):
        assert student_cli.main([command, "linear_algebra"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and f"`llmlabs {command}`" in err and "instructor" in err, err


def test_a_notebook_module_that_imports_grading_stops_the_build(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from graders.grading.units import get_unit\nfrom graders import authoring\n")
    files = {**module_files(), "graders/notebook/bad.py": bad}
    with pytest.raises(
        StudentWheelError, match="bad.py imports graders.grading.units.*bad.py imports graders.authoring"
    ):
        check_imports(files)
    check_imports(module_files())


def test_wheel_is_reproducible(wheel, tmp_path):
    assert build_student_wheel(tmp_path).sha256 == wheel.sha256


def test_wheel_requires_the_same_pins_less_the_instructors_own(wheel):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    meta = zipfile.ZipFile(wheel.path).read(next(n for n in wheel.files if n.endswith("/METADATA"))).decode()
    requires = re.findall(r"^Requires-Dist: (.+)$", meta, re.M)
    assert requires == student_requirements()
    assert requires == [r for r in project["dependencies"] if r.split("==")[0] not in INSTRUCTOR_ONLY]
    assert {"torch", "nbgrader", "jupyterlab"} <= {r.split("==")[0] for r in requires}
    assert f"Requires-Python: {project['requires-python']}" in meta and f"Name: {DISTRIBUTION}" in meta


def _graders_imports(source: str) -> set[str]:
    code = "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!")))
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("graders")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("graders"):
            found |= {f"{node.module}:{a.name}" for a in node.names}
    return found


def test_every_notebook_imports_only_what_the_student_wheel_has(wheel):
    # Every cell of every unit (hidden tests too: the same names, run at grading time).
    modules = {n.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for n in wheel.files}
    import graders.notebook as api

    for unit in all_units():
        for cell in unit.notebook()["cells"]:
            if cell["cell_type"] != "code":
                continue
            for name in _graders_imports(cells.source(cell)):
                module, _, attr = name.partition(":")
                assert module in modules, f"{unit.name}: imports {module}, not in the student wheel"
                if module == "graders.notebook" and attr:
                    assert attr in api.__all__ or f"{module}.{attr}" in modules, f"{unit.name}: {name}"


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("timeout", 600)
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


# Appended to the filled notebook: where the kernel's graders comes from, and what it can reach.
KERNEL_CHECK = """\
import importlib.util, json, sys
import graders, graders.paths
try:
    curriculum = str(graders.paths.curriculum_dir())
except FileNotFoundError:
    curriculum = None
parts = ["graders.grading", "graders.authoring", "graders.sandbox", "graders.cli", "graders.cells"]
with open("kernel_env.json", "w") as f:
    json.dump({"executable": sys.executable, "graders": graders.__file__, "curriculum": curriculum,
               "datasets": str(graders.paths.datasets_dir()),
               "found": [m for m in parts if importlib.util.find_spec(m) is not None]}, f)
"""


LOAD_ALL = """\
from graders.notebook import data, perplexity
assert data.load_corpus("validation") and data.load_corpus("train"); print("corpus")
assert data.load_task("train") and data.load_task("validation"); print("task")
assert data.load_training_logs()["runs"]; print("logs")
model, tok = data.load_model(), data.load_tokenizer(); print("model")
ppl = perplexity(model, data.validation_ids(max_tokens=256))
assert 1 < ppl < tok.vocab_size, ppl; print("perplexity")
"""


@pytest.mark.slow
def test_student_env_validates_a_released_notebook_and_holds_no_answer_key(wheel, tmp_path):
    start = time.monotonic()
    # A fresh environment without llm-labs: a venv whose only link to this one is a .pth with
    # its site-packages (the libraries), so the editable install's own .pth (the checkout) is
    # never processed. Then the wheel is installed as a student would, offline.
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", venv]).returncode == 0
    python = venv / "bin" / "python"
    purelib = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    )
    assert purelib.is_relative_to(venv), purelib
    libs = [p for p in site.getsitepackages() if Path(p).is_dir()] + [sysconfig.get_path("purelib")]
    (purelib / "_libraries.pth").write_text("\n".join(dict.fromkeys(libs)) + "\n")
    # Hugging Face's `datasets` library beside `graders/`, as in many students' environments.
    (purelib / "datasets").mkdir()
    (purelib / "datasets" / "__init__.py").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JUPYTER", "VIRTUAL_ENV"))}
    # The user's own Jupyter kernels and nbgrader config stay out: the kernel is this venv's.
    env.update(HF_HUB_OFFLINE="1", LLMLABS_THREADS="1")
    env.update(
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config")
    )
    proc = _run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile", wheel.path],
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr

    # The student's `llmlabs` says where notebooks come from.
    llmlabs = venv / "bin" / "llmlabs"
    proc = _run([llmlabs, "--version"], env=env, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"{DISTRIBUTION} 0.1.0", proc
    proc = _run([llmlabs, "start", "linear_algebra"], env=env, cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "instructor" in proc.stderr, proc

    # Every bundled dataset and the tiny model load there (checked against their manifests).
    proc = _run([python, "-c", LOAD_ALL], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["corpus", "task", "logs", "model", "perplexity"], proc.stdout

    # Released by the instructor (nbgrader generate_assignment), filled with the reference
    # answers, then validated in the student environment, as the Validate button does.
    from graders.grading.release import release_unit

    unit = get_unit("linear_algebra")
    released = release_unit(unit, tmp_path / "release")
    nb = json.loads(released.read_text())
    for gid, src in reference_cells(unit.text_path).items():
        cells.set_source(nb, gid, src)
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": KERNEL_CHECK, "outputs": [],
                        "execution_count": None})  # fmt: skip
    work = released.parent  # the release/ folder as students get it (the notebook, its files)
    released.write_text(json.dumps(nb))
    proc = _run([python, "-m", "nbgrader", "validate", released.name], env=env, cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success! Your notebook passes all the tests." in proc.stdout, proc.stdout + proc.stderr
    kernel = json.loads((work / "kernel_env.json").read_text())
    assert Path(kernel["executable"]).parent == venv / "bin", kernel
    assert Path(kernel["graders"]).is_relative_to(purelib), kernel
    assert kernel["curriculum"] is None and kernel["found"] == [], kernel
    assert Path(kernel["datasets"]) == purelib / "graders" / "_bundled" / "datasets", kernel
    # Nothing installed holds a reference answer or a hidden test.
    dist_info = next(purelib.glob("llm_labs_student-*.dist-info"))
    installed = [purelib / row.split(",")[0] for row in (dist_info / "RECORD").read_text().splitlines()]
    installed = [p.resolve() for p in installed if p.is_file()]
    assert llmlabs.resolve() in installed and len(installed) >= len(wheel.files)
    assert find_answer_key(installed) == []
    print(f"student env: {len(installed)} files installed, {wheel.size / 1e6:.1f} MB wheel, "
          f"{time.monotonic() - start:.0f} s")  # fmt: skip
