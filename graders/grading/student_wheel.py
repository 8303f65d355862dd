"""The student distribution, `llm-labs-student`: what a released notebook needs, and no answer key.

`llmlabs student-wheel OUTDIR` writes one wheel that an instructor installs for students (a
JupyterHub image, lab machines, laptops). It holds:

- the notebook API, `graders/notebook/`, and the modules it imports (`graders/__init__.py`,
  `errors`, `settings`, `paths`), plus `student_cli` as the `llmlabs` command, which says that
  notebooks come from the instructor;
- the bundled data folders (`graders/_bundled/datasets/<name>/`: data, datasheet, manifest);
- the runtime requirements of `llm-labs`, with the same pins, less those only the instructor's
  side uses (`INSTRUCTOR_ONLY`).

It leaves out the curriculum (text forms with the solutions, source notebooks with the hidden
tests, mutants, reports), `graders/grading`, `graders/authoring`, `graders/sandbox`, the CLI,
and the scripts that built the data (`datasets/*.py`: `build_training_logs.py` names the
cause of every logged run, which the pre-training unit's hidden tests check).

The wheel is written directly (a zip with METADATA, WHEEL, entry_points.txt and RECORD), not by
a build backend: the instructor's environment has no hatchling (a dev dependency), and a wheel
written this way is the same byte for byte from the same tree (fixed timestamps, sorted
entries), so its sha256 can be published. Before writing, every `graders` import of every
module in it is checked to resolve inside it.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.metadata
import io
import re
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import graders
from graders import paths
from graders.errors import LLMLabsError

DISTRIBUTION = "llm-labs-student"
SUMMARY = "LLM Labs for students: the notebook API and bundled data, without solutions or hidden tests"
# Relative to the folder that holds `graders/`. PACKAGES are included whole (their *.py files).
MODULES = (
    "graders/__init__.py",
    "graders/errors.py",
    "graders/settings.py",
    "graders/paths.py",
    "graders/processes.py",
    "graders/student_cli.py",
)
PACKAGES = ("graders/notebook",)
DATASETS_ARC = "graders/_bundled/datasets"  # where graders.paths looks inside an installed package
CONSOLE_SCRIPT = "llmlabs = graders.student_cli:main"
# Runtime requirements of llm-labs that only the CLI and `llmlabs grade` use. Any other
# requirement goes to students as well (a new one is theirs unless it is added here).
INSTRUCTOR_ONLY = frozenset({"typer", "rich", "dask", "distributed", "psycopg", "psycopg-binary"})
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

DESCRIPTION = """\
# LLM Labs, student installation

The runtime that the released notebooks of an LLM Labs course import: the notebook API
(`graders.notebook`) and the bundled data and tiny model, with the same pinned libraries as
the full `llm-labs` (PyTorch, transformers, nbgrader, JupyterLab, ...). Open a released
notebook in JupyterLab, run it, and press Validate.

It holds no units, reference solutions or hidden tests: notebooks come from your instructor.
Install it or `llm-labs` in an environment, not both (they share the `graders` package).
"""


class StudentWheelError(LLMLabsError, RuntimeError):
    """The student wheel cannot be built from this tree."""


@dataclass(frozen=True)
class StudentWheel:
    path: Path
    files: tuple[str, ...]  # archive names, the dist-info's included
    sha256: str

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def _source_root() -> Path:
    return Path(graders.__file__).resolve().parent.parent


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    if not match:
        raise StudentWheelError(f"cannot read the requirement {req!r}")
    return _normalise(match[1])


def project_metadata() -> tuple[str, list[str], list[str]]:
    """(requires-python, classifiers, runtime requirements) of llm-labs: from pyproject.toml in
    a clone, else from the installed distribution's metadata."""
    pyproject = _source_root() / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text())["project"]
        if project.get("name") == "llm-labs":
            return project["requires-python"], list(project["classifiers"]), list(project["dependencies"])
    try:
        meta = importlib.metadata.metadata("llm-labs")
        requires = importlib.metadata.requires("llm-labs") or []
    except importlib.metadata.PackageNotFoundError:
        raise StudentWheelError(
            "llm-labs is neither a clone here nor installed: nothing to build from"
        ) from None
    runtime = [r for r in requires if "extra ==" not in r]
    return meta["Requires-Python"], meta.get_all("Classifier") or [], runtime


def student_requirements() -> list[str]:
    """llm-labs's runtime requirements, pins unchanged, less INSTRUCTOR_ONLY."""
    return [r for r in project_metadata()[2] if _requirement_name(r) not in INSTRUCTOR_ONLY]


def module_files() -> dict[str, Path]:
    """Archive name -> source file of the student wheel's Python modules."""
    root = _source_root()
    files = {rel: root / rel for rel in MODULES}
    for package in PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            files[f"{package}/{path.name}"] = path
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise StudentWheelError(f"the student wheel's modules are missing: {', '.join(missing)}")
    return dict(sorted(files.items()))


def _module_name(arcname: str) -> str:
    return arcname.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def check_imports(files: dict[str, Path]) -> None:
    """Every `graders` module that a module of the wheel imports (TYPE_CHECKING imports too)
    must be in the wheel: otherwise a released notebook would fail with ModuleNotFoundError."""
    included = {_module_name(arc) for arc in files}
    root = _source_root()
    problems = []
    for arc, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            wanted: list[str] = []
            if isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                wanted = [node.module]
                # `from graders.pkg import name`: a module if graders/pkg/name.py (or a package) exists
                for alias in node.names:
                    sub = root / node.module.replace(".", "/") / alias.name
                    if sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file():
                        wanted.append(f"{node.module}.{alias.name}")
            for name in wanted:
                if (name == "graders" or name.startswith("graders.")) and name not in included:
                    problems.append(f"{arc} imports {name}")
    if problems:
        raise StudentWheelError(
            "the student wheel would not import: "
            + "; ".join(problems)
            + " (only graders.notebook and what it imports go to students)"
        )


def dataset_files() -> dict[str, Path]:
    """Archive name -> file of every bundled data folder (each folder with a SHA256SUMS
    manifest, as graders.notebook.data expects); never the build scripts beside them."""
    datasets = paths.datasets_dir()
    files: dict[str, Path] = {}
    for folder in sorted(p for p in datasets.iterdir() if (p / "SHA256SUMS").is_file()):
        for path in paths.regular_files(folder, skip=("__pycache__",)):
            rel = path.relative_to(datasets)
            if path.suffix not in (".py", ".pyc"):
                files[f"{DATASETS_ARC}/{rel.as_posix()}"] = path
    if not files:
        raise StudentWheelError(f"no bundled data folders (with SHA256SUMS) in {datasets}")
    return files


def _metadata_text(version: str) -> str:
    requires_python, classifiers, _ = project_metadata()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {DISTRIBUTION}",
        f"Version: {version}",
        f"Summary: {SUMMARY}",
        "License: MIT",
        f"Requires-Python: {requires_python}",
        *(f"Classifier: {c}" for c in classifiers),
        *(f"Requires-Dist: {r}" for r in student_requirements()),
        "Description-Content-Type: text/markdown",
    ]
    return "\n".join(lines) + "\n\n" + DESCRIPTION


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_student_wheel(outdir: Path) -> StudentWheel:
    """Write `llm_labs_student-<version>-py3-none-any.whl` into `outdir`; return it."""
    version = graders.__version__
    modules = module_files()
    check_imports(modules)
    contents: dict[str, bytes] = {arc: path.read_bytes() for arc, path in modules.items()}
    contents.update({arc: path.read_bytes() for arc, path in dataset_files().items()})
    dist_info = f"llm_labs_student-{version}.dist-info"
    contents[f"{dist_info}/METADATA"] = _metadata_text(version).encode()
    contents[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: llmlabs student-wheel ({version})\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode()
    contents[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{CONSOLE_SCRIPT}\n".encode()
    record = [f"{arc},{_record_hash(data)},{len(data)}" for arc, data in contents.items()]
    contents[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for arc, data in contents.items():  # modules and data sorted, then the dist-info, RECORD last
            info = zipfile.ZipInfo(arc, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            # Weights deflate by 7% at the cost of most of the build's time: stored as they are.
            info.compress_type = zipfile.ZIP_STORED if arc.endswith(".safetensors") else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise StudentWheelError(f"{outdir} exists and is not a directory")
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"llm_labs_student-{version}-py3-none-any.whl"
    path.write_bytes(buffer.getvalue())
    return StudentWheel(path, tuple(contents), hashlib.sha256(buffer.getvalue()).hexdigest())
