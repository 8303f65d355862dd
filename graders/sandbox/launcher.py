"""Entry point of the `llmlabs-grader` kernel: a sandboxed ipykernel.

nbgrader starts this (through the kernelspec `graders.grading.course` writes) in the
autograded submission's directory. It:

1. copies the data files of that directory (never notebooks: the autograded notebook
   holds the hidden tests) into a fresh scratch directory;
2. starts ipykernel there, inside bubblewrap when available (`graders.sandbox.bwrap`),
   under a cgroup (memory, processes) when root (`graders.sandbox.cgroup`), and under
   rlimits always;
3. forwards interrupts (nbgrader's per-cell timeout) to the kernel, enforces the wall
   time per notebook, kills the kernel if its own parent dies, and at the end kills
   every process the notebook left behind and removes the scratch directory;
4. never downgrades silently: whatever protection it could not apply (no bubblewrap, no
   cgroup, an rlimit refused) is logged once per course to nbgrader's log, and, with the
   names the in-kernel guard had to put back, written to a JSON report in
   `LLMLABS_SANDBOX_REPORT` when llmlabs runs the grading.

Limits: `graders.sandbox.limits.Limits` (environment variables LLMLABS_LIMIT_*).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graders import settings
from graders.notebook.kernel import KERNEL_ENV
from graders.paths import regular_files
from graders.processes import die_with_parent
from graders.sandbox.bwrap import bwrap_command
from graders.sandbox.cgroup import Cgroup
from graders.sandbox.limits import Limits, bwrap_available, sandbox_mode
from graders.sandbox.visibility import reachable_answer_key

NO_BWRAP = (
    "no bubblewrap: the notebook runs with the grader's file-system rights "
    "(course directory not hidden, file system writable, no PID namespace)"
)
# Without a mount namespace nothing can be hidden from the grader's own user: the audit
# (graders.grading.audit) flags the attempts it can see, and the report says where the key is.
ANSWER_KEY_READABLE = "answer key readable by the notebook (reference solutions and hidden tests)"


def _log(message: str) -> None:
    # Goes to nbgrader's log (the kernel's own stderr is not a cell output).
    print(f"[llmlabs-grader] {message}", file=sys.stderr, flush=True)


def copy_data_files(src: Path, dst: Path, max_bytes: int) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in regular_files(src, skip=(".ipynb_checkpoints",)):
        if path.suffix == ".ipynb":
            continue
        size = path.stat().st_size
        if total + size > max_bytes:
            _log(f"not copying {path.name}: the scratch directory's size limit was reached")
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        total += size


def _copy_matplotlib_cache(home: Path) -> Path:
    # A fresh config dir makes matplotlib rebuild its font cache (slow, and it says so on
    # stderr); give the kernel a copy of the grader's cache instead.
    target = home / ".config" / "matplotlib"
    target.mkdir(parents=True, exist_ok=True)
    for base in (
        os.environ.get("MPLCONFIGDIR"),
        Path.home() / ".cache" / "matplotlib",
        Path.home() / ".matplotlib",
    ):
        if base and Path(base).is_dir():
            for f in Path(base).glob("fontlist-*.json"):
                shutil.copyfile(f, target / f.name)
    return target


def _processes_of_user() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _preexec(
    limits: Limits, cgroup: Cgroup | None, nproc: int | None, failures_fd: int
) -> Callable[[], None]:
    """Runs in the child between fork and exec; each limit it cannot set is written to
    `failures_fd` as a line, for the report."""

    def refused(what: str, err: BaseException) -> None:
        os.write(failures_fd, f"{what}: {err}\n".encode())

    def run() -> None:
        die_with_parent()  # even if the launcher is SIGKILLed
        if cgroup is not None:
            cgroup.add(os.getpid())
        mb = 2**20
        for name, key, value in (
            ("RLIMIT_CORE (no core dumps)", resource.RLIMIT_CORE, (0, 0)),
            (
                "RLIMIT_FSIZE (largest file)",
                resource.RLIMIT_FSIZE,
                (limits.file_mb * mb, limits.file_mb * mb),
            ),
            ("RLIMIT_CPU (CPU seconds)", resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5)),
        ):
            try:
                resource.setrlimit(key, value)
            except (ValueError, OSError) as e:
                refused(name, e)
        if cgroup is None or "memory" not in cgroup.controllers:
            # Address space, not resident memory: leave room for the libraries' mappings.
            cap = (limits.memory_mb + 4096) * mb
            try:
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            except (ValueError, OSError) as e:
                refused("RLIMIT_AS (memory cap)", e)
        if nproc is not None:
            try:
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            except (ValueError, OSError) as e:
                refused("RLIMIT_NPROC (process cap)", e)

    return run


def _read_info(fd: int) -> dict[str, Any]:
    raw = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        raw += chunk
        try:
            info: dict[str, Any] = json.loads(raw)
            return info
        except ValueError:
            continue
    info = json.loads(raw or b"{}")
    return info


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _drain(fd: int) -> str:
    chunks = []
    os.set_blocking(fd, False)
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _not_applied(mode: str, cgroup: Cgroup | None, is_root: bool) -> list[str]:
    """What protection this kernel goes without, in words an instructor can act on."""
    out = []
    if mode == "none":
        out.append("LLMLABS_SANDBOX=none: no sandbox at all (no scratch directory, no limits)")
        key = reachable_answer_key()
        if key:
            out.append(f"{ANSWER_KEY_READABLE}: {', '.join(key)}")
        return out
    if mode == "rlimits":
        reason = "LLMLABS_SANDBOX=rlimits" if bwrap_available() else "bubblewrap is not installed"
        out.append(f"{NO_BWRAP} [{reason}]")
        key = reachable_answer_key()
        if key:
            out.append(f"{ANSWER_KEY_READABLE}: {', '.join(key)}")
    if not sys.platform.startswith("linux"):
        out.append("not Linux: no cgroups; the memory cap is an address-space rlimit")
    elif not is_root:
        out.append(
            "not root: no cgroup memory/process caps (address-space and process-count rlimits instead)"
        )
    elif cgroup is not None:
        out += cgroup.missing
    return out


class Report:
    """What the sandbox applied to one kernel: logged once per course, and written as JSON
    to LLMLABS_SANDBOX_REPORT for llmlabs' own grading report."""

    def __init__(self, mode: str, not_applied: list[str]):
        self.data: dict[str, Any] = {
            "cwd": os.getcwd(),
            "mode": mode,
            "not_applied": not_applied,
            "restored": [],
        }
        self.directory = settings.SANDBOX_REPORT.read()

    def log_once(self) -> None:
        if not self.data["not_applied"]:
            return
        text = "; ".join(self.data["not_applied"])
        # One warning per course and message, not one per notebook of a 300-student batch.
        hide = settings.HIDE_PATHS.read()
        marker = Path(hide[0]) / ".llmlabs" / "sandbox-warned" if hide else None
        if marker is not None and marker.is_file() and marker.read_text() == text:
            return
        _log(f"WARNING: reduced sandbox ({self.data['mode']}): {text}")
        if marker is not None:
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(text)
            except OSError:
                pass

    def write(self) -> None:
        if self.directory is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{uuid.uuid4().hex}.json").write_text(json.dumps(self.data))
        except OSError as e:
            _log(f"could not write the sandbox report: {e}")


def reports_by_student(directory: Path, autograded: Path) -> dict[str, dict[str, Any]]:
    """student -> the report of the kernel that ran in `autograded/<student>/...`, from the
    reports written to `directory` (LLMLABS_SANDBOX_REPORT). The kernel's working directory
    is the one link between a report and a student: nbgrader tells the launcher nothing
    else. An unreadable report, or one from a kernel outside `autograded`, is left out."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            rel = Path(data["cwd"]).resolve().relative_to(Path(autograded).resolve())
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if rel.parts and isinstance(data, dict):
            out[rel.parts[0]] = data
    return out


def main() -> int:
    args = sys.argv[1:]
    if "-f" not in args:
        print(
            "usage: python -m graders.sandbox.launcher -f CONNECTION_FILE [ipykernel options]",
            file=sys.stderr,
        )
        return 2
    for key, value in KERNEL_ENV.items():
        os.environ.setdefault(key, value)
    limits = Limits.from_env()
    mode = sandbox_mode()
    is_root = os.geteuid() == 0
    guard_r, guard_w = os.pipe()
    guard = (
        f"--IPKernelApp.exec_lines=import graders.sandbox.guard as _g; "
        f"_g.install({limits.output_mb}, {guard_w}); del _g"
    )
    kernel_argv = [sys.executable, "-m", "ipykernel_launcher", *args, guard]
    if mode == "none":
        report = Report(mode, _not_applied(mode, None, is_root))
        report.log_once()
        report.write()
        os.close(guard_r)
        os.execv(sys.executable, kernel_argv)

    scratch = Path(tempfile.mkdtemp(prefix="llmlabs-kernel-"))
    work = scratch / "work"
    copy_data_files(Path.cwd(), work, limits.scratch_mb * 2**20)
    mpl = _copy_matplotlib_cache(work)
    env = dict(os.environ, HOME=str(work), MPLCONFIGDIR=str(mpl))
    # ipykernel shuts down when it cannot see its parent's pid, which a PID namespace
    # hides; the launcher itself ties the kernel's life to nbgrader's instead.
    env.pop("JPY_PARENT_PID", None)
    # The kernel must not learn where the course lives, nor where reports go; nor find
    # the course through the launcher's cwd (/proc/PPID/cwd) without a PID namespace.
    for setting in (settings.HIDE_PATHS, settings.SANDBOX_REPORT):
        env.pop(setting.env, None)
    report = Report(mode, [])
    os.chdir(scratch)
    cgroup = (
        Cgroup(f"{os.getpid()}-{uuid.uuid4().hex[:8]}", limits)
        if is_root and sys.platform.startswith("linux")
        else None
    )
    # RLIMIT_NPROC counts all of the user's processes (root is exempt); only on Linux,
    # where /proc lets us count what the user already runs.
    linux = sys.platform.startswith("linux")
    nproc = _processes_of_user() + limits.processes if linux and not is_root else None

    info_r = info_w = None
    if mode == "bwrap":
        info_r, info_w = os.pipe()
        cmd, cwd = bwrap_command(kernel_argv, work, info_w), work
    else:
        cmd, cwd = kernel_argv, work
    fail_r, fail_w = os.pipe()
    keep = (guard_w,) if info_w is None else (guard_w, info_w)
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        start_new_session=True,
        preexec_fn=_preexec(limits, cgroup, nproc, fail_w),
        pass_fds=keep,
    )
    os.close(fail_w)
    os.close(guard_w)
    refused = [f"{line} (refused)" for line in _drain(fail_r).splitlines() if line]
    report.data["not_applied"] = _not_applied(mode, cgroup, is_root) + refused
    report.log_once()
    restored: list[str] = report.data["restored"]
    reader = threading.Thread(target=_collect_restored, args=(guard_r, restored), daemon=True)
    reader.start()

    kernel_pid = proc.pid
    if info_r is not None and info_w is not None:
        os.close(info_w)
        try:
            init_pid = int(_read_info(info_r).get("child-pid", proc.pid))
            for _ in range(200):  # the kernel is the first child of bwrap's init
                kids = _children(init_pid)
                if kids:
                    kernel_pid = kids[0]
                    break
                time.sleep(0.01)
        except (ValueError, OSError) as e:
            _log(f"could not read bubblewrap's info: {e}")
        finally:
            os.close(info_r)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(kernel_pid, signum)
        except ProcessLookupError:
            pass

    # If whoever started this kernel dies (a `llmlabs grade` worker killed mid-batch), the
    # kernel must not outlive it: nobody would ever stop it before the notebook limit.
    threading.Thread(target=_die_with_parent, args=(os.getppid(), proc.pid), daemon=True).start()
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    code = 0
    try:
        code = proc.wait(timeout=limits.notebook_seconds)
    except subprocess.TimeoutExpired:
        _log(f"notebook time limit reached ({limits.notebook_seconds} s): kernel killed")
        code = 1
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.kill()
        if cgroup is not None:
            cgroup.kill_all_and_remove()
        reader.join(timeout=2)
        if restored:
            _log(
                "the notebook changed names the tests rely on (put back before each cell): "
                + ", ".join(restored)
            )
        report.write()
        shutil.rmtree(scratch, ignore_errors=True)
    return code


def _die_with_parent(parent: int, kernel_group: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    _log("the process that started this kernel is gone: kernel killed")
    try:
        os.killpg(kernel_group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _collect_restored(fd: int, into: list[str]) -> None:
    with os.fdopen(fd, "rb") as pipe:
        for line in pipe:
            name = line.decode(errors="replace").strip()
            if name and name not in into and len(into) < 200:
                into.append(name[:200])


if __name__ == "__main__":
    sys.exit(main())
