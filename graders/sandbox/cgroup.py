"""A cgroup (v1) per grading kernel: a memory cap and a process cap that cover every
process the notebook starts, and a way to kill them all at the end. Root only; where a
controller cannot be used the reason is kept in `missing`, for the grading report."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from graders.sandbox.limits import Limits

CGROUP_V1 = Path("/sys/fs/cgroup")


class Cgroup:
    def __init__(self, name: str, limits: Limits, root: Path = CGROUP_V1):
        self.dirs: list[Path] = []
        self.missing: list[str] = []
        for controller, settings in (
            ("pids", {"pids.max": str(limits.processes)}),
            ("memory", {"memory.limit_in_bytes": str(limits.memory_mb * 2**20)}),
        ):
            base = root / controller
            if not (base / "cgroup.procs").exists():
                self.missing.append(f"cgroup {controller}: no cgroup v1 {controller} controller at {base}")
                continue
            if not os.access(base, os.W_OK):
                self.missing.append(f"cgroup {controller}: {base} is not writable")
                continue
            path = base / "llmlabs" / name
            try:
                path.mkdir(parents=True, exist_ok=True)
                for key, value in settings.items():
                    (path / key).write_text(value)
                self.dirs.append(path)
            except OSError as e:
                self.missing.append(f"cgroup {controller}: {e.strerror or e}")

    @property
    def controllers(self) -> set[str]:
        return {d.parent.parent.name for d in self.dirs}

    def add(self, pid: int) -> None:
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        out: set[int] = set()
        for d in self.dirs:
            try:
                out |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return out

    def kill_all_and_remove(self) -> None:
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
