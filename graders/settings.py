"""Every `LLMLABS_*` environment setting, read and validated in one place.

Each setting has a type, a default and a sentence for the README's table
(`tests/test_settings.py` checks the table lists them all). A bad value raises
`SettingError` naming the variable and what it accepts, never a bare traceback later.
Standard library only: the notebook API reads `THREADS` and `MODEL` inside kernels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from graders.errors import SettingError

T = TypeVar("T")


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def optional_text(raw: str) -> str | None:
    return raw.strip() or None


def optional_dir(raw: str) -> Path | None:
    return Path(raw).expanduser().resolve() if raw.strip() else None


def path_list(raw: str) -> tuple[str, ...]:
    return tuple(p for p in raw.split(os.pathsep) if p)


def choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {raw!r}")
        return raw

    return parse


@dataclass(frozen=True)
class Setting(Generic[T]):
    env: str
    default: str
    parse: Callable[[str], T]
    doc: str
    public: bool = True  # listed in the README; internal ones pass data between our processes

    def read(self, environ: Mapping[str, str] | None = None) -> T:
        env = os.environ if environ is None else environ
        raw = env.get(self.env)
        if raw is None:
            raw = self.default
        try:
            return self.parse(raw)
        except ValueError as e:
            raise SettingError(f"{self.env} {e}") from None


THREADS = Setting(
    "LLMLABS_THREADS",
    "2",
    positive_int,
    "torch threads per notebook kernel (1 when grading two notebooks at once on 2 cores)",
)
MODEL = Setting(
    "LLMLABS_MODEL", "", optional_text, "a hub id or local directory to use instead of the bundled tiny Llama"
)
LANG = Setting(
    "LLMLABS_LANG",
    "en",
    choice("en", "zh"),
    "language of released notebooks and course sources: `en` or `zh` (Simplified Chinese); --lang overrides",
)
ROOT = Setting(
    "LLMLABS_ROOT",
    "",
    optional_dir,
    "a folder holding `curriculum/` and `datasets/` to use instead of the installed ones",
)
SANDBOX = Setting(
    "LLMLABS_SANDBOX",
    "auto",
    choice("auto", "bwrap", "rlimits", "none"),
    "`auto` uses bubblewrap where installed; `bwrap`, `rlimits` or `none` force a mode",
)
CACHE_DIR = Setting(
    "LLMLABS_CACHE_DIR",
    "",
    optional_dir,
    "where generated assignments are kept per content hash (unset: `$XDG_CACHE_HOME/llmlabs`)",
)
HIDE_PATHS = Setting(
    "LLMLABS_HIDE_PATHS",
    "",
    path_list,
    "folders the grading kernel hides (set by the course's nbgrader_config.py)",
    public=False,
)
SANDBOX_REPORT = Setting(
    "LLMLABS_SANDBOX_REPORT",
    "",
    optional_dir,
    "where grading kernels write what the sandbox applied (set by llmlabs)",
    public=False,
)

LIMIT_PREFIX = "LLMLABS_LIMIT_"
LIMITS = {
    "memory_mb": Setting(
        LIMIT_PREFIX + "MEMORY_MB", "4096", positive_int, "resident memory of a kernel and its children, MB"
    ),
    "processes": Setting(
        LIMIT_PREFIX + "PROCESSES", "128", positive_int, "processes and threads a kernel may have at once"
    ),
    "notebook_seconds": Setting(
        LIMIT_PREFIX + "NOTEBOOK_SECONDS", "1800", positive_int, "wall time for a whole notebook, s"
    ),
    "cpu_seconds": Setting(LIMIT_PREFIX + "CPU_SECONDS", "3600", positive_int, "CPU time of a kernel, s"),
    "output_mb": Setting(LIMIT_PREFIX + "OUTPUT_MB", "4", positive_int, "bytes a notebook may print, MB"),
    "file_mb": Setting(
        LIMIT_PREFIX + "FILE_MB", "512", positive_int, "largest file a notebook may write, MB"
    ),
    "scratch_mb": Setting(
        LIMIT_PREFIX + "SCRATCH_MB", "256", positive_int, "data files copied into the scratch directory, MB"
    ),
}

ALL: tuple[Setting[Any], ...] = (
    THREADS,
    MODEL,
    LANG,
    ROOT,
    SANDBOX,
    CACHE_DIR,
    *LIMITS.values(),
    HIDE_PATHS,
    SANDBOX_REPORT,
)


def check_all(environ: Mapping[str, str] | None = None) -> None:
    """Raise `SettingError` for the first setting whose value is not valid."""
    for setting in ALL:
        setting.read(environ)
