"""Find the bundled `curriculum/` and `datasets/` folders.

From a clone (editable install) they sit beside the `graders` package; a wheel carries
copies inside the package as `graders/_bundled/`. `LLMLABS_ROOT` overrides both, so an
instructor can point the CLI at a fork of the curriculum.
"""

from __future__ import annotations

from pathlib import Path

from graders import settings

_PACKAGE = Path(__file__).resolve().parent


def _roots() -> list[Path]:
    override = settings.ROOT.read()
    return ([override] if override else []) + [_PACKAGE.parent, _PACKAGE / "_bundled"]


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
