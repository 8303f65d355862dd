"""The generated assignment, kept per content hash so each unit is generated once.

`generate_assignment` (about 3 s) only fills the gradebook with the source notebook's
cells, which autograde then restores into every submission. Its result depends on the
source folder, the course's nbgrader_config.py and nbgrader's version, so the gradebook
file it writes is stored under a hash of those three and copied into later courses
instead of generating again. Paths inside the config (the course's own folder) are
left out of the hash: every throw-away course lives at a new path.

The cache lives in `LLMLABS_CACHE_DIR` (default: `$XDG_CACHE_HOME/llmlabs` or
`~/.cache/llmlabs`). It is only an optimisation: a cache that cannot be read or written
means generating again, with the same result.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from graders.paths import assignment_cache_dir, regular_files

IGNORED = (".ipynb_checkpoints", "__pycache__")


def cache_root() -> Path:
    return assignment_cache_dir()


def files_digest(directory: Path, h: hashlib._Hash | None = None) -> hashlib._Hash:
    """sha256 over the relative paths and bytes of every file under `directory`."""
    h = h or hashlib.sha256()
    for path in regular_files(directory, skip=IGNORED):
        h.update(str(path.relative_to(directory)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h


def key(course_dir: Path, unit: str) -> str:
    import nbgrader

    course_dir = Path(course_dir).resolve()
    h = hashlib.sha256(f"nbgrader {nbgrader.__version__}\0{unit}\0".encode())
    config = (course_dir / "nbgrader_config.py").read_text()
    h.update(config.replace(str(course_dir), "<course>").encode() + b"\0")
    return files_digest(course_dir / "source" / unit, h).hexdigest()


def _entry(key: str) -> Path:
    return cache_root() / "assignments" / f"{key}.gradebook.db"


def restore(key: str, course_dir: Path) -> bool:
    """Copy the cached gradebook into `course_dir` (which has none yet); False on a miss."""
    cached = _entry(key)
    target = Path(course_dir) / "gradebook.db"
    if not cached.is_file() or target.exists():
        return False
    try:
        shutil.copyfile(cached, target)
    except OSError:
        target.unlink(missing_ok=True)
        return False
    return True


def store(key: str, course_dir: Path) -> None:
    source = Path(course_dir) / "gradebook.db"
    if not source.is_file():
        return
    entry = _entry(key)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial = entry.with_name(f"{entry.name}.{os.getpid()}.partial")
        shutil.copyfile(source, partial)
        os.replace(partial, entry)  # atomic: a concurrent reader sees all or nothing
    except OSError:
        pass
