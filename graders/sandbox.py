"""Limits and isolation for the kernels that run untrusted notebooks.

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
the kernel talks to nbgrader over loopback TCP.

Every limit has a default here and an environment variable to change it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

ENV_PREFIX = "LLMLABS_LIMIT_"


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 4096  # resident memory of the kernel and its children
    processes: int = 128  # processes/threads the kernel may have at once
    notebook_seconds: int = 1800  # wall time for the whole notebook's kernel
    cpu_seconds: int = 3600  # CPU time of the kernel process (RLIMIT_CPU)
    output_mb: int = 4  # bytes a kernel may print (stdout + stderr), then truncated
    file_mb: int = 512  # largest file the kernel may write (RLIMIT_FSIZE)
    scratch_mb: int = 256  # largest total of data files copied into the scratch dir

    @classmethod
    def from_env(cls, environ=None) -> Limits:
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key in env:
                try:
                    values[f.name] = int(env[key])
                except ValueError:
                    raise ValueError(f"{key} must be an integer, got {env[key]!r}") from None
                if values[f.name] <= 0:
                    raise ValueError(f"{key} must be positive, got {values[f.name]}")
        return cls(**values)

    def env(self) -> dict[str, str]:
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}


def sandbox_mode(environ=None) -> str:
    """`bwrap` when bubblewrap is usable, else `rlimits`; LLMLABS_SANDBOX=bwrap|rlimits|none forces one."""
    env = os.environ if environ is None else environ
    wanted = env.get("LLMLABS_SANDBOX", "auto")
    if wanted not in ("auto", "bwrap", "rlimits", "none"):
        raise ValueError(f"LLMLABS_SANDBOX must be auto, bwrap, rlimits or none, got {wanted!r}")
    if wanted != "auto":
        return wanted
    return "bwrap" if shutil.which("bwrap") and os.uname().sysname == "Linux" else "rlimits"


CGROUP_V1 = Path("/sys/fs/cgroup")


class Cgroup:
    """A v1 memory + pids cgroup for one kernel (root only); a no-op where not writable."""

    def __init__(self, name: str, limits: Limits):
        self.dirs: list[Path] = []
        for controller, settings in (
            ("pids", {"pids.max": str(limits.processes)}),
            ("memory", {"memory.limit_in_bytes": str(limits.memory_mb * 2**20)}),
        ):
            base = CGROUP_V1 / controller
            if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
                continue
            path = base / "llmlabs" / name
            try:
                path.mkdir(parents=True, exist_ok=True)
                for key, value in settings.items():
                    (path / key).write_text(value)
                self.dirs.append(path)
            except OSError:
                continue

    @property
    def controllers(self) -> set[str]:
        return {d.parent.parent.name for d in self.dirs}

    def add(self, pid: int) -> None:
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        out = set()
        for d in self.dirs:
            try:
                out |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return out

    def kill_all_and_remove(self) -> None:
        import signal
        import time

        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass
