"""What of the file system a grading kernel sees under bubblewrap.

The kernel runs as the grader, so without a mount namespace it can read whatever the
grader can: the answer key included. Under bubblewrap the root is bound read-only and
then whole folders are covered with empty tmpfs mounts; what the kernel needs inside
them is bound back read-only:

- covered: /tmp, the grader's home (other courses, clones, caches, keys) and the clone
  this package runs from (text forms, source notebooks, mutants, git history, tests);
- bound back: the Python prefixes, this package, the bundled datasets, the user's
  site-packages and the model folder a notebook may load (`LLMLABS_MODEL`);
- covered again, wherever they remain visible: every `curriculum/` folder llmlabs knows
  (the wheel carries one inside the package), the generated-assignment cache, and the
  course and exchange folders (`LLMLABS_HIDE_PATHS`); the scripts that built the bundled
  data read as empty files (one holds the pre-training unit's labels).

Covering whole folders and binding back what is needed, rather than listing files to
hide, means a copy of the key that llmlabs does not know about (a second clone in the
grader's home) is hidden too. Copies elsewhere on disk are not: keep them out of
world-visible places, or add their folders to the course's hidden paths.
"""

from __future__ import annotations

import os
import site
import sys
from dataclasses import dataclass, field
from pathlib import Path

from graders import paths, settings

# Never covered, whatever HOME says: the kernel could not start without them.
_SYSTEM = {"/", "/usr", "/bin", "/lib", "/lib64", "/etc", "/opt", "/var", "/proc", "/dev", "/sys"}


def _real(path: str | Path) -> str:
    return os.path.realpath(path)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def answer_key_paths() -> list[str]:
    """Folders that hold reference solutions or hidden tests."""
    found = [_real(p) for p in paths.curriculum_dirs()]
    found.append(_real(paths.assignment_cache_dir()))
    return sorted(set(found))


def covered_folders() -> list[str]:
    """Whole folders the kernel sees as empty, before what it needs is bound back."""
    folders = ["/tmp"]
    home = os.environ.get("HOME") or str(Path.home())
    if home and _real(home) not in _SYSTEM and os.path.isdir(home):
        folders.append(_real(home))
    checkout = paths.checkout_root()
    if checkout is not None and _real(checkout) not in _SYSTEM:
        folders.append(_real(checkout))
    # A folder inside another covered one is covered already.
    return [f for f in sorted(set(folders)) if not any(f != g and _inside(f, g) for g in folders)]


def kernel_needs() -> list[str]:
    """What a released notebook's kernel must be able to read."""
    needed = {sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[1])}
    try:
        needed.add(str(paths.datasets_dir()))
    except FileNotFoundError:
        pass
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    for extra in (user_site, os.environ.get("HF_HOME"), settings.MODEL.read()):
        if extra and os.path.isdir(extra):
            needed.add(extra)
    checkout = paths.checkout_root()
    if checkout is not None:
        # graders.paths tells a clone from site-packages by this file (a `datasets/` beside
        # the package in site-packages is Hugging Face's library): without it the kernel
        # would not find the bundled datasets.
        needed.add(str(checkout / "pyproject.toml"))
    return sorted({_real(p) for p in needed if os.path.exists(p)})


@dataclass
class View:
    """The mounts, in the order bubblewrap applies them (a later mount wins)."""

    cover: list[str] = field(default_factory=list)  # tmpfs over these first
    bind_back: list[str] = field(default_factory=list)  # then these, read-only
    hide: list[str] = field(default_factory=list)  # then tmpfs over these again
    blank: list[str] = field(default_factory=list)  # files read as empty (an empty file bound over them)

    def bwrap_args(self, empty_file: str = "/dev/null") -> list[str]:
        """`empty_file`: a regular empty file to bind over `blank` (bubblewrap binds without
        device access, so /dev/null itself cannot be opened there)."""
        args: list[str] = []
        for folder in self.cover:
            args += ["--tmpfs", folder]
        for folder in self.bind_back:
            args += ["--ro-bind", folder, folder]
        for folder in self.hide:
            args += ["--tmpfs", folder]
        for path in self.blank:
            args += ["--ro-bind", empty_file, path]
        return args


def kernel_view() -> View:
    cover = covered_folders()
    needs = kernel_needs()
    bind_back = [n for n in needs if any(_inside(n, c) for c in cover)]
    # Bound once, by the outermost folder.
    bind_back = [n for n in bind_back if not any(n != m and _inside(n, m) for m in bind_back)]

    def visible(path: str) -> bool:
        return not any(_inside(path, c) for c in cover) or any(_inside(path, b) for b in bind_back)

    course = [_real(p) for p in settings.HIDE_PATHS.read() if os.path.isdir(p)]
    hide = [p for p in sorted(set(answer_key_paths() + course)) if os.path.isdir(p) and visible(p)]
    blank = [p for p in data_build_scripts() if visible(p) and not any(_inside(p, h) for h in hide)]
    return View(cover=cover, bind_back=bind_back, hide=hide, blank=blank)


def data_build_scripts() -> list[str]:
    """The scripts that made the bundled data. A notebook needs the data, never these, and
    one of them holds answers: the true cause of every pre-training log the diagnosis
    exercise grades (`TRUTH` in build_training_logs.py)."""
    try:
        folder = paths.datasets_dir()
    except FileNotFoundError:
        return []
    return sorted(_real(p) for p in folder.rglob("*.py") if p.is_file() and not p.is_symlink())


def reachable_answer_key() -> list[str]:
    """Where the answer key lies, for the report of a sandbox that cannot hide files."""
    return [p for p in answer_key_paths() if os.path.isdir(p)]
