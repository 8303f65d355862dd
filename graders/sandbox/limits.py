"""The limits of a grading kernel, and which isolation mode it runs in.

What each platform gets (see README, "Grading untrusted notebooks"):

| mechanism | Linux + bubblewrap | Linux, no bubblewrap | macOS |
|---|---|---|---|
| scratch directory holding only the submission's data files | yes | yes | yes |
| course dir (gradebook, sources, other submissions) and /tmp hidden | yes (tmpfs over them) | no | no |
| rest of the file system | read-only | grader's rights | grader's rights |
| own PID/IPC/UTS namespaces, capabilities dropped | yes | no | no |
| memory cap | cgroup (root) or RLIMIT_AS | cgroup (root) or RLIMIT_AS | none |
| process cap | cgroup pids (root) or RLIMIT_NPROC | same | RLIMIT_NPROC |
| file size, core dumps, CPU seconds | rlimits | rlimits | rlimits |
| wall time per notebook, all processes killed after | yes | yes | yes |
| output bytes per kernel | yes (in-kernel guard) | yes | yes |

Per-cell time limits are nbgrader's own (`Execute.timeout`). The network is not cut:
the kernel talks to nbgrader over loopback TCP. Every limit has a default and an
environment variable (`graders.settings.LIMITS`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, fields

from graders import settings


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 4096  # resident memory of the kernel and its children
    # Processes and threads (tasks) the kernel may have at once. A kernel alone takes about
    # 20; `run_distributed` with 4 ranks brings it to 36 (each gloo worker has 4 threads):
    # measured in bwrap under the cgroup pids cap, which 24 refuses with a clear WorkerError.
    processes: int = 128
    notebook_seconds: int = 1800  # wall time for the whole notebook's kernel
    cpu_seconds: int = 3600  # CPU time of the kernel process (RLIMIT_CPU)
    output_mb: int = 4  # bytes a kernel may print (stdout + stderr), then truncated
    file_mb: int = 512  # largest file the kernel may write (RLIMIT_FSIZE)
    scratch_mb: int = 256  # largest total of data files copied into the scratch dir

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        return cls(**{f.name: settings.LIMITS[f.name].read(environ) for f in fields(cls)})

    def env(self) -> dict[str, str]:
        return {settings.LIMITS[f.name].env: str(getattr(self, f.name)) for f in fields(self)}


def bwrap_available() -> bool:
    return bool(shutil.which("bwrap")) and os.uname().sysname == "Linux"


def sandbox_mode(environ: Mapping[str, str] | None = None) -> str:
    """`bwrap` when bubblewrap is usable, else `rlimits`; LLMLABS_SANDBOX=bwrap|rlimits|none forces one."""
    wanted = settings.SANDBOX.read(environ)
    if wanted != "auto":
        return wanted
    return "bwrap" if bwrap_available() else "rlimits"
