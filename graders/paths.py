"""Find the bundled `curriculum/` and `datasets/` folders.

From a clone (editable install; `pyproject.toml` beside `graders/`) they sit beside the
`graders` package; a wheel carries copies inside the package as `graders/_bundled/`.
`LLMLABS_ROOT` overrides both, so an instructor can point the CLI at a fork of the curriculum.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from graders import settings

_PACKAGE = Path(__file__).resolve().parent


def _roots() -> list[Path]:
    override = settings.ROOT.read()
    # Beside the package only in a clone: in site-packages, a `datasets/` beside `graders/` is
    # Hugging Face's `datasets` library, which students may well have installed.
    clone = [_PACKAGE.parent] if (_PACKAGE.parent / "pyproject.toml").is_file() else []
    return ([override] if override else []) + clone + [_PACKAGE / "_bundled"]


def _find(name: str) -> Path:
    for root in _roots():
        candidate = root / name
        if candidate.is_dir():
            return candidate
    searched = ", ".join(str(r / name) for r in _roots())
    raise FileNotFoundError(f"cannot find the {name}/ folder; looked in: {searched}")


def curriculum_dir() -> Path:
    return _find("curriculum")


def datasets_dir() -> Path:
    return _find("datasets")


def curriculum_dirs() -> list[Path]:
    """Every `curriculum/` folder llmlabs could read: the override's, the checkout's and
    the wheel's, and every other `graders/_bundled/curriculum` on the import path (an
    editable install leaves a copy in site-packages). They hold the answer key, which graded
    code must not see."""
    found = [root / "curriculum" for root in _roots() if (root / "curriculum").is_dir()]
    for entry in sys.path:
        bundled = Path(entry or ".") / "graders" / "_bundled" / "curriculum"
        if bundled.is_dir() and bundled.resolve() not in {f.resolve() for f in found}:
            found.append(bundled)
    return found


def checkout_root() -> Path | None:
    """The clone this package runs from (editable install), or None for a wheel."""
    root = _PACKAGE.parent
    return root if (root / "curriculum").is_dir() else None


def assignment_cache_dir() -> Path:
    """Where generated assignments are kept (`graders.grading.assignment_cache`)."""
    configured = settings.CACHE_DIR.read()
    if configured is not None:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmlabs"


def regular_files(directory: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    """Every regular file under `directory`, sorted, leaving out symlinks (followed nowhere:
    a submission's link to the answer key must not be read through) and any file with a
    folder or name in `skip` on its path below `directory`."""
    found: list[Path] = []
    for parent, dirs, files in os.walk(directory, followlinks=False):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = Path(parent) / name
            if name not in skip and not path.is_symlink() and path.is_file():
                found.append(path)
    return sorted(found)
