"""The bubblewrap command that isolates a grading kernel.

Read-only root; /tmp, the grader's home, this clone, the answer key, the course
directory and the exchange hidden behind empty tmpfs mounts, with what the kernel needs
bound back read-only (`graders.sandbox.visibility`); own PID/IPC/UTS namespaces, all
capabilities dropped; the scratch directory is the only writable place and the kernel's
cwd.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from graders.sandbox.visibility import kernel_view

INNER_WORK = "/tmp/llmlabs-work"


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
    ]
    empty = Path(work).parent / "empty"
    empty.write_bytes(b"")
    cmd += kernel_view().bwrap_args(str(empty))
    cmd += ["--bind", str(work), INNER_WORK, "--chdir", INNER_WORK]
    cmd += ["--setenv", "HOME", INNER_WORK, "--setenv", "MPLCONFIGDIR", f"{INNER_WORK}/.config/matplotlib"]
    conn = kernel_argv[list(kernel_argv).index("-f") + 1]
    cmd += ["--ro-bind", conn, conn]
    if info_fd is not None:
        cmd += ["--info-fd", str(info_fd)]
    return cmd + list(kernel_argv)
