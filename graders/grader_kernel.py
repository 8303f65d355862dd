"""Entry point of the `llmlabs-grader` kernel: a sandboxed ipykernel.

nbgrader starts this (through the kernelspec `graders.course` writes) in the autograded
submission's directory. It:

1. copies the data files of that directory (never notebooks: the autograded notebook
   holds the hidden tests) into a fresh scratch directory;
2. starts ipykernel there, inside bubblewrap when available (read-only file system,
   course directory and /tmp hidden, own PID namespace, no capabilities), under a
   cgroup (memory, processes) when root, and under rlimits always;
3. forwards interrupts (nbgrader's per-cell timeout) to the kernel, enforces the wall
   time per notebook, and at the end kills every process the notebook left behind and
   removes the scratch directory.

Limits: `graders.sandbox.Limits` (environment variables LLMLABS_LIMIT_*).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from graders.kernel import KERNEL_ENV
from graders.sandbox import Cgroup, Limits, sandbox_mode

INNER_WORK = "/tmp/llmlabs-work"


def _log(message: str) -> None:
    # Goes to nbgrader's log (the kernel's own stderr is not a cell output).
    print(f"[llmlabs-grader] {message}", file=sys.stderr, flush=True)


def copy_data_files(src: Path, dst: Path, max_bytes: int) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in sorted(src.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb" or ".ipynb_checkpoints" in path.parts:
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
    for base in (os.environ.get("MPLCONFIGDIR"), Path.home() / ".cache" / "matplotlib", Path.home() / ".matplotlib"):
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


def _preexec(limits: Limits, cgroup: Cgroup | None, nproc: int | None):
    def run() -> None:
        if sys.platform.startswith("linux"):
            # Die with the launcher, even if it is SIGKILLed.
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if cgroup is not None:
            cgroup.add(os.getpid())
        mb = 2**20
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb, limits.file_mb * mb))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        if cgroup is None or "memory" not in cgroup.controllers:
            # Address space, not resident memory: leave room for the libraries' mappings.
            cap = (limits.memory_mb + 4096) * mb
            try:
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            except (ValueError, OSError):
                pass
        if nproc is not None:
            try:
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            except (ValueError, OSError):
                pass

    return run


def _read_info(fd: int) -> dict:
    raw = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        raw += chunk
        try:
            return json.loads(raw)
        except ValueError:
            continue
    return json.loads(raw or b"{}")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _hidden_paths() -> list[str]:
    out = []
    for p in os.environ.get("LLMLABS_HIDE_PATHS", "").split(os.pathsep):
        if p and os.path.isdir(p) and not os.path.realpath(p).startswith("/tmp"):
            out.append(os.path.realpath(p))
    return out


def _needed_under_tmp() -> list[str]:
    """What the kernel needs that lives under /tmp (a checkout or virtual environment
    there, as on a CI machine): the sandbox hides /tmp, so these are bound back read-only.
    Only these: a course directory beside them stays hidden."""
    from graders.paths import datasets_dir

    needed = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.abspath(__file__))}
    try:
        needed.add(str(datasets_dir()))
    except FileNotFoundError:
        pass
    real = {os.path.realpath(p) for p in needed}
    return sorted(p for p in real if p.startswith("/tmp/") and os.path.isdir(p))


def build_command(kernel_argv: list[str], work: Path, mode: str, info_fd: int | None) -> tuple[list[str], Path]:
    """The command that runs ipykernel, and the directory it sees as its cwd."""
    if mode != "bwrap":
        return kernel_argv, work
    cmd = [
        "bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
    ]
    for needed in _needed_under_tmp():
        cmd += ["--ro-bind", needed, needed]
    for hidden in _hidden_paths():
        cmd += ["--tmpfs", hidden]
    cmd += ["--bind", str(work), INNER_WORK, "--chdir", INNER_WORK]
    cmd += ["--setenv", "HOME", INNER_WORK, "--setenv", "MPLCONFIGDIR", f"{INNER_WORK}/.config/matplotlib"]
    conn = kernel_argv[kernel_argv.index("-f") + 1]
    cmd += ["--ro-bind", conn, conn]
    if info_fd is not None:
        cmd += ["--info-fd", str(info_fd)]
    return cmd + kernel_argv, work


def main() -> int:
    args = sys.argv[1:]
    if "-f" not in args:
        print("usage: python -m graders.grader_kernel -f CONNECTION_FILE [ipykernel options]", file=sys.stderr)
        return 2
    for key, value in KERNEL_ENV.items():
        os.environ.setdefault(key, value)
    limits = Limits.from_env()
    mode = sandbox_mode()
    guard = f"--IPKernelApp.exec_lines=import graders.kernel_guard as _g; _g.install({limits.output_mb}); del _g"
    kernel_argv = [sys.executable, "-m", "ipykernel_launcher", *args, guard]
    if mode == "none":
        os.execv(sys.executable, kernel_argv)

    scratch = Path(tempfile.mkdtemp(prefix="llmlabs-kernel-"))
    work = scratch / "work"
    copy_data_files(Path.cwd(), work, limits.scratch_mb * 2**20)
    mpl = _copy_matplotlib_cache(work)
    env = dict(os.environ, HOME=str(work), MPLCONFIGDIR=str(mpl))
    # ipykernel shuts down when it cannot see its parent's pid, which a PID namespace
    # hides; the launcher itself ties the kernel's life to nbgrader's instead.
    env.pop("JPY_PARENT_PID", None)
    # The kernel must not learn where the course lives; nor find it through the
    # launcher's cwd (/proc/PPID/cwd) when there is no PID namespace.
    env.pop("LLMLABS_HIDE_PATHS", None)
    os.chdir(scratch)
    cgroup = Cgroup(f"{os.getpid()}-{uuid.uuid4().hex[:8]}", limits) if os.geteuid() == 0 else None
    # RLIMIT_NPROC counts all of the user's processes (root is exempt); only on Linux,
    # where /proc lets us count what the user already runs.
    linux = sys.platform.startswith("linux")
    nproc = _processes_of_user() + limits.processes if linux and os.geteuid() != 0 else None

    info_r = info_w = None
    if mode == "bwrap":
        info_r, info_w = os.pipe()
    cmd, cwd = build_command(kernel_argv, work, mode, info_w)
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, start_new_session=True,
        preexec_fn=_preexec(limits, cgroup, nproc), pass_fds=(info_w,) if info_w is not None else (),
    )
    kernel_pid = proc.pid
    if info_w is not None:
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

    def forward(signum, _frame):
        try:
            os.kill(kernel_pid, signum)
        except ProcessLookupError:
            pass

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
        shutil.rmtree(scratch, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
