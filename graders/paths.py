"""Find the bundled `curriculum/` and `datasets/` folders.

From a clone (editable install) they sit beside the `graders` package; a wheel carries
copies inside the package as `graders/_bundled/`. `LLMLABS_ROOT` overrides both, so an
instructor can point the CLI at a fork of the curriculum.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _roots() -> list[Path]:
    roots = []
    if os.environ.get("LLMLABS_ROOT"):
        roots.append(Path(os.environ["LLMLABS_ROOT"]).expanduser().resolve())
    roots += [_PACKAGE.parent, _PACKAGE / "_bundled"]
    return roots


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
