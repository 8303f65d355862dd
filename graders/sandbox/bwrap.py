"""The bubblewrap command that isolates a grading kernel.

Read-only root, the course directory, exchange and /tmp hidden behind empty tmpfs
mounts, own PID/IPC/UTS namespaces, all capabilities dropped; the scratch directory is
the only writable place and the kernel's cwd.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from graders import settings

INNER_WORK = "/tmp/llmlabs-work"


def hidden_paths() -> list[str]:
    """The folders to hide (LLMLABS_HIDE_PATHS), outside /tmp (hidden anyway)."""
    out = []
    for p in settings.HIDE_PATHS.read():
        if os.path.isdir(p) and not os.path.realpath(p).startswith("/tmp"):
            out.append(os.path.realpath(p))
    return out


def needed_under_tmp() -> list[str]:
    """What the kernel needs that lives under /tmp (a checkout or virtual environment
    there, as on a CI machine): the sandbox hides /tmp, so these are bound back read-only.
    Only these: a course directory beside them stays hidden."""
    from graders.paths import datasets_dir

    package = Path(__file__).resolve().parents[1]
    needed = {sys.prefix, sys.base_prefix, str(package)}
    try:
        needed.add(str(datasets_dir()))
    except FileNotFoundError:
        pass
    real = {os.path.realpath(p) for p in needed}
    return sorted(p for p in real if p.startswith("/tmp/") and os.path.isdir(p))


def bwrap_command(kernel_argv: Sequence[str], work: Path, info_fd: int | None) -> list[str]:
    """bwrap + its options + the kernel's argv; `work` is bound as the kernel's cwd."""
    cmd = [
        "bwrap",
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    for needed in needed_under_tmp():
        cmd += ["--ro-bind", needed, needed]
    for hidden in hidden_paths():
        cmd += ["--tmpfs", hidden]
    cmd += ["--bind", str(work), INNER_WORK, "--chdir", INNER_WORK]
    cmd += ["--setenv", "HOME", INNER_WORK, "--setenv", "MPLCONFIGDIR", f"{INNER_WORK}/.config/matplotlib"]
    conn = kernel_argv[list(kernel_argv).index("-f") + 1]
    cmd += ["--ro-bind", conn, conn]
    if info_fd is not None:
        cmd += ["--info-fd", str(info_fd)]
    return cmd + list(kernel_argv)
